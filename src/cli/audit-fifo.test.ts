// A log directory given to `audit verify`, `tail` or `export` (a copy under /backup, say) may
// hold a FIFO named like a log file, or a symlink to /dev/zero: each verb once blocked forever in
// open(2) on it. Now each refuses it at once, `audit_not_regular_file`, naming it. Run as child
// processes so an old, blocking build fails by its deadline instead of hanging the test runner.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = mkdtempSync(join(tmpdir(), "tidegate-audit-fifo-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const MAIN = join(import.meta.dir, "main.ts");

async function tidegate(args: string[]): Promise<{ code: number | null; err: string; ms: number }> {
  const t0 = performance.now();
  const p = Bun.spawn([process.execPath, MAIN, ...args], { stdin: "ignore", stdout: "ignore", stderr: "pipe", timeout: 10_000, killSignal: "SIGKILL" });
  const err = await new Response(p.stderr).text();
  return { code: await p.exited, err, ms: performance.now() - t0 };
}

function logDir(kind: "fifo" | "zero", verb: string, name: string): string {
  const dir = join(root, `${kind}-${verb}-${name}`);
  mkdirSync(dir, { recursive: true });
  if (kind === "fifo") expect(Bun.spawnSync(["mkfifo", join(dir, name)]).exitCode).toBe(0);
  else symlinkSync("/dev/zero", join(dir, name));
  return dir;
}

describe("a log file that is not a regular file is refused, never waited on", () => {
  for (const kind of ["fifo", "zero"] as const) {
    for (const name of ["audit.jsonl", "audit-000000000001.jsonl"]) {
      const state = join(root, "state");
      const verbs: [string, (dir: string) => string[]][] = [
        ["verify", (dir) => ["audit", "verify", "--no-state", "--audit-dir", dir]],
        ["tail", (dir) => ["audit", "tail", "--dir", dir]],
        ["export", (dir) => ["audit", "export", "--otlp", "http://127.0.0.1:9/v1/logs", "--audit-dir", dir, "--state-dir", state]],
      ];
      for (const [verb, args] of verbs) {
        test(`${verb}: ${name} a ${kind === "fifo" ? "FIFO" : "symlink to /dev/zero"}`, async () => {
          const dir = logDir(kind, verb, name);
          const r = await tidegate(args(dir));
          expect(r.code).toBe(1);
          expect(r.err).toContain("[audit_not_regular_file]");
          expect(r.err).toContain(JSON.stringify(join(dir, name)));
        }, 15_000);
      }
    }
  }
});

// The files the audit verbs read besides the log: --state (or the state dir's file) and the
// config, whose audit.dir says where the log is. A FIFO in either hung the verb.
describe("a state file or config that is a FIFO is refused or passed over, never waited on", () => {
  test("verify --state FIFO: a usage error naming it", async () => {
    const dir = join(root, "state-fifo");
    mkdirSync(join(dir, "log"), { recursive: true });
    expect(Bun.spawnSync(["mkfifo", join(dir, "audit-checkpoint.json")]).exitCode).toBe(0);
    const r = await tidegate(["audit", "verify", "--audit-dir", join(dir, "log"), "--state", join(dir, "audit-checkpoint.json")]);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`${JSON.stringify(join(dir, "audit-checkpoint.json"))} is not a regular file`);
  }, 15_000);

  for (const verb of ["verify", "tail"]) {
    test(`${verb} --config FIFO: the config is passed over as unreadable (the instance's folder is used)`, async () => {
      const dir = join(root, `config-fifo-${verb}`);
      mkdirSync(dir, { recursive: true });
      expect(Bun.spawnSync(["mkfifo", join(dir, "tidegate.yaml")]).exitCode).toBe(0);
      const r = await tidegate(["audit", verb, "--config", join(dir, "tidegate.yaml"), "--audit-dir", join(dir, "none"), "--state-dir", join(dir, "state")]);
      expect(r.code).toBe(1);
      expect(r.err).toContain("[audit_no_log]");
    }, 15_000);
  }
});
