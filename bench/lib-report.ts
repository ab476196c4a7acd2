/**
 * bench/mtls.ts's Markdown report: per path, the medians over repetitions; for tidegate (and the
 * bare Bun tunnel, to set beside the platform notes' 1.03x, 1.9x, 1.7x) the ratios against
 * nginx-stream, each the median of the ratios taken within a repetition, judged against the
 * issue's targets; and memory per tunnel process. bench/mtls-http.ts's report likewise against
 * nginx-http. The charts of both (bench/lib-svg.ts): each path's medians against direct's.
 */
import { median, type Memory, type Sample, type TestName } from "./lib-measure.ts";
import type { Chart } from "./lib-svg.ts";

export const BASELINE = "nginx-stream";
/** wrk straight to the backend, no tunnel: no hops, so no CPU or memory of hops; the charts' 1x. */
export const DIRECT = "direct";
export const TARGETS = { keepAlive: 1.0, p99: 1.1, newConns: 1.5, mib: 1.5, rss: 1.2 } as const;

export interface ProcMemory extends Memory {
  /** VmRSS once started and checked, before any load. */
  readonly idleRssKiB: number;
  readonly path: string;
  readonly hop: "client" | "server";
  readonly pid: number;
  /** nginx: master or worker; else the process's own name. */
  readonly role: string;
}

export interface Judged {
  readonly figure: string;
  readonly value: number;
  readonly target: string;
  readonly met: boolean;
}

const pick = (samples: readonly Sample[], path: string, test: TestName) => samples.filter((s) => s.path === path && s.test === test);
const med = (samples: readonly Sample[], path: string, test: TestName, f: (s: Sample) => number) => median(pick(samples, path, test).map(f));

/** Median over repetitions of path/baseline, each taken within one repetition. */
export function ratio(samples: readonly Sample[], path: string, test: TestName, f: (s: Sample) => number): number {
  const rs: number[] = [];
  for (const s of pick(samples, path, test)) {
    const b = samples.find((x) => x.path === BASELINE && x.test === test && x.rep === s.rep);
    if (b !== undefined && f(b) > 0) rs.push(f(s) / f(b));
  }
  return median(rs);
}

const hopKiB = (mem: readonly ProcMemory[], path: string, hop: "client" | "server", k: "rssKiB" | "hwmKiB" | "idleRssKiB") => mem.filter((m) => m.path === path && m.hop === hop).reduce((a, m) => a + m[k], 0);

/** The issue's targets for `path` (tidegate), against nginx-stream and, for memory, the bare Bun tunnel. */
export function judge(samples: readonly Sample[], mem: readonly ProcMemory[], path: string): Judged[] {
  const ka = ratio(samples, path, "ka1k", (s) => s.rps);
  const p99 = ratio(samples, path, "ka1k", (s) => s.p99ms);
  const nc = ratio(samples, path, "close1k", (s) => s.rps);
  const mb = ratio(samples, path, "dl1m", (s) => s.mibps);
  const out: Judged[] = [
    { figure: "1 KiB keep-alive req/s", value: ka, target: `>= ${TARGETS.keepAlive}x`, met: ka >= TARGETS.keepAlive },
    { figure: "1 KiB keep-alive p99", value: p99, target: `<= ${TARGETS.p99}x`, met: p99 <= TARGETS.p99 },
    { figure: "new connections/s", value: nc, target: `>= ${TARGETS.newConns}x`, met: nc >= TARGETS.newConns },
    { figure: "1 MiB throughput", value: mb, target: `>= ${TARGETS.mib}x`, met: mb >= TARGETS.mib },
  ];
  for (const hop of ["client", "server"] as const) {
    const v = hopKiB(mem, path, hop, "rssKiB") / hopKiB(mem, "bare-bun", hop, "rssKiB");
    out.push({ figure: `RSS, ${hop} hop process vs the bare tunnel's`, value: v, target: `<= ${TARGETS.rss}x`, met: v <= TARGETS.rss });
  }
  return out;
}

const f0 = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "n/a");
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : "n/a");
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : "n/a");
const mib = (kib: number) => (kib > 0 ? (kib / 1024).toFixed(1) : "n/a");
/** A figure of the hops' CPU: none for direct, which has no hops. */
const hops = (p: string, text: string) => (p === DIRECT ? "–" : text);

export function markdown(samples: readonly Sample[], mem: readonly ProcMemory[], paths: readonly string[], meta: { reps: number; seconds: number; conns: number; command: string }): string {
  const lines: string[] = [];
  lines.push(`Command: \`${meta.command}\` (${new Date().toISOString().slice(0, 10)}, Bun ${Bun.version}; ${meta.reps} repetitions of ${meta.seconds} s per test and path, interleaved, order rotated per repetition; medians)`, "");
  lines.push(`| path | 1 KiB req/s (${meta.conns} conns) | p50 ms | p99 ms | new conn/s | 1 MiB MiB/s | CPU µs/req, client + server hop | CPU µs per new conn | CPU ms per MiB |`);
  lines.push("|---|---|---|---|---|---|---|---|---|");
  for (const p of paths) {
    const cpu = (f: (s: Sample) => number) => med(samples, p, "ka1k", f);
    const reqs = (s: Sample) => (s.requests > 0 ? 1e6 / s.requests : Number.NaN);
    lines.push(
      `| ${p} | ${f0(med(samples, p, "ka1k", (s) => s.rps))} | ${f2(med(samples, p, "ka1k", (s) => s.p50ms))} | ${f2(med(samples, p, "ka1k", (s) => s.p99ms))} | ${f0(med(samples, p, "close1k", (s) => s.rps))} | ${f0(med(samples, p, "dl1m", (s) => s.mibps))} | ${hops(p, `${f1(cpu((s) => s.cpuUsPerReq))} (${f1(cpu((s) => s.cpuClientS * reqs(s)))} + ${f1(cpu((s) => s.cpuServerS * reqs(s)))})`)} | ${hops(p, f0(med(samples, p, "close1k", (s) => s.cpuUsPerReq)))} | ${hops(p, f2(med(samples, p, "dl1m", (s) => s.cpuUsPerReq / 1000)))} |`,
    );
  }
  lines.push("", "Memory of the tunnel processes, MiB (a hop's processes added up: nginx's master and worker):", "");
  lines.push("| path | processes, client / server hop | RSS before load | RSS after the runs | peak RSS |", "|---|---|---|---|---|");
  for (const p of paths.filter((x) => mem.some((m) => m.path === x))) {
    const two = (k: "rssKiB" | "hwmKiB" | "idleRssKiB") => `${mib(hopKiB(mem, p, "client", k))} / ${mib(hopKiB(mem, p, "server", k))}`;
    const n = (hop: "client" | "server") => mem.filter((m) => m.path === p && m.hop === hop).length;
    lines.push(`| ${p} | ${n("client")} / ${n("server")} | ${two("idleRssKiB")} | ${two("rssKiB")} | ${two("hwmKiB")} |`);
  }
  lines.push("", `Ratios against ${BASELINE} (median of the per-repetition ratios):`, "");
  const others = paths.filter((p) => p !== BASELINE);
  lines.push(`| figure | ${others.join(" | ")} |`, `|---|${others.map(() => "---").join("|")}|`);
  const row = (name: string, test: TestName, f: (s: Sample) => number, cpu = false) => lines.push(`| ${name} | ${others.map((p) => (cpu ? hops(p, `${f2(ratio(samples, p, test, f))}x`) : `${f2(ratio(samples, p, test, f))}x`)).join(" | ")} |`);
  row("1 KiB keep-alive req/s", "ka1k", (s) => s.rps);
  row("1 KiB keep-alive p99", "ka1k", (s) => s.p99ms);
  row("new connections/s", "close1k", (s) => s.rps);
  row("1 MiB throughput", "dl1m", (s) => s.mibps);
  row("CPU per 1 KiB request", "ka1k", (s) => s.cpuUsPerReq, true);
  row("CPU per new connection", "close1k", (s) => s.cpuUsPerReq, true);
  row("CPU per MiB", "dl1m", (s) => s.cpuUsPerReq, true);
  if (paths.includes("tidegate")) {
    lines.push("", "tidegate against the issue's targets:", "", "| figure | ratio | target | result |", "|---|---|---|---|");
    for (const j of judge(samples, mem, "tidegate")) lines.push(`| ${j.figure} | ${f2(j.value)}x | ${j.target} | ${j.met ? "met" : "MISSED"} |`);
  }
  if (paths.includes("tidegate-x25519")) {
    lines.push("", "tidegate-x25519 (the same agents; A's rule has upstream.key_exchange: classical, so the hop does X25519 alone, as the OpenSSL peers do) against the same targets:", "", "| figure | ratio | target | result |", "|---|---|---|---|");
    for (const j of judge(samples, mem, "tidegate-x25519")) lines.push(`| ${j.figure} | ${f2(j.value)}x | ${j.target} | ${j.met ? "met" : "MISSED"} |`);
  }
  lines.push("", "Per-run values (req/s for 1 KiB, MiB/s for 1 MiB), in repetition order:", "");
  for (const t of ["ka1k", "close1k", "dl1m"] as const) {
    lines.push(`- ${t}: ${paths.map((p) => `${p} [${pick(samples, p, t).sort((a, b) => a.rep - b.rep).map((s) => f0(t === "dl1m" ? s.mibps : s.rps)).join(", ")}]`).join("; ")}`);
  }
  lines.push("", `Where the CPU went (medians; % of one core over the run; the host has ${samples[0]?.host.cpus ?? "?"} cores; softirq is also counted in the time of whichever process it interrupted (tick accounting); "other": busy less the processes named, i.e. anything outside the benchmark):`, "");
  lines.push("| test | path | host busy | of it softirq | steal | client hop | server hop | backend | wrk | other |", "|---|---|---|---|---|---|---|---|---|---|");
  for (const t of ["ka1k", "close1k", "dl1m"] as const) {
    for (const p of paths) {
      const pc = (f: (s: Sample) => number) => `${f0(med(samples, p, t, (s) => (100 * f(s)) / s.wallS))} %`;
      lines.push(`| ${t} | ${p} | ${pc((s) => s.host.busyS)} | ${pc((s) => s.host.softirqS)} | ${pc((s) => s.host.stealS)} | ${pc((s) => s.cpuClientS)} | ${pc((s) => s.cpuServerS)} | ${pc((s) => s.cpuBackendS)} | ${pc((s) => s.cpuWrkS)} | ${pc((s) => s.host.busyS - s.cpuClientS - s.cpuServerS - s.cpuBackendS - s.cpuWrkS)} |`);
    }
  }
  const errs = samples.filter((s) => s.errors !== "");
  if (errs.length > 0) lines.push("", "wrk errors:", ...errs.map((s) => `- ${s.path} ${s.test} rep ${s.rep}: ${s.errors}`));
  return lines.join("\n");
}

/** bench/mtls-http.ts's baseline: the nginx L7 mTLS pair. */
export const HTTP_BASELINE = "nginx-http";

/** Median over repetitions of path/baseline for the ka1k test, each taken within one repetition. */
export function ratioTo(samples: readonly Sample[], baseline: string, path: string, f: (s: Sample) => number): number {
  const rs: number[] = [];
  for (const s of pick(samples, path, "ka1k")) {
    const b = samples.find((x) => x.path === baseline && x.test === "ka1k" && x.rep === s.rep);
    if (b !== undefined && f(b) > 0) rs.push(f(s) / f(b));
  }
  return median(rs);
}

/** The issue's L7 targets for `path` against nginx-http: keep-alive req/s at least 1x, p99 at most 1.1x. */
export function judgeHttp(samples: readonly Sample[], path: string): Judged[] {
  const ka = ratioTo(samples, HTTP_BASELINE, path, (s) => s.rps);
  const p99 = ratioTo(samples, HTTP_BASELINE, path, (s) => s.p99ms);
  return [
    { figure: "1 KiB keep-alive req/s", value: ka, target: `>= ${TARGETS.keepAlive}x`, met: ka >= TARGETS.keepAlive },
    { figure: "1 KiB keep-alive p99", value: p99, target: `<= ${TARGETS.p99}x`, met: p99 <= TARGETS.p99 },
  ];
}

/** bench/mtls-http.ts's Markdown report: keep-alive 1 KiB only, medians per path, ratios against nginx-http. */
export function markdownHttp(samples: readonly Sample[], paths: readonly string[], meta: { reps: number; seconds: number; conns: number; command: string }): string {
  const lines: string[] = [];
  const m = (p: string, f: (s: Sample) => number) => med(samples, p, "ka1k", f);
  const perReq = (s: Sample, cpuS: number) => (s.requests > 0 ? (cpuS / s.requests) * 1e6 : Number.NaN);
  lines.push(`Command: \`${meta.command}\` (${new Date().toISOString().slice(0, 10)}, Bun ${Bun.version}; ${meta.reps} repetitions of ${meta.seconds} s per path, interleaved, order rotated per repetition; medians; 1 KiB GETs on ${meta.conns} keep-alive connections)`, "");
  lines.push("| path | req/s | p50 ms | p99 ms | CPU µs/req, client + server hop | client hop µs/req | server hop µs/req | backend µs/req |", "|---|---|---|---|---|---|---|---|");
  for (const p of paths) {
    lines.push(`| ${p} | ${f0(m(p, (s) => s.rps))} | ${f2(m(p, (s) => s.p50ms))} | ${f2(m(p, (s) => s.p99ms))} | ${hops(p, f1(m(p, (s) => s.cpuUsPerReq)))} | ${hops(p, f1(m(p, (s) => perReq(s, s.cpuClientS))))} | ${hops(p, f1(m(p, (s) => perReq(s, s.cpuServerS))))} | ${f1(m(p, (s) => perReq(s, s.cpuBackendS)))} |`);
  }
  const others = paths.filter((p) => p !== HTTP_BASELINE);
  lines.push("", `Ratios against ${HTTP_BASELINE} (median of the per-repetition ratios):`, "", `| figure | ${others.join(" | ")} |`, `|---|${others.map(() => "---").join("|")}|`);
  const row = (name: string, f: (s: Sample) => number, cpu = false) => lines.push(`| ${name} | ${others.map((p) => (cpu ? hops(p, `${f2(ratioTo(samples, HTTP_BASELINE, p, f))}x`) : `${f2(ratioTo(samples, HTTP_BASELINE, p, f))}x`)).join(" | ")} |`);
  row("keep-alive req/s", (s) => s.rps);
  row("p50", (s) => s.p50ms);
  row("p99", (s) => s.p99ms);
  row("CPU per request (both hops)", (s) => s.cpuUsPerReq, true);
  if (paths.includes("tidegate")) {
    lines.push("", "tidegate against the issue's targets:", "", "| figure | ratio | target | result |", "|---|---|---|---|");
    for (const j of judgeHttp(samples, "tidegate")) lines.push(`| ${j.figure} | ${f2(j.value)}x | ${j.target} | ${j.met ? "met" : "MISSED"} |`);
  }
  lines.push("", "Per-run req/s, in repetition order: " + paths.map((p) => `${p} [${pick(samples, p, "ka1k").sort((a, b) => a.rep - b.rep).map((s) => f0(s.rps)).join(", ")}]`).join("; "));
  lines.push("", `Where the CPU went (medians; % of one core over the run; ${samples[0]?.host.cpus ?? "?"} cores; "other": busy less the processes named):`, "");
  lines.push("| path | host busy | of it softirq | steal | client hop | server hop | backend | wrk | other |", "|---|---|---|---|---|---|---|---|---|");
  for (const p of paths) {
    const pc = (f: (s: Sample) => number) => `${f0(m(p, (s) => (100 * f(s)) / s.wallS))} %`;
    lines.push(`| ${p} | ${pc((s) => s.host.busyS)} | ${pc((s) => s.host.softirqS)} | ${pc((s) => s.host.stealS)} | ${pc((s) => s.cpuClientS)} | ${pc((s) => s.cpuServerS)} | ${pc((s) => s.cpuBackendS)} | ${pc((s) => s.cpuWrkS)} | ${pc((s) => s.host.busyS - s.cpuClientS - s.cpuServerS - s.cpuBackendS - s.cpuWrkS)} |`);
  }
  const errs = samples.filter((s) => s.errors !== "");
  if (errs.length > 0) lines.push("", "wrk errors:", ...errs.map((s) => `- ${s.path} rep ${s.rep}: ${s.errors}`));
  return lines.join("\n");
}

/** The chart paths' labels, where the name alone would puzzle a reader. */
const LABELS: Record<string, string> = { "bare-bun": "bare Bun tunnel" };
const byPath = (paths: readonly string[], f: (p: string) => number) => Object.fromEntries(paths.map((p) => [p, f(p)]));

/** bench/mtls.ts's chart: each test's medians, tidegate beside every peer, as ratios to direct. */
export function chartMtls(samples: readonly Sample[], paths: readonly string[], meta: { reps: number; command: string; date: string }): Chart {
  const m = (test: TestName, f: (s: Sample) => number) => byPath(paths, (p) => med(samples, p, test, f));
  return {
    title: "Mutual TLS between workloads (L4, bench/mtls.ts): tidegate beside nginx, haproxy, stunnel and a bare Bun tunnel, ratios to direct",
    baseline: DIRECT,
    paths,
    highlight: ["tidegate"],
    labels: LABELS,
    groups: [
      { label: "1 KiB keep-alive req/s", better: "higher", unit: "req/s", values: m("ka1k", (s) => s.rps) },
      { label: "1 KiB keep-alive p99", better: "lower", unit: "ms", values: m("ka1k", (s) => s.p99ms) },
      { label: "new connections/s", better: "higher", unit: "conn/s", values: m("close1k", (s) => s.rps) },
      { label: "1 MiB MiB/s", better: "higher", unit: "MiB/s", values: m("dl1m", (s) => s.mibps) },
    ],
    footer: { date: meta.date, command: meta.command, reps: meta.reps, note: "direct: wrk straight to the nginx backend; the tables in docs/benchmarks.md take ratios to nginx-stream within each repetition" },
  };
}

/** bench/mtls-http.ts's chart: keep-alive req/s, p50 and p99 medians as ratios to direct. */
export function chartHttp(samples: readonly Sample[], paths: readonly string[], meta: { reps: number; command: string; date: string }): Chart {
  const m = (f: (s: Sample) => number) => byPath(paths, (p) => med(samples, p, "ka1k", f));
  return {
    title: "Interception (L7, bench/mtls-http.ts): tidegate beside nginx-http and haproxy-http, ratios to direct",
    baseline: DIRECT,
    paths,
    highlight: ["tidegate"],
    groups: [
      { label: "1 KiB keep-alive req/s", better: "higher", unit: "req/s", values: m((s) => s.rps) },
      { label: "1 KiB keep-alive p50", better: "lower", unit: "ms", values: m((s) => s.p50ms) },
      { label: "1 KiB keep-alive p99", better: "lower", unit: "ms", values: m((s) => s.p99ms) },
    ],
    footer: { date: meta.date, command: meta.command, reps: meta.reps, note: "direct: wrk straight to the nginx backend; the tables in docs/benchmarks.md take ratios to nginx-http within each repetition" },
  };
}
