/**
 * Runs the built dist/tidegate, as a user would. End-to-end tests use the binary, not the sources:
 * `sh install.sh` (and so CI) builds it first; elsewhere run `bun run build` before these tests.
 */
import { chmodSync, copyFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
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

let copied: string | null = null;

/**
 * dist/tidegate when nobody (uid 65534) can execute it where it is, else a 0755 copy in a 0755
 * temp folder, made once; `removeUserBinary` removes the copy (a later call makes it again).
 */
export function userBinary(): string {
  const binary = requireBinary();
  if (Bun.spawnSync(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "test", "-x", binary]).exitCode === 0) return binary;
  if (copied === null) {
    const d = mkdtempSync(join(tmpdir(), "tidegate-test-bin-"));
    chmodSync(d, 0o755);
    copied = join(d, "tidegate");
    copyFileSync(binary, copied);
    chmodSync(copied, 0o755);
  }
  return copied;
}

export function removeUserBinary(): void {
  if (copied !== null) rmSync(join(copied, ".."), { recursive: true, force: true });
  copied = null;
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
