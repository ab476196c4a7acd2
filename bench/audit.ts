/**
 * The audit log's cost (issue 9), as root, in one run: the L7 path of bench/mtls-http.ts (wrk over
 * plain HTTP under `tidegate run` -> agent A's egress proxy, `intercept`, one header injected ->
 * mTLS -> agent B's inbound listener -> nginx), 1 KiB GETs on keep-alive connections, so that A
 * writes exactly one `http_request` event per request. Two variants of the agents' binary:
 *
 * - `audit`: dist/tidegate, the real sink (one write(2) per event, checkpoints, fdatasync);
 * - `null`: dist/tidegate-bench-null-audit (`bun scripts/build.ts --bench-null-audit`), whose
 *   agents write no audit log: the baseline. Only a binary built for the benchmark can do that.
 *
 * Per repetition both variants, the order alternating; each stands the path up afresh (server,
 * agents), warms it for 2 s, then runs wrk for --duration seconds. Reported: req/s, p50, p99 and CPU
 * per request of each, the ratio audit/null of req/s per repetition and its median, against the
 * target (at least 0.95), and for the audit runs the http_request events A wrote during the run
 * against the responses wrk counted (each run: events - responses, at most the connections that
 * were mid-request when wrk stopped).
 *
 *   sh bench/install-peers.sh && bun run build && bun scripts/build.ts --bench-null-audit
 *   taskset -c 0,1 bun bench/audit.ts [--reps 3] [--duration 10] [--conns 16] [--json FILE] [--keep]
 *
 * TIDEGATE_BENCH_PROFILE_DIR=DIR: the agents run under Bun's CPU profiler (BUN_OPTIONS), each
 * writing a .cpuprofile into DIR when it stops. TIDEGATE_BENCH_AUDIT_BASE=DIR: the agents' audit
 * folders go there (a tmpfs such as /dev/shm tells the disk's share of the cost from the rest).
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { probeHost } from "../src/runtime/host.ts";
import { interference, median, sample, wrkArgs, type Sample } from "./lib-measure.ts";
import { freePort, httpPeerCommands, makeCerts, renderHttpConfigs, withChildren, type HttpPorts } from "./lib-peers.ts";
import { Procs, waitListening } from "./lib-procs.ts";
import { startBench } from "./lib-start.ts";
import { benchCleanup, BINARY, HTTP_HOST, startTidegateHttpPath, stopTidegatePath, WORKLOAD_ENV, type TidegatePath } from "./lib-tidegate.ts";

const NULL_BINARY = join(import.meta.dir, "..", "dist", "tidegate-bench-null-audit");
const { reps, seconds, conns, json, keep, mount } = await startBench({ json: "/tmp/tidegate-bench-audit.json", tools: [["nginx", "nginx-light"], ["wrk", "wrk"], ["curl", "curl"], ["openssl", "openssl"]] });
if (!existsSync(NULL_BINARY)) throw new Error(`bench: ${NULL_BINARY} is missing: run 'bun scripts/build.ts --bench-null-audit'`);

const procs = new Procs();
let tide: (TidegatePath & { secret: string }) | null = null;
let running: { kill(sig?: number | NodeJS.Signals): void } | null = null;

/** Stops the current stand before the next variant stands a fresh one up (its folder too). */
async function tearDown(): Promise<void> {
  await stopTidegatePath(procs, tide);
  rmSync(join(procs.dir, "tidegate"), { recursive: true, force: true });
  tide = null;
}

const cleanup = benchCleanup({ procs, tide: () => tide, running: () => running, mount, keep });

const wrk = (t: TidegatePath, secs: number) => [...t.runPrefix, "wrk", "-H", `Host: ${HTTP_HOST}`, ...wrkArgs("ka1k", `http://${t.host}:${t.port}`, secs, conns)];
const httpEvents = (t: TidegatePath) => t.audit("a").filter((l) => l.type === "http_request").length;

type Variant = "audit" | "null";
const samples: (Sample & { variant: Variant; events: number | null })[] = [];

try {
  const ports: HttpPorts = { backend: freePort(), nginxHttpClient: freePort(), nginxHttpServer: freePort(), haproxyHttpClient: freePort(), haproxyHttpServer: freePort() };
  makeCerts(`${procs.dir}/certs`);
  renderHttpConfigs(procs.dir, ports);
  procs.start("backend", httpPeerCommands(procs.dir).backend!);
  await waitListening("127.0.0.1", ports.backend, "backend", 10_000, () => procs.check("backend"));
  const backendPids = () => withChildren(procs.children.get("backend")!.proc.pid);
  console.error(`bench: audit vs null sink; ${reps} reps x ${seconds} s, ${conns} connections; folder ${procs.dir}`);

  for (let rep = 1; rep <= reps; rep++) {
    const order: Variant[] = rep % 2 === 1 ? ["audit", "null"] : ["null", "audit"];
    for (const variant of order) {
      const profile = process.env.TIDEGATE_BENCH_PROFILE_DIR;
      const env: Record<string, string> = profile !== undefined ? { BUN_OPTIONS: `--cpu-prof --cpu-prof-dir=${join(profile, `${variant}-${rep}`)}` } : {};
      tide = await startTidegateHttpPath(procs, ports.backend, variant === "audit" ? BINARY : NULL_BINARY, env);
      await sample({ path: variant, test: "ka1k", rep: 0 }, wrk(tide, 2), WORKLOAD_ENV, { ...tide.hops(), backend: [] }, (x) => (running = x)); // warm-up
      await Bun.sleep(500);
      const before = variant === "audit" ? httpEvents(tide) : 0;
      const s = await sample({ path: variant, test: "ka1k", rep }, wrk(tide, seconds), WORKLOAD_ENV, { ...tide.hops(), backend: backendPids() }, (x) => (running = x));
      await Bun.sleep(500); // the last events of connections wrk closed
      const events = variant === "audit" ? httpEvents(tide) - before : null;
      samples.push({ ...s, variant, events });
      console.error(`rep ${rep} ${variant}: ${s.rps.toFixed(0)} req/s, p50 ${s.p50ms.toFixed(2)} ms, p99 ${s.p99ms.toFixed(2)} ms, CPU ${s.cpuUsPerReq.toFixed(1)} us/req, interference ${interference(s).toFixed(0)} %${events !== null ? `, ${events} http_request events for ${s.requests} responses` : ""}`);
      if (variant === "audit") {
        const lines = readFileSync(join(tide.auditDirs.a, "audit.jsonl"), "utf8");
        if (lines.includes(tide.secret)) throw new Error("bench: the secret's value is in A's audit log");
      }
      await tearDown();
    }
  }

  const by = (v: Variant) => samples.filter((s) => s.variant === v);
  const ratios = Array.from({ length: reps }, (_, i) => by("audit")[i]!.rps / by("null")[i]!.rps);
  const ratio = median(ratios);
  const command = `taskset -c 0,1 bun bench/audit.ts --reps ${reps} --duration ${seconds}${conns !== 16 ? ` --conns ${conns}` : ""}`;
  const extra = by("audit").map((s) => (s.events ?? 0) - s.requests);
  writeFileSync(json, JSON.stringify({ bench: "audit", date: new Date().toISOString(), bun: Bun.version, kernel: probeHost().kernel, command, reps, seconds, conns, samples, ratios, ratio }, null, 1));
  const row = (v: Variant) => {
    const s = by(v);
    return `| ${v === "audit" ? "real audit sink" : "null sink"} | ${median(s.map((x) => x.rps)).toFixed(0)} | ${median(s.map((x) => x.p50ms)).toFixed(2)} | ${median(s.map((x) => x.p99ms)).toFixed(2)} | ${median(s.map((x) => x.cpuUsPerReq)).toFixed(1)} |`;
  };
  console.log(`audit sink vs null sink, 1 KiB keep-alive GETs through intercept (one http_request event each), ${conns} connections, ${reps} reps x ${seconds} s, medians\n`);
  console.log("| agents' sink | req/s | p50 ms | p99 ms | CPU us/req (both hops) |\n|---|---|---|---|---|");
  console.log(row("audit"));
  console.log(row("null"));
  console.log(`\nreq/s audit/null per rep: ${ratios.map((r) => r.toFixed(3)).join(", ")}; median ${ratio.toFixed(3)} (target at least 0.95: ${ratio >= 0.95 ? "met" : "MISSED"})`);
  console.log(`http_request events minus responses per audit run: ${extra.join(", ")} (in flight when wrk stopped: at most ${conns})`);
  console.log(`\ncommand: ${command}\nraw: ${json}`);
} catch (e) {
  if (tide !== null) for (const n of ["a", "b"]) console.error(`--- agent ${n}, last lines:\n${procs.output(`tg-agent-${n}`).split("\n").slice(-15).join("\n")}`);
  throw e;
} finally {
  await cleanup();
}
