/** Helpers for this folder's tests: throwaway directories, file hashes, and child processes. */
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A fresh directory under /tmp; `cleanup()` removes it and everything in it. */
export function tempDir(): { dir: string; path: (name: string) => string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "tidegate-store-"));
  return { dir, path: (name) => join(dir, name), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
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
