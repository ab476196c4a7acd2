/**
 * Checks for the strict decoder: each one accepts only the canonical OTLP/JSON form of one proto3
 * field kind (the form the encoder writes) and throws `otlp_bad_request` naming the JSON path
 * otherwise. Stricter than a collector, which must also accept numbers for 64-bit integers and
 * ignore unknown keys: the decoder's job is to prove the encoder writes the mapping exactly.
 */
import { OtlpError } from "./errors.ts";

export type Json = Record<string, unknown>;

export function reject(path: string, why: string): never {
  throw new OtlpError("otlp_bad_request", `audit: otlp request: ${path}: ${why}`);
}

function kind(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return typeof v === "object" ? "an object" : `a ${typeof v}`;
}

/** A JSON object whose keys are all in `allowed` (lowerCamelCase field names). */
export function objectAt(v: unknown, path: string, allowed: readonly string[]): Json {
  if (typeof v !== "object" || v === null || Array.isArray(v)) reject(path, `${kind(v)}, want an object`);
  for (const key of Object.keys(v)) {
    if (!allowed.includes(key)) reject(path, `unknown field ${JSON.stringify(key)}`);
  }
  return v as Json;
}

/** A repeated field: absent (empty) or an array. */
export function arrayAt(v: unknown, path: string): unknown[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) reject(path, `${kind(v)}, want an array`);
  return v;
}

/** A string field: absent ("") or a string. */
export function stringAt(v: unknown, path: string): string {
  if (v === undefined) return "";
  if (typeof v !== "string") reject(path, `${kind(v)}, want a string`);
  return v;
}

/** A 32-bit unsigned field (uint32, fixed32, an enum here): absent (0) or an integer number. */
export function uint32At(v: unknown, path: string): number {
  if (v === undefined) return 0;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffff_ffff) reject(path, `${kind(v)}, want an integer number from 0 to 2^32-1`);
  return v;
}

const DECIMAL = /^-?(?:0|[1-9][0-9]*)$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

/** int64: a decimal string in range (a JSON number is refused). */
export function int64At(v: unknown, path: string): bigint {
  if (typeof v !== "string" || !DECIMAL.test(v) || v === "-0") reject(path, `${kind(v)}, want an int64 as a decimal string`);
  const n = BigInt(v);
  if (n < INT64_MIN || n > INT64_MAX) reject(path, "out of the int64 range");
  return n;
}

/** fixed64: absent (0) or a decimal string from 0 to 2^64-1 (a JSON number is refused). */
export function fixed64At(v: unknown, path: string): bigint {
  if (v === undefined) return 0n;
  if (typeof v !== "string" || !DECIMAL.test(v) || v.startsWith("-")) reject(path, `${kind(v)}, want a fixed64 as a decimal string`);
  const n = BigInt(v);
  if (n > UINT64_MAX) reject(path, "out of the fixed64 range");
  return n;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** bytes: standard base64 with padding. */
export function bytesAt(v: unknown, path: string): Uint8Array {
  if (typeof v !== "string" || !BASE64.test(v)) reject(path, `${kind(v)}, want base64 with padding`);
  const bin = atob(v);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** traceId / spanId: absent, or `bytes` hex digits (the OTLP exception to base64). */
export function hexIdAt(v: unknown, path: string, bytes: number): void {
  if (v === undefined || v === "") return;
  if (typeof v !== "string" || !new RegExp(`^[0-9a-fA-F]{${bytes * 2}}$`).test(v)) reject(path, `want ${bytes * 2} hex digits`);
}
