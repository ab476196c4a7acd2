/**
 * How `audit tail` shows and selects events (docs/audit.md, "Commands").
 *
 * The human form is one line per event: time, type, `#seq`, then every field as key=value with
 * nested objects flattened with dots (`src.spiffe_id=...`). Left out: `prev`, null values, and a
 * checkpoint's `alg`, `chain`, `sig` and `covers.hash` (`--json` prints the raw line). A value is
 * printed bare when it is made of letters, digits and `._:/@+-,[]`; else JSON-quoted, with every
 * control, format and separator character escaped, so a field (a host name, a path, an
 * executable a workload chose) can never move the cursor or rewrite a terminal.
 *
 * A filter `FIELD=VALUE` names a field by dotted path and matches when the field's text is
 * exactly VALUE: a string as it is, a number or boolean as JSON writes it, null as "null", an
 * array or object as its JSON. A missing field never matches. Filters are ANDed.
 */
import { AUDIT_EVENT_TYPES, isAuditEventType } from "../audit/format/index.ts";
import { nearest } from "../policy/nearest.ts";
import { UsageError } from "./usage-error.ts";

export type AuditObject = Readonly<Record<string, unknown>>;

export interface Filter {
  readonly path: readonly string[];
  readonly value: string;
}

const FIELD_PATH = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/**
 * Parses `--where` values; a value without "=" or with a bad field path is a usage error, and so
 * is `type=` naming no event type (it could match nothing).
 */
export function parseFilters(values: readonly string[]): Filter[] {
  return values.map((w) => {
    const eq = w.indexOf("=");
    const field = eq < 0 ? "" : w.slice(0, eq);
    if (!FIELD_PATH.test(field)) throw new UsageError(`--where ${JSON.stringify(w.slice(0, 80))} is not FIELD=VALUE (FIELD a dotted path such as src.workload)`);
    const value = w.slice(eq + 1);
    if (field === "type" && !isAuditEventType(value)) {
      const near = nearest(value, AUDIT_EVENT_TYPES);
      throw new UsageError(`--where type=${JSON.stringify(value.slice(0, 80))}: no event has that type (${near.length > 0 ? `did you mean ${near.join(" or ")}? ` : ""}the types: ${AUDIT_EVENT_TYPES.join(", ")})`);
    }
    return { path: field.split("."), value };
  });
}

/** The fields of the filters not in `seen`: no event read had them (a misspelt field matches nothing). */
export function absentFields(filters: readonly Filter[], seen: ReadonlySet<Filter>): string[] {
  return filters.filter((f) => !seen.has(f)).map((f) => f.path.join("."));
}

/** Adds to `seen` the filters whose field `event` has. */
export function noteFields(event: AuditObject, filters: readonly Filter[], seen: Set<Filter>): void {
  for (const f of filters) if (!seen.has(f) && at(event, f.path) !== undefined) seen.add(f);
}

function at(o: unknown, path: readonly string[]): unknown {
  let v: unknown = o;
  for (const k of path) {
    if (typeof v !== "object" || v === null || Array.isArray(v) || !Object.hasOwn(v, k)) return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}

/** The text a filter compares: strings as they are, everything else as JSON. */
function textOf(v: unknown): string {
  return typeof v === "string" ? v : JSON.stringify(v);
}

export function matches(event: AuditObject, filters: readonly Filter[]): boolean {
  return filters.every((f) => {
    const v = at(event, f.path);
    return v !== undefined && textOf(v) === f.value;
  });
}

/** An audit line as an object, or null when it is not JSON of an object with a numeric seq. */
export function parseEvent(line: string): AuditObject | null {
  try {
    const o: unknown = JSON.parse(line);
    if (typeof o !== "object" || o === null || Array.isArray(o) || typeof (o as AuditObject).seq !== "number") return null;
    return o as AuditObject;
  } catch {
    return null;
  }
}

const HIDDEN = new Set(["seq", "time", "type", "prev"]);
const HIDDEN_CHECKPOINT = new Set(["alg", "chain", "sig", "covers.hash"]);
const BARE = /^[A-Za-z0-9._:/@+\-,[\]]+$/;
/** C0 and C1 controls, DEL, format characters (bidi overrides), line and paragraph separators. */
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;

export function showValue(v: unknown): string {
  const text = Array.isArray(v) && v.every((x) => typeof x !== "object" || x === null) ? v.map(textOf).join(",") : textOf(v);
  if (text !== "" && BARE.test(text)) return text;
  // Each UTF-16 unit as its own \u escape: one above U+FFFF is its surrogate pair, so the text stays JSON that reads back as the value.
  return JSON.stringify(text).replace(UNSAFE, (c) => [...Array(c.length).keys()].map((i) => `\\u${c.charCodeAt(i).toString(16).padStart(4, "0")}`).join(""));
}

/** What JSON.stringify leaves raw that a terminal may act on: DEL, C1 controls, format characters (bidi overrides), line and paragraph separators. */
const RAW_UNSAFE = /[\u007f-\u009f\p{Cf}\p{Zl}\p{Zp}]/gu;

/**
 * A line as `--json` prints it: its bytes, except the characters of RAW_UNSAFE, written as
 * \uXXXX escapes (each UTF-16 unit). They can only stand inside JSON strings, so the text is
 * the same JSON; a workload's text (a resource URI) cannot drive the terminal through it.
 */
export function showRaw(line: string): string {
  return line.replace(RAW_UNSAFE, (c) => [...Array(c.length).keys()].map((i) => `\\u${c.charCodeAt(i).toString(16).padStart(4, "0")}`).join(""));
}

function flatten(o: AuditObject, prefix: string, out: [string, unknown][]): void {
  for (const [k, v] of Object.entries(o)) {
    const key = prefix + k;
    if (typeof v === "object" && v !== null && !Array.isArray(v)) flatten(v as AuditObject, `${key}.`, out);
    else out.push([key, v]);
  }
}

/** The human form of one event (see the header), without a newline. */
export function showEvent(e: AuditObject): string {
  const fields: [string, unknown][] = [];
  flatten(e, "", fields);
  const checkpoint = e.type === "checkpoint";
  const shown = fields.filter(([k, v]) => v !== null && !HIDDEN.has(k) && !(checkpoint && HIDDEN_CHECKPOINT.has(k)));
  const head = [showValue(e.time ?? "?"), showValue(e.type ?? "?"), `#${showValue(e.seq)}`];
  return [...head, ...shown.map(([k, v]) => `${/^[A-Za-z0-9_.-]+$/.test(k) ? k : showValue(k)}=${showValue(v)}`)].join(" ");
}
