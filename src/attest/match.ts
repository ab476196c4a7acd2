/**
 * Which registration entry a workload's selectors select (../shared/DESIGN.md section 4; issue 4,
 * "Matching"). Portable: no runtime imports.
 *
 * Combining rule:
 * 1. An entry matches when every one of its selectors is among the workload's (exact strings).
 *    An entry with no selectors matches nothing (it would otherwise select every process).
 * 2. Of the matching entries, the one with the most (distinct) selectors wins: it is the most
 *    specific.
 * 3. Several entries sharing that highest count is an error (`attest_ambiguous`, naming them):
 *    no identity is chosen by accident of order. The connection is refused.
 * 4. No matching entry: `null`, no identity, so default deny.
 */
import { AttestError } from "./errors.ts";

export interface MatchEntry {
  readonly id: string;
  readonly spiffe_id: string;
  readonly selectors: readonly string[];
}

export interface NearMiss<E extends MatchEntry> {
  readonly entry: E;
  /** The one selector of the entry the workload does not have. */
  readonly missing: string;
}

function missingOf(entry: MatchEntry, have: ReadonlySet<string>): string[] {
  return [...new Set(entry.selectors)].filter((s) => !have.has(s));
}

/** The entry the selectors select, or null; throws `attest_ambiguous` on a tie at the top. */
export function matchEntry<E extends MatchEntry>(entries: readonly E[], selectors: readonly string[]): E | null {
  const have = new Set(selectors);
  let best: E[] = [];
  let bestCount = 0;
  for (const e of entries) {
    const count = new Set(e.selectors).size;
    if (count === 0 || missingOf(e, have).length > 0) continue;
    if (count > bestCount) {
      best = [e];
      bestCount = count;
    } else if (count === bestCount) {
      best.push(e);
    }
  }
  if (best.length > 1) {
    const names = best.map((e) => `${e.id} (${e.spiffe_id})`).join(", ");
    throw new AttestError("attest_ambiguous", `attest: ${best.length} entries match with ${bestCount} selectors each: ${names}`);
  }
  return best[0] ?? null;
}

/** Entries missing exactly one of their selectors, and which one: what `tidegate attest` shows. */
export function nearMisses<E extends MatchEntry>(entries: readonly E[], selectors: readonly string[]): NearMiss<E>[] {
  const have = new Set(selectors);
  const out: NearMiss<E>[] = [];
  for (const e of entries) {
    const missing = missingOf(e, have);
    if (missing.length === 1) out.push({ entry: e, missing: missing[0]! });
  }
  return out;
}
