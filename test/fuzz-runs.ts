/**
 * The one run-count knob of every fast-check property (issue 13, ../shared/STYLE.md point 6).
 *
 * Each property states the number of runs it makes in CI (`fuzzRuns(300)`); the environment
 * variable TIDEGATE_FUZZ_RUNS multiplies every such count, so a soak runs each fuzzer for longer
 * without a file changing: `TIDEGATE_FUZZ_RUNS=20 bun run fuzz` makes twenty times the runs.
 *
 * - unset or empty: factor 1, the CI counts;
 * - a positive decimal number ("20", "0.5"): that factor; every count stays at least 1;
 * - anything else ("20x", "0", "-1", "many"): this module throws when imported, so a typo in a soak
 *   fails loudly instead of quietly running the CI counts.
 *
 * Only the number of runs scales. A test's own time limit does not: a soak passes a longer one to
 * the runner (scripts/fuzz.ts gives `bun test --timeout` the default 5 s times the factor).
 * Portable (no runtime module): under Deno the variable is read only when the run allows it
 * (scripts/deno-parity.ts does); a run that does not gets factor 1.
 */

export const FUZZ_RUNS_ENV = "TIDEGATE_FUZZ_RUNS";

interface EnvReaders {
  Deno?: { env: { get(name: string): string | undefined } };
  process?: { env: Record<string, string | undefined> };
}

function readEnv(name: string): string | undefined {
  const g = globalThis as unknown as EnvReaders;
  if (g.Deno !== undefined) {
    try {
      return g.Deno.env.get(name);
    } catch {
      // No --allow-env for this name: as if unset.
      return undefined;
    }
  }
  return g.process?.env[name];
}

/** The factor a TIDEGATE_FUZZ_RUNS value gives; throws on a value that is not a positive number. */
export function parseFuzzFactor(value: string | undefined): number {
  if (value === undefined || value.trim() === "") return 1;
  const text = value.trim();
  const factor = /^[0-9]+(\.[0-9]+)?$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isFinite(factor) || factor <= 0) {
    throw new Error(`fuzz: ${FUZZ_RUNS_ENV}=${JSON.stringify(value)} is not a positive number (a factor on every property's CI run count)`);
  }
  return factor;
}

/** The factor of this process (1 unless TIDEGATE_FUZZ_RUNS says otherwise). */
export const FUZZ_FACTOR: number = parseFuzzFactor(readEnv(FUZZ_RUNS_ENV));

/** The runs a property makes: its CI count `ciRuns` times the factor, at least 1. */
export function fuzzRuns(ciRuns: number): number {
  return Math.max(1, Math.round(ciRuns * FUZZ_FACTOR));
}
