/** Helpers for this folder's tests: throwaway directories, file hashes, and child processes. */
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach } from "bun:test";
import { SqliteDatastore } from "./sqlite.ts";

/** A fresh directory under /tmp; `cleanup()` removes it and everything in it. */
export function tempDir(): { dir: string; path: (name: string) => string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "tidegate-store-"));
  return { dir, path: (name) => join(dir, name), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * For every test of the calling file: a new store in a new directory, closed and removed after the
 * test. Read `store` and `tmp` inside tests (they change from test to test).
 */
export function storePerTest(): { readonly store: SqliteDatastore; readonly tmp: ReturnType<typeof tempDir> } {
  let current: { store: SqliteDatastore; tmp: ReturnType<typeof tempDir> } | undefined;
  beforeEach(async () => {
    const tmp = tempDir();
    current = { tmp, store: await SqliteDatastore.open(tmp.path("s.db")) };
  });
  afterEach(async () => {
    await current?.store.close();
    current?.tmp.cleanup();
    current = undefined;
  });
  const now = () => {
    if (current === undefined) throw new Error("storePerTest: read store and tmp inside a test");
    return current;
  };
  return {
    get store() {
      return now().store;
    },
    get tmp() {
      return now().tmp;
    },
  };
}

export function fileHash(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

export function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

const CHILD = join(import.meta.dir, "test-child.ts");

export interface ChildResult {
  stdout: string;
  stderr: string;
  exitCode: number | null;
  signalCode: string | null;
}

/** Runs test-child.ts with `args` in a separate bun process and waits for it to end. */
export async function runChild(args: string[], timeoutMs = 8000): Promise<ChildResult> {
  const proc = Bun.spawn([process.execPath, CHILD, ...args], { stdout: "pipe", stderr: "pipe", timeout: timeoutMs });
  const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  await proc.exited;
  return { stdout, stderr, exitCode: proc.exitCode, signalCode: proc.signalCode === null ? null : String(proc.signalCode) };
}
