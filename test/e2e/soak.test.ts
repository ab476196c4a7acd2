// The bounded soak of issue 13 in its CI form: 60 s of the egress proxy's benchmark path (a
// workload on agent A, mTLS to B's inbound listener, a backend) at half its measured maximum rate,
// a new connection every ten requests (bench/lib-soak.ts; `bun run soak` runs it for 10 minutes).
// Needs root (cgroups, eBPF): CI runs it as root and it must not skip there; elsewhere it skips
// with a message. Speed is not judged here: the rate is whatever this machine gives, halved.
import { expect, test } from "bun:test";
import { judge, rssGrowth, rssMedianGrowth, runSoak } from "../../bench/lib-soak.ts";

const isRoot = process.getuid?.() === 0;
if (!isRoot && process.env.CI) throw new Error("soak.test.ts: CI must run as root");
if (!isRoot) console.warn("soak.test.ts: skipped (needs root: cgroups, eBPF)");

const SECONDS = Number(process.env.TIDEGATE_SOAK_SECONDS ?? "60");

// The RSS bar compares the largest sample of the last tenth with the RSS at the end of the
// first fifth. Without the agents' heap governor (src/runtime/heap-governor.ts) the collector's
// sawtooth alone was about that wide, and one-minute runs failed it by chance; with it the
// sawtooth is about 6 MiB and `bun run soak` meets the bar as written (docs/benchmarks.md, "Soak").
// This test checks growth on medians over the first and last fifths, which a leak moves and the
// phase of a collection cycle does not (bench/lib-soak.ts, rssMedianGrowth), and prints the bar as
// written beside them.
test.skipIf(!isRoot)(`${SECONDS} s of churn at half the maximum rate: no errors, no RSS growth (medians), descriptors back, every connection audited at both ends`, async () => {
  const r = await runSoak({ seconds: SECONDS, warmupSeconds: 30, progress: (l) => console.error(l) });
  const connections = r.probe.opened + (r.warmup?.opened ?? 0) + r.soak.opened;
  // the run did what it says: load at half the probe's rate, with churn
  expect(r.maxRate).toBeGreaterThan(0);
  expect(r.soak.opened).toBeGreaterThanOrEqual(Math.floor(r.soak.requests / 10));
  expect(r.samples.length).toBeGreaterThanOrEqual(SECONDS * 0.8);
  for (const agent of ["a", "b"] as const) {
    console.error(`soak: agent ${agent} RSS: largest of the last tenth / end of the first fifth ${rssGrowth(r.samples, SECONDS, agent).ratio.toFixed(3)}, medians of the last / first fifth ${rssMedianGrowth(r.samples, SECONDS, agent).toFixed(3)}`);
  }
  expect(r.audit.a.opens).toBe(connections);
  for (const agent of ["a", "b"] as const) expect(rssMedianGrowth(r.samples, SECONDS, agent)).toBeLessThanOrEqual(1.1);
  expect(judge(r, SECONDS).filter((f) => !/: RSS .* in the last tenth/.test(f))).toEqual([]);
}, (SECONDS + 150) * 1000);
