/**
 * Listen addresses as settings write them: `HOST:PORT` with an IPv4 address or a host name, or
 * `[IPV6]:PORT`; PORT 0-65535 (0: the kernel picks one, server.json says which).
 */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

const NAME = /^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/;

/** Throws an Error whose message names the text (callers wrap it in their own error). */
export function parseHostPort(text: string): HostPort {
  const bad = (why: string) => new Error(`${JSON.stringify(text.slice(0, 80))} is not HOST:PORT (${why})`);
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):([0-9]{1,5})$/.exec(text);
  if (m === null) throw bad("e.g. 127.0.0.1:8081 or [::1]:8081");
  const port = Number(m[3]);
  if (port > 65535) throw bad("port above 65535");
  const host = m[1] ?? m[2]!;
  if (m[2] !== undefined && !NAME.test(host)) throw bad("bad host");
  return { host, port };
}

/** `host:port`, with brackets around an IPv6 address. */
export function formatHostPort(hp: HostPort): string {
  return hp.host.includes(":") ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}
