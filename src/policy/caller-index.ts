/**
 * The rules one caller may use, indexed by destination so a decision looks at a handful of rules
 * instead of all of them: exact names, one-label and any-depth wildcards by their parent name,
 * and address ranges as sorted elementary intervals (each with the rules covering it). Every list
 * holds rule indexes in ascending order; the engine merges the lists a query touches, so the first
 * match is the same as walking the whole list in order (query.ts, rule 1).
 */
import type { SpiffeId } from "../spiffe/index.ts";
import type { IpAddress } from "./address.ts";
import { parentOf } from "./host-name.ts";
import type { EgressRule } from "./model.ts";
import { fromMatches } from "./rule-match.ts";

const EMPTY: readonly number[] = Object.freeze([]);

/** Elementary intervals of one address family: `starts` ascending, `lists[i]` covers [starts[i], starts[i+1]). */
class IntervalIndex {
  private readonly starts: bigint[] = [];
  private readonly lists: (readonly number[])[] = [];

  constructor(ranges: readonly { first: bigint; last: bigint; index: number }[]) {
    if (ranges.length === 0) return;
    const edges = new Set<bigint>();
    for (const r of ranges) {
      edges.add(r.first);
      edges.add(r.last + 1n);
    }
    const sorted = [...edges].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const byStart = [...ranges].sort((a, b) => a.index - b.index);
    for (let i = 0; i < sorted.length; i++) {
      const at = sorted[i]!;
      const list = byStart.filter((r) => r.first <= at && at <= r.last).map((r) => r.index);
      this.starts.push(at);
      this.lists.push(list.length === 0 ? EMPTY : Object.freeze(list));
    }
  }

  lookup(value: bigint): readonly number[] {
    const s = this.starts;
    let lo = 0;
    let hi = s.length - 1;
    if (hi < 0 || value < s[0]!) return EMPTY;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (s[mid]! <= value) lo = mid;
      else hi = mid - 1;
    }
    return this.lists[lo]!;
  }
}

function push(map: Map<string, number[]>, key: string, index: number): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [index]);
  else list.push(index);
}

export class CallerIndex {
  readonly rules: readonly EgressRule[];
  private readonly exact = new Map<string, number[]>();
  private readonly one = new Map<string, number[]>();
  private readonly any = new Map<string, number[]>();
  private readonly v4: IntervalIndex;
  private readonly v6: IntervalIndex;
  private readonly mine = new Set<number>();

  constructor(all: readonly EgressRule[], id: SpiffeId) {
    this.rules = all;
    const v4: { first: bigint; last: bigint; index: number }[] = [];
    const v6: { first: bigint; last: bigint; index: number }[] = [];
    for (const r of all) {
      if (!fromMatches(r, id)) continue;
      this.mine.add(r.index);
      if (r.to.kind === "cidr") (r.to.cidr.family === 4 ? v4 : v6).push({ first: r.to.cidr.first, last: r.to.cidr.last, index: r.index });
      else push(this[r.to.host.kind], r.to.host.name, r.index);
    }
    this.v4 = new IntervalIndex(v4);
    this.v6 = new IntervalIndex(v6);
  }

  hasRule(index: number): boolean {
    return this.mine.has(index);
  }

  /** The ascending lists of rule indexes whose destination may match (`out` is reused). */
  candidates(name: string | null, address: IpAddress | null, out: (readonly number[])[]): void {
    out.length = 0;
    if (name !== null) {
      const exact = this.exact.get(name);
      if (exact !== undefined) out.push(exact);
      let parent = parentOf(name);
      if (parent !== null) {
        const one = this.one.get(parent);
        if (one !== undefined) out.push(one);
      }
      while (parent !== null) {
        const any = this.any.get(parent);
        if (any !== undefined) out.push(any);
        parent = parentOf(parent);
      }
    }
    if (address !== null) {
      const list = (address.family === 4 ? this.v4 : this.v6).lookup(address.value);
      if (list.length > 0) out.push(list);
    }
  }
}
