/**
 * The cap on open connections per source address at one TLS listener (`listen.max_connections_per_source`,
 * docs/server-api.md). A connection counts from its accept to its close, its TLS handshake
 * included; `admit` refuses the one that would pass the cap, and the listener then closes it before
 * its handshake is run (tls-listener.ts). Without the cap one host could hold every descriptor
 * the server has, each connection for up to ANSWER_TIMEOUT_MS.
 *
 * Guaranteed: an IPv4-mapped IPv6 address (`::ffff:127.0.0.1`, what a listener on `::` sees of an
 * IPv4 peer) counts as its IPv4 address; a source whose last connection closed is forgotten, so
 * the map holds only sources with connections open. A socket with no address (it closed before
 * its accept was handled) counts under "unknown".
 *
 * Refusals are counted (`refused`, in `tidegate server status`) and logged as
 * `connection_refused` (warn) at most once per `logEveryMs` per listener: the line names the
 * source of the refusal that triggered it and how many were refused since the previous line.
 */
import type { Logger } from "../runtime/log.ts";

export const DEFAULT_MAX_CONNECTIONS_PER_SOURCE = 64;
export const REFUSAL_LOG_EVERY_MS = 60_000;

const MAPPED_V4 = /^::ffff:(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/i;

/** A socket's remote address as the cap counts it. */
export function sourceKey(remoteAddress: string | undefined): string {
  if (remoteAddress === undefined || remoteAddress === "") return "unknown";
  const m = MAPPED_V4.exec(remoteAddress);
  return m === null ? remoteAddress.toLowerCase() : m[1]!;
}

export interface SourceCapOptions {
  readonly listener: string;
  readonly max: number;
  readonly logger: Logger;
  readonly logEveryMs?: number;
  readonly now?: () => number;
}

export class SourceCap {
  readonly #o: SourceCapOptions;
  readonly #open = new Map<string, number>();
  #refused = 0;
  #unlogged = 0;
  #loggedAt = -Infinity;

  constructor(o: SourceCapOptions) {
    if (!Number.isInteger(o.max) || o.max < 1) throw new RangeError("source cap: max must be a whole number >= 1");
    this.#o = o;
  }

  /** True: counted as open until `release(source)`. False: over the cap, counted as refused. */
  admit(source: string): boolean {
    const n = this.#open.get(source) ?? 0;
    if (n < this.#o.max) {
      this.#open.set(source, n + 1);
      return true;
    }
    this.#refused++;
    this.#unlogged++;
    const now = (this.#o.now ?? Date.now)();
    if (now - this.#loggedAt >= (this.#o.logEveryMs ?? REFUSAL_LOG_EVERY_MS)) {
      this.#o.logger.warn("connection_refused", { listener: this.#o.listener, source, reason: "max_connections_per_source", max: this.#o.max, refused: this.#unlogged });
      this.#loggedAt = now;
      this.#unlogged = 0;
    }
    return false;
  }

  release(source: string): void {
    const n = this.#open.get(source) ?? 0;
    if (n <= 1) this.#open.delete(source);
    else this.#open.set(source, n - 1);
  }

  openFrom(source: string): number {
    return this.#open.get(source) ?? 0;
  }

  /** Connections refused since the listener started. */
  get refused(): number {
    return this.#refused;
  }

  /** Sources with a connection open. */
  get sources(): number {
    return this.#open.size;
  }
}
