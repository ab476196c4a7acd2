/**
 * Identity crypto benchmark (issue: foundation). From one run, pinned to one core:
 *   - minting a workload X.509-SVID from a CSR (parse the CSR and check its signature, build and
 *     sign the certificate, encode it), and
 *   - verifying a leaf-plus-root chain with tidegate's verifier,
 * beside `openssl speed ecdsap256` sign and verify rates, interleaved, several repetitions, medians.
 * Targets: mint >= 25 % of 1 / (openssl time per sign + time per verify); verify >= 25 % of
 * openssl's verify rate.
 *
 *   taskset -c 0 bun bench/identity-crypto.ts [--seconds 3] [--reps 3] [--window 1]
 *
 * --window N keeps N operations in flight (a server has many requests at once; WebCrypto calls are
 * asynchronous). The default of 1 measures one operation after another, as openssl speed does.
 */
import { parseArgs } from "node:util";
import { readFileSync } from "node:fs";
import { TrustDomain, SpiffeId, Bundle, BundleSet } from "../src/spiffe/index.ts";
import { createRootCa, mintX509Svid } from "../src/x509/mint.ts";
import { generateKeyPair } from "../src/x509/keys.ts";
import { createCsr, signCsr } from "../src/x509/csr.ts";
import { verifyX509Svid } from "../src/x509/verify.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { seconds: { type: "string", default: "3" }, reps: { type: "string", default: "3" }, window: { type: "string", default: "1" } },
});
const seconds = Number(values.seconds);
const reps = Number(values.reps);
const window = Number(values.window);
if (!(seconds > 0) || !(reps >= 1) || !(window >= 1)) throw new Error("bench: --seconds, --reps and --window must be positive");

const cpus = /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? "?";
if (/[-,]/.test(cpus)) console.error(`bench: warning: not pinned to one core (Cpus_allowed_list ${cpus}); run under taskset -c 0`);

const now = new Date();
const td = TrustDomain.parse("example.org");
const id = SpiffeId.parse("spiffe://example.org/agent/bench");
const root = await createRootCa({ trustDomain: td, ttlSeconds: 86400, now });
const signer = { certificate: root.der, privateKey: root.privateKey };
const workloadKey = await generateKeyPair();
const csr = await createCsr({ privateKey: workloadKey.privateKey, publicKey: workloadKey.publicKey, id });
const leaf = await mintX509Svid({ id, publicKey: workloadKey.publicKey, signer, ttlSeconds: 3600, now });
const source = BundleSet.of(Bundle.create(td, { x509Authorities: [root.der] }));

const mint = async () => {
  await signCsr({ csr, id, signer, ttlSeconds: 3600, now });
};
const verify = async () => {
  await verifyX509Svid([leaf.der], source, { now });
};

async function rate(op: () => Promise<void>): Promise<number> {
  for (let i = 0; i < 200; i++) await op(); // warm the JIT and caches
  let count = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  while (performance.now() < end) {
    const batch: Promise<void>[] = [];
    for (let i = 0; i < window; i++) batch.push(op());
    await Promise.all(batch);
    count += window;
  }
  return count / ((performance.now() - start) / 1000);
}

function opensslSpeed(): { sign: number; verify: number } {
  const r = Bun.spawnSync(["openssl", "speed", "-seconds", String(seconds), "ecdsap256"], { stdout: "pipe", stderr: "pipe" });
  const m = /256 bits ecdsa \(nistp256\)\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)/.exec(r.stdout.toString());
  if (!m) throw new Error(`bench: could not read openssl speed output:\n${r.stdout}${r.stderr}`);
  return { sign: Number(m[1]), verify: Number(m[2]) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const runs = { mint: [] as number[], verify: [] as number[], osign: [] as number[], overify: [] as number[] };
for (let r = 1; r <= reps; r++) {
  runs.mint.push(await rate(mint));
  runs.verify.push(await rate(verify));
  const o = opensslSpeed();
  runs.osign.push(o.sign);
  runs.overify.push(o.verify);
  console.error(`rep ${r}/${reps}: mint ${runs.mint.at(-1)!.toFixed(0)}/s, verify ${runs.verify.at(-1)!.toFixed(0)}/s, openssl sign ${o.sign.toFixed(0)}/s verify ${o.verify.toFixed(0)}/s`);
}

// Ratios are taken within each repetition (tidegate and openssl ran back to back under the same
// load), then the median of those ratios is reported: steadier than a ratio of medians.
const mintBaseOf = (i: number) => 1 / (1 / runs.osign[i]! + 1 / runs.overify[i]!);
const mintRatio = median(runs.mint.map((v, i) => v / mintBaseOf(i)));
const verifyRatio = median(runs.verify.map((v, i) => v / runs.overify[i]!));
const m = { mint: median(runs.mint), verify: median(runs.verify), osign: median(runs.osign), overify: median(runs.overify) };
const rows = [
  ["mint SVID from CSR", m.mint, median(runs.mint.map((_, i) => mintBaseOf(i))), mintRatio],
  ["verify leaf+root", m.verify, m.overify, verifyRatio],
] as const;
console.log(`identity crypto, pinned to CPU ${cpus}, ${reps} reps x ${seconds}s, window ${window}, bun ${Bun.version}, medians`);
console.log(`openssl speed ecdsap256: sign ${m.osign.toFixed(0)}/s, verify ${m.overify.toFixed(0)}/s`);
console.log("| operation | tidegate ops/s | openssl baseline ops/s | ratio (median of per-rep ratios) | target | result |");
console.log("|---|---|---|---|---|---|");
for (const [name, v, base, ratio] of rows) {
  console.log(`| ${name} | ${v.toFixed(0)} | ${base.toFixed(0)} | ${(ratio * 100).toFixed(1)} % | 25 % | ${ratio >= 0.25 ? "met" : "MISSED"} |`);
}
console.log("(mint baseline: 1 / (openssl time per sign + time per verify); verify baseline: openssl verify rate)");
