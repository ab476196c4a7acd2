/**
 * What bench/mtls.ts measures and how it reads it: wrk's report (as the peer baselines' summarize.py
 * reads it: requests/s, transfer/s, p50/p99 of --latency, requests, errors), CPU time of processes
 * (utime + stime of /proc/PID/stat, all threads), memory (VmRSS, VmHWM of /proc/PID/status).
 */
import { readFileSync } from "node:fs";

export type TestName = "ka1k" | "close1k" | "dl1m";
export const TESTS: readonly TestName[] = ["ka1k", "close1k", "dl1m"];

/** wrk's arguments for a test against `base` (http://HOST:PORT), as the peers' run_load.sh has them. */
export function wrkArgs(test: TestName, base: string, seconds: number, conns: number): string[] {
  switch (test) {
    case "ka1k":
      return ["-t1", `-c${conns}`, `-d${seconds}s`, "--latency", `${base}/1k`];
    case "close1k":
      return ["-t1", `-c${conns}`, `-d${seconds}s`, "--latency", "-H", "Connection: close", `${base}/1k`];
    case "dl1m":
      return ["-t1", "-c1", `-d${seconds}s`, "--latency", `${base}/1m`];
  }
}

export interface WrkResult {
  readonly rps: number;
  readonly mibps: number;
  readonly p50ms: number;
  readonly p99ms: number;
  readonly requests: number;
  /** Socket errors and non-2xx counts when wrk reports any ("" otherwise). */
  readonly errors: string;
}

const LAT: Record<string, number> = { us: 1e-3, ms: 1, s: 1000, m: 60_000 };
const XFER: Record<string, number> = { B: 1 / 2 ** 20, KB: 1 / 1024, MB: 1, GB: 1024, TB: 1024 ** 2 };

export function parseWrk(text: string): WrkResult {
  const num = (re: RegExp) => {
    const m = re.exec(text);
    return m === null ? Number.NaN : Number(m[1]);
  };
  const unit = (re: RegExp, table: Record<string, number>) => {
    const m = re.exec(text);
    return m === null ? Number.NaN : Number(m[1]) * (table[m[2]!] ?? Number.NaN);
  };
  const errors = [...text.matchAll(/(Socket errors:.*|Non-2xx or 3xx responses:.*)/g)].map((m) => m[1]!.trim()).join("; ");
  const r = {
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    mibps: unit(/Transfer\/sec:\s+([\d.]+)(\w+)/, XFER),
    p50ms: unit(/^\s+50%\s+([\d.]+)(us|ms|s|m)\s*$/m, LAT),
    p99ms: unit(/^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$/m, LAT),
    requests: num(/(\d+) requests in/),
    errors,
  };
  if (!Number.isFinite(r.rps) || !Number.isFinite(r.requests)) throw new Error(`bench: wrk's output has no result:\n${text.slice(-2000)}`);
  return r;
}

/** utime + stime of each pid (clock ticks, all threads); a pid that is gone counts 0. */
export function ticks(pids: readonly number[]): number {
  let t = 0;
  for (const pid of pids) {
    try {
      const s = readFileSync(`/proc/${pid}/stat`, "utf8");
      const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
      t += Number(f[11]) + Number(f[12]);
    } catch {
      // exited
    }
  }
  return t;
}

export const CLK_TCK = Number(Bun.spawnSync(["getconf", "CLK_TCK"]).stdout.toString().trim()) || 100;

export interface Memory {
  readonly rssKiB: number;
  readonly hwmKiB: number;
}

export function memory(pid: number): Memory {
  const s = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(s)?.[1] ?? Number.NaN);
  return { rssKiB: kib("VmRSS"), hwmKiB: kib("VmHWM") };
}

export function median(xs: readonly number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** One wrk run of one path: wrk's figures and the CPU the tunnel's hops used meanwhile. */
export interface Sample extends WrkResult {
  readonly path: string;
  readonly test: TestName;
  readonly rep: number;
  readonly wallS: number;
  /** CPU seconds over the run: each hop's processes, and the backend. */
  readonly cpuClientS: number;
  readonly cpuServerS: number;
  readonly cpuBackendS: number;
  /** (client + server CPU) / requests, microseconds. */
  readonly cpuUsPerReq: number;
  /**
   * wrk's own CPU seconds; under `tidegate run` with that process's and its launcher's (their
   * start, about 0.4 s of CPU on this kind of machine, weighs on short runs).
   */
  readonly cpuWrkS: number;
  /** The whole host over the run, in CPU seconds: busy (user, nice, system, irq, softirq), of it softirq, and steal. */
  readonly host: { busyS: number; softirqS: number; stealS: number; cpus: number };
  readonly timeWaitAfter: number;
}

/** /proc/stat's cpu line, in clock ticks. */
function hostTicks(): { busy: number; softirq: number; steal: number } {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
  return { busy: user + nice + system + irq + softirq, softirq, steal };
}
const CPUS = (readFileSync("/proc/stat", "utf8").match(/^cpu\d+ /gm) ?? []).length;

/** TIME_WAIT sockets on this host now (from /proc/net/tcp and tcp6: state 06). */
export function timeWait(): number {
  let n = 0;
  for (const f of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    try {
      for (const line of readFileSync(f, "utf8").split("\n").slice(1)) if (line.trim().split(/\s+/)[3] === "06") n++;
    } catch {
      // no IPv6
    }
  }
  return n;
}

/**
 * Runs `argv` (wrk, or wrk under `tidegate run`) to completion and reads its report; CPU of the
 * hops' pids (as they are when it starts) and of the backend's, before and after.
 */
export async function sample(
  meta: { path: string; test: TestName; rep: number },
  argv: string[],
  env: Record<string, string>,
  pids: { client: number[]; server: number[]; backend: number[] },
  onSpawn: (p: { kill(sig?: number | NodeJS.Signals): void } | null) => void,
): Promise<Sample> {
  const t0 = [ticks(pids.client), ticks(pids.server), ticks(pids.backend)];
  const h0 = hostTicks();
  const start = performance.now();
  const p = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe", cwd: "/", env });
  onSpawn(p);
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  onSpawn(null);
  const wallS = (performance.now() - start) / 1000;
  const t1 = [ticks(pids.client), ticks(pids.server), ticks(pids.backend)];
  const h1 = hostTicks();
  if (code !== 0) throw new Error(`bench: ${argv.join(" ")} exited ${code}:\n${out.slice(-1500)}\n${err.slice(-1500)}`);
  const w = parseWrk(out);
  const d = t1.map((x, i) => (x - t0[i]!) / CLK_TCK) as [number, number, number];
  return { ...meta, ...w, wallS, cpuClientS: d[0], cpuServerS: d[1], cpuBackendS: d[2], cpuUsPerReq: w.requests > 0 ? ((d[0] + d[1]) / w.requests) * 1e6 : Number.NaN,
    cpuWrkS: Number(p.resourceUsage()?.cpuTime.total ?? Number.NaN) / 1e6,
    host: { busyS: (h1.busy - h0.busy) / CLK_TCK, softirqS: (h1.softirq - h0.softirq) / CLK_TCK, stealS: (h1.steal - h0.steal) / CLK_TCK, cpus: CPUS },
    timeWaitAfter: timeWait(),
  };
}

/** Steal plus CPU used by anything but the path's hops, the backend and wrk, in % of one core over the run. */
export function interference(s: Sample): number {
  const other = s.host.busyS - s.cpuClientS - s.cpuServerS - s.cpuBackendS - s.cpuWrkS;
  return (100 * (s.host.stealS + Math.max(0, other))) / s.wallS;
}
