/**
 * POST /v1/svid served straight from node:http, ahead of hono (docs/benchmarks.md, "Workload SVID
 * issuance through the API"). Why it exists: through @hono/node-server and hono, every issuance
 * also built a `Request` with a headers object and a body stream, a hono context and a `Response`,
 * and at 1,000+ issuances/s on one core those allocations made JSC collect about five times a
 * second, each pause (3 to 10 ms) landing in the p99. Here a request is its raw body Buffer, one
 * string, the parsed JSON and the answer's string.
 *
 * It MUST stay equivalent to the hono route in ./api-app.ts, which stays registered (and serves
 * what this does not match, e.g. a percent-encoded path): the same verdict check
 * (`callingNode`), the same body rules (`parseBody` of ./wire.ts: 64 KiB, JSON, SvidBody), the
 * same issuer call, and errors answered like `errorHandler` of ./errors.ts (status, `{"error":
 * {"code", "message"}}`, Retry-After on 429, `request_failed` logged for a 500).
 * fast-svid-route.test.ts sends the same requests to both and compares the answers.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { TidegateError } from "../errors.ts";
import type { Logger } from "../runtime/log.ts";
import { callingNode } from "./api-app.ts";
import { ApiError, errorBody, toApiError } from "./errors.ts";
import type { Issuer } from "./issuer.ts";
import type { ConnectionVerdicts } from "./node-auth.ts";
import { bodyTooLarge, MAX_BODY_BYTES, parseBody, SvidBody } from "./wire.ts";

export const SVID_PATH = "/v1/svid";
const QUERY = 63; // "?"
// A decoder like the one Request.text() uses (a leading BOM dropped, bad bytes replaced).
const utf8 = new TextDecoder();

export interface SvidRouteDeps {
  readonly issuer: Issuer;
  readonly verdicts: ConnectionVerdicts;
  readonly logger: Logger;
  readonly now: () => Date;
}

/** A node:http request handler for POST /v1/svid: true when it took the request, false for any other. */
export function svidRoute(deps: SvidRouteDeps): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    const url = req.url;
    if (req.method !== "POST" || url === undefined || !url.startsWith(SVID_PATH) || (url.length > SVID_PATH.length && url.charCodeAt(SVID_PATH.length) !== QUERY)) return false;
    serve(deps, req, res).catch(() => res.destroy());
    return true;
  };
}

async function serve(deps: SvidRouteDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    // The caller first (as the hono app's middleware does), then a body of at most
    // MAX_BODY_BYTES: a declared or streamed larger one is refused without reading the rest.
    const node = await callingNode(deps.verdicts, req.socket, deps.now);
    const raw = await readText(req);
    if (raw === null) throw bodyTooLarge();
    const body = parseBody(raw, SvidBody);
    send(res, 200, JSON.stringify(await deps.issuer.issueWorkloadSvid(node.node, body.entry_id, body.csr)));
  } catch (err) {
    const api = toApiError(err);
    if (api !== null) return send(res, api.status, JSON.stringify(errorBody(api.code, api.message)), api.retryAfter);
    const code = err instanceof TidegateError ? err.code : "unexpected";
    deps.logger.error("request_failed", { listener: "api", method: "POST", path: SVID_PATH, code, message: err instanceof Error ? err.message : String(err) });
    send(res, 500, JSON.stringify(errorBody("internal", "server: internal error (see the server log)")));
  }
}

/** The body as text; null as soon as it is (or says it will be) over MAX_BODY_BYTES. */
function readText(req: IncomingMessage): Promise<string | null> {
  if (Number(req.headers["content-length"] ?? 0) > MAX_BODY_BYTES) return Promise.resolve(null);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) return void chunks.push(chunk);
      req.off("data", onData);
      req.pause();
      resolve(null);
    };
    req.on("data", onData);
    req.on("end", () => resolve(size > MAX_BODY_BYTES ? null : chunks.length === 0 ? "" : utf8.decode(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks))));
    req.on("error", (cause) => reject(new ApiError("bad_request", "server: the request body could not be read", { cause })));
  });
}

function send(res: ServerResponse, status: number, json: string, retryAfter?: number): void {
  const headers: Record<string, string | number> = { "content-type": "application/json", "content-length": Buffer.byteLength(json) };
  if (retryAfter !== undefined) headers["retry-after"] = String(retryAfter);
  // An answer given before the body was read to its end (413, or a refused caller) closes the
  // connection: what is left of the body must not be read as the next request.
  const unread = !res.req.complete;
  if (unread) headers.connection = "close";
  res.writeHead(status, headers);
  res.end(json, unread ? () => res.socket?.end() : undefined);
}
