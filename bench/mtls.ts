/**
 * The L4 mutual-TLS benchmark (issue 7), as root, in one run: two-hop mTLS tunnels in front of one
 * nginx backend (1 KiB and 1 MiB files), driven by wrk on loopback, as
 * ../shared/reference/peer-baselines measures them (bench/lib-peers.ts):
 *
 * - nginx-stream, haproxy-tcp and stunnel pairs (resumption on the client hop, as configured there);
 * - the bare Bun tunnel pair (bench/bare-tunnel.ts), the yardstick for memory;
 * - tidegate: wrk under `tidegate run` in agent A's workload cgroup -> A's egress proxy -> mTLS ->
 *   B's inbound listener (a second agent instance) -> the backend (bench/lib-tidegate.ts);
 * - tidegate-x25519: the same agents, dialled on the next port, where A's rule has
 *   `upstream: { key_exchange: classical }`: the hop does X25519 alone, as the OpenSSL peers do,
 *   where tidegate's default (and the bare tunnel) adds the hybrid X25519MLKEM768. Judged against
 *   the same targets, beside tidegate's default;
 * - direct: wrk straight to the backend, no tunnel (no hops: no CPU or memory of hops), the 1x of
 *   the chart.
 *
 * First 2 s of each test per path, not measured (the Bun hops' JIT and the session caches warm
 * up). Then per repetition, per test, each path in turn, the order rotated by one path per repetition:
 * - ka1k: 1 KiB GETs on --conns keep-alive connections (wrk -t1 --latency): req/s, p50, p99, and
 *   the CPU time (utime + stime, all threads) of each hop's processes over the run / requests;
 * - close1k: the same with `Connection: close`: a new connection through the tunnel per request;
 * - dl1m: 1 MiB GETs on one connection: MiB/s.
 * After the runs, VmRSS and VmHWM of each tunnel process. Reported: medians, and ratios against
 * nginx-stream taken within each repetition (median over repetitions) judged against the issue's
 * targets; raw samples and memory as JSON to --json. The chart (bench/lib-svg.ts): each test's
 * medians against direct's, written to docs/bench/mtls.svg by a full run (bench/lib-chart.ts:
 * --reps 3 or more, --duration 10 or more, 16 connections, tidegate measured), to --chart-out FILE
 * by any run, by none with --no-chart. Progress goes to stderr before each run.
 *
 *   sh bench/install-peers.sh && bun run build
 *   taskset -c 0,1 bun bench/mtls.ts [--reps 3] [--duration 10] [--conns 16] [--json FILE]
 *                                    [--max-interference 15] [--retries 1] [--no-tidegate] [--keep]
 *                                    [--chart-out FILE] [--no-chart] [--gc-log]
 *
 * This kind of machine is a VM whose host takes CPU away at times (steal), and whatever else runs
 * on it competes for the same two cores: a run whose interference (steal plus CPU used by
 * processes outside the benchmark, in % of one core) exceeds --max-interference is made again,
 * up to --retries times, and the least disturbed is kept; the report says how many were.
 * --no-tidegate measures the peers and the bare tunnel only; --keep leaves the run's folder (logs,
 * configs) in /tmp. --gc-log starts the Bun hops (tidegate's agents, the bare tunnel) with
 * JavaScriptCore's GC log and reports, after each of their runs, the collections each hop made and
 * how long they stopped it (bench/lib-gclog.ts; in the JSON as `gc`): what sets the p99
 * (docs/benchmarks.md). Such a run draws no chart to docs/bench/. Everything it starts is stopped at the end, on an error and on SIGINT/SIGTERM;
 * leftovers of a run that was killed are removed at the start of the next (bench/lib-procs.ts).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { probeHost } from "../src/runtime/host.ts";
import { interference, median, memory, sample, TESTS, wrkArgs, type Sample } from "./lib-measure.ts";
import { freePort, makeCerts, peerCommands, peerPaths, renderConfigs, withChildren, type PathSpec, type Ports } from "./lib-peers.ts";
import { Procs, waitListening } from "./lib-procs.ts";
import { startBench } from "./lib-start.ts";
import { chartMtls, DIRECT, judge, markdown, type ProcMemory } from "./lib-report.ts";
import { benchCleanup, startTidegatePath, WORKLOAD_ENV, type TidegatePath } from "./lib-tidegate.ts";
import { writeChart } from "./lib-chart.ts";
import { Progress } from "./lib-progress.ts";
import { renderChart } from "./lib-svg.ts";
import { describeGc, GC_LOG_ENV, withGcLog, type GcStats, type HopLogs } from "./lib-gclog.ts";

const { reps, seconds, conns, maxInterference, retries, json, keep, withTidegate, mount, gcLog, chart, full } = await startBench({ chart: true, gcLog: true, json: "/tmp/tidegate-bench-mtls.json", tools: [["nginx", "nginx-light"], ["haproxy", "haproxy"], ["stunnel", "stunnel4"], ["wrk", "wrk"], ["openssl", "openssl"]], files: [["/usr/lib/nginx/modules/ngx_stream_module.so", "nginx's stream module is missing (libnginx-mod-stream): run 'sh bench/install-peers.sh'"]] });

const procs = new Procs();
let tide: TidegatePath | null = null;
let running: { kill(sig?: number | NodeJS.Signals): void } | null = null;
const cleanup = benchCleanup({ procs, tide: () => tide, running: () => running, mount, keep });

/** GET /1k and /1m through a path: sizes and the 1 MiB file's hash. */
async function sanity(path: PathSpec, prefix: string[], env: Record<string, string>, want: string): Promise<void> {
  const base = `http://${path.host}:${path.port}`;
  const script = `curl -sS --max-time 10 -o /dev/null -w '%{http_code}:%{size_download}\\n' ${base}/1k && curl -sS --max-time 10 ${base}/1m | sha256sum`;
  const p = Bun.spawn([...prefix, "sh", "-c", script], { stdout: "pipe", stderr: "pipe", cwd: "/", env });
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (out !== `200:1024\n${want}  -\n`) throw new Error(`bench: ${path.name}: a GET through the tunnel failed: ${JSON.stringify(out)} ${err}`);
}

try {
  const ports: Ports = {
    backend: freePort(), nginxClient: freePort(), nginxServer: freePort(), haproxyClient: freePort(), haproxyServer: freePort(),
    stunnelClient: freePort(), stunnelServer: freePort(), bareClient: freePort(), bareServer: freePort(),
  };
  if (new Set(Object.values(ports)).size !== Object.values(ports).length) throw new Error("bench: the kernel handed out a port twice; run again");
  makeCerts(`${procs.dir}/certs`);
  renderConfigs(procs.dir, ports);
  const listens: Record<string, number> = {
    backend: ports.backend, "nginx-stream-server": ports.nginxServer, "nginx-stream-client": ports.nginxClient, "haproxy-tcp-server": ports.haproxyServer,
    "haproxy-tcp-client": ports.haproxyClient, "stunnel-server": ports.stunnelServer, "stunnel-client": ports.stunnelClient, "bare-server": ports.bareServer, "bare-client": ports.bareClient,
  };
  // --gc-log: the bare tunnel's hops log their collections, as tidegate's agents do
  for (const [name, argv] of Object.entries(peerCommands(procs.dir, ports))) procs.start(name, argv, gcLog && name.startsWith("bare-") ? GC_LOG_ENV : {});
  for (const [name, port] of Object.entries(listens)) await waitListening("127.0.0.1", port, name, 10_000, () => procs.check(name));
  const paths: PathSpec[] = [{ name: DIRECT, host: "127.0.0.1", port: ports.backend, hops: () => ({ client: [], server: [] }) }, ...peerPaths(ports, procs.children)];
  const want = new Bun.CryptoHasher("sha256").update(readFileSync(`${procs.dir}/www/1m`)).digest("hex");
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin" };
  for (const p of paths) await sanity(p, [], env, want);
  if (withTidegate) {
    tide = await startTidegatePath(procs, ports.backend, gcLog ? GC_LOG_ENV : {});
    await sanity(tide, tide.runPrefix, WORKLOAD_ENV, want);
    paths.push(tide);
    // the same agents with X25519 alone on the mTLS hop, as the OpenSSL peers do it (docs/benchmarks.md)
    await sanity(tide.x25519!, tide.runPrefix, WORKLOAD_ENV, want);
    paths.push(tide.x25519!);
  }
  const backendPids = () => withChildren(procs.children.get("backend")!.proc.pid);
  const isTide = (p: PathSpec) => tide !== null && (p === tide || p === tide.x25519);
  const prefixOf = (p: PathSpec) => (isTide(p) ? tide!.runPrefix : []);
  const envOf = (p: PathSpec) => (isTide(p) ? WORKLOAD_ENV : env);
  const logOf = (name: string) => procs.children.get(name)!.log;
  const gcLogsOf = (p: PathSpec): HopLogs => (!gcLog ? [] : isTide(p) ? [["client", logOf("tg-agent-a")], ["server", logOf("tg-agent-b")]] : p.name === "bare-bun" ? [["client", logOf("bare-client")], ["server", logOf("bare-server")]] : []);
  const gcRuns: { path: string; test: string; rep: number; gc: Record<string, GcStats> }[] = [];
  console.error(`bench: ${paths.map((p) => p.name).join(", ")}; ${reps} reps x ${TESTS.length} tests x ${seconds} s; folder ${procs.dir}`);

  const idle = new Map(paths.flatMap((p) => [...p.hops().client, ...p.hops().server]).map((pid) => [pid, memory(pid).rssKiB]));
  // Warm-up (not measured): JIT and session caches, for every test, so that no repetition's first
  // run of a test pays for compiling its path (a new connection runs code keep-alive never does:
  // in a local harness, tidegate's first 10 s of one connection per request ran 2.5-6 % slower
  // than the next 10 s, its JIT threads busy for about half a second of CPU).
  console.error(`warm-up: 2 s of each test per path`);
  for (const test of TESTS) for (const p of paths) await sample({ path: p.name, test, rep: 0 }, [...prefixOf(p), "wrk", ...wrkArgs(test, `http://${p.host}:${p.port}`, 2, conns)], envOf(p), { ...p.hops(), backend: [] }, (x) => (running = x));

  const samples: Sample[] = [];
  const retried: { path: string; test: string; rep: number; interference_pct: number[] }[] = [];
  const progress = new Progress(reps * TESTS.length * paths.length);
  for (let rep = 1; rep <= reps; rep++) {
    const order = [...paths.slice((rep - 1) % paths.length), ...paths.slice(0, (rep - 1) % paths.length)];
    for (const test of TESTS) {
      for (const p of order) {
        // A run the host disturbed (steal, or load outside the benchmark) is made again, up to
        // --retries times; the least disturbed one is kept.
        let s: Sample | null = null;
        const seen: number[] = [];
        progress.step(`rep ${rep}/${reps}, ${test}, ${p.name}: ${seconds} s`);
        for (let t = 0; t <= retries; t++) {
          if (t > 0) {
            console.error(`  again (try ${t + 1} of ${retries + 1}): interference over ${maxInterference} %`);
            await Bun.sleep(3000);
          }
          const { result: x, gc } = await withGcLog(gcLogsOf(p), () => sample({ path: p.name, test, rep }, [...prefixOf(p), "wrk", ...wrkArgs(test, `http://${p.host}:${p.port}`, seconds, conns)], envOf(p), { ...p.hops(), backend: backendPids() }, (w) => (running = w)));
          seen.push(interference(x));
          if (s === null || interference(x) < interference(s)) s = x;
          console.error(`rep ${rep} ${test} ${p.name}: ${x.rps.toFixed(0)} req/s, ${x.mibps.toFixed(1)} MiB/s, p50 ${x.p50ms.toFixed(2)} ms, p99 ${x.p99ms.toFixed(2)} ms, CPU ${x.cpuUsPerReq.toFixed(1)} us/req, interference ${interference(x).toFixed(0)} %${x.errors ? `, ${x.errors}` : ""}`);
          for (const [hop, g] of Object.entries(gc)) console.error(`  collector, ${hop} hop: ${describeGc(g, x.wallS)}`);
          if (Object.keys(gc).length > 0) gcRuns.push({ path: p.name, test, rep, gc });
          if (interference(x) <= maxInterference) break;
        }
        samples.push(s!);
        if (seen.length > 1) retried.push({ path: p.name, test, rep, interference_pct: seen.map((v) => Math.round(v)) });
        for (const name of procs.children.keys()) procs.check(name);
        await Bun.sleep(1000);
      }
    }
  }

  const mem: ProcMemory[] = paths.flatMap((p) => {
    const h = p.hops();
    return (["client", "server"] as const).flatMap((hop) =>
      h[hop].map((pid) => ({ path: p.name, hop, pid, role: readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[0]!.slice(0, 40), ...memory(pid), idleRssKiB: idle.get(pid) ?? Number.NaN })),
    );
  });
  const tgSummary = tide === null ? null : summarizeLogs(tide);
  const names = paths.map((p) => p.name);
  const command = `taskset -c 0,1 bun bench/mtls.ts --reps ${reps} --duration ${seconds}${conns !== 16 ? ` --conns ${conns}` : ""}${withTidegate ? "" : " --no-tidegate"}${gcLog ? " --gc-log" : ""}`;
  writeFileSync(
    json,
    JSON.stringify({ bench: "mtls", date: new Date().toISOString(), bun: Bun.version, kernel: probeHost().kernel, command, reps, seconds, conns, cpus: readFileSync("/proc/self/status", "utf8").match(/Cpus_allowed_list:\s*(\S+)/)?.[1], paths: names, samples, memory: mem, targets: tide === null ? null : judge(samples, mem, "tidegate"), targets_x25519: tide === null ? null : judge(samples, mem, "tidegate-x25519"), retried, max_interference_pct: maxInterference, tidegate_logs: tgSummary, ...(gcLog ? { gc: gcRuns } : {}) }, null, 1),
  );
  console.log(markdown(samples, mem, names, { reps, seconds, conns, command }));
  const kept = samples.map(interference);
  console.log(`\nInterference (steal + CPU used outside the benchmark, % of one core): kept runs median ${median(kept).toFixed(0)} %, max ${Math.max(...kept).toFixed(0)} %; ${retried.length} of ${samples.length} runs were made again (over ${maxInterference} %).`);
  if (tgSummary !== null) console.log(`\ntidegate's audit events: ${JSON.stringify(tgSummary)}`);
  console.log(`\nraw: ${json}`);
  writeChart("mtls", () => renderChart(chartMtls(samples, names, { reps, command, date: new Date().toISOString().slice(0, 10) })), chart, full);
} catch (e) {
  if (tide !== null) for (const n of ["a", "b"]) console.error(`--- agent ${n}, last lines:\n${procs.output(`tg-agent-${n}`).split("\n").slice(-15).join("\n")}`);
  throw e;
} finally {
  await cleanup();
}

/** Counts of the agents' conn_close audit events by outcome and reason, and how many upstream legs resumed. */
function summarizeLogs(t: TidegatePath): Record<string, unknown> {
  const count = (lines: { [k: string]: unknown }[], key: (l: { [k: string]: unknown }) => string) => {
    const m: Record<string, number> = {};
    for (const l of lines) m[key(l)] = (m[key(l)] ?? 0) + 1;
    return m;
  };
  const egress = t.audit("a").filter((l) => l.type === "conn_close");
  const inbound = t.audit("b").filter((l) => l.type === "conn_close" && l.side === "inbound");
  return {
    egress: count(egress, (l) => `${String(l.outcome)}${l.reason ? `:${String(l.reason)}` : ""}`),
    egress_resumed: count(egress.filter((l) => l.outcome === "forwarded"), (l) => String(l.resumed)),
    inbound: count(inbound, (l) => `${String(l.outcome)}${l.reason ? `:${String(l.reason)}` : ""}`),
    not_forwarded_examples: [...egress, ...inbound].filter((l) => l.outcome !== "forwarded").slice(0, 5),
  };
}
