/**
 * JSON data as OTLP `AnyValue` (common.proto) and back.
 *
 * Encoding, for values that JSON.parse can give: a string is `stringValue`, a boolean
 * `boolValue`, a safe integer `intValue` (a decimal string), any other finite number
 * `doubleValue`, null the empty AnyValue `{}`, an array `arrayValue`, an object `kvlistValue`
 * with its keys in order. Anything else (undefined, NaN, a bigint, a function, nesting deeper
 * than MAX_DEPTH) is refused with `otlp_bad_event`.
 *
 * Decoding accepts exactly one of the seven AnyValue kinds in canonical form, or `{}`; `intValue`
 * gives a number when safe and a bigint otherwise, `bytesValue` a Uint8Array.
 */
import { OtlpError } from "./errors.ts";
import { arrayAt, bytesAt, int64At, objectAt, reject, stringAt } from "./json-check.ts";
import type { AnyValue, KeyValue } from "./types.ts";

export const MAX_DEPTH = 64;

export function encodeAnyValue(v: unknown, where: string, depth = 0): AnyValue {
  if (depth > MAX_DEPTH) throw new OtlpError("otlp_bad_event", `audit: otlp: ${where} nests deeper than ${MAX_DEPTH}`);
  switch (typeof v) {
    case "string":
      return { stringValue: v };
    case "boolean":
      return { boolValue: v };
    case "number":
      if (Number.isSafeInteger(v)) return { intValue: String(v) };
      if (Number.isFinite(v)) return { doubleValue: v };
      break;
    case "object":
      if (v === null) return {};
      if (Array.isArray(v)) return { arrayValue: { values: v.map((x, i) => encodeAnyValue(x, `${where}[${i}]`, depth + 1)) } };
      if (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null) {
        return { kvlistValue: { values: encodeKeyValues(v as Record<string, unknown>, where, depth + 1) } };
      }
      break;
  }
  const what = typeof v === "object" ? "an object that is not plain data" : typeof v === "number" ? String(v) : `a ${typeof v}`;
  throw new OtlpError("otlp_bad_event", `audit: otlp: ${where} is ${what}, not JSON data`);
}

export function encodeKeyValues(o: Record<string, unknown>, where: string, depth = 0): KeyValue[] {
  return Object.entries(o).map(([key, value]) => ({ key, value: encodeAnyValue(value, `${where}.${key}`, depth) }));
}

const ANY_VALUE_KEYS = ["stringValue", "boolValue", "intValue", "doubleValue", "arrayValue", "kvlistValue", "bytesValue"] as const;

export function decodeAnyValue(v: unknown, path: string, depth = 0): unknown {
  if (depth > MAX_DEPTH) reject(path, `nests deeper than ${MAX_DEPTH}`);
  const o = objectAt(v, path, ANY_VALUE_KEYS);
  const keys = Object.keys(o);
  if (keys.length === 0) return null;
  if (keys.length > 1) reject(path, `sets ${keys.join(" and ")}: an AnyValue holds one value`);
  const key = keys[0]!;
  const x = o[key];
  const at = `${path}.${key}`;
  switch (key) {
    case "stringValue":
      if (typeof x !== "string") reject(at, "want a string");
      return x;
    case "boolValue":
      if (typeof x !== "boolean") reject(at, "want a boolean");
      return x;
    case "intValue": {
      const n = int64At(x, at);
      return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
    }
    case "doubleValue":
      if (typeof x !== "number" || !Number.isFinite(x)) reject(at, "want a finite number");
      return x;
    case "arrayValue": {
      const values = arrayAt(objectAt(x, at, ["values"]).values, `${at}.values`);
      return values.map((e, i) => decodeAnyValue(e, `${at}.values[${i}]`, depth + 1));
    }
    case "kvlistValue":
      return decodeKeyValues(objectAt(x, at, ["values"]).values, `${at}.values`, depth + 1);
    default:
      return bytesAt(x, at);
  }
}

/** A KeyValue list as an object; keys must be unique (common.proto, KeyValueList). */
export function decodeKeyValues(v: unknown, path: string, depth = 0): Record<string, unknown> {
  const seen = new Set<string>();
  const entries = arrayAt(v, path).map((e, i): [string, unknown] => {
    const at = `${path}[${i}]`;
    const kv = objectAt(e, at, ["key", "value"]);
    const key = stringAt(kv.key, `${at}.key`);
    if (seen.has(key)) reject(at, `key ${JSON.stringify(key)} repeated`);
    seen.add(key);
    return [key, kv.value === undefined ? null : decodeAnyValue(kv.value, `${at}.value`, depth)];
  });
  return Object.fromEntries(entries);
}
