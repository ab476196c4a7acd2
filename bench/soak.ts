/**
 * The bounded soak of issue 13, on demand (`bun run soak`: 10 minutes, then every fuzzer with
 * many more runs): bench/lib-soak.ts's probe, soak and rest on the egress proxy's benchmark path,
 * judged against the bar. CI runs the same for 60 s (test/e2e/soak.test.ts).
 *
 *   bun run build
 *   bun bench/soak.ts [--duration 600] [--conns 8] [--json FILE] [--fuzz FACTOR] [--gc-log]
 *
 * --gc-log starts the agents with JavaScriptCore's GC log and reports each agent's collections
 * during the soak: eden and full, their pauses, and the heap before and after each full one
 * (bench/lib-gclog.ts). The RSS sawtooth follows those full collections (docs/benchmarks.md).
 * Then every fuzzer (scripts/fuzz.ts) with FACTOR times its CI runs (default 20; 0 skips them).
 * Prints progress to stderr, then the figures; exits 1 when the judge lists a failure or a fuzzer
 * fails, 130 on SIGINT or SIGTERM after stopping everything it started. Root,
 * cgroup v2 and dist/tidegate are needed; nothing else is installed for it.
 */
import { parseArgs } from "node:util";
import { writeFileSync } from "node:fs";
import { judge, rssGrowth, runSoak } from "./lib-soak.ts";
import { describeGc } from "./lib-gclog.ts";
import { runFuzzers } from "../scripts/fuzz.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { duration: { type: "string", default: "600" }, conns: { type: "string", default: "8" }, json: { type: "string", default: "/tmp/tidegate-soak.json" }, fuzz: { type: "string", default: "20" }, "gc-log": { type: "boolean", default: false } },
});
const seconds = Number(values.duration);
const conns = Number(values.conns);
const fuzz = Number(values.fuzz);
if (!(fuzz >= 0)) {
  console.error("soak: --fuzz is a factor >= 0 (0 skips the fuzzers)");
  process.exit(2);
}
if (!Number.isInteger(seconds) || seconds < 10 || !Number.isInteger(conns) || conns < 1) {
  console.error("soak: --duration is whole seconds, at least 10; --conns a positive integer");
  process.exit(2);
}
if (process.getuid?.() !== 0) {
  console.error("soak: run as root (the path captures a workload in a cgroup)");
  process.exit(2);
}

let r: Awaited<ReturnType<typeof runSoak>>;
try {
  r = await runSoak({ seconds, conns, progress: (l) => console.error(l), gcLog: values["gc-log"] });
} catch (e) {
  console.error((e as Error).message);
  process.exit(/interrupted/.test((e as Error).message) ? 130 : 1);
}
writeFileSync(values.json, JSON.stringify(r, null, 2));
const kib = (n: number) => `${(n / 1024).toFixed(1)} MiB`;
const lines = [
  `probe: ${r.maxRate.toFixed(0)} req/s with a new connection every 10 requests (${r.probe.requests} requests, ${r.probe.errors} errors)`,
  `soak: ${seconds} s at ${r.targetRate} req/s target, ${(r.soak.requests / r.soak.seconds).toFixed(0)} achieved; ${r.soak.requests} requests, ${r.soak.opened} connections, ${r.soak.errors} errors`,
];
for (const agent of ["a", "b"] as const) {
  const g = rssGrowth(r.samples, seconds, agent);
  lines.push(`agent ${agent}: RSS ${kib(g.atFifth)} at the end of the first fifth, at most ${kib(g.lastTenthMax)} in the last tenth (${((g.ratio - 1) * 100).toFixed(1)} %); descriptors ${r.fdsBefore[agent]} before, ${r.fdsAfter[agent]} after`);
}
for (const agent of ["a", "b"] as const) {
  const g = r.gc?.[agent];
  if (g === undefined) continue;
  const range = (xs: readonly number[]) => (xs.length === 0 ? "-" : `${kib(Math.min(...xs))}-${kib(Math.max(...xs))}`);
  const every = g.full.count > 0 ? `, one every ${(r.soak.seconds / g.full.count).toFixed(1)} s, heap ${range(g.heapBeforeFullKiB)} before, ${range(g.heapAfterFullKiB)} after` : "";
  lines.push(`agent ${agent} collector: ${describeGc(g, r.soak.seconds)}${every}`);
}
lines.push(`audit: A ${r.audit.a.opens} opens / ${r.audit.a.closes} closes, B ${r.audit.b.opens} / ${r.audit.b.closes}, ${r.audit.matched} ids at both ends`);
console.log(lines.join("\n"));
const failures = judge(r, seconds);
for (const f of failures) console.log(`FAILED: ${f}`);
console.log(failures.length === 0 ? "soak: passed" : `soak: ${failures.length} failure(s); samples in ${values.json}`);
let fuzzCode = 0;
if (fuzz > 0) {
  console.error(`soak: every fuzzer with ${fuzz} times its CI runs`);
  fuzzCode = await runFuzzers({ factor: fuzz });
  console.log(fuzzCode === 0 ? `fuzzers (x${fuzz}): passed` : `fuzzers (x${fuzz}): FAILED (bun test exited ${fuzzCode})`);
}
process.exit(failures.length === 0 && fuzzCode === 0 ? 0 : 1);
