/**
 * The authorities of an HTTP/1.x request head (http-head.ts): the Host header's and the request
 * target's (RFC 9112 section 3.2), and which form of target a method takes.
 */
import { quote } from "../../errors.ts";
import { tryParseIp } from "../../policy/address.ts";
import { PolicyError } from "../../policy/errors.ts";
import { normalizeServerName } from "../../policy/host-name.ts";
import { parsePort } from "../../policy/ports.ts";
import { PeekError, type PeekErrorCode } from "./errors.ts";

function fail(code: PeekErrorCode, why: string, cause?: unknown): PeekError {
  return new PeekError(code, `peek: http: ${why}`, cause === undefined ? undefined : { cause });
}

export interface Authority {
  readonly name: string | null;
  /** What two authorities are compared by: the name, or the address's canonical text. */
  readonly key: string;
  readonly port: number | null;
}

/** `uri-host [":" port]` (RFC 3986 section 3.2), `where` naming it in messages. */
export function parseAuthority(text: string, where: string): Authority {
  if (text.length === 0) throw fail("peek_http_bad_host", `${where}: an empty host`);
  if (text.includes("@")) throw fail("peek_http_bad_host", `${where}: userinfo ("user@host") is refused`);
  let host = text;
  let port: string | null = null;
  const close = text.charCodeAt(0) === 0x5b ? text.indexOf("]") : -1;
  const colon = text.indexOf(":", close + 1);
  if (colon >= 0) {
    host = text.slice(0, colon);
    port = text.slice(colon + 1);
  }
  if (text.charCodeAt(0) === 0x5b && (close < 0 || close !== host.length - 1)) {
    throw fail("peek_http_bad_host", `${where}: ${quote(text)}: want "[IPv6]" or "[IPv6]:port"`);
  }
  if (port !== null && port.includes(":")) throw fail("peek_http_bad_host", `${where}: ${quote(text)}: an IPv6 address goes in brackets`);
  let portNumber: number | null = null;
  let name: string | null;
  try {
    if (port !== null) portNumber = parsePort(port);
    name = normalizeServerName(host);
  } catch (e) {
    if (e instanceof PolicyError) throw fail("peek_http_bad_host", `${where}: ${quote(text)}: ${e.message}`, e);
    throw e;
  }
  const bare = host.replace(/^\[|\]$/g, "").replace(/\.$/, "");
  const key = name ?? tryParseIp(bare)?.text ?? host.toLowerCase();
  return { name, key, port: portNumber };
}

export interface RequestLine {
  readonly method: string;
  readonly target: string;
  readonly form: "origin" | "absolute" | "authority" | "asterisk";
  readonly authority: Authority | null;
  readonly version: "HTTP/1.1" | "HTTP/1.0";
}

export function targetForm(method: string, target: string): Pick<RequestLine, "form" | "authority"> {
  if (method === "CONNECT") {
    if (target.includes("/") || target === "*") throw fail("peek_http_malformed", "CONNECT takes an authority-form target (host:port)");
    const authority = parseAuthority(target, "the CONNECT target");
    if (authority.port === null) throw fail("peek_http_bad_host", `the CONNECT target ${quote(target)} has no port`);
    return { form: "authority", authority };
  }
  if (target.charCodeAt(0) === 0x2f) return { form: "origin", authority: null };
  if (target === "*") {
    if (method !== "OPTIONS") throw fail("peek_http_malformed", `asterisk-form ("*") with ${quote(method)}: only OPTIONS takes it`);
    return { form: "asterisk", authority: null };
  }
  if (target.slice(0, 7).toLowerCase() !== "http://") {
    throw fail("peek_http_malformed", `a request target that is not origin-form ("/..."), http absolute-form or asterisk-form, with ${quote(method)}`);
  }
  const rest = target.slice(7);
  const stop = rest.search(/[/?]/);
  return { form: "absolute", authority: parseAuthority(stop < 0 ? rest : rest.slice(0, stop), "the request target") };
}
