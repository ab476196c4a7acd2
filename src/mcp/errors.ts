/**
 * The errors of MCP message parsing (DESIGN.md section 6) and the JSON-RPC 2.0 error responses
 * they become (https://www.jsonrpc.org/specification section 5.1). Messages start with "mcp: " and
 * name the offending member or method, never a parameter's value: tool arguments may carry a
 * secret. `jsonRpcCodeOf` maps every code to the JSON-RPC error code a peer is answered with.
 */
import { TidegateError } from "../errors.ts";

export const MCP_ERROR_CODES = [
  /** Not UTF-8, or not JSON (JSON-RPC -32700). */
  "mcp_parse_error",
  /** A JSON array at the top: a batch, removed from MCP in 2025-06-18 (JSON-RPC -32600). */
  "mcp_batch",
  /** A message over `maxBytes` (JSON-RPC -32600). */
  "mcp_too_large",
  /** Objects and arrays nested deeper than `maxDepth` (JSON-RPC -32600). */
  "mcp_too_deep",
  /** An object key given twice: parsers disagree on which value counts (JSON-RPC -32600). */
  "mcp_duplicate_key",
  /** Not a JSON-RPC 2.0 request, notification, result or error response: jsonrpc, id, method, result or error of the wrong shape (JSON-RPC -32600). */
  "mcp_invalid_request",
  /** Params that are not an object, or a tools/call, resources/read or prompts/get without its name or uri (JSON-RPC -32602). */
  "mcp_invalid_params",
  /** A result a server sent that cannot be filtered or pinned: tools/list without a tools array, a tool without a name (JSON-RPC -32603). */
  "mcp_invalid_result",
  /** A server-sent event over `maxEventBytes` (JSON-RPC -32603). */
  "mcp_sse_too_large",
  /** An event to serialize whose type or id holds CR, LF or NUL, or whose retry is not a non-negative integer. */
  "mcp_bad_sse_event",
] as const;

export type McpErrorCode = (typeof MCP_ERROR_CODES)[number];

export type JsonRpcId = string | number;

export class McpError extends TidegateError<McpErrorCode> {
  /** The id of the request the error answers, when it could be read; null otherwise. */
  readonly requestId: JsonRpcId | null;

  constructor(code: McpErrorCode, message: string, options?: { cause?: unknown; requestId?: JsonRpcId | null }) {
    super(code, message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.requestId = options?.requestId ?? null;
  }
}

export function mcpError(code: McpErrorCode, why: string, requestId?: JsonRpcId | null, cause?: unknown): McpError {
  return new McpError(code, `mcp: ${why}`, { cause, requestId: requestId ?? null });
}

/** JSON-RPC 2.0 error codes (section 5.1), and MCP 2026-07-28's header/body mismatch. */
export const PARSE_ERROR = -32700;
export const INVALID_REQUEST = -32600;
export const METHOD_NOT_FOUND = -32601;
export const INVALID_PARAMS = -32602;
export const INTERNAL_ERROR = -32603;
/** Mcp-Method, Mcp-Name or Mcp-Param-* disagreeing with the body (answered with HTTP 400). */
export const HEADER_MISMATCH = -32020;

const JSON_RPC_CODE: Readonly<Record<McpErrorCode, number>> = Object.freeze({
  mcp_parse_error: PARSE_ERROR,
  mcp_batch: INVALID_REQUEST,
  mcp_too_large: INVALID_REQUEST,
  mcp_too_deep: INVALID_REQUEST,
  mcp_duplicate_key: INVALID_REQUEST,
  mcp_invalid_request: INVALID_REQUEST,
  mcp_invalid_params: INVALID_PARAMS,
  mcp_invalid_result: INTERNAL_ERROR,
  mcp_sse_too_large: INTERNAL_ERROR,
  mcp_bad_sse_event: INTERNAL_ERROR,
});

export function jsonRpcCodeOf(e: McpError): number {
  return JSON_RPC_CODE[e.code];
}

export interface JsonRpcErrorResponse {
  readonly jsonrpc: "2.0";
  readonly id: JsonRpcId | null;
  readonly error: { readonly code: number; readonly message: string; readonly data?: unknown };
}

/** The error response object for `id` (null when the request's id could not be read). */
export function jsonRpcError(id: JsonRpcId | null, code: number, message: string, data?: unknown): JsonRpcErrorResponse {
  const error = data === undefined ? { code, message } : { code, message, data };
  return Object.freeze({ jsonrpc: "2.0", id, error: Object.freeze(error) });
}

/** The error response answering `e`. */
export function jsonRpcErrorOf(e: McpError): JsonRpcErrorResponse {
  return jsonRpcError(e.requestId, jsonRpcCodeOf(e), e.message);
}
