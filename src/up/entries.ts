/**
 * Single-host mode applies the config's `workloads:` as registration entries of the local node
 * (DESIGN.md section 2, "Source of identity"). Each workload NAME becomes one entry: its SPIFFE
 * ID, with its selectors plus the implied `tidegate:workload:NAME`. Each `inbound:` listener's id
 * that no workload has becomes one entry too, with the selector `tidegate:inbound:RULE` (one per
 * rule presenting that id): no process carries it, so the SVID serves the agent's listener alone.
 *
 * `tidegate up` only ever removes entries it made itself (their ids are kept in its state), so an
 * entry an operator added with `tidegate entry create` for this node is left alone.
 */
import type { InboundRule, Workload } from "../policy/index.ts";

/** The selector of an inbound listener's entry, followed by the rule's name: no attestor gives it, so no process carries it. */
export const INBOUND_SELECTOR = "tidegate:inbound:";

export interface WantedEntry {
  readonly spiffeId: string;
  /** Sorted, unique. */
  readonly selectors: readonly string[];
}

export interface ExistingEntry {
  readonly id: string;
  readonly spiffe_id: string;
  readonly selectors: readonly string[];
}

export interface EntryPlan {
  readonly create: readonly WantedEntry[];
  /** Entry ids to delete: made by `up` earlier and no longer wanted as they are. */
  readonly remove: readonly string[];
  /** Entries that already match, by id. */
  readonly keep: readonly string[];
}

export function wantedEntries(workloads: readonly Workload[], inbound: readonly Pick<InboundRule, "name" | "id">[] = []): WantedEntry[] {
  const out: WantedEntry[] = workloads.map((w) => ({
    spiffeId: w.id.toString(),
    selectors: [...new Set([...w.selectors, `tidegate:workload:${w.name}`])].sort(),
  }));
  const held = new Set(out.map((w) => w.spiffeId));
  const listeners = new Map<string, string[]>();
  for (const r of inbound) {
    const id = r.id.toString();
    if (!held.has(id)) listeners.set(id, [...(listeners.get(id) ?? []), `${INBOUND_SELECTOR}${r.name}`]);
  }
  for (const [spiffeId, selectors] of listeners) out.push({ spiffeId, selectors: selectors.sort() });
  return out;
}

const same = (e: ExistingEntry, w: WantedEntry) => e.spiffe_id === w.spiffeId && e.selectors.length === w.selectors.length && [...e.selectors].sort().every((s, i) => s === w.selectors[i]);

/**
 * What to change so the node's entries hold every wanted one. `ours` are the ids `up` created; an
 * existing entry that equals a wanted one is kept whoever made it, and one of ours that no longer
 * equals any wanted entry is removed.
 */
export function planEntries(wanted: readonly WantedEntry[], existing: readonly ExistingEntry[], ours: ReadonlySet<string>): EntryPlan {
  const keep: string[] = [];
  const create: WantedEntry[] = [];
  for (const w of wanted) {
    const match = existing.find((e) => same(e, w));
    if (match !== undefined) keep.push(match.id);
    else create.push(w);
  }
  const remove = existing.filter((e) => ours.has(e.id) && !keep.includes(e.id)).map((e) => e.id);
  return { create, remove, keep };
}
