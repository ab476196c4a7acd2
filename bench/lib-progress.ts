/**
 * Progress of a long benchmark on stderr: before each measured step, "[k/N] what (elapsed, about
 * T left)", the estimate from the mean time of the steps done so far. stdout stays the report's.
 */
export class Progress {
  private done = 0;
  private readonly start = performance.now();

  constructor(private readonly total: number) {}

  /** Announces the next step. */
  step(what: string): void {
    const elapsed = (performance.now() - this.start) / 1000;
    const left = this.done > 0 ? ` about ${clock((elapsed / this.done) * (this.total - this.done))} left` : "";
    this.done++;
    console.error(`[${this.done}/${this.total}] ${what} (${clock(elapsed)} in,${left === "" ? " estimating" : left})`);
  }
}

/** 75 -> "1m15s"; 9 -> "9s". */
export function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}
