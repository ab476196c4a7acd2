/**
 * What the parsers emit: heads, body bytes, message ends, and the bytes that follow a switch of
 * protocols. Heads are frozen; their headers are as received (names as sent, values without
 * surrounding whitespace), framing decided per RFC 9112 section 6.3.
 */
import type { Authority } from "./authority.ts";
import type { Http1Error } from "./errors.ts";
import type { HeaderList } from "./headers.ts";

export type HttpVersion = "HTTP/1.1" | "HTTP/1.0";

/**
 * How the body is delimited:
 * - "none": no body (a request without Content-Length or Transfer-Encoding; a response to HEAD,
 *   a 1xx, 204 or 304, whatever its headers say);
 * - "length": `contentLength` bytes (possibly 0);
 * - "chunked": the chunked coding (RFC 9112 section 7.1), body events carry the decoded data;
 * - "close": a response with neither, ending when the connection does (`finish()`);
 * - "tunnel": a 101 to an upgrade request or a 2xx to CONNECT: the bytes after the head are
 *   another protocol's, emitted as "tunnel" events.
 */
export type Framing = "none" | "length" | "chunked" | "close" | "tunnel";

interface MessageHead {
  readonly version: HttpVersion;
  readonly headers: HeaderList;
  readonly framing: Framing;
  /** The Content-Length sent (one value when it was repeated), null when none was. */
  readonly contentLength: number | null;
  /** The Connection options, lowercase, in order (RFC 9110 section 7.6.1). */
  readonly connection: readonly string[];
  /**
   * The Upgrade protocols as sent (RFC 9110 section 7.8), for a request only when Connection
   * lists "upgrade" (otherwise a recipient ignores Upgrade); empty when none.
   */
  readonly upgrade: readonly string[];
  /**
   * Whether the connection may carry another message after this one (RFC 9112 section 9.3): not
   * with a "close" option; with HTTP/1.1; with HTTP/1.0 only with a "keep-alive" option. A
   * close-delimited or tunnel response is never kept alive; an interim one (1xx but 101) always is:
   * the final response follows.
   */
  readonly keepAlive: boolean;
  /** Bytes from the start line through the empty line (leading empty lines not counted). */
  readonly headLength: number;
}

export interface RequestHead extends MessageHead {
  readonly kind: "request";
  readonly method: string;
  /** As sent. */
  readonly target: string;
  /** RFC 9112 section 3.2: "/path?q", "http(s)://authority/...", "host:port" (CONNECT), "*" (OPTIONS). */
  readonly form: "origin" | "absolute" | "authority" | "asterisk";
  /**
   * Whom the request is for: the target's authority (absolute-form, CONNECT), which a Host must
   * agree with, else the Host header's; null only for HTTP/1.0 without Host.
   */
  readonly host: Authority | null;
}

export interface ResponseHead extends MessageHead {
  readonly kind: "response";
  readonly status: number;
  /** As sent, possibly empty. */
  readonly reason: string;
  /** The method of the request this answers (given to ResponseParser.expect). */
  readonly requestMethod: string;
}

export type Http1Event<H> =
  | { readonly kind: "head"; readonly head: H }
  /** Body bytes (decoded from chunks), a view into the pushed chunk: read it before reusing that buffer. */
  | { readonly kind: "body"; readonly bytes: Uint8Array }
  /** The message is complete; trailers of a chunked body (NO_HEADERS otherwise). */
  | { readonly kind: "end"; readonly trailers: HeaderList }
  /** Bytes after a switch of protocols, not parsed. */
  | { readonly kind: "tunnel"; readonly bytes: Uint8Array }
  /** The last event: the stream broke HTTP/1.1 here; every later call gives this error again. */
  | { readonly kind: "error"; readonly error: Http1Error };

export type RequestEvent = Http1Event<RequestHead>;
export type ResponseEvent = Http1Event<ResponseHead>;
