/**
 * The decision engine: query.ts's combining rule over an indexed policy. Pure and synchronous; it
 * sees names and addresses as the proxy reports them and resolves nothing (destination.ts checks
 * the original address against what a host rule's name resolves to).
 *
 * Indexes are built per caller identity on first use (caller-index.ts) and kept in a bounded
 * cache: a node serves a few identities, each asking many times.
 */
import type { SpiffeId } from "../spiffe/index.ts";
import { CallerIndex } from "./caller-index.ts";
import type { EgressRule, Policy } from "./model.ts";
import { decideWith, NO_RULE, type Decision, type Query } from "./query.ts";
import { httpMatches } from "./rule-match.ts";

const MAX_CALLERS = 4096;

export class PolicyEngine {
  readonly policy: Policy;
  private readonly callers = new Map<string, CallerIndex>();
  private readonly lists: (readonly number[])[] = [];
  private readonly heads: number[] = [];

  constructor(policy: Policy) {
    this.policy = policy;
  }

  /** The rules whose `from` matches `id`, in order. */
  rulesFor(id: SpiffeId): EgressRule[] {
    const index = this.indexFor(id);
    return this.policy.egress.filter((r) => index.hasRule(r.index));
  }

  decide(q: Query): Decision {
    const index = this.indexFor(q.from);
    const lists = this.lists;
    index.candidates(q.name, q.address, lists);
    const heads = this.heads;
    heads.length = lists.length;
    heads.fill(0);
    const rules = this.policy.egress;
    let intercepted = false;
    for (;;) {
      // k-way merge: the smallest rule index at the head of any list.
      let best = -1;
      let bestIndex = Number.MAX_SAFE_INTEGER;
      for (let k = 0; k < lists.length; k++) {
        const list = lists[k]!;
        const h = heads[k]!;
        if (h < list.length && list[h]! < bestIndex) {
          bestIndex = list[h]!;
          best = k;
        }
      }
      if (best === -1) return NO_RULE;
      heads[best]!++;
      const r = rules[bestIndex]!;
      if (r.proto !== q.proto || q.port < r.ports.lo || q.port > r.ports.hi) continue;
      if (r.http !== null) {
        const http = q.http ?? null;
        if (http === null) return { verdict: "inspect", rule: r };
        intercepted = true;
        if (!httpMatches(r.http, http)) continue;
      }
      return decideWith(r, q, intercepted);
    }
  }

  private indexFor(id: SpiffeId): CallerIndex {
    const key = id.toString();
    let index = this.callers.get(key);
    if (index === undefined) {
      if (this.callers.size >= MAX_CALLERS) this.callers.clear();
      index = new CallerIndex(this.policy.egress, id);
      this.callers.set(key, index);
    }
    return index;
  }
}
