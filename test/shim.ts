/**
 * The one test API of the portable core (../shared/STYLE.md point 2): the same test files run
 * under `bun test` and `deno test`, so they import `test`, `describe` and `assert` from here and
 * never from `bun:test`. Assertions are node:assert/strict, which both runtimes provide.
 *
 * Deno has no `describe`: here it only prefixes the names of the tests declared inside it, so
 * both runners register the same tests under the same names and their counts can be compared.
 */
import assertStrict from "node:assert/strict";
import { TidegateError } from "../src/errors.ts";

type TestFn = () => void | Promise<void>;

interface Runner {
  test(name: string, fn: TestFn, timeoutMs?: number): void;
  describe(name: string, fn: () => void): void;
}

const g = globalThis as unknown as {
  Bun?: unknown;
  Deno?: {
    test(def: { name: string; fn: TestFn; sanitizeOps?: boolean; sanitizeResources?: boolean }): void;
    readFile(path: string): Promise<Uint8Array>;
  };
};

async function makeRunner(): Promise<Runner> {
  if (g.Bun !== undefined) {
    const bt = await import("bun:test");
    return {
      test: (name, fn, timeoutMs) => bt.test(name, fn, timeoutMs),
      describe: (name, fn) => bt.describe(name, fn),
    };
  }
  const deno = g.Deno;
  if (deno === undefined) throw new Error("test shim: neither Bun nor Deno");
  const prefix: string[] = [];
  return {
    test: (name, fn) =>
      deno.test({ name: [...prefix, name].join(" > "), fn, sanitizeOps: false, sanitizeResources: false }),
    describe: (name, fn) => {
      prefix.push(name);
      try {
        fn();
      } finally {
        prefix.pop();
      }
    },
  };
}

const runner = await makeRunner();

export const test = runner.test;
export const describe = runner.describe;
export const assert: typeof assertStrict = assertStrict;

/** Reads a file given relative to the repository root (fixtures of the portable core). */
export async function readFixture(path: string): Promise<Uint8Array> {
  const url = new URL(`../${path}`, import.meta.url);
  if (g.Deno !== undefined) return g.Deno.readFile(url.pathname);
  const { readFile } = await import("node:fs/promises");
  return new Uint8Array(await readFile(url));
}

type ErrorClass<E> = abstract new (...args: never[]) => E;

/**
 * The code of the `cls` error (a TidegateError by default) that `fn` throws, or null when it
 * returns. Any other exception is rethrown, so a test never mistakes a crash for a rejection.
 */
export function codeOf<E extends TidegateError>(fn: () => unknown, cls: ErrorClass<E> = TidegateError as unknown as ErrorClass<E>): string | null {
  try {
    fn();
    return null;
  } catch (e) {
    if (e instanceof cls) return e.code;
    throw e;
  }
}

/** The `cls` error `fn` throws; fails the test when it returns, rethrows any other exception. */
export function errorOf<E extends TidegateError>(fn: () => unknown, cls: ErrorClass<E>): E {
  try {
    fn();
  } catch (e) {
    if (e instanceof cls) return e;
    throw e;
  }
  throw new Error(`expected a ${cls.name}`);
}

/** The `cls` error `p` rejects with; fails the test when it resolves, rethrows any other rejection. */
export async function rejectionOf<E extends TidegateError>(p: Promise<unknown>, cls: ErrorClass<E>): Promise<E> {
  try {
    await p;
  } catch (e) {
    if (e instanceof cls) return e;
    throw e;
  }
  throw new Error(`expected a ${cls.name}`);
}

/** The code `p` rejects with (a `cls` error, TidegateError by default), or "resolved". */
export async function rejectionCode<E extends TidegateError>(p: Promise<unknown>, cls: ErrorClass<E> = TidegateError as unknown as ErrorClass<E>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof cls) return e.code;
    throw e;
  }
  return "resolved";
}
