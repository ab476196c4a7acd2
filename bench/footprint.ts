/**
 * tidegate's footprint (issue 11), each figure beside a bare Bun binary compiled with the flags
 * scripts/build.ts uses (bench/lib-footprint.ts), by this Bun, into the run's temporary folder:
 *
 * - size: dist/tidegate against a compiled `console.log("hello")`;
 * - startup: wall time from spawn to exit of `dist/tidegate version` (the whole command: it probes
 *   the host) and of the hello-world, interleaved (the order swapped every run), --warmups runs of
 *   each first, then the median of --runs; target: at most 50 ms;
 * - idle memory (root): `dist/tidegate up --foreground` (single-host mode: server and agent in one
 *   process; instance bench-fp-PID, every place in the run's folder, a fresh one per repetition so
 *   each is a first start) beside a compiled `Bun.serve` hello-world, started together; each is
 *   ready when `tidegate status` exits 0 (healthy), or when the server has printed its port and
 *   answered one GET; VmRSS of the process and its descendants --idle seconds after that (60: "idle
 *   after one minute"). --reps repetitions; the median of the per-repetition ratios; target: at
 *   most 1.5x the bare server's.
 *
 * Prints a Markdown section for docs/benchmarks.md; writes the chart (bench/lib-svg.ts) to
 * docs/bench/footprint.svg after a full run (at least the defaults, the memory measured, the
 * default binary), to --chart-out FILE after any run, nowhere with --no-chart.
 *
 *   bun run build && bun bench/footprint.ts [--reps 3] [--runs 20] [--warmups 2] [--idle 60]
 *     [--binary PATH] [--no-rss] [--json FILE] [--chart-out FILE] [--no-chart] [--keep]
 *
 * --no-rss measures size and startup only (no root needed). Everything started is stopped at the
 * end, on an error and at SIGINT/SIGTERM; the instance is uninstalled (`tidegate agent
 * --uninstall`: its cgroup and pins) and the folder removed (kept with --keep). Leftovers of a run
 * that was killed are removed by the next (bench/lib-procs.ts).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { probeHost } from "../src/runtime/host.ts";
import { writeChart } from "./lib-chart.ts";
import { chartFootprint, compileBare, markdownFootprint, treeMemory, wallMs, type Footprint, type RssSample } from "./lib-footprint.ts";
import { Progress } from "./lib-progress.ts";
import { alive, Procs, removeLeftoverRuns } from "./lib-procs.ts";
import { renderChart } from "./lib-svg.ts";
import { BINARY, uninstallInstance, uninstallRun, waitFor } from "./lib-tidegate.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    reps: { type: "string", default: "3" },
    runs: { type: "string", default: "20" },
    warmups: { type: "string", default: "2" },
    idle: { type: "string", default: "60" },
    binary: { type: "string", default: BINARY },
    "no-rss": { type: "boolean", default: false },
    json: { type: "string" },
    "chart-out": { type: "string" },
    "no-chart": { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
  },
});
const [reps, runs, warmups, idleS] = [values.reps, values.runs, values.warmups, values.idle].map(Number) as [number, number, number, number];
if (!(Number.isInteger(reps) && reps >= 1 && Number.isInteger(runs) && runs >= 1 && Number.isInteger(warmups) && warmups >= 0 && idleS >= 0)) {
  throw new Error("bench: --reps and --runs must be positive integers, --warmups an integer >= 0, --idle seconds >= 0");
}
const bin = values.binary;
const withRss = !values["no-rss"];
if (!existsSync(bin)) throw new Error(`bench: ${bin} is missing: run 'bun run build'`);
const mount = probeHost().cgroup2;
if (withRss) {
  // `tidegate up` is single-host mode (issue 11); a binary built before it answers "unknown command".
  const help = Bun.spawnSync([bin, "up", "--help"], { stdout: "pipe", stderr: "pipe" });
  if (help.exitCode !== 0) throw new Error(`bench: tidegate up is not in this build (${bin} up --help: ${help.stderr.toString().trim().split("\n")[0]}); build one with it, or pass --no-rss to measure size and startup only`);
  if (process.getuid?.() !== 0) throw new Error("bench: the memory of `tidegate up` is measured as root (it loads eBPF programs and makes cgroups); --no-rss measures size and startup only");
  if (mount === null) throw new Error("bench: `tidegate up` needs cgroup v2");
}

const INSTANCE_RE = /^tidegate-(bench-fp-(\d+))$/;
const instance = (pid: number) => `bench-fp-${pid}`;

/** This bench's instance of the run of `pid`, if anything of it is left; and bench/mtls.ts's, whose folders look alike. */
async function uninstallMine(pid: number): Promise<void> {
  const name = instance(pid);
  if (existsSync(join(mount!, `tidegate-${name}`)) || existsSync(`/sys/fs/bpf/tidegate-${name}`)) await uninstallInstance(name);
  await uninstallRun(pid, mount!);
}

if (withRss) {
  for (const d of await removeLeftoverRuns(uninstallMine)) console.error(`bench: removed leftover run ${d}`);
  for (const n of new Set([...readdirSync(mount!), ...(existsSync("/sys/fs/bpf") ? readdirSync("/sys/fs/bpf") : [])])) {
    const m = INSTANCE_RE.exec(n);
    if (m === null || alive(Number(m[2]))) continue;
    await uninstallInstance(m[1]!);
    console.error(`bench: removed leftover instance ${m[1]}`);
  }
}

const procs = new Procs();
const inst = instance(process.pid);
/** The flags of the instance's current repetition while it may hold a cgroup or pins. */
let installed: string[] | null = null;

function uninstall(): void {
  if (installed === null) return;
  const r = Bun.spawnSync([bin, "agent", "--uninstall", ...installed], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) console.error(`bench: uninstall of ${inst}: ${r.stderr.toString()}`);
  installed = null;
}

let cleaning: Promise<void> | null = null;
const cleanup = () =>
  (cleaning ??= (async () => {
    for (const n of [...procs.children.keys()]) await procs.stop(n, n.startsWith("tg-up") ? 20_000 : 5000);
    uninstall();
    if (withRss) await uninstallMine(process.pid).catch((e: unknown) => console.error(`bench: ${String(e)}`));
    if (values.keep) console.error(`bench: kept ${procs.dir}`);
    else rmSync(procs.dir, { recursive: true, force: true });
  })());
for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => void cleanup().finally(() => process.exit(130)));

/** Runs `tidegate up --foreground` in a fresh folder until it is healthy, then `idleS` seconds; its memory then. */
async function idleTidegate(rep: number): Promise<RssSample["tidegate"]> {
  const d = (n: string) => join(procs.dir, `rep${rep}`, n);
  const flags = ["--instance", inst, "--state-dir", d("state"), "--run-dir", d("run"), "--audit-dir", d("audit"), "--config", d("tidegate.yaml"), "--server-config", d("server.yaml")];
  const name = `tg-up-${rep}`;
  installed = flags;
  const t0 = performance.now();
  const c = procs.start(name, [bin, "up", "--foreground", ...flags]);
  // `tidegate status` exits 0 when the agent is healthy; asked every half second or so
  const healthy = async () => {
    const p = Bun.spawn([bin, "status", "--instance", inst, "--run-dir", d("run")], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
    if ((await p.exited) === 0) return true;
    await Bun.sleep(400);
    return undefined;
  };
  await waitFor("tidegate up to be healthy (tidegate status exits 0)", healthy, 120_000, () => procs.check(name));
  const readyS = (performance.now() - t0) / 1000;
  await Bun.sleep(idleS * 1000);
  procs.check(name);
  const m = treeMemory(c.proc.pid);
  await procs.stop(name, 20_000);
  uninstall();
  return { ...m, readyS };
}

/** Runs the compiled Bun.serve hello-world until it answers, then `idleS` seconds; its memory then. */
async function idleBare(rep: number, serve: string): Promise<RssSample["bare"]> {
  const name = `bare-serve-${rep}`;
  const t0 = performance.now();
  const c = procs.start(name, [serve]);
  const port = await waitFor("the bare server's port", () => /^(\d+)$/m.exec(procs.output(name))?.[1], 20_000, () => procs.check(name));
  const body = await (await fetch(`http://127.0.0.1:${port}/`)).text();
  if (body !== "hello") throw new Error(`bench: the bare server answered ${JSON.stringify(body)}`);
  return idleThenMeasure(name, t0, c.proc.pid);
}

/** For a process ready now (started at `t0`): `idleS` seconds idle, then its memory; stops it. */
async function idleThenMeasure(name: string, t0: number, pid: number): Promise<RssSample["bare"]> {
  const readyS = (performance.now() - t0) / 1000;
  await Bun.sleep(idleS * 1000);
  procs.check(name);
  const m = treeMemory(pid);
  await procs.stop(name);
  return { ...m, readyS };
}

/** Runs the runtime floor (BARE_SOURCES.floor) until it says ready, then `idleS` seconds; its memory then. */
async function idleFloor(rep: number, floor: string): Promise<NonNullable<RssSample["floor"]>> {
  const name = `bare-floor-${rep}`;
  const dir = join(procs.dir, name);
  mkdirSync(dir, { recursive: true });
  const key = join(dir, "key.pem");
  const cert = join(dir, "cert.pem");
  const ssl = Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost"], { stdout: "ignore", stderr: "pipe" });
  if (ssl.exitCode !== 0) throw new Error(`bench: openssl could not make the floor's certificate: ${ssl.stderr.toString()}`);
  const t0 = performance.now();
  const c = procs.start(name, [floor, dir, cert, key]);
  await waitFor("the runtime floor to be ready", () => (/^ready$/m.test(procs.output(name)) ? true : undefined), 20_000, () => procs.check(name));
  return idleThenMeasure(name, t0, c.proc.pid);
}

try {
  const tgVersion = Bun.spawnSync([bin, "version", "--json"], { stdout: "pipe" });
  const info = JSON.parse(tgVersion.stdout.toString()) as { version: string; commit: string; bun: string };
  if (info.bun !== Bun.version) console.error(`bench: WARNING: ${bin} was built with Bun ${info.bun}, the bare binaries with ${Bun.version}`);
  console.error(`bench: compiling the bare binaries into ${procs.dir}`);
  const hello = compileBare(procs.dir, "hello");
  const serve = compileBare(procs.dir, "serve");
  const floor = compileBare(procs.dir, "floor");
  const size = { tidegate: statSync(bin).size, hello: statSync(hello).size, serve: statSync(serve).size };

  console.error(`bench: startup, ${warmups} warm-up and ${runs} timed runs of each, interleaved`);
  const startup = { runs, tidegate: [] as number[], hello: [] as number[] };
  for (let i = 0; i < warmups + runs; i++) {
    const pair = [["tidegate", [bin, "version"]], ["hello", [hello]]] as const;
    for (const [k, argv] of i % 2 === 0 ? pair : [...pair].reverse()) {
      const ms = wallMs(argv);
      if (i >= warmups) startup[k].push(ms);
    }
  }

  const rss: RssSample[] = [];
  if (withRss) {
    const progress = new Progress(reps);
    for (let rep = 1; rep <= reps; rep++) {
      progress.step(`rep ${rep}/${reps}: tidegate up, the bare Bun.serve and the runtime floor side by side, ready, then ${idleS} s idle`);
      const [tidegate, bare, fl] = await Promise.all([idleTidegate(rep), idleBare(rep, serve), idleFloor(rep, floor)]);
      rss.push({ rep, tidegate, bare, floor: fl });
      console.error(`rep ${rep}: RSS tidegate ${(tidegate.rssKiB / 1024).toFixed(1)} MiB (${tidegate.processes} processes, ready in ${tidegate.readyS.toFixed(1)} s), bare ${(bare.rssKiB / 1024).toFixed(1)} MiB, runtime floor ${(fl.rssKiB / 1024).toFixed(1)} MiB`);
    }
  }

  const defaults = reps >= 3 && runs >= 20 && idleS >= 60;
  const command = `bun bench/footprint.ts${reps !== 3 ? ` --reps ${reps}` : ""}${runs !== 20 ? ` --runs ${runs}` : ""}${warmups !== 2 ? ` --warmups ${warmups}` : ""}${idleS !== 60 ? ` --idle ${idleS}` : ""}${bin !== BINARY ? ` --binary ${bin}` : ""}${withRss ? "" : " --no-rss"}`;
  const f: Footprint = { date: new Date().toISOString().slice(0, 10), command, bun: Bun.version, tidegateVersion: `tidegate ${info.version} (${info.commit})`, size, startup, idleS, rss };
  console.log(markdownFootprint(f));
  if (values.json !== undefined) {
    writeFileSync(values.json, `${JSON.stringify({ bench: "footprint", kernel: probeHost().kernel, cpus: readFileSync("/proc/self/status", "utf8").match(/Cpus_allowed_list:\s*(\S+)/)?.[1], ...f })}\n`);
    console.log(`\nraw: ${values.json}`);
  }
  writeChart("footprint", () => renderChart(chartFootprint(f)), { out: values["chart-out"] ?? null, off: values["no-chart"] }, defaults && withRss && bin === BINARY);
} catch (e) {
  for (const n of procs.children.keys()) if (n.startsWith("tg-up")) console.error(`--- ${n}, last lines:\n${procs.output(n).split("\n").slice(-15).join("\n")}`);
  throw e;
} finally {
  await cleanup();
}
