/**
 * A whole head (as HeadScanner delimited it) to a RequestHead or ResponseHead: start line,
 * fields, then the message body length of RFC 9112 section 6.3 and persistence of section 9.3.
 *
 * Requests: Transfer-Encoding chunked, else Content-Length, else no body. HTTP/1.1 needs Host; a
 * request with an authority in its target takes that authority, and a Host that names another
 * host or port is refused (RFC 9112 section 3.2.2 lets a server ignore it; a proxy that forwards
 * it would be asked for one host and route to another).
 *
 * Responses, in order: a 101 switches protocols (only when the request asked to upgrade), a 2xx
 * to CONNECT opens a tunnel; a 1xx, 204, 304 or a response to HEAD has no body; then chunked,
 * Content-Length, else the body runs to the end of the connection. Framing headers are checked
 * the same way in every case, also where they do not delimit the body.
 */
import { quote } from "../errors.ts";
import { parseAuthority, type Authority } from "./authority.ts";
import { HeadText } from "./bytes.ts";
import { fail } from "./errors.ts";
import { parseFields, type Fields } from "./fields.ts";
import type { HeadScanner } from "./scan.ts";
import type { HeadMemo } from "./memo.ts";
import { parseRequestLine, parseStatusLine, type RequestLine, type StatusLine } from "./start-line.ts";
import type { Framing, HttpVersion, RequestHead, ResponseHead } from "./types.ts";

const NONE: readonly string[] = Object.freeze([]);

/**
 * Whether Host `h` names the target's authority `t`: the same host, and the same port with the
 * scheme's `defaultPort` for a missing one; for CONNECT (`defaultPort` null) Host may omit the port.
 */
function agrees(h: Authority, t: Authority, defaultPort: number | null): boolean {
  if ((h.name ?? h.ip) !== (t.name ?? t.ip)) return false;
  return defaultPort === null ? h.port === null || h.port === t.port : (h.port ?? defaultPort) === (t.port ?? defaultPort);
}

function startLine<L>(text: HeadText, sc: HeadScanner, memo: HeadMemo<L> | null, parse: (text: HeadText, from: number, to: number) => L): L {
  const end = sc.ends[0] ?? 0;
  if (memo === null) return parse(text, 0, end);
  const hit = memo.line.get(text.bytes, 0, end);
  if (hit !== null) return hit;
  const line = parse(text, 0, end);
  memo.line.set(text.bytes, 0, end, line);
  return line;
}

function keepAlive(version: HttpVersion, connection: readonly string[]): boolean {
  if (connection.includes("close")) return false;
  return version === "HTTP/1.1" || connection.includes("keep-alive");
}

/** `memo`: the connection's previous head, reused where this one repeats it (memo.ts). */
export function buildRequestHead(b: Uint8Array, sc: HeadScanner, memo: HeadMemo<RequestLine> | null = null): RequestHead {
  const text = new HeadText(b);
  const line = startLine(text, sc, memo, parseRequestLine);
  const f = parseFields(text, sc, 1, line.version, memo?.fields ?? null);
  let host = line.authority;
  if (f.host === null) {
    if (line.version === "HTTP/1.1") throw fail("http1_missing_host", "an HTTP/1.1 request without a Host header");
  } else {
    const h = parseAuthority(f.host, "the Host header");
    if (host === null) host = h;
    else if (!agrees(h, host, line.form === "authority" ? null : (line.target.charCodeAt(4) | 0x20) === 0x73 ? 443 : 80)) {
      throw fail("http1_bad_host", `the Host header ${quote(f.host)} disagrees with the request target's authority`);
    }
  }
  const framing: Framing = f.chunked ? "chunked" : f.contentLength !== null ? "length" : "none";
  return Object.freeze({
    kind: "request",
    method: line.method,
    target: line.target,
    form: line.form,
    host,
    version: line.version,
    headers: f.headers,
    framing,
    contentLength: f.contentLength,
    connection: f.connection,
    upgrade: f.upgrade.length > 0 && f.connection.includes("upgrade") ? f.upgrade : NONE,
    keepAlive: keepAlive(line.version, f.connection),
    headLength: sc.length,
  });
}

function responseFraming(status: number, method: string, upgradeAsked: boolean, f: Fields): Framing {
  if (status === 101) {
    if (!upgradeAsked) throw fail("http1_bad_status", "a 101 (Switching Protocols) to a request that asked for no upgrade");
    return "tunnel";
  }
  if (method === "CONNECT" && status >= 200 && status < 300) return "tunnel";
  if (status < 200 || status === 204 || status === 304 || method === "HEAD") return "none";
  return f.chunked ? "chunked" : f.contentLength !== null ? "length" : "close";
}

/** `method` and `upgradeAsked`: of the request this response answers. */
export function buildResponseHead(b: Uint8Array, sc: HeadScanner, method: string, upgradeAsked: boolean, memo: HeadMemo<StatusLine> | null = null): ResponseHead {
  const text = new HeadText(b);
  const line = startLine(text, sc, memo, parseStatusLine);
  const f = parseFields(text, sc, 1, line.version, memo?.fields ?? null);
  const framing = responseFraming(line.status, method, upgradeAsked, f);
  return Object.freeze({
    kind: "response",
    status: line.status,
    reason: line.reason,
    requestMethod: method,
    version: line.version,
    headers: f.headers,
    framing,
    contentLength: f.contentLength,
    connection: f.connection,
    upgrade: f.upgrade,
    keepAlive: (line.status < 200 && line.status !== 101) || (framing !== "close" && framing !== "tunnel" && keepAlive(line.version, f.connection)),
    headLength: sc.length,
  });
}
