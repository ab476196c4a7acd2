/**
 * The addresses a rule's host name stands for, as the agent resolves it (DESIGN.md section 3,
 * "Names"): static entries of the `dns:` setting first, then A and AAAA lookups, cached for the
 * records' TTL. The proxy forwards only to an address this cache gave it, so the cache fails
 * closed:
 *
 * - a name with a static entry is never looked up; the entry is the whole answer;
 * - otherwise both families are asked at once; the answer is their union (IPv4 first, each
 *   address once), fresh until now + clamp(least TTL of the two answers, minTtl, maxTtl), where an
 *   empty answer counts with at most negativeTtl;
 * - when one family fails and the other gives addresses, those are the answer, kept only minTtl;
 * - when both fail, or one fails and the other is empty, resolve rejects with policy_dns_failed,
 *   caches nothing (the next call asks again) and never falls back to an expired answer;
 * - concurrent resolves of one name share one pair of lookups; at most maxEntries names are kept,
 *   the least recently used dropped first.
 */
import { quote } from "../errors.ts";
import type { IpAddress } from "./address.ts";
import { PolicyError } from "./errors.ts";

export type Lookup = (name: string, type: "A" | "AAAA") => Promise<{ readonly addresses: readonly IpAddress[]; readonly ttl: number }>;

export interface NameCacheOptions {
  /** Static entries, keyed by lowercase name. */
  readonly hosts?: ReadonlyMap<string, readonly IpAddress[]>;
  readonly lookup: Lookup;
  /** Milliseconds; Date.now by default. */
  readonly now?: () => number;
  /** Seconds, default 5: the floor of every cache lifetime (so a TTL of 0 cannot make every connection a lookup). */
  readonly minTtlSeconds?: number;
  /** Seconds, default 3600. */
  readonly maxTtlSeconds?: number;
  /** Seconds, default 30: the most an empty answer is trusted for. */
  readonly negativeTtlSeconds?: number;
  /** Default 10000. */
  readonly maxEntries?: number;
}

interface Entry {
  readonly addresses: readonly IpAddress[];
  readonly expiresAt: number;
}

type Answer = Awaited<ReturnType<Lookup>>;

function union(answers: readonly Answer[]): readonly IpAddress[] {
  const seen = new Set<string>();
  const out: IpAddress[] = [];
  for (const a of answers) {
    for (const ip of a.addresses) {
      const key = `${ip.family}/${ip.value}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(ip);
    }
  }
  return Object.freeze(out);
}

function reasonOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class NameCache {
  readonly #hosts: ReadonlyMap<string, readonly IpAddress[]>;
  readonly #lookup: Lookup;
  readonly #now: () => number;
  readonly #minTtl: number;
  readonly #maxTtl: number;
  readonly #negativeTtl: number;
  readonly #maxEntries: number;
  /** Map order is recency: the first key is the least recently used. */
  readonly #entries = new Map<string, Entry>();
  readonly #pending = new Map<string, Promise<readonly IpAddress[]>>();
  /** Bumped by clear(), so a lookup that started before it stores nothing. */
  #generation = 0;

  constructor(o: NameCacheOptions) {
    this.#hosts = new Map([...(o.hosts ?? new Map<string, readonly IpAddress[]>())].map(([k, v]) => [k, Object.freeze([...v])]));
    this.#lookup = o.lookup;
    this.#now = o.now ?? (() => Date.now());
    this.#minTtl = o.minTtlSeconds ?? 5;
    this.#maxTtl = Math.max(this.#minTtl, o.maxTtlSeconds ?? 3600);
    this.#negativeTtl = o.negativeTtlSeconds ?? 30;
    this.#maxEntries = Math.max(1, o.maxEntries ?? 10_000);
  }

  /** `name` must already be normalized (lowercase, no trailing dot). */
  resolve(name: string): Promise<readonly IpAddress[]> {
    const known = this.peek(name);
    if (known !== undefined) return Promise.resolve(known);
    const pending = this.#pending.get(name);
    if (pending !== undefined) return pending;
    const p = this.#fetch(name).finally(() => {
      if (this.#pending.get(name) === p) this.#pending.delete(name);
    });
    this.#pending.set(name, p);
    return p;
  }

  /** The static entry, or a cached answer that has not expired; never starts a lookup. */
  peek(name: string): readonly IpAddress[] | undefined {
    const fixed = this.#hosts.get(name);
    if (fixed !== undefined) return fixed;
    const entry = this.#entries.get(name);
    if (entry === undefined) return undefined;
    this.#entries.delete(name);
    if (this.#now() >= entry.expiresAt) return undefined;
    this.#entries.set(name, entry);
    return entry.addresses;
  }

  clear(): void {
    this.#entries.clear();
    this.#pending.clear();
    this.#generation++;
  }

  #clamp(seconds: number): number {
    const s = Number.isFinite(seconds) && seconds > 0 ? seconds : 0;
    return Math.min(this.#maxTtl, Math.max(this.#minTtl, s));
  }

  async #fetch(name: string): Promise<readonly IpAddress[]> {
    const generation = this.#generation;
    const ask = async (type: "A" | "AAAA") => this.#lookup(name, type);
    const settled = await Promise.allSettled([ask("A"), ask("AAAA")]);
    const answers = settled.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
    const failures = settled.flatMap((s) => (s.status === "rejected" ? [s.reason as unknown] : []));
    const addresses = union(answers);
    if (answers.length === 0 || (failures.length > 0 && addresses.length === 0)) {
      const reasons = [...new Set(failures.map(reasonOf))].join("; ");
      throw new PolicyError("policy_dns_failed", `policy: cannot resolve ${quote(name)}: ${reasons}`, { cause: failures[0] });
    }
    const seconds =
      failures.length > 0
        ? this.#minTtl
        : this.#clamp(Math.min(...answers.map((a) => (a.addresses.length > 0 ? a.ttl : Math.min(a.ttl, this.#negativeTtl)))));
    if (generation === this.#generation) this.#store(name, { addresses, expiresAt: this.#now() + seconds * 1000 });
    return addresses;
  }

  #store(name: string, entry: Entry): void {
    this.#entries.delete(name);
    this.#entries.set(name, entry);
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      this.#entries.delete(oldest.value);
    }
  }
}
