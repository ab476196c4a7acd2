/**
 * MCP 2026-07-28 stateless requests over Streamable HTTP (SEP-2243, "HTTP Header
 * Standardization"): `Mcp-Method` mirrors the body's method; `Mcp-Name` mirrors params.name
 * (tools/call, prompts/get) or params.uri (resources/read, resources/subscribe,
 * resources/unsubscribe); `Mcp-Param-{Name}` mirrors a tools/call argument that the tool's
 * inputSchema marks with `"x-mcp-header": "{Name}"`. A value may come as the sentinel
 * `=?base64?{standard base64 of the UTF-8}?=` (markers case-sensitive). A header that disagrees
 * with the body is answered with HTTP 400 and JSON-RPC error -32020.
 *
 * Guaranteed: every such header present is checked against the body, and the body is what policy
 * reads; a header is never a substitute for it. A mismatch names the header, never a value.
 * Assumptions, where the draft was not at hand word for word: a header that is absent is not a
 * mismatch (whether the negotiated version requires it is the caller's decision); a header whose
 * body counterpart is missing, null, an object or an array is; a duplicated header (values joined
 * by ", ") is compared as joined, so it mismatches; numbers compare numerically within a relative
 * 1e-9, booleans as "true"/"false". Without the tool's schema (`paramPaths`), `Mcp-Param-{Name}`
 * is looked up as the top-level argument whose key equals Name ignoring case (two such keys: a
 * mismatch); with it, the path the schema gives is used.
 */
import { HEADER_MISMATCH } from "./errors.ts";
import { isJsonObject, type JsonValue } from "./json.ts";
import type { McpNotification, McpRequest } from "./message.ts";

/** What is read of the request's headers; the web `Headers` class fits. */
export interface HeaderSource {
  get(name: string): string | null;
  forEach(callback: (value: string, name: string) => void): void;
}

export type HeaderCheck = { readonly ok: true } | { readonly ok: false; readonly code: typeof HEADER_MISMATCH; readonly message: string };

/** From a tool's `x-mcp-header` names (lowercase) to the argument's path under params.arguments. */
export type ParamPaths = ReadonlyMap<string, readonly string[]>;

const OK: HeaderCheck = Object.freeze({ ok: true });
const PARAM_PREFIX = "mcp-param-";
const NAME_FROM: ReadonlyMap<string, string> = new Map([
  ["tools/call", "name"],
  ["prompts/get", "name"],
  ["resources/read", "uri"],
  ["resources/subscribe", "uri"],
  ["resources/unsubscribe", "uri"],
]);
const NUMBER = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$/;
const utf8 = new TextDecoder("utf-8", { fatal: true });

function mismatch(header: string, why: string): HeaderCheck {
  return Object.freeze({ ok: false, code: HEADER_MISMATCH, message: `mcp: header ${header} ${why}` });
}

/** The header's value with the base64 sentinel decoded; null when the sentinel holds no base64 UTF-8. */
export function decodeHeaderValue(value: string): string | null {
  if (!value.startsWith("=?base64?") || !value.endsWith("?=") || value.length < 11) return value;
  const b64 = value.slice(9, -2);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) return null;
  try {
    return utf8.decode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
  } catch {
    return null;
  }
}

function sameScalar(text: string, body: JsonValue | undefined): boolean {
  if (typeof body === "string") return text === body;
  if (typeof body === "boolean") return text === String(body);
  if (typeof body === "number") {
    if (!NUMBER.test(text)) return false;
    const h = Number(text);
    return h === body || Math.abs(h - body) <= 1e-9 * Math.max(Math.abs(h), Math.abs(body));
  }
  return false;
}

function argumentAt(args: JsonValue | undefined, suffix: string, paths: ParamPaths | undefined): JsonValue | undefined {
  if (!isJsonObject(args)) return undefined;
  const path = paths?.get(suffix);
  if (path !== undefined) {
    let v: JsonValue | undefined = args;
    for (const key of path) v = isJsonObject(v) ? v[key] : undefined;
    return v;
  }
  const keys = Object.keys(args).filter((k) => k.toLowerCase() === suffix);
  return keys.length === 1 ? args[keys[0] as string] : undefined;
}

/**
 * The `x-mcp-header` marks of a tool's inputSchema: header name (lowercase) to the argument's path,
 * following `properties` at most 8 levels down. A name marked twice is left out (ambiguous: the
 * top-level lookup then decides, and a duplicate there mismatches).
 */
export function paramPathsOf(inputSchema: unknown): ParamPaths {
  const out = new Map<string, string[]>();
  const twice = new Set<string>();
  const walk = (schema: unknown, path: string[]): void => {
    if (!isJsonObject(schema) || path.length > 8 || !isJsonObject(schema.properties)) return;
    for (const [key, sub] of Object.entries(schema.properties)) {
      if (!isJsonObject(sub)) continue;
      const mark = sub["x-mcp-header"];
      if (typeof mark === "string" && mark !== "") {
        const name = mark.toLowerCase();
        if (out.has(name)) twice.add(name);
        out.set(name, [...path, key]);
      }
      walk(sub, [...path, key]);
    }
  };
  walk(inputSchema, []);
  for (const n of twice) out.delete(n);
  return out;
}

/** Checks every Mcp-Method, Mcp-Name and Mcp-Param-* header present against `message`. */
export function checkHeadersMatchBody(headers: HeaderSource, message: McpRequest | McpNotification, paramPaths?: ParamPaths): HeaderCheck {
  const params = message.params ?? {};
  const read = (name: string): string | null | undefined => {
    const v = headers.get(name);
    return v === null ? undefined : decodeHeaderValue(v);
  };
  const method = read("mcp-method");
  if (method !== undefined && method !== message.method) return mismatch("Mcp-Method", "does not match the body's method");
  const name = read("mcp-name");
  if (name !== undefined) {
    const member = NAME_FROM.get(message.method);
    if (member === undefined) return mismatch("Mcp-Name", `is not expected with ${message.method}`);
    if (name !== params[member]) return mismatch("Mcp-Name", `does not match params.${member}`);
  }
  const names: string[] = [];
  headers.forEach((_, n) => names.push(n));
  for (const key of names) {
    const lower = key.toLowerCase();
    if (!lower.startsWith(PARAM_PREFIX)) continue;
    const header = `Mcp-Param-${key.slice(PARAM_PREFIX.length)}`;
    if (message.method !== "tools/call") return mismatch(header, `is not expected with ${message.method}`);
    const value = read(key);
    if (value === null || value === undefined) return mismatch(header, "is not valid base64 of UTF-8");
    if (!sameScalar(value, argumentAt(params.arguments, lower.slice(PARAM_PREFIX.length), paramPaths))) return mismatch(header, "does not match its argument");
  }
  return OK;
}
