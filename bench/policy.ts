/**
 * Policy decision benchmark (issue: policy). A policy of N rules (default 1,000) mixing exact
 * hosts, "*." and "**." wildcards, IPv4 and IPv6 ranges, single ports and port ranges over ten
 * callers (src/policy/arbitraries.ts, `benchPolicy`), loaded from its YAML text; queries spread
 * over the rules plus 20 % that match nothing (`benchQueries`). Name resolution is excluded: the
 * engine decides on the name and address the proxy reports. Decisions are on the per-connection
 * path. Target: >= 200,000 decisions per second on one core.
 *
 * Reported: decisions per second (median of the repetitions), per-decision latency p50/p99
 * (measured over batches of --batch decisions, each divided by its size), how many decisions were
 * allow/deny/inspect, and the one-off cost of a caller's first decision (its index is built then).
 *
 *   taskset -c 0 bun bench/policy.ts [--rules 1000] [--queries 200000] [--reps 5] [--seed 1] [--batch 64]
 */
import { parseArgs } from "node:util";
import { readFileSync } from "node:fs";
import { SpiffeId } from "../src/spiffe/index.ts";
import { benchPolicy, benchQueries, BENCH_CALLERS } from "../src/policy/arbitraries.ts";
import { PolicyEngine } from "../src/policy/engine.ts";
import { loadPolicy } from "../src/policy/load.ts";
import type { Query } from "../src/policy/query.ts";

const TARGET = 200_000;

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    rules: { type: "string", default: "1000" },
    queries: { type: "string", default: "200000" },
    reps: { type: "string", default: "5" },
    seed: { type: "string", default: "1" },
    batch: { type: "string", default: "64" },
  },
});
const nRules = Number(values.rules);
const nQueries = Number(values.queries);
const reps = Number(values.reps);
const seed = Number(values.seed);
const batch = Number(values.batch);
if (!(nRules >= 1) || !(nQueries >= 1) || !(reps >= 1) || !Number.isInteger(seed) || !(batch >= 1)) {
  throw new Error("bench: --rules, --queries, --reps and --batch must be positive, --seed an integer");
}

const cpus = /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? "?";
if (/[-,]/.test(cpus)) console.error(`bench: warning: not pinned to one core (Cpus_allowed_list ${cpus}); run under taskset -c 0`);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
function pct(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

// Build: the policy from its text, then the queries over its rules.
const yaml = benchPolicy(nRules, seed);
let t0 = Bun.nanoseconds();
const policy = loadPolicy(yaml, "bench-policy.yaml");
const loadMs = (Bun.nanoseconds() - t0) / 1e6;
const queries: Query[] = benchQueries(policy.egress, nQueries, seed + 1);
const mix = { host: 0, v4: 0, v6: 0, udp: 0, http: 0 };
for (const r of policy.egress) {
  if (r.to.kind === "host") mix.host++;
  else if (r.to.cidr.family === 4) mix.v4++;
  else mix.v6++;
  if (r.proto === "udp") mix.udp++;
  if (r.http !== null) mix.http++;
}

// A caller's first decision builds its index: a fresh engine each time, callers in turn.
const firstNs: number[] = [];
const secondNs: number[] = [];
for (let i = 0; i < 30; i++) {
  const caller = SpiffeId.parse(BENCH_CALLERS[i % BENCH_CALLERS.length]!);
  const q = queries.find((x) => x.from.toString() === caller.toString()) ?? { ...queries[0]!, from: caller };
  const e = new PolicyEngine(policy);
  t0 = Bun.nanoseconds();
  e.decide(q);
  firstNs.push(Bun.nanoseconds() - t0);
  t0 = Bun.nanoseconds();
  e.decide(q);
  secondNs.push(Bun.nanoseconds() - t0);
}

const engine = new PolicyEngine(policy);
const counts = { allow: 0, deny: 0, inspect: 0, deny_no_rule: 0 };
for (const q of queries) {
  const d = engine.decide(q);
  counts[d.verdict]++;
  if (d.verdict === "deny" && d.reason === "no_rule") counts.deny_no_rule++;
}
// Warm-up: the JIT sees the whole query set a few times before anything is timed.
let sink = 0;
for (let w = 0; w < 3; w++) for (const q of queries) sink += engine.decide(q).verdict.length;

const rates: number[] = [];
const nBatches = Math.floor(queries.length / batch);
const perDecision = new Float64Array(nBatches * reps);
for (let r = 0; r < reps; r++) {
  const start = Bun.nanoseconds();
  for (let b = 0; b < nBatches; b++) {
    const bs = Bun.nanoseconds();
    const end = (b + 1) * batch;
    for (let i = b * batch; i < end; i++) sink += engine.decide(queries[i]!).verdict.length;
    perDecision[r * nBatches + b] = (Bun.nanoseconds() - bs) / batch;
  }
  const seconds = (Bun.nanoseconds() - start) / 1e9;
  rates.push((nBatches * batch) / seconds);
  console.error(`rep ${r + 1}/${reps}: ${rates.at(-1)!.toFixed(0)} decisions/s`);
}
if (sink === 0) console.error("bench: nothing decided");
perDecision.sort();

const rate = median(rates);
const met = rate >= TARGET;
const result = {
  bench: "policy-decide",
  bun: Bun.version,
  cpus,
  rules: nRules,
  rule_mix: mix,
  queries: queries.length,
  reps,
  seed,
  load_ms: Number(loadMs.toFixed(1)),
  decisions_per_s: Math.round(rate),
  decisions_per_s_runs: rates.map(Math.round),
  ns_per_decision: Number((1e9 / rate).toFixed(0)),
  p50_ns: Number(pct(perDecision, 50).toFixed(0)),
  p99_ns: Number(pct(perDecision, 99).toFixed(0)),
  verdicts: counts,
  first_decision_new_caller_us: Number((median(firstNs) / 1e3).toFixed(1)),
  second_decision_same_caller_us: Number((median(secondNs) / 1e3).toFixed(2)),
  target_per_s: TARGET,
  target_met: met,
};
console.log(JSON.stringify(result));

const pctOf = (n: number) => `${((100 * n) / queries.length).toFixed(1)} %`;
const rows: [string, string][] = [
  ["rules (host / IPv4 / IPv6; udp, http)", `${nRules} (${mix.host} / ${mix.v4} / ${mix.v6}; ${mix.udp}, ${mix.http})`],
  ["policy load (YAML text to Policy)", `${loadMs.toFixed(1)} ms`],
  ["queries (20 % aimed at no rule)", String(queries.length)],
  ["verdicts: allow / deny (no rule) / inspect", `${pctOf(counts.allow)} / ${pctOf(counts.deny)} (${pctOf(counts.deny_no_rule)}) / ${pctOf(counts.inspect)}`],
  [`decisions per second (median of ${reps})`, `${rate.toFixed(0)}  [${rates.map((x) => x.toFixed(0)).join(", ")}]`],
  [`per decision, batches of ${batch}: p50 / p99`, `${pct(perDecision, 50).toFixed(0)} ns / ${pct(perDecision, 99).toFixed(0)} ns`],
  ["first decision of a new caller (index build), median of 30", `${(median(firstNs) / 1e3).toFixed(1)} us (then ${(median(secondNs) / 1e3).toFixed(2)} us)`],
  [`target >= ${TARGET.toLocaleString("en")} decisions/s`, met ? "met" : "MISSED"],
];
const w = Math.max(...rows.map((r) => r[0].length));
console.log(`policy decisions, pinned to CPU ${cpus}, bun ${Bun.version}, seed ${seed}, name resolution excluded`);
for (const [k, v] of rows) console.log(`${k.padEnd(w)}  ${v}`);
