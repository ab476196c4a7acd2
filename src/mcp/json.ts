/**
 * JSON values as MCP carries them, frozen after parsing, and the canonical form hashed for audit
 * and tool pinning: object keys sorted by UTF-16 code units at every level, no whitespace,
 * strings and numbers as JSON.stringify writes them (the number form of RFC 8785 section 3.2.2.3).
 */
import { subtle } from "../x509/engine.ts";

export type JsonValue = null | boolean | number | string | readonly JsonValue[] | JsonObject;
export interface JsonObject {
  readonly [key: string]: JsonValue;
}

export function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** walkDepth's answer for a number JSON.parse made Infinity (`1e400`): it has no canonical JSON. */
export const NOT_FINITE = -2;

/**
 * Freezes every object and array of `value` and returns the deepest nesting seen, walking
 * iteratively (no recursion), stopping once it passes `maxDepth`. Returns -1 when too deep,
 * NOT_FINITE at a number that is not finite.
 */
export function freezeDeep(value: unknown, maxDepth: number): number {
  return walkDepth(value, maxDepth, true);
}

/** The deepest nesting of `value`, as freezeDeep walks it, without freezing; -1 past `maxDepth`, NOT_FINITE at a number that is not finite. */
export function depthOf(value: unknown, maxDepth: number): number {
  return walkDepth(value, maxDepth, false);
}

function walkDepth(value: unknown, maxDepth: number, freeze: boolean): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop() as [unknown, number];
    if (typeof v !== "object" || v === null) continue;
    if (depth > maxDepth) return -1;
    if (depth > deepest) deepest = depth;
    if (freeze) Object.freeze(v);
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (typeof child === "object" && child !== null) stack.push([child, depth + 1]);
      else if (typeof child === "number" && !Number.isFinite(child)) return NOT_FINITE;
    }
  }
  return deepest;
}

/** The canonical JSON text of a parsed JSON value (bounded depth: from parseMessage). */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === "boolean" || typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError("canonicalJson: a number that is not finite");
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object") {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(",")}}`;
  }
  throw new TypeError(`canonicalJson: a ${typeof value} is not JSON`);
}

/** Lowercase hex SHA-256 of the UTF-8 of `text`. */
export async function sha256Hex(text: string): Promise<string> {
  const digest = new Uint8Array(await subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}
