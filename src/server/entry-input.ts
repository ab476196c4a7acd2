/**
 * Checks a registration entry before it is stored (docs/server-api.md, `POST /v1/entries`):
 * - spiffe_id: a SPIFFE ID with a path (bad_spiffe_id), of the server's trust domain
 *   (wrong_trust_domain), not under /tidegate/ (reserved_spiffe_id: the server's and the nodes'
 *   own IDs live there, and an entry for one would hand a node that identity);
 * - parent_id: spiffe://TD/tidegate/agent/NODE (bad_parent_id, wrong_trust_domain);
 * - selectors: SPIRE's "type:key:value", of a type and key an attestor gives and a value of that
 *   key's form, e.g. a numeric unix:uid (bad_selector, saying why and the nearest known type or
 *   key: src/attest/selector.ts): an entry with a selector no process carries selects nothing;
 * - dns_names: DNS names, "*." allowed as the first label (bad_dns_name);
 * - ttl_seconds: the settings' svid.default_ttl when absent.
 */
import { SpiffeId, SpiffeIdError, type TrustDomain } from "../spiffe/index.ts";
import type { NewRegistrationEntry } from "./store/index.ts";
import { ApiError } from "./errors.ts";
import { selectorProblem } from "../attest/selector.ts";
import { nodeOf, RESERVED_PREFIX } from "./ids.ts";
import type { EntryBody } from "./wire.ts";
import type * as v from "valibot";

const DNS_NAME = /^(?=.{1,253}$)(\*\.)?[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

const q = (s: string) => JSON.stringify(s.slice(0, 200));

function parseId(text: string, field: string, code: "bad_spiffe_id" | "bad_parent_id"): SpiffeId {
  try {
    return SpiffeId.parse(text);
  } catch (e) {
    if (e instanceof SpiffeIdError) throw new ApiError(code, `server: ${field} ${q(text)} is not a SPIFFE ID: ${e.message} (${e.code})`, { cause: e });
    throw e;
  }
}

export function checkEntry(td: TrustDomain, body: v.InferOutput<typeof EntryBody>, defaultTtlSeconds: number, now: Date): NewRegistrationEntry {
  const id = parseId(body.spiffe_id, "spiffe_id", "bad_spiffe_id");
  if (!id.memberOf(td)) throw new ApiError("wrong_trust_domain", `server: spiffe_id ${q(body.spiffe_id)} is not in trust domain ${q(td.name)}`);
  if (id.path === "") throw new ApiError("bad_spiffe_id", `server: spiffe_id ${q(body.spiffe_id)} has no path (a workload ID needs one)`);
  if (id.path === "/tidegate" || id.path.startsWith(RESERVED_PREFIX)) {
    throw new ApiError("reserved_spiffe_id", `server: spiffe_id ${q(body.spiffe_id)} is under /tidegate/, reserved for the server and its nodes`);
  }
  const parent = parseId(body.parent_id, "parent_id", "bad_parent_id");
  if (!parent.memberOf(td)) throw new ApiError("wrong_trust_domain", `server: parent_id ${q(body.parent_id)} is not in trust domain ${q(td.name)}`);
  if (nodeOf(td, parent) === null) {
    throw new ApiError("bad_parent_id", `server: parent_id ${q(body.parent_id)} is not a node (spiffe://${td.name}/tidegate/agent/NODE)`);
  }
  for (const s of body.selectors) {
    const why = selectorProblem(s);
    if (why !== null) throw new ApiError("bad_selector", `server: ${why}`);
  }
  for (const d of body.dns_names ?? []) {
    if (!DNS_NAME.test(d)) throw new ApiError("bad_dns_name", `server: ${q(d)} is not a DNS name`);
  }
  return {
    spiffeId: id.toString(),
    parentId: parent.toString(),
    selectors: body.selectors,
    ttlSeconds: body.ttl_seconds ?? defaultTtlSeconds,
    dnsNames: body.dns_names ?? [],
    createdAt: now,
  };
}
