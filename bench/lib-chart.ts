/**
 * Where a benchmark's chart goes. A full run (the options docs/benchmarks.md documents, nothing
 * that makes its figures incomparable) writes docs/bench/<name>.svg, which the docs embed; any
 * other run writes a chart only where --chart-out says, so a smoke run never replaces the docs'
 * figures; --no-chart writes none. The path written is printed on stdout.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

export const CHART_DIR = join(import.meta.dir, "..", "docs", "bench");

export interface ChartOptions {
  /** --chart-out FILE, or null. */
  readonly out: string | null;
  /** --no-chart. */
  readonly off: boolean;
}

/** Writes `svg` as the options and the run's kind say; returns the path written, or null. */
export function writeChart(name: string, svg: () => string, o: ChartOptions, full: boolean): string | null {
  if (o.off) {
    console.log("\nchart: not written (--no-chart)");
    return null;
  }
  const path = o.out ?? (full ? join(CHART_DIR, `${name}.svg`) : null);
  if (path === null) {
    console.log(`\nchart: not written: not a full run, so docs/bench/${name}.svg keeps the last full run's (--chart-out FILE writes this run's elsewhere)`);
    return null;
  }
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, svg());
  console.log(`\nchart: ${path}`);
  return path;
}
