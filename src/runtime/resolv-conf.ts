/**
 * The system's resolvers, the default for the agent's `dns:` setting (DESIGN.md section 3):
 * the `nameserver` lines of /etc/resolv.conf (resolv.conf(5)), port 53, in file order, each once.
 *
 * Ignored: comment lines (starting with "#" or ";"), every other keyword (search, options, ...),
 * anything after the address on a nameserver line, addresses that are not IPv4 or IPv6 literals,
 * and scoped IPv6 addresses ("fe80::1%eth0"), which a server list cannot name portably.
 */
import { readFileSync } from "node:fs";
import { parseIp } from "../policy/address.ts";
import type { DnsServer } from "./dns-client.ts";

export const RESOLV_CONF = "/etc/resolv.conf";
const DNS_PORT = 53;

export function parseResolvConf(text: string): DnsServer[] {
  const out: DnsServer[] = [];
  for (const line of text.split(/\r?\n/)) {
    const [keyword, address] = line.trim().split(/[ \t]+/);
    if (keyword !== "nameserver" || address === undefined || address.includes("%")) continue;
    let host: string;
    try {
      host = parseIp(address).text;
    } catch {
      continue;
    }
    if (!out.some((s) => s.host === host)) out.push(Object.freeze({ host, port: DNS_PORT }));
  }
  return out;
}

/** The servers of /etc/resolv.conf; none when it cannot be read (the caller decides what that means). */
export function systemResolvers(readFile: (path: string) => string = (p) => readFileSync(p, "utf8")): DnsServer[] {
  let text: string;
  try {
    text = readFile(RESOLV_CONF);
  } catch {
    return [];
  }
  return parseResolvConf(text);
}
