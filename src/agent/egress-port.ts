/**
 * The egress listener's port (DESIGN.md section 3): on loopback, below 1024, so no unprivileged
 * process can bind it while the agent is down (net.ipv4.ip_unprivileged_port_start is 1024 by
 * default; the agent checks it and warns when it is lower). The default instance uses 1001; an
 * instance keeps the port its pins already name, else takes the first free one from 1000 down to
 * 900, free on both 127.0.0.1 and ::1.
 */
import { readFileSync } from "node:fs";
import type { Logger } from "../runtime/log.ts";

export const DEFAULT_EGRESS_PORT = 1001;

function bindable(port: number): boolean {
  const opened: { stop(force?: boolean): void }[] = [];
  try {
    for (const hostname of ["127.0.0.1", "::1"]) opened.push(Bun.listen({ hostname, port, socket: { data() {} } }));
    return true;
  } catch {
    return false;
  } finally {
    for (const l of opened) l.stop(true);
  }
}

export async function chooseEgressPort(instance: string | null, current: number): Promise<number> {
  const candidates = [current, ...(instance === null ? [DEFAULT_EGRESS_PORT] : Array.from({ length: 101 }, (_, i) => 1000 - i))];
  for (const port of candidates) if (port > 0 && port < 1024 && bindable(port)) return port;
  throw new Error(`egress: no free port below 1024 for the egress listener (tried ${candidates.filter((p) => p > 0).slice(0, 3).join(", ")}...)`);
}

/** The lowest port an unprivileged process may bind, or null when unknown. */
export function unprivilegedPortStart(): number | null {
  try {
    return Number(readFileSync("/proc/sys/net/ipv4/ip_unprivileged_port_start", "utf8").trim());
  } catch {
    return null;
  }
}

/**
 * Logs `egress_port_unprotected` (the port and the sysctl's value) when an unprivileged process
 * may bind `port`, that is when the sysctl is at or below it; an unreadable sysctl says nothing.
 * True when it warned. `start` is injectable for tests; it defaults to the kernel's value.
 */
export function warnIfUnprotected(port: number, logger: Logger, start: () => number | null = unprivilegedPortStart): boolean {
  const open = start();
  if (open === null || !(open <= port)) return false;
  logger.warn("egress_port_unprotected", { port, ip_unprivileged_port_start: open, effect: "an unprivileged process could take the egress port while the agent is down" });
  return true;
}
