/**
 * The value schemas the event types are made of (docs/audit.md, "Events"). Each accepts exactly
 * the shape the agent writes; none accepts a structure that could hold a secret value: secrets
 * appear by NAME only, and an HTTP target is a path without its query string.
 */
import * as v from "valibot";

const HEX64 = /^[0-9a-f]{64}$/;
/** `Date.prototype.toISOString()` of a year 0000-9999: what formatLine writes. */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
/** SPIFFE ID characters (SPIFFE ID standard, sections 2.1 and 2.2). */
const SPIFFE_ID = /^spiffe:\/\/[a-z0-9._-]+(?:\/[A-Za-z0-9._-]+)*$/;
/** Secret names as `${secret:NAME}` takes them (docs/secrets.md). */
const SECRET_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

export function isHex64(text: unknown): text is string {
  return typeof text === "string" && HEX64.test(text);
}

/** True for the exact text `toISOString()` gives for some instant. */
export function isIsoTime(text: unknown): text is string {
  if (typeof text !== "string" || !ISO_TIME.test(text)) return false;
  const ms = Date.parse(text);
  return Number.isFinite(ms) && new Date(ms).toISOString() === text;
}

/** The most characters (UTF-16 code units, as String.length counts) a text field holds. */
export const TEXT_MAX = 65536;

export const text = v.pipe(v.string(), v.minLength(1, "must not be empty"), v.maxLength(TEXT_MAX, `is longer than ${TEXT_MAX} characters`));
export const optText = v.nullable(text);
export const hex64 = v.pipe(v.string(), v.regex(HEX64, "is not 64 lowercase hex digits"));
export const isoTime = v.pipe(v.string(), v.check((t: string) => isIsoTime(t), "is not an ISO 8601 UTC time with milliseconds"));
export const spiffeId = v.pipe(v.string(), v.regex(SPIFFE_ID, "is not a SPIFFE ID"));
export const secretName = v.pipe(v.string(), v.regex(SECRET_NAME, "is not a secret name"));
export const count = v.pipe(v.number(), v.safeInteger("is not an integer"), v.minValue(0, "is negative"));
export const positive = v.pipe(v.number(), v.safeInteger("is not an integer"), v.minValue(1, "is not positive"));
/** A u64 (cgroup ids): a safe integer, or its decimal text when larger. */
export const u64 = v.union([count, v.pipe(v.string(), v.regex(/^(?:0|[1-9]\d{0,19})$/, "is not a decimal u64"))]);
export const durationMs = v.pipe(v.number(), v.finite("is not finite"), v.minValue(0, "is negative"));
export const port = v.pipe(v.number(), v.integer("is not an integer"), v.minValue(0, "is not a port"), v.maxValue(65535, "is not a port"));
export const side = v.picklist(["inbound", "egress"]);
export const decision = v.picklist(["allow", "deny"]);
/** An origin-form path; a query string or fragment is refused since it may carry a credential. */
export const pathOnly = v.pipe(text, v.regex(/^[^?#]*$/, "holds a query string or fragment"));
export const base64Der = v.pipe(v.string(), v.regex(BASE64, "is not base64"));
export const base64UrlSig = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{86}$/, "is not 64 bytes of unpadded base64url"));

/** Where a connection came from: the workload as the agent identified it, and the socket peer. */
export const source = v.looseObject({
  spiffe_id: v.nullable(spiffeId),
  pid: v.nullable(count),
  uid: v.nullable(count),
  cgroup_id: v.nullable(u64),
  workload: optText,
  exe: optText,
  /** "addr:port" of the socket's remote end; null for a kernel denial (no socket reached tidegate). */
  peer: optText,
});

/** Where it was going: the original destination and the name asked for (SNI or Host). */
export const destination = v.looseObject({
  addr: text,
  port,
  name: optText,
});
