/**
 * Runs the built dist/tidegate, as a user would. End-to-end tests use the binary, not the sources:
 * `sh install.sh` (and so CI) builds it first; elsewhere run `bun run build` before these tests.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";

export const REPO = join(import.meta.dir, "..", "..");
export const BINARY = join(REPO, "dist", "tidegate");

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function requireBinary(): string {
  if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: run 'bun run build' (install.sh does) before the end-to-end tests`);
  return BINARY;
}

export async function tidegate(args: readonly string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<RunResult> {
  const proc = Bun.spawn([requireBinary(), ...args], {
    cwd: opts.cwd ?? REPO,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...opts.env },
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}
