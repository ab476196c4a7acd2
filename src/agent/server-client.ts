/**
 * HTTPS to the identity server (docs/server-api.md) with Bun's fetch under ky.
 *
 * Every call but the first-contact bundle fetch is verified: Bun's `tls` fetch options carry the
 * roots of the agent's current bundle as the only CAs (`ca`, `rejectUnauthorized: true`), and
 * `checkServerIdentity` accepts only a leaf whose one URI SAN is `spiffe://TD/tidegate/server`
 * (host names are not checked: the SPIFFE ID is the server's identity). Calls to the API listener
 * also present the node SVID (`cert`, `key`). Bun opens a new connection for every fetch that has
 * custom TLS options (no pooling), so a renewed node SVID or a replaced bundle applies to the very
 * next call, and an unverified connection is never reused by a verified call.
 */
import ky from "ky";
import { readCertificate } from "../x509/cert.ts";
import { AgentError, ServerError } from "./errors.ts";
import { quoteUrl } from "../errors.ts";
import { httpsOrigin } from "../runtime/https-origin.ts";

export interface TlsTrust {
  /** PEM of the trusted roots. */
  readonly caPem: string;
  /** The SPIFFE ID the server must present. */
  readonly serverId: string;
}

export interface ClientCert {
  readonly chainPem: string;
  readonly keyPem: string;
}

export const REQUEST_TIMEOUT_MS = 10_000;
/**
 * An answer's body is refused past this many bytes (`server_bad_answer`). The largest the server
 * sends is a sync of a node with many entries (about half a KiB each): 32 MiB holds tens of
 * thousands. Without a bound, whoever answers the first-contact bundle fetch (not verified) could
 * make the agent buffer until the host runs out of memory.
 */
export const MAX_ANSWER_BYTES = 32 * 1024 * 1024;

/**
 * The body of `res` as text, whole before `deadline` (ms since the epoch; ky's timeout covers the
 * head only) and at most MAX_ANSWER_BYTES: else server_unreachable (timed out) or
 * server_bad_answer. A body cut by the connection reads as empty, as Response.text() failing did.
 */
async function answerText(res: Response, deadline: number, what: string): Promise<string> {
  const reader = res.body?.getReader();
  if (reader === undefined) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new AgentError("server_unreachable", `agent: ${what}: the answer did not arrive whole in time (timed out)`)), Math.max(0, deadline - Date.now()));
  });
  try {
    for (;;) {
      let next: Awaited<ReturnType<typeof reader.read>>;
      try {
        next = await Promise.race([reader.read(), late]);
      } catch (e) {
        if (e instanceof AgentError) throw e;
        return "";
      }
      if (next.done) break;
      size += next.value.length;
      if (size > MAX_ANSWER_BYTES) throw new AgentError("server_bad_answer", `agent: ${what} answered more than ${MAX_ANSWER_BYTES} bytes`);
      chunks.push(next.value);
    }
  } finally {
    clearTimeout(timer);
    reader.cancel().catch(() => undefined);
  }
  return new TextDecoder().decode(Buffer.concat(chunks));
}

/** `https://host:port` with nothing after it; the origin is returned. Messages never repeat a user name or password. */
export function parseServerUrl(text: string): { origin: string; hostname: string; port: number } {
  const o = httpsOrigin(text);
  if (o.why === "not_a_url") throw new AgentError("server_url_bad", `agent: --server ${quoteUrl(text)} is not a URL (use https://host:port)`);
  if (o.url === null) throw new AgentError("server_url_bad", `agent: --server ${quoteUrl(text)} must be https://host:port and nothing more`);
  const u = o.url;
  return { origin: u.origin, hostname: u.hostname, port: u.port === "" ? 443 : Number(u.port) };
}

/** The API listener: the public listener's host at `apiPort`. */
export function apiOrigin(serverUrl: string, apiPort: number): string {
  const u = new URL(parseServerUrl(serverUrl).origin);
  u.port = String(apiPort);
  return u.origin;
}

function codeOf(e: unknown): string {
  for (let x: unknown = e, i = 0; x !== undefined && x !== null && i < 4; x = (x as { cause?: unknown }).cause, i++) {
    const c = (x as { code?: unknown }).code;
    if (typeof c === "string" && c !== "") return c;
  }
  return "";
}

const TLS_VERIFY_CODE = /CERT|SELF_SIGNED|ISSUER|UNABLE_TO_VERIFY|ALTNAME|TLS/;

function idOfLeaf(raw: unknown): string {
  try {
    const uris = readCertificate(new Uint8Array(raw as Uint8Array)).uriSans;
    return uris.length === 1 ? uris[0]! : `(${uris.length} URI SANs)`;
  } catch {
    return "(no readable certificate)";
  }
}

export interface CallOptions {
  readonly origin: string;
  readonly method: "GET" | "POST";
  readonly path: string;
  readonly body?: unknown;
  /** null: TLS without verification (the first-contact bundle fetch only). */
  readonly trust: TlsTrust | null;
  readonly clientCert?: ClientCert;
  readonly signal?: AbortSignal;
  readonly timeoutMs?: number;
}

/** One call; answers 2xx with the parsed JSON body, throws ServerError on an error answer. */
export async function callServer(o: CallOptions): Promise<unknown> {
  let seenId: string | null = null;
  const tls: Record<string, unknown> =
    o.trust === null
      ? { rejectUnauthorized: false }
      : {
          ca: o.trust.caPem,
          rejectUnauthorized: true,
          checkServerIdentity: (_host: string, cert: { raw?: unknown }) => {
            const id = idOfLeaf(cert?.raw);
            if (id === o.trust!.serverId) return undefined;
            seenId = id;
            return new Error(`server presents ${id}`);
          },
          ...(o.clientCert ? { cert: o.clientCert.chainPem, key: o.clientCert.keyPem } : {}),
        };
  const what = `${o.method} ${o.origin}${o.path}`;
  const deadline = Date.now() + (o.timeoutMs ?? REQUEST_TIMEOUT_MS);
  let res: Response;
  try {
    res = await ky(o.path.replace(/^\//, ""), {
      baseUrl: `${o.origin}/`,
      method: o.method,
      ...(o.body !== undefined ? { json: o.body } : {}),
      retry: 0,
      timeout: o.timeoutMs ?? REQUEST_TIMEOUT_MS,
      throwHttpErrors: false,
      ...(o.signal ? { signal: o.signal } : {}),
      fetch: (input: Request | URL | string, init?: RequestInit) => fetch(input, { ...init, keepalive: false, tls } as RequestInit),
    });
  } catch (e) {
    if (seenId !== null) {
      throw new AgentError("server_spiffe_id_mismatch", `agent: ${o.origin} presents ${seenId}, not ${o.trust!.serverId}: refused`, { cause: e });
    }
    const code = codeOf(e);
    if (o.trust !== null && TLS_VERIFY_CODE.test(code)) {
      throw new AgentError("server_untrusted", `agent: ${o.origin} is not trusted: its certificate does not chain to the trusted roots (${code})`, { cause: e });
    }
    const why = (e as Error).name === "TimeoutError" ? "timed out" : code || (e as Error).message || String(e);
    throw new AgentError("server_unreachable", `agent: cannot reach ${o.origin}: ${why}`, { cause: e });
  }
  const text = await answerText(res, deadline, what);
  let body: unknown = null;
  try {
    body = text === "" ? null : JSON.parse(text);
  } catch {
    if (res.ok) throw new AgentError("server_bad_answer", `agent: ${what} answered ${res.status} with a body that is not JSON`);
  }
  if (res.ok) return body;
  const err = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  const code = typeof err?.code === "string" && /^[a-z0-9_]{1,64}$/.test(err.code) ? err.code : `http_${res.status}`;
  const message = typeof err?.message === "string" ? err.message.slice(0, 500) : `status ${res.status}`;
  const retry = Number(res.headers.get("retry-after"));
  throw new ServerError(code, `agent: ${what} refused: ${message}`, res.status, Number.isFinite(retry) && retry >= 0 ? retry * 1000 : undefined);
}
