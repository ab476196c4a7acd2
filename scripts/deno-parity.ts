/**
 * Runs the portable core's tests under Bun and under Deno and compares the counts: the same files
 * must register the same number of tests and all must pass on both. Exit 1 otherwise.
 */
import { PORTABLE_PATHS } from "./portable-core.ts";

const root = new URL("..", import.meta.url).pathname;
const deno = `${root}node_modules/.bin/deno`;

function run(cmd: string[]): { code: number; out: string } {
  const r = Bun.spawnSync(cmd, { cwd: root, stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
  return { code: r.exitCode ?? 1, out: r.stdout.toString() + r.stderr.toString() };
}

function count(out: string, re: RegExp): number | null {
  const m = re.exec(out);
  return m ? Number(m[1]) : null;
}

const bun = run([process.execPath, "test", ...PORTABLE_PATHS]);
const bunPass = count(bun.out, /^\s*(\d+) pass$/m);
const bunFail = count(bun.out, /^\s*(\d+) fail$/m) ?? 0;

// The yaml package reads two debugging switches from the environment, and the fuzzers their run
// count (test/fuzz-runs.ts); nothing else may be read.
const den = run([deno, "test", "--no-check", "--allow-read", "--allow-env=LOG_TOKENS,LOG_STREAM,TIDEGATE_FUZZ_RUNS", ...PORTABLE_PATHS]);
const denoSummary = /^(?:ok|FAILED) \| (\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed/m.exec(den.out);
const denoPass = denoSummary ? Number(denoSummary[1]) : null;
const denoFail = denoSummary ? Number(denoSummary[2]) : null;

console.log(`portable core (${PORTABLE_PATHS.join(", ")}):`);
console.log(`  bun:  ${bunPass ?? "?"} passed, ${bunFail} failed`);
console.log(`  deno: ${denoPass ?? "?"} passed, ${denoFail ?? "?"} failed`);

let ok = true;
if (bunPass === null || denoPass === null) {
  console.log("  could not read a runner's summary; its output follows");
  console.log(bunPass === null ? bun.out : den.out);
  ok = false;
} else if (bunPass + bunFail !== denoPass + (denoFail ?? 0)) {
  console.log(`  MISMATCH: bun ran ${bunPass + bunFail} tests, deno ${denoPass + (denoFail ?? 0)}`);
  ok = false;
}
if (bun.code !== 0 || den.code !== 0 || bunFail > 0 || (denoFail ?? 1) > 0) {
  // which tests failed, and why, for each runner that failed: a CI log must name them
  if (bun.code !== 0 || bunFail > 0) console.log([...new Set(bun.out.split("\n").filter((l) => /^(?:\(fail\)|error:|\w*Error\b)/.test(l)))].slice(0, 40).join("\n"));
  if (den.code !== 0) console.log(den.out.split("\n").filter((l) => /FAILED|^error:|=>/.test(l)).slice(0, 40).join("\n"));
  ok = false;
}
console.log(`deno-parity: ${denoPass ?? 0} passed, ${(denoFail ?? 0) + (ok ? 0 : denoFail ? 0 : 1)} failed`);
process.exit(ok ? 0 : 1);
