/**
 * The collector's pauses of a Bun process, read from JavaScriptCore's own GC log (`--gc-log` of
 * bench/mtls.ts and bench/mtls-http.ts; docs/benchmarks.md, what sets the p99). A process started
 * with GC_LOG_ENV writes one record per collection to its stderr, which Procs keeps in its log file:
 *
 *   [GC<0x...>: START M 14907kb => EdenCollection, ... => 11925kb, p=0.706403ms (max 5.67), cycle 0.68ms END]
 *
 * A collection that runs partly alongside the program logs several such lines, each with the `p=`
 * of one stop, and other output may come between them; the record ends at `END]`. Its pause is the
 * sum of its stops; `M 14907kb` is the heap before it, `=> 11925kb` after. Records are read from a
 * slice of the log, so each benchmark run counts only its own collections.
 */
import { closeSync, openSync, readSync, statSync } from "node:fs";

/** What makes JavaScriptCore log each collection (a Bun process reads its JSC options from BUN_JSC_*). */
export const GC_LOG_ENV: Readonly<Record<string, string>> = Object.freeze({ BUN_JSC_logGC: "1" });

export interface PauseStats {
  readonly count: number;
  /** Milliseconds the JavaScript thread stood still per collection; NaN without collections. */
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly maxMs: number;
  readonly totalMs: number;
}

export interface GcStats {
  readonly eden: PauseStats;
  readonly full: PauseStats;
  /** The heap before and after each full collection, KiB, in order. */
  readonly heapBeforeFullKiB: readonly number[];
  readonly heapAfterFullKiB: readonly number[];
}

const START = /START M (\d+)kb => (Eden|Full)Collection/;
const STOP = /p=([\d.]+)ms/g;
const END = /=> (\d+)kb, p=[\d.]+ms \(max [\d.]+\), cycle [\d.]+ms END\]/;

function pauses(ms: number[]): PauseStats {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => (s.length === 0 ? Number.NaN : s[Math.min(s.length - 1, Math.floor(q * s.length))]!);
  return { count: s.length, p50Ms: at(0.5), p90Ms: at(0.9), maxMs: s.length === 0 ? Number.NaN : s[s.length - 1]!, totalMs: s.reduce((a, b) => a + b, 0) };
}

/**
 * The collections logged in `text`: each record from its START line to its END, the lines between
 * that are not the collector's skipped. A record cut off at either end of the text is not counted.
 */
export function parseGcLog(text: string): GcStats {
  const eden: number[] = [];
  const full: number[] = [];
  const heapBeforeFullKiB: number[] = [];
  const heapAfterFullKiB: number[] = [];
  let open: { kind: string; before: number; ms: number } | null = null;
  for (const line of text.split("\n")) {
    if (!line.startsWith("[GC<")) continue;
    const start = START.exec(line);
    if (start !== null) open = { kind: start[2]!, before: Number(start[1]), ms: 0 };
    if (open === null) continue; // the tail of a record that began before the slice
    for (const m of line.matchAll(STOP)) open.ms += Number(m[1]);
    const end = END.exec(line);
    if (end === null) continue;
    if (open.kind === "Eden") eden.push(open.ms);
    else {
      full.push(open.ms);
      heapBeforeFullKiB.push(open.before);
      heapAfterFullKiB.push(Number(end[1]));
    }
    open = null;
  }
  return { eden: pauses(eden), full: pauses(full), heapBeforeFullKiB, heapAfterFullKiB };
}

/** The size of a log file now: where the next run's records begin. */
export function logMark(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** The collections a log file gained since `mark`. */
export function gcSince(path: string, mark: number): GcStats {
  const size = logMark(path);
  if (size <= mark) return parseGcLog("");
  const fd = openSync(path, "r");
  try {
    const buf = Buffer.alloc(size - mark);
    const n = readSync(fd, buf, 0, buf.length, mark);
    return parseGcLog(buf.subarray(0, n).toString("utf8"));
  } finally {
    closeSync(fd);
  }
}

/** One line for a run's report: eden pauses (count, median, p90, max, share of `seconds`) and full collections. */
export function describeGc(s: GcStats, seconds: number): string {
  const f = (x: number) => (Number.isNaN(x) ? "-" : x.toFixed(2));
  const share = seconds > 0 ? ` (${((100 * s.eden.totalMs) / (seconds * 1000)).toFixed(2)} % of the time)` : "";
  return `eden ${s.eden.count}, pause p50 ${f(s.eden.p50Ms)} ms, p90 ${f(s.eden.p90Ms)}, max ${f(s.eden.maxMs)}, total ${s.eden.totalMs.toFixed(1)} ms${share}; full ${s.full.count}${s.full.count > 0 ? `, pause max ${f(s.full.maxMs)} ms` : ""}`;
}

/** The log files of one path's hops that log their collections, by hop ("client", "server"). */
export type HopLogs = readonly (readonly [hop: string, log: string])[];

/**
 * Runs `run` and reads what each hop's log gained meanwhile: its collections, by hop. With no
 * logs (no --gc-log, or a path that is not a Bun process) it only runs `run`, and gives {}.
 */
export async function withGcLog<T>(logs: HopLogs, run: () => Promise<T>): Promise<{ result: T; gc: Record<string, GcStats> }> {
  const marks = logs.map(([, log]) => logMark(log));
  const result = await run();
  return { result, gc: Object.fromEntries(logs.map(([hop, log], i) => [hop, gcSince(log, marks[i]!)])) };
}
