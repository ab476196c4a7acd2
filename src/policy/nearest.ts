/** "Did you mean": the names nearest to a misspelt one, for error messages. */

/** Edit distance counting a swap of two neighbours as one edit (optimal string alignment). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidates nearest to `name`, ignoring case: those at the smallest distance, when it is at
 * most a quarter of the candidate's length (none for up to three characters, one edit up to
 * seven, two beyond), so `w3` suggests no `w1`; none when none is near.
 */
export function nearest(name: string, candidates: readonly string[]): string[] {
  const k = name.toLowerCase().slice(0, 64);
  const scored = candidates.map((c) => ({ c, d: editDistance(k, c.toLowerCase()) })).filter(({ c, d }) => d <= Math.min(2, Math.floor(c.length / 4)));
  const best = Math.min(...scored.map((x) => x.d));
  return scored.filter((x) => x.d === best).map((x) => x.c);
}

/** `; did you mean A or B?` for the names `nearest` gave, or nothing when it gave none. */
export function didYouMean(near: readonly string[]): string {
  return near.length > 0 ? `; did you mean ${near.join(" or ")}?` : "";
}
