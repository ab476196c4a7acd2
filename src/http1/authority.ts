/**
 * `uri-host [":" port]` (RFC 3986 section 3.2, RFC 9110 section 7.2): the Host header, and the
 * authority of an absolute-form or authority-form request target.
 *
 * Accepted: a DNS name (normalizeServerName: ASCII labels, lowercase, one trailing dot removed),
 * an IPv4 address, an IPv6 address in brackets; an optional port 1..65535 without leading zeros.
 * Refused (http1_bad_host): an empty host, userinfo ("user@host", RFC 9110 section 4.2.4), an
 * IPv6 address without brackets, an empty or invalid port, an invalid name.
 */
import { quote } from "../errors.ts";
import { tryParseIp } from "../policy/address.ts";
import { PolicyError } from "../policy/errors.ts";
import { normalizeServerName } from "../policy/host-name.ts";
import { parsePort } from "../policy/ports.ts";
import { Http1Error } from "./errors.ts";

export interface Authority {
  /** As written. */
  readonly text: string;
  /** Lowercase, no trailing dot; null for an IP literal. */
  readonly name: string | null;
  /** An IP literal's canonical text (no brackets); null for a name. */
  readonly ip: string | null;
  /** The port written, null when none is (the scheme's default applies). */
  readonly port: number | null;
}

function bad(where: string, why: string, cause?: unknown): Http1Error {
  return new Http1Error("http1_bad_host", `http1: ${where}: ${why}`, cause === undefined ? undefined : { cause });
}

function parse(text: string, where: string): Authority {
  if (text.length === 0) throw bad(where, "an empty host");
  // Not repeated: the userinfo may be a password, and this message reaches the audit log.
  if (text.includes("@")) throw bad(where, 'userinfo ("user@host") is refused');
  const bracket = text.charCodeAt(0) === 0x5b;
  const close = bracket ? text.indexOf("]") : -1;
  const colon = text.indexOf(":", close + 1);
  const host = colon < 0 ? text : text.slice(0, colon);
  const portText = colon < 0 ? null : text.slice(colon + 1);
  if (bracket && (close < 0 || close !== host.length - 1)) throw bad(where, `${quote(text)}: want "[IPv6]" or "[IPv6]:port"`);
  if (portText !== null && portText.includes(":")) throw bad(where, `${quote(text)}: an IPv6 address goes in brackets`);
  try {
    const port = portText === null ? null : parsePort(portText);
    const name = normalizeServerName(host);
    if (name !== null) return Object.freeze({ text, name, ip: null, port });
    const bare = bracket ? host.slice(1, -1) : host.endsWith(".") ? host.slice(0, -1) : host;
    const ip = tryParseIp(bare);
    if (ip === null) throw bad(where, `${quote(text)}: not an address`);
    return Object.freeze({ text, name: null, ip: ip.text, port });
  } catch (e) {
    if (e instanceof PolicyError) throw bad(where, `${quote(text)}: ${e.message}`, e);
    throw e;
  }
}

/** Recently parsed authorities: a connection sends the same Host on every request. */
const recent = new Map<string, Authority>();
const RECENT_MAX = 256;

/** The authority in `text`; `where` names it in messages ("the Host header"). */
export function parseAuthority(text: string, where: string): Authority {
  const hit = recent.get(text);
  if (hit !== undefined) return hit;
  const a = parse(text, where);
  if (recent.size >= RECENT_MAX) recent.clear();
  recent.set(text, a);
  return a;
}
