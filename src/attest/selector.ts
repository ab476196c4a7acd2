/**
 * The selectors tidegate's attestors give (docs/attestation.md, "Selectors"), as a closed list
 * to check registration entries and the policy's `workloads[].selectors` against. An entry
 * selects a process only when the process carries every one of its selectors (match.ts), so a
 * selector no attestor gives makes the entry select nothing: a typo (`unix:ud:1000`,
 * `tidgate:workload:web`, `unix:uid:abc`) would leave the identity unissued without a word.
 * Portable: no runtime imports.
 *
 * Accepted: `TYPE:KEY:VALUE` with TYPE and KEY a pair below and a non-empty VALUE without control
 * characters; where the attestor's value has a fixed form, that form exactly, as the attestor
 * writes it (selectors are compared as exact strings):
 * - `unix:uid`, `unix:gid`, `unix:supplementary_gid`: a decimal id (0 to 4294967295, no leading
 *   zero); `unix:sha256`, `container:id`: 64 lowercase hex; `unix:path`, `cgroup:path`: an
 *   absolute path; `k8s:pod-image-count`, `k8s:pod-init-image-count`: a decimal count;
 *   `k8s:pod-label`, `k8s:pod-owner`, `k8s:pod-owner-uid`: `A:B`; `tidegate:workload`: a
 *   workload name (src/policy/names.ts); `tidegate:inbound`: a rule name (no process
 *   carries it: `tidegate up` gives an inbound listener's entry that selector, src/up/entries.ts).
 * - Other values (user and group names, k8s names, images, UIDs) as they come: any text.
 * Rejected, naming the selector: an unknown type or key (with the nearest known ones), a missing
 * value, and a value not of its key's form. Every selector the attestors give passes
 * (selector-attestors.test.ts checks them against this list).
 */
import { didYouMean, nearest } from "../policy/nearest.ts";
import { quote } from "../errors.ts";
import { RULE_NAME, WORKLOAD_NAME } from "../policy/names.ts";
import { AttestError } from "./errors.ts";

interface ValueForm {
  readonly test: (value: string) => boolean;
  /** What the value must be, for the error. */
  readonly is: string;
}

const form = (re: RegExp, is: string, extra: (v: string) => boolean = () => true): ValueForm => ({ test: (v) => re.test(v) && extra(v), is });
const ID = form(/^(?:0|[1-9][0-9]{0,9})$/, "a decimal id (0 to 4294967295, no leading zero, as /proc/PID/status gives it)", (v) => Number(v) <= 0xffffffff);
const HEX64 = form(/^[0-9a-f]{64}$/, "64 lowercase hex digits");
const ABSOLUTE = form(/^\//, "an absolute path (starting with /)");
const COUNT = form(/^(?:0|[1-9][0-9]{0,9})$/, "a decimal count");
const PAIR = form(/:/, "two parts, A:B (e.g. app:web)");
const WORKLOAD = form(WORKLOAD_NAME, "a workload name (1-63 of letters, digits, '_', '.', '-', starting with a letter or digit)");
const RULE = form(RULE_NAME, "a rule name");

/** Type, then key, then the form of the value (null: any text). */
const SELECTORS: Readonly<Record<string, Readonly<Record<string, ValueForm | null>>>> = {
  unix: { uid: ID, user: null, gid: ID, group: null, supplementary_gid: ID, supplementary_group: null, path: ABSOLUTE, sha256: HEX64 },
  cgroup: { path: ABSOLUTE },
  container: { id: HEX64 },
  k8s: {
    ns: null,
    sa: null,
    "node-name": null,
    "pod-uid": null,
    "pod-name": null,
    "pod-image-count": COUNT,
    "pod-init-image-count": COUNT,
    "pod-image": null,
    "pod-init-image": null,
    "pod-label": PAIR,
    "pod-owner": PAIR,
    "pod-owner-uid": PAIR,
    "container-name": null,
    "container-image": null,
  },
  tidegate: { workload: WORKLOAD, inbound: RULE },
};

/** Every `type:key` the attestors give, for help and errors. */
export const SELECTOR_KEYS: readonly string[] = Object.entries(SELECTORS).flatMap(([t, keys]) => Object.keys(keys).map((k) => `${t}:${k}`));

const CONTROL = /[\u0000-\u001f\u007f]/;


/**
 * Why no attestor could give `selector`, or null when one can. The reason starts with the
 * selector, quoted, so it can follow "FIELD: " or "server: " as it is.
 */
export function selectorProblem(selector: string): string | null {
  const s = quote(selector);
  if (CONTROL.test(selector)) return `selector ${s} holds a control character`;
  const first = selector.indexOf(":");
  const type = first < 0 ? selector : selector.slice(0, first);
  if (!Object.hasOwn(SELECTORS, type)) {
    if (first < 0) return `selector ${s} is not TYPE:KEY:VALUE (e.g. unix:uid:1000)`;
    return `selector ${s} has type ${quote(type)}, which no attestor gives (types: ${Object.keys(SELECTORS).join(", ")})${didYouMean(nearest(type, Object.keys(SELECTORS)))}`;
  }
  const keys = SELECTORS[type]!;
  const second = selector.indexOf(":", first + 1);
  const key = second < 0 ? selector.slice(first + 1) : selector.slice(first + 1, second);
  if (!Object.hasOwn(keys, key)) {
    const known = Object.keys(keys).map((k) => `${type}:${k}`);
    return `selector ${s}: ${type} has no key ${quote(key)} (${type} gives ${known.join(", ")})${didYouMean(nearest(`${type}:${key}`, known))}`;
  }
  const value = second < 0 ? "" : selector.slice(second + 1);
  if (value === "") return `selector ${s} has no value (${type}:${key}:VALUE)`;
  const f = keys[key];
  if (f != null && !f.test(value)) return `selector ${s}: the value of ${type}:${key} must be ${f.is}, not ${quote(value)}`;
  return null;
}

/** `selector` as it is, or `attest_bad_selector` saying why no attestor could give it. */
export function checkSelector(selector: string): string {
  const why = selectorProblem(selector);
  if (why !== null) throw new AttestError("attest_bad_selector", `attest: ${why}`);
  return selector;
}
