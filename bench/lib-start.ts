/**
 * What bench/mtls.ts and bench/mtls-http.ts do before measuring: the shared options, the checks
 * that the run can happen (root, cgroup v2, the peers' tools, the built binary), and the removal of
 * what earlier runs of either left (runs by their recorded pids, instances whose process is gone).
 */
import { parseArgs } from "node:util";
import { existsSync, readdirSync } from "node:fs";
import { probeHost } from "../src/runtime/host.ts";
import { alive, removeLeftoverRuns } from "./lib-procs.ts";
import { BINARY, uninstallInstance, uninstallRun } from "./lib-tidegate.ts";
import type { ChartOptions } from "./lib-chart.ts";

export interface BenchStart {
  readonly reps: number;
  readonly seconds: number;
  readonly conns: number;
  readonly maxInterference: number;
  readonly retries: number;
  readonly json: string;
  readonly keep: boolean;
  readonly withTidegate: boolean;
  /** The cgroup2 mount, or null (then only peers can be measured). */
  readonly mount: string | null;
  /**
   * --gc-log, accepted when the bench reports collections: the Bun hops (tidegate's agents, the
   * bare tunnel) log their collections and each run reports their pauses (bench/lib-gclog.ts).
   * Such a run is not a documented one (`full`).
   */
  readonly gcLog: boolean;
  /** --chart-out FILE, --no-chart (bench/lib-chart.ts), accepted when the bench draws a chart. */
  readonly chart: ChartOptions;
  /**
   * The documented run: at least 3 repetitions of at least 10 s, 16 connections, tidegate
   * measured, its audit folders where they always are. Only such a run writes docs/bench/.
   */
  readonly full: boolean;
}

/** Parses argv, checks the machine (throws with what to install), removes leftovers. */
export async function startBench(o: { json: string; tools: readonly (readonly [bin: string, pkg: string])[]; files?: readonly (readonly [path: string, why: string])[]; chart?: boolean; gcLog?: boolean }): Promise<BenchStart> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      reps: { type: "string", default: "3" },
      duration: { type: "string", default: "10" },
      conns: { type: "string", default: "16" },
      "max-interference": { type: "string", default: "15" },
      retries: { type: "string", default: "1" },
      json: { type: "string", default: o.json },
      "no-tidegate": { type: "boolean", default: false },
      keep: { type: "boolean", default: false },
      ...(o.gcLog === true ? { "gc-log": { type: "boolean" as const, default: false } } : {}),
      ...(o.chart === true ? { "chart-out": { type: "string" as const }, "no-chart": { type: "boolean" as const, default: false } } : {}),
    },
  });
  const [reps, seconds, conns, maxInterference, retries] = [values.reps, values.duration, values.conns, values["max-interference"], values.retries].map(Number) as [number, number, number, number, number];
  if (![reps, seconds, conns].every((x) => Number.isInteger(x) && x >= 1) || !(maxInterference >= 0) || !(Number.isInteger(retries) && retries >= 0)) {
    throw new Error("bench: --reps, --duration and --conns must be positive integers, --max-interference >= 0, --retries >= 0");
  }
  const withTidegate = !values["no-tidegate"];
  const mount = probeHost().cgroup2;
  if (process.getuid?.() !== 0) throw new Error("bench: run as root (the tidegate path captures a workload; peers are started as root like the reference's)");
  if (withTidegate && mount === null) throw new Error("bench: the tidegate path needs cgroup v2");
  for (const [bin, pkg] of o.tools) {
    if (Bun.which(bin, { PATH: `${process.env.PATH ?? ""}:/usr/sbin:/usr/bin` }) === null) throw new Error(`bench: ${bin} is missing (${pkg}): run 'sh bench/install-peers.sh'`);
  }
  for (const [path, why] of o.files ?? []) if (!existsSync(path)) throw new Error(`bench: ${why}`);
  if (withTidegate && !existsSync(BINARY)) throw new Error(`bench: ${BINARY} is missing: run 'bun run build'`);

  for (const d of await removeLeftoverRuns((pid) => (mount !== null ? uninstallRun(pid, mount) : Promise.resolve()))) console.error(`bench: removed leftover run ${d}`);
  if (withTidegate && mount !== null) await removeOrphanInstances(mount);
  const gcLog = values["gc-log"] === true;
  const full = reps >= 3 && seconds >= 10 && conns === 16 && withTidegate && !gcLog && process.env.TIDEGATE_BENCH_AUDIT_BASE === undefined;
  const out = values["chart-out"];
  const chart = { out: typeof out === "string" ? out : null, off: values["no-chart"] === true };
  return { reps, seconds, conns, maxInterference, retries, json: values.json, keep: values.keep, withTidegate, mount, gcLog, chart, full };
}

/** Instances of earlier runs (either benchmark's: same names) whose process is gone. */
async function removeOrphanInstances(mount: string): Promise<void> {
  const names = new Set([...readdirSync(mount), ...(existsSync("/sys/fs/bpf") ? readdirSync("/sys/fs/bpf") : [])]);
  for (const n of names) {
    const m = /^tidegate-(tidegate-test-mtls-[ab]-(\d+))$/.exec(n);
    if (m === null || alive(Number(m[2]))) continue;
    await uninstallInstance(m[1]!);
    console.error(`bench: removed leftover instance ${m[1]}`);
  }
}
