/**
 * Errors of the node agent. Codes are stable; messages are lowercase, start with "agent:" and name
 * the bad input (a path, a URL, a fingerprint), never a join token or a key.
 *
 * Codes of the agent itself:
 * - `fingerprint_malformed`: --server-fingerprint is not 64 hex digits (colons and case ignored).
 * - `server_fingerprint_mismatch`: no root of the bundle the server offers has that SHA-256; no
 *   token was sent.
 * - `server_root_no_trust_domain`: the trusted root names no trust domain (a URI SAN `spiffe://TD`).
 * - `server_spiffe_id_mismatch`: the server's certificate is not `spiffe://TD/tidegate/server`.
 * - `server_untrusted`: the TLS handshake failed (the server's chain does not lead to a trusted root).
 * - `server_unreachable`: no answer (refused, reset, timed out: head and body within the call's timeout).
 * - `server_bad_answer`: an answer that is not what docs/server-api.md says (status, JSON, fields,
 *   a certificate that does not verify or does not carry the key the agent asked for), or larger
 *   than MAX_ANSWER_BYTES (server-client.ts).
 * - `server_url_bad`: --server is not `https://host:port`.
 * - `join_token_required`: no usable state and no join token; `join_trust_required`: a token but
 *   neither --server-fingerprint nor --trust-bundle; `server_required`: no --server and no state.
 * - `node_svid_expired`: the node SVID kept in the state expired: only a new join token helps.
 * - `state_server_mismatch`: the state belongs to another server than --server names.
 * - `state_unreadable`: a state file is missing a part or does not parse (the file is named).
 * - `entry_id_bad`: the server named an entry whose ID cannot be a file name.
 * - `mcp_pins_damaged`: `agent/mcp-pins.json` does not parse (mcp-pins.ts).
 * - `agent_running`: another agent of the same instance answers on its agent.sock.
 * Answers of the server with an error body keep the server's code (`token_used`, `node_unknown`,
 * `entry_unknown`, `entry_not_for_node`, `rate_limited`...), see ServerError.
 */
import { TidegateError } from "../errors.ts";

export class AgentError extends TidegateError {}

/** An error answer of the server: `code` is the server's own stable code. */
export class ServerError extends AgentError {
  readonly status: number;
  /** From Retry-After on a 429, in milliseconds. */
  readonly retryAfterMs: number | undefined;

  constructor(code: string, message: string, status: number, retryAfterMs?: number) {
    super(code, message);
    this.status = status;
    this.retryAfterMs = retryAfterMs;
  }
}

/** "code: message" of any error, for status screens and log fields. */
export function describeError(e: unknown): string {
  if (e instanceof TidegateError) return `${e.code}: ${e.message}`;
  return e instanceof Error ? e.message : String(e);
}
