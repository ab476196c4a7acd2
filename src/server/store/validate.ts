/**
 * Shape checks on records before they are written, so every stored row reads back as a valid
 * record. Meaning (is this a SPIFFE ID of our trust domain, may this node have it) is the
 * server's to check; the store refuses only what it could not store faithfully.
 */
import { StoreError, quote } from "./errors.ts";

function invalid(message: string): StoreError {
  return new StoreError("store_invalid_record", `store: ${message}`);
}

/** Milliseconds since the epoch of a valid Date. */
export function toMs(value: Date, field: string): number {
  if (!(value instanceof Date) || !Number.isFinite(value.getTime())) {
    throw invalid(`${field} is not a valid date`);
  }
  return value.getTime();
}

export function fromMs(ms: number): Date {
  return new Date(ms);
}

/** A non-empty string of at most `max` characters without control characters. */
export function text(value: string, field: string, max = 2048): string {
  if (typeof value !== "string" || value.length === 0) throw invalid(`${field} is empty`);
  if (value.length > max) throw invalid(`${field} is longer than ${max} characters: ${quote(value)}`);
  if (/[\u0000-\u001f\u007f]/.test(value)) throw invalid(`${field} contains a control character: ${quote(value)}`);
  return value;
}

/** Any string (JSON, PEM, ...), empty only when `allowEmpty`. */
export function anyText(value: string, field: string, allowEmpty = false): string {
  if (typeof value !== "string") throw invalid(`${field} is not a string`);
  if (!allowEmpty && value.length === 0) throw invalid(`${field} is empty`);
  return value;
}

/**
 * SPIRE selectors ("type:value", e.g. "unix:uid:1000"): at least one, each with a non-empty type
 * of [a-z0-9_-] and a non-empty value. Returned sorted by UTF-16 code unit, duplicates removed.
 */
export function canonicalSelectors(selectors: readonly string[]): string[] {
  if (!Array.isArray(selectors) || selectors.length === 0) throw invalid("an entry needs at least one selector");
  for (const s of selectors) {
    text(s, "selector", 1024);
    if (!/^[a-z0-9_-]+:./.test(s)) throw invalid(`selector is not "type:value": ${quote(s)}`);
  }
  return [...new Set(selectors)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** DNS names in the order given, duplicates removed; the server checks their syntax. */
export function dnsNameList(names: readonly string[] | undefined): string[] {
  if (names === undefined) return [];
  if (!Array.isArray(names)) throw invalid("dnsNames is not a list");
  for (const n of names) text(n, "DNS name", 253);
  return [...new Set(names)];
}

export function positiveInteger(value: number, field: string): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw invalid(`${field} is not a positive whole number: ${String(value)}`);
  return value;
}

/** A certificate serial as lowercase hex. */
export function serialHex(value: string): string {
  if (typeof value !== "string" || !/^[0-9a-fA-F]{1,128}$/.test(value)) {
    throw invalid(`serial is not hex: ${quote(String(value))}`);
  }
  return value.toLowerCase();
}

/**
 * A SHA-256 hex digest of a join token. The value is never quoted in the message: a caller that
 * passed the token itself by mistake must not see it in an error or a log.
 */
export function tokenHash(value: string): string {
  if (typeof value !== "string" || !/^[0-9a-f]{64}$/.test(value)) {
    throw invalid("join token hash is not 64 lowercase hex digits (the store takes the SHA-256 of a token, never the token)");
  }
  return value;
}

/** A list of strings as stored: a JSON array. */
export function parseList(json: string): string[] {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    v = undefined;
  }
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
    throw new StoreError("store_corrupt", `store: a stored list is not a JSON list of strings: ${quote(json)}`);
  }
  return v;
}
