/**
 * The caller's identity in an HTTP header for an inbound listener's backend (`forward_client_cert:
 * true`), in the style of Envoy's `x-forwarded-client-cert`: `By=<the listener's SPIFFE ID>;
 * URI=<the client's SPIFFE ID>`. Every request of the connection is parsed (src/http1/), pipelined
 * or kept alive: any `x-forwarded-client-cert` the client sent (any case, `_` for `-`: isXfcc) is
 * removed (from a chunked body's trailer section too) and the one header is added, so a backend
 * never sees a forged one. Bodies pass with their framing; a stream that breaks HTTP/1.1, CONNECT
 * and upgrade requests, and a request the rule in force no longer admits (`admit`: a reload
 * removed the rule or the client from it), end the connection (the listener does not read the
 * backend's answers, so it could not tell where another protocol would start). The listener
 * bounds how long a request head may take (`awaitingHead`, head-deadline.ts).
 */
import { encodeChunk, lastChunk, RequestParser, requestHeadBytes, type Framing, type Header, type RequestHead } from "../http1/index.ts";
import { copyOf } from "../http1/bytes.ts";

export const XFCC = "x-forwarded-client-cert";

/**
 * Whether a field (or Connection option) named `name` is x-forwarded-client-cert to some backend:
 * any case, and `_` for any `-`. CGI and WSGI servers (Python's wsgiref, gunicorn before 22) map
 * both `X_Forwarded_Client_Cert` and `X-Forwarded-Client-Cert` to HTTP_X_FORWARDED_CLIENT_CERT,
 * joining them with a comma, the client's first.
 */
function isXfcc(name: string): boolean {
  return name.length === XFCC.length && name.toLowerCase().replaceAll("_", "-") === XFCC;
}

/** `headers` without any x-forwarded-client-cert (isXfcc). */
export function withoutXfcc(headers: Iterable<Header>): Header[] {
  return [...headers].filter(([n]) => !isXfcc(n));
}

/** A Connection value without the option x-forwarded-client-cert (isXfcc), "" when nothing else is left. */
function connectionWithoutXfcc(value: string): string {
  return value
    .split(",")
    .map((o) => o.trim())
    .filter((o) => o !== "" && !isXfcc(o))
    .join(", ");
}

/**
 * `headers` without any x-forwarded-client-cert (isXfcc), then the one with `value`. A
 * Connection header naming x-forwarded-client-cert loses that option: it would have an
 * intermediary behind the listener (Go's ReverseProxy, Caddy, Traefik) drop the listener's
 * header as hop-by-hop (RFC 9110 section 7.6.1), so the application would never learn the caller.
 */
export function withXfcc(headers: readonly Header[], value: string): Header[] {
  const out: Header[] = [];
  for (const h of headers) {
    if (isXfcc(h[0])) continue;
    if (h[0].toLowerCase() !== "connection" || !h[1].toLowerCase().replaceAll("_", "-").includes(XFCC)) out.push(h);
    else {
      const rest = connectionWithoutXfcc(h[1]);
      if (rest !== "") out.push([h[0], rest]);
    }
  }
  out.push([XFCC, value]);
  return out;
}

/** The header's value for a listener presenting `by` and a client presenting `uri`. */
export function xfccValue(by: string, uri: string): string {
  return `By=${by};URI=${uri}`;
}

export type Rewritten = { readonly out: Uint8Array[]; readonly refused: { reason: string; detail: string } | null };

export class XfccRewriter {
  private readonly parser = new RequestParser();
  private framing: Framing = "none";
  private readonly value: string;
  /** Requests rewritten so far. */
  requests = 0;

  /** `admit`, asked at each request head: why the connection takes no more requests (a reload), or null. */
  constructor(
    by: string,
    uri: string,
    private readonly admit: () => { reason: string; detail: string } | null = () => null,
  ) {
    this.value = xfccValue(by, uri);
  }

  push(chunk: Uint8Array): Rewritten {
    return this.run(this.parser.push(chunk));
  }

  /** Waiting for a request head: the first, or a later one whose first byte came (head-deadline.ts). */
  get awaitingHead(): boolean {
    return this.parser.awaitingHead && (this.requests === 0 || this.parser.inHead);
  }

  finish(): Rewritten {
    return this.run(this.parser.finish());
  }

  /** The last head rewritten and its bytes: a head that repeats (the parser gives the same frozen head) is not rewritten again. */
  private last: { readonly head: RequestHead; readonly bytes: Uint8Array } | null = null;

  private rewrite(h: RequestHead): Uint8Array {
    const last = this.last;
    if (last !== null && last.head === h) return last.bytes;
    const bytes = requestHeadBytes(h.method, h.target, h.version, withXfcc(h.headers.entries, this.value));
    this.last = { head: h, bytes };
    return bytes;
  }

  private run(events: ReturnType<RequestParser["push"]>): Rewritten {
    const out: Uint8Array[] = [];
    for (const e of events) {
      if (e.kind === "error") return { out, refused: { reason: e.error.code, detail: e.error.message } };
      if (e.kind === "tunnel") return { out, refused: { reason: "upgrade_refused", detail: "bytes after a protocol switch" } };
      if (e.kind === "head") {
        const h = e.head;
        if (h.method === "CONNECT" || h.upgrade.length > 0) return { out, refused: { reason: "upgrade_refused", detail: `${h.method} with Upgrade: ${h.upgrade.join(", ") || "-"}` } };
        const no = this.admit();
        if (no !== null) return { out, refused: no };
        this.framing = h.framing;
        this.requests += 1;
        out.push(this.rewrite(h));
      } else if (e.kind === "body") {
        out.push(this.framing === "chunked" ? encodeChunk(e.bytes) : copyOf(e.bytes));
      } else if (this.framing === "chunked") {
        // A chunked body's trailer section is the client's too: a backend that reads trailers
        // (or merges them into the headers) must not find a forged one there.
        out.push(lastChunk(e.trailers.length === 0 ? e.trailers : withoutXfcc(e.trailers)));
      }
    }
    return { out, refused: null };
  }
}
