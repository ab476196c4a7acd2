/**
 * Runs every fuzzer under Bun with the run-count factor of test/fuzz-runs.ts, for the soak of
 * issue 13. A fuzzer is a test file under src/ that takes its run counts from test/fuzz-runs.ts:
 * the `*.fuzz.test.ts` and `*.property.test.ts` files, and unit test files with a property or two.
 *
 *   bun run fuzz                         # the CI counts (factor 1)
 *   TIDEGATE_FUZZ_RUNS=20 bun run fuzz   # twenty times the runs
 *   bun run fuzz 20                      # the same
 *
 * Each test's time limit is Bun's default 5 s times the factor. Exit status: bun test's. A soak
 * script imports `runFuzzers` instead.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { FUZZ_RUNS_ENV, parseFuzzFactor } from "../test/fuzz-runs.ts";

const root = new URL("..", import.meta.url).pathname;

/** The test files that import test/fuzz-runs.ts, relative to the repository root, sorted. */
export function fuzzFiles(): string[] {
  const files = [...new Bun.Glob("src/**/*.test.ts").scanSync({ cwd: root })];
  return files.filter((f) => /from "(\.\.\/)+test\/fuzz-runs\.ts"/.test(readFileSync(join(root, f), "utf8"))).sort();
}

/** Runs `files` (default: fuzzFiles()) with `factor` (default: TIDEGATE_FUZZ_RUNS, else 1); resolves to bun test's exit code. */
export async function runFuzzers(opts: { factor?: number; files?: readonly string[] } = {}): Promise<number> {
  const factor = opts.factor ?? parseFuzzFactor(process.env[FUZZ_RUNS_ENV]);
  const timeoutMs = Math.max(5_000, Math.round(5_000 * factor));
  const proc = Bun.spawn([process.execPath, "test", "--timeout", String(timeoutMs), ...(opts.files ?? fuzzFiles()).map((f) => `./${f}`)], {
    cwd: root,
    env: { ...process.env, [FUZZ_RUNS_ENV]: String(factor) },
    stdout: "inherit",
    stderr: "inherit",
  });
  return proc.exited;
}

if (import.meta.main) {
  const arg = process.argv[2];
  const factor = parseFuzzFactor(arg ?? process.env[FUZZ_RUNS_ENV]);
  const files = fuzzFiles();
  console.log(`fuzz: ${files.length} files, ${FUZZ_RUNS_ENV}=${factor}`);
  process.exit(await runFuzzers({ factor, files }));
}
