/**
 * One JSON-RPC 2.0 message as MCP sends it (https://www.jsonrpc.org/specification sections 4 and
 * 5; MCP 2025-11-25 "Base Protocol"): a request, a notification, a result or an error response,
 * parsed from the bytes of an HTTP body, an SSE event's data or a stdio line.
 *
 * Guaranteed: the returned value and everything in it are frozen (unless `freeze: false`); `jsonrpc` was exactly "2.0";
 * an id is a string or a safe integer (null only in an error response); a method is a string;
 * params, when present, an object. Rejected, each with its McpError code: input that is not
 * UTF-8 or not JSON, or with a number past a double's range (`1e400`, which JSON.parse makes
 * Infinity; mcp_parse_error), a JSON array (mcp_batch: batches were removed in
 * 2025-06-18), over `maxBytes` (mcp_too_large), nested deeper than `maxDepth` (mcp_too_deep),
 * anything else of the wrong shape (mcp_invalid_request), params that are not an object
 * (mcp_invalid_params); an object key given twice, compared case-folded (mcp_duplicate_key: parsers
 * disagree on which value counts, so policy and server could read different tools); in the
 * message or its params, a key with a control character, or one that only folds to a member
 * (`Method`, `paramſ`, `NAME`: a case-insensitive server would read it as that member;
 * mcp_invalid_request).
 */
import { type JsonRpcId, McpError, mcpError } from "./errors.ts";
import { depthOf, freezeDeep, isJsonObject, type JsonObject, NOT_FINITE } from "./json.ts";
import { firstDuplicateKey, foldKey } from "./duplicate-keys.ts";

export interface MessageLimits {
  /** UTF-8 bytes of one message; default 4 MiB. */
  readonly maxBytes: number;
  /** Nesting of objects and arrays, the message itself being 1; default 64. */
  readonly maxDepth: number;
  /** Freeze the parsed value (default true); false: depth-checked only, for a caller that never changes it (the gate), as freezing a large result costs more than parsing it. */
  readonly freeze?: boolean;
}

export const DEFAULT_MESSAGE_LIMITS: MessageLimits = Object.freeze({ maxBytes: 4 * 1024 * 1024, maxDepth: 64 });

export interface McpRequest {
  readonly kind: "request";
  readonly id: JsonRpcId;
  readonly method: string;
  readonly params: JsonObject | undefined;
}

export interface McpNotification {
  readonly kind: "notification";
  readonly method: string;
  readonly params: JsonObject | undefined;
}

export interface McpResult {
  readonly kind: "result";
  readonly id: JsonRpcId;
  readonly result: unknown;
}

export interface McpErrorResponse {
  readonly kind: "error";
  readonly id: JsonRpcId | null;
  readonly error: { readonly code: number; readonly message: string; readonly data?: unknown };
}

export type McpMessage = McpRequest | McpNotification | McpResult | McpErrorResponse;

const decoder = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

function utf8Length(text: string, limit: number): number {
  if (text.length > limit) return text.length;
  if (text.length * 3 <= limit) return text.length;
  return encoder.encode(text).length;
}

function isId(v: unknown): v is JsonRpcId {
  return typeof v === "string" || (typeof v === "number" && Number.isSafeInteger(v));
}

/** Parses one message; throws McpError (and nothing else) on any input it refuses. */
export function parseMessage(input: Uint8Array | string, limits?: Partial<MessageLimits>): McpMessage {
  const { maxBytes, maxDepth } = limits === undefined ? DEFAULT_MESSAGE_LIMITS : { ...DEFAULT_MESSAGE_LIMITS, ...limits };
  const size = typeof input === "string" ? utf8Length(input, maxBytes) : input.length;
  if (size > maxBytes) throw mcpError("mcp_too_large", `a message of over ${maxBytes} bytes`);
  let text: string;
  let value: unknown;
  try {
    text = typeof input === "string" ? input : decoder.decode(input);
    value = JSON.parse(text);
  } catch (e) {
    throw mcpError("mcp_parse_error", "a message that is not UTF-8 JSON", null, e);
  }
  if (Array.isArray(value)) throw mcpError("mcp_batch", "a JSON-RPC batch (refused since MCP 2025-06-18)");
  if (!isJsonObject(value)) throw mcpError("mcp_invalid_request", "a message that is not a JSON object");
  const depth = limits?.freeze === false ? depthOf(value, maxDepth) : freezeDeep(value, maxDepth);
  if (depth === NOT_FINITE) throw mcpError("mcp_parse_error", "a message with a number past a double's range");
  if (depth < 0) throw mcpError("mcp_too_deep", `a message nested over ${maxDepth} levels`);
  // After the depth check, so the scan's stack stays bounded too.
  const dup = firstDuplicateKey(text);
  if (dup !== null) throw mcpError("mcp_duplicate_key", `a message with the key ${JSON.stringify(dup.slice(0, 64))} given twice in one object`);
  return Object.freeze(shape(value));
}

/** Members a case-insensitive parser would take a near-miss key for (folded), per level. */
const ENVELOPE = new Set(["jsonrpc", "id", "method", "params", "result", "error"]);
const PARAMS = new Set(["name", "arguments", "uri"]);

/** A key that is not `known` member as written but folds to one, or holds a control character. */
function oddKey(o: JsonObject, known: ReadonlySet<string>): string | null {
  for (const k of Object.keys(o)) {
    if (/[\u0000-\u001f\u007f]/.test(k)) return k;
    if (!known.has(k) && known.has(foldKey(k))) return k;
  }
  return null;
}

function shape(m: JsonObject): McpMessage {
  const rawId = m.id;
  const readableId = isId(rawId) ? rawId : null;
  const bad = (why: string): McpError => mcpError("mcp_invalid_request", why, readableId);
  const odd = oddKey(m, ENVELOPE) ?? (isJsonObject(m.params) ? oddKey(m.params, PARAMS) : null);
  if (odd !== null) throw bad(`a message with the key ${JSON.stringify(odd.slice(0, 64))}, which another parser could read as a member it is not`);
  if (m.jsonrpc !== "2.0") throw bad('a message without jsonrpc "2.0"');
  const hasId = "id" in m;
  if ("method" in m) {
    if (typeof m.method !== "string") throw bad("a method that is not a string");
    if ("result" in m || "error" in m) throw bad("a request with a result or error member");
    const params = m.params;
    if (params !== undefined && !isJsonObject(params)) throw mcpError("mcp_invalid_params", `params of ${m.method} that are not an object`, readableId);
    if (!hasId) return { kind: "notification", method: m.method, params };
    if (!isId(rawId)) throw bad("a request id that is not a string or an integer");
    return { kind: "request", id: rawId, method: m.method, params };
  }
  if ("result" in m === "error" in m) throw bad("a message with neither method nor exactly one of result and error");
  if (!hasId) throw bad("a response without an id");
  if ("result" in m) {
    if (!isId(rawId)) throw bad("a response id that is not a string or an integer");
    return { kind: "result", id: rawId, result: m.result };
  }
  if (rawId !== null && !isId(rawId)) throw bad("an error response id that is not a string, an integer or null");
  const error = m.error;
  if (!isJsonObject(error) || typeof error.code !== "number" || !Number.isSafeInteger(error.code) || typeof error.message !== "string") {
    throw bad("an error member that is not {code: integer, message: string}");
  }
  return { kind: "error", id: rawId, error: error as McpErrorResponse["error"] };
}
