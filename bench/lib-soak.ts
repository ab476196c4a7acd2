/**
 * The bounded soak of issue 13 (bench/soak.ts on demand, test/e2e/soak.test.ts in CI): the egress
 * proxy's benchmark path (bench/lib-tidegate.ts: a workload on agent A -> A's egress proxy -> mTLS
 * -> B's inbound listener -> a backend) under connection churn, a new connection every ten
 * requests (bench/soak-client.ts, run as the workload through `tidegate run`).
 *
 * 1. Probe: `probeSeconds` as fast as the answers come: the path's maximum rate with churn.
 * 2. Soak: `seconds` at half that rate, after `warmupSeconds` at that rate unsampled (CI's
 *    one-minute run: a fifth of it is too short for the runtime to reach its steady heap). Each second, the RSS and the open file descriptors of both
 *    agents are sampled.
 * 3. Rest: `restSeconds` (5) after the load stops, the descriptors are counted again.
 *
 * `judge` lists what failed, against the bar: no errors; the largest RSS in the last
 * tenth of the soak at most 10 % above the RSS at the end of its first fifth (for each agent); the
 * descriptors back to their count before any load (or fewer); every connection the client opened has its
 * `conn_open` and `conn_close` in A's audit log (egress) and in B's (inbound), one of each per
 * connection, their ids matching. The backend is a Bun server in this process serving /1k.
 */
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { AuditLine } from "../test/helpers/audit-files.ts";
import { freePort } from "./lib-peers.ts";
import { Procs, removeLeftoverRuns } from "./lib-procs.ts";
import { startTidegatePath, stopTidegatePath, uninstallRun, WORKLOAD_ENV, type TidegatePath } from "./lib-tidegate.ts";
import { GC_LOG_ENV, withGcLog, type GcStats, type HopLogs } from "./lib-gclog.ts";
import { probeHost } from "../src/runtime/host.ts";

const CLIENT = join(import.meta.dir, "soak-client.ts");
const KIB = "x".repeat(1024);

export interface SoakOptions {
  readonly seconds: number;
  readonly probeSeconds?: number;
  readonly restSeconds?: number;
  /** Seconds at the soak's rate before sampling starts (the runtime's warm-up); default 0. */
  readonly warmupSeconds?: number;
  /** Connections in flight at once (workers of the client). */
  readonly conns?: number;
  /** Requests per connection before a new one. */
  readonly perConn?: number;
  /** Called with a line of progress now and then. */
  readonly progress?: (line: string) => void;
  /** The agents log their collections (bench/lib-gclog.ts); the result has those of the soak phase. */
  readonly gcLog?: boolean;
}

export interface ClientTotals {
  readonly requests: number;
  readonly errors: number;
  readonly opened: number;
  readonly closed: number;
  readonly seconds: number;
  readonly first_error: string | null;
}

export interface Sample {
  /** Seconds since the soak began. */
  readonly t: number;
  readonly rss: { a: number; b: number };
  readonly fds: { a: number; b: number };
}

export interface AuditCount {
  readonly opens: number;
  readonly closes: number;
  /** Ids with an open but no close, or a close but no open, or more than one of either. */
  readonly unpaired: number;
}

export interface SoakResult {
  readonly probe: ClientTotals;
  readonly maxRate: number;
  readonly targetRate: number;
  readonly warmup: ClientTotals | null;
  readonly soak: ClientTotals;
  readonly samples: readonly Sample[];
  readonly fdsBefore: { a: number; b: number };
  readonly fdsAfter: { a: number; b: number };
  readonly audit: { a: AuditCount; b: AuditCount; matched: number };
  readonly seconds: number;
  /** With `gcLog`: each agent's collections during the soak phase. */
  readonly gc?: { readonly a: GcStats; readonly b: GcStats };
}

function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m === null ? 0 : Number(m[1]);
}

const fdCount = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

/** The client running now, so SIGINT or SIGTERM can end it and let runSoak clean up. */
let client: { kill(sig?: NodeJS.Signals): void } | null = null;
let interrupted: NodeJS.Signals | null = null;

async function runClient(tide: TidegatePath, o: { conns: number; rate: number; seconds: number; perConn: number }, onLine: (l: Record<string, unknown>) => void): Promise<ClientTotals> {
  const input = { host: tide.host, port: tide.port, conns: o.conns, rate: o.rate, seconds: o.seconds, per_conn: o.perConn };
  const p = Bun.spawn([...tide.runPrefix, process.execPath, CLIENT, JSON.stringify(input)], {
    env: { ...WORKLOAD_ENV, BUN_RUNTIME_TRANSPILER_CACHE_PATH: "0" },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    cwd: join(import.meta.dir, ".."),
  });
  client = p;
  if (interrupted !== null) p.kill("SIGTERM");
  const stderr = new Response(p.stderr).text();
  let last: ClientTotals | null = null;
  let pending = "";
  const decoder = new TextDecoder();
  for await (const chunk of p.stdout as unknown as AsyncIterable<Uint8Array>) {
    pending += decoder.decode(chunk, { stream: true });
    for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (!line.startsWith("{")) continue;
      const j = JSON.parse(line) as Record<string, unknown>;
      if (j.done === true) last = j as unknown as ClientTotals;
      else onLine(j);
    }
  }
  const code = await p.exited;
  client = null;
  if (interrupted !== null) throw new Error(`soak: interrupted by ${interrupted}`);
  if (code !== 0 || last === null) throw new Error(`soak: the client exited ${code} without its totals: ${(await stderr).slice(-2000)}`);
  return last;
}

/** Opens, closes and unpaired ids of `side` connections of rule `bench` in `lines`; and the ids. */
function countAudit(lines: readonly AuditLine[], side: "egress" | "inbound"): { count: AuditCount; ids: Set<string> } {
  const opens = new Map<string, number>();
  const closes = new Map<string, number>();
  for (const l of lines) {
    if (l.side !== side || l.rule !== "bench") continue;
    const id = String(l.conn_id);
    if (l.type === "conn_open") opens.set(id, (opens.get(id) ?? 0) + 1);
    if (l.type === "conn_close") closes.set(id, (closes.get(id) ?? 0) + 1);
  }
  const ids = new Set([...opens.keys(), ...closes.keys()]);
  let unpaired = 0;
  for (const id of ids) if (opens.get(id) !== 1 || closes.get(id) !== 1) unpaired += 1;
  const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
  return { count: { opens: sum(opens), closes: sum(closes), unpaired }, ids };
}

export async function runSoak(o: SoakOptions): Promise<SoakResult> {
  const say = o.progress ?? (() => {});
  const conns = o.conns ?? 8;
  const perConn = o.perConn ?? 10;
  const mount = probeHost().cgroup2;
  if (mount === null) throw new Error("soak: needs cgroup v2");
  for (const d of await removeLeftoverRuns((pid) => uninstallRun(pid, mount))) say(`soak: removed leftover run ${d}`);
  const backendPort = freePort("127.0.0.1");
  const backend = Bun.serve({ hostname: "127.0.0.1", port: backendPort, fetch: () => new Response(KIB) });
  const procs = new Procs();
  let tide: TidegatePath | null = null;
  const began = performance.now();
  // SIGINT or SIGTERM: end the client; the finally below stops the agents, the server and the backend
  const onSignal = (sig: NodeJS.Signals) => {
    interrupted = sig;
    client?.kill("SIGTERM");
  };
  const handlers = (["SIGINT", "SIGTERM"] as const).map((sig) => [sig, () => onSignal(sig)] as const);
  for (const [sig, h] of handlers) process.on(sig, h);
  try {
    say("soak: starting the server and agents A and B");
    tide = await startTidegatePath(procs, backendPort, o.gcLog === true ? GC_LOG_ENV : {});
    const pids = tide.agentPids;
    const fdsBefore = { a: fdCount(pids.a), b: fdCount(pids.b) };

    say(`soak: probing the maximum rate with churn for ${o.probeSeconds ?? 5} s`);
    const probe = await runClient(tide, { conns, rate: 0, seconds: o.probeSeconds ?? 5, perConn }, () => {});
    const maxRate = probe.requests / probe.seconds;
    const targetRate = Math.max(1, Math.floor(maxRate / 2));
    say(`soak: maximum ${maxRate.toFixed(0)} req/s; soaking ${o.seconds} s at ${targetRate} req/s, a new connection every ${perConn} requests`);

    const warmupSeconds = o.warmupSeconds ?? 0;
    let warmup: ClientTotals | null = null;
    if (warmupSeconds > 0) {
      say(`soak: warming up for ${warmupSeconds} s at ${targetRate} req/s (not sampled)`);
      warmup = await runClient(tide, { conns, rate: targetRate, seconds: warmupSeconds, perConn }, () => {});
    }
    const samples: Sample[] = [];
    const soakStart = performance.now();
    const sampler = setInterval(() => {
      try {
        samples.push({ t: (performance.now() - soakStart) / 1000, rss: { a: rssKiB(pids.a), b: rssKiB(pids.b) }, fds: { a: fdCount(pids.a), b: fdCount(pids.b) } });
      } catch {
        // an agent gone: the judge sees the missing samples and the client's errors
      }
    }, 1000);
    let soak: ClientTotals;
    let gc: Record<string, GcStats> = {};
    const t = tide;
    const logs: HopLogs = o.gcLog === true ? [["a", procs.children.get("tg-agent-a")!.log], ["b", procs.children.get("tg-agent-b")!.log]] : [];
    try {
      ({ result: soak, gc } = await withGcLog(logs, () =>
        runClient(t, { conns, rate: targetRate, seconds: o.seconds, perConn }, (l) => {
          if (Number(l.t) % 10 === 0) say(`soak: ${String(l.t)} s: ${String(l.requests)} requests, ${String(l.errors)} errors, ${String(l.opened)} connections; agent A ${samples.at(-1)?.rss.a ?? "?"} KiB`);
        }),
      ));
    } finally {
      clearInterval(sampler);
    }

    const rest = o.restSeconds ?? 5;
    say(`soak: load stopped; counting descriptors after ${rest} s`);
    await Bun.sleep(rest * 1000);
    const fdsAfter = { a: fdCount(pids.a), b: fdCount(pids.b) };
    const a = countAudit(tide.audit("a"), "egress");
    const b = countAudit(tide.audit("b"), "inbound");
    const matched = [...a.ids].filter((id) => b.ids.has(id)).length;
    return { probe, maxRate, targetRate, warmup, soak, samples, fdsBefore, fdsAfter, audit: { a: a.count, b: b.count, matched }, seconds: (performance.now() - began) / 1000, ...(gc.a !== undefined && gc.b !== undefined ? { gc: { a: gc.a, b: gc.b } } : {}) };
  } finally {
    for (const [sig, h] of handlers) process.off(sig, h);
    await stopTidegatePath(procs, tide);
    await procs.stopAll();
    backend.stop(true);
    rmSync(procs.dir, { recursive: true, force: true });
  }
}

/**
 * RSS growth of one agent: the largest sample in the last tenth against the RSS at the end of the
 * first fifth. A collected runtime's RSS saws up and down by several MiB between collections, so
 * "at the end of the first fifth" is the median of the samples of its last 3 seconds rather than
 * whichever single second happened to fall just after a collection.
 */
export function rssGrowth(samples: readonly Sample[], seconds: number, agent: "a" | "b"): { atFifth: number; lastTenthMax: number; ratio: number } {
  const fifth = seconds / 5;
  const window = samples.filter((s) => s.t <= fifth && s.t > fifth - 3).map((s) => s.rss[agent]).sort((x, y) => x - y);
  const last = samples.filter((s) => s.t >= seconds * 0.9);
  const atFifth = window.length > 0 ? window[Math.floor(window.length / 2)]! : (samples[0]?.rss[agent] ?? 0);
  const lastTenthMax = Math.max(0, ...last.map((s) => s.rss[agent]));
  return { atFifth, lastTenthMax, ratio: atFifth > 0 ? lastTenthMax / atFifth : Infinity };
}

/**
 * Growth without the collector's sawtooth: the median RSS of the last fifth against the median of
 * the first fifth. A leak moves the medians; a collection cycle does not, as long as each window
 * spans more than one cycle (12 s of a 60 s run, against cycles of 6-8 s: docs/benchmarks.md,
 * "Soak"). Windows shorter than a cycle (3 s and 6 s, before 2026-11-28) gave whatever phase of
 * the cycle they caught: a CI run failed at 1.109 with flat RSS.
 */
export function rssMedianGrowth(samples: readonly Sample[], seconds: number, agent: "a" | "b"): number {
  const median = (xs: number[]) => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)] ?? 0;
  const fifth = seconds / 5;
  const before = median(samples.filter((s) => s.t <= fifth).map((s) => s.rss[agent]));
  const last = median(samples.filter((s) => s.t > seconds - fifth).map((s) => s.rss[agent]));
  return before > 0 ? last / before : Infinity;
}

/** What failed against the bar; empty when the soak passed. */
export function judge(r: SoakResult, seconds: number): string[] {
  const out: string[] = [];
  if (r.probe.errors > 0) out.push(`the probe had ${r.probe.errors} errors (first: ${r.probe.first_error})`);
  if ((r.warmup?.errors ?? 0) > 0) out.push(`the warm-up had ${r.warmup!.errors} errors (first: ${r.warmup!.first_error})`);
  if (r.soak.errors > 0) out.push(`the soak had ${r.soak.errors} errors (first: ${r.soak.first_error})`);
  const achieved = r.soak.requests / r.soak.seconds;
  if (achieved < r.targetRate * 0.9) out.push(`the soak ran at ${achieved.toFixed(0)} req/s, under 90 % of its target ${r.targetRate}`);
  if (r.samples.length < seconds * 0.8) out.push(`only ${r.samples.length} samples in ${seconds} s`);
  for (const agent of ["a", "b"] as const) {
    const g = rssGrowth(r.samples, seconds, agent);
    if (g.ratio > 1.1) out.push(`agent ${agent}: RSS ${g.lastTenthMax} KiB in the last tenth, ${((g.ratio - 1) * 100).toFixed(1)} % above ${g.atFifth} KiB at the end of the first fifth (at most 10 %)`);
    // fewer is fine (a descriptor of the start, such as a first sync's, closed meanwhile); more is a leak
    if (r.fdsAfter[agent] > r.fdsBefore[agent]) out.push(`agent ${agent}: ${r.fdsAfter[agent]} descriptors open after the rest, ${r.fdsBefore[agent]} before the load`);
  }
  const connections = r.probe.opened + (r.warmup?.opened ?? 0) + r.soak.opened;
  for (const [side, c] of [["A (egress)", r.audit.a], ["B (inbound)", r.audit.b]] as const) {
    if (c.opens !== connections || c.closes !== connections || c.unpaired !== 0) out.push(`${side}'s audit: ${c.opens} conn_open, ${c.closes} conn_close, ${c.unpaired} unpaired, for ${connections} connections`);
  }
  if (r.audit.matched !== connections) out.push(`${r.audit.matched} of ${connections} connection ids appear at both ends`);
  return out;
}
