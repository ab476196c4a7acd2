/**
 * Errors the server's HTTP APIs answer with (docs/server-api.md): every one is
 * `{"error": {"code", "message"}}` with its status. Messages are lowercase, name the bad input,
 * and never carry a join token, a key or a secret (a request's token is never quoted).
 */
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { TidegateError } from "../errors.ts";
import { StoreError } from "./store/index.ts";
import { CaError } from "../ca/errors.ts";
import { CsrError, X509Error } from "../x509/index.ts";
import type { Logger } from "../runtime/log.ts";

export const API_ERROR_STATUS = {
  bad_request: 400, // body not JSON, a field missing or of the wrong type (the field is named)
  bad_spiffe_id: 400, // an entry's spiffe_id is not a SPIFFE ID with a path (the spiffeid_* cause in the message)
  reserved_spiffe_id: 400, // an entry's spiffe_id under /tidegate/: the server's and nodes' own IDs
  bad_parent_id: 400, // an entry's parent_id is not spiffe://TD/tidegate/agent/NODE
  wrong_trust_domain: 400, // a SPIFFE ID of another trust domain than the server's
  bad_selector: 400, // a selector no attestor gives (src/attest/selector.ts)
  bad_dns_name: 400,
  bad_node_name: 400, // a node name that is not one SPIFFE path segment
  // CSR checks of src/x509/csr.ts, passed through:
  csr_malformed: 400,
  csr_unsupported_key: 400,
  csr_unsupported_algorithm: 400,
  csr_bad_signature: 400,
  csr_id_mismatch: 400,
  csr_extra_san: 400,
  csr_requests_ca: 400,
  token_unknown: 401,
  token_used: 401,
  token_expired: 401,
  client_cert_required: 401,
  client_cert_invalid: 401,
  not_a_node: 401,
  entry_not_for_node: 403,
  not_found: 404, // no such route
  entry_unknown: 404,
  node_unknown: 404,
  method_not_allowed: 405,
  entry_exists: 409,
  ca_root_pending: 409, // rotate-ca --root while a published root still waits for its activation
  body_too_large: 413,
  rate_limited: 429,
  internal: 500,
  not_ready: 503, // the CA cannot sign (its signing CA expired while the server was down, for instance)
  audit_unavailable: 503, // the server's audit log cannot be written and audit.on_failure is refuse (audit-gate.ts)
} as const satisfies Record<string, ContentfulStatusCode>;

export type ApiErrorCode = keyof typeof API_ERROR_STATUS;

export class ApiError extends TidegateError<ApiErrorCode> {
  readonly status: ContentfulStatusCode;
  /** Seconds, for 429. */
  readonly retryAfter: number | undefined;

  constructor(code: ApiErrorCode, message: string, options: { cause?: unknown; retryAfter?: number } = {}) {
    super(code, message, options.cause === undefined ? undefined : { cause: options.cause });
    this.status = API_ERROR_STATUS[code];
    this.retryAfter = options.retryAfter;
  }
}

export function errorBody(code: string, message: string): { error: { code: string; message: string } } {
  return { error: { code, message } };
}

/** Store and x509 errors that a request can cause, mapped onto API errors; others stay internal. */
export function toApiError(e: unknown): ApiError | null {
  if (e instanceof ApiError) return e;
  if (e instanceof CsrError && e.code in API_ERROR_STATUS) return new ApiError(e.code as ApiErrorCode, e.message, { cause: e });
  if (e instanceof X509Error && e.code === "x509_bad_dns_name") return new ApiError("bad_dns_name", e.message, { cause: e });
  if (e instanceof CaError) {
    if (e.code === "ca_root_pending") return new ApiError("ca_root_pending", e.message, { cause: e });
    if (e.code === "ca_expired") return new ApiError("not_ready", e.message, { cause: e });
  }
  if (e instanceof StoreError) {
    if (e.code === "store_entry_exists") return new ApiError("entry_exists", e.message.replace(/^store: /, "server: "), { cause: e });
    if (e.code === "store_token_unknown") return new ApiError("token_unknown", "server: the join token is not known", { cause: e });
    if (e.code === "store_token_used") return new ApiError("token_used", "server: the join token was already used", { cause: e });
    if (e.code === "store_token_expired") return new ApiError("token_expired", "server: the join token has expired", { cause: e });
  }
  return null;
}

/** hono's onError: known errors answer with their code; anything else is logged and answers 500. */
export function errorHandler(logger: Logger, listener: string) {
  return (err: Error, c: Context): Response => {
    const api = toApiError(err);
    if (api !== null) {
      if (api.retryAfter !== undefined) c.header("Retry-After", String(api.retryAfter));
      return c.json(errorBody(api.code, api.message), api.status);
    }
    const code = err instanceof TidegateError ? err.code : "unexpected";
    logger.error("request_failed", { listener, method: c.req.method, path: c.req.path, code, message: err.message });
    return c.json(errorBody("internal", "server: internal error (see the server log)"), 500);
  };
}

export function notFound(c: Context): Response {
  return c.json(errorBody("not_found", `server: no route for ${c.req.method} ${c.req.path}`), 404);
}
