/**
 * For the `audit` command tests: real logs written by the real sink (AuditLog) with checkpoints
 * signed by a node SVID of a test CA, in temporary directories, and the command run through
 * main() with its output captured.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestCa, type TestCa } from "../../test/helpers/test-ca.ts";
import { exportPkcs8Pem } from "../x509/keys.ts";
import { encodePem } from "../x509/pem.ts";
import { AuditLog, type AuditLogOptions, type AuditSigner } from "../audit/sink/audit-log.ts";
import { svidSigner } from "../audit/sink/signer.ts";
import { ACTIVE_FILE, AUDIT_STATE_FILE } from "../audit/sink/files.ts";
import { main } from "./main.ts";

export interface Run {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

export interface Place {
  /** The log's directory: the audit directory, or its server/ folder. */
  readonly dir: string;
  readonly stateDir: string;
  readonly statePath: string;
  readonly active: string;
  open(over?: Partial<AuditLogOptions>): AuditLog;
  /** The global flags naming this place. */
  readonly flags: string[];
}

export interface Kit {
  readonly root: string;
  readonly ca: TestCa;
  readonly signer: AuditSigner;
  /** The CA's root as a PEM file. */
  readonly rootsPem: string;
  /** A fresh instance's places; the log is the agent's, or with `server` the identity server's. */
  place(opts?: { server?: boolean }): Place;
  cleanup(): void;
}

export async function makeKit(label: string): Promise<Kit> {
  const root = mkdtempSync(join(tmpdir(), `tidegate-test-audit-${label}-`));
  const ca = await createTestCa();
  const leaf = await ca.mintLeaf("/tidegate/agent/node-1");
  const signer = svidSigner({ spiffeId: leaf.id.toString(), chain: leaf.chain, keyPem: await exportPkcs8Pem(leaf.privateKey) });
  const rootsPem = join(root, "roots.pem");
  writeFileSync(rootsPem, encodePem("CERTIFICATE", ca.root.der));
  let n = 0;
  return {
    root,
    ca,
    signer,
    rootsPem,
    place(opts = {}) {
      const base = join(root, `p${++n}`);
      const owner = opts.server === true ? "server" : "agent";
      const auditDir = join(base, "log");
      const dir = opts.server === true ? join(auditDir, "server") : auditDir;
      const stateDir = join(base, "state");
      mkdirSync(join(stateDir, owner), { recursive: true });
      const statePath = join(stateDir, owner, AUDIT_STATE_FILE);
      return {
        dir,
        stateDir,
        statePath,
        active: join(dir, ACTIVE_FILE),
        open: (over = {}) => AuditLog.open({ dir, statePath, signer: () => signer, checkpointEvery: 5, fsyncIntervalMs: 60_000, ...over }),
        flags: ["--audit-dir", auditDir, "--state-dir", stateDir, ...(opts.server === true ? ["--server"] : [])],
      };
    },
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
}

export async function run(args: readonly string[]): Promise<Run> {
  let out = "";
  let err = "";
  const code = await main(args, { out: (t) => void (out += t), err: (t) => void (err += t) }, {});
  return { code, out, err };
}

export const connClose = (i: number) => ({ conn_id: `c${i}`, side: "egress", outcome: "closed", bytes_up: i, bytes_down: 2 * i, duration_ms: 1 });

/** The lines of a file (without "\n"), and writing them back. */
export function linesOf(path: string): string[] {
  return readFileSync(path, "utf8").split("\n").slice(0, -1);
}

export function writeLines(path: string, lines: readonly string[]): void {
  writeFileSync(path, lines.map((l) => `${l}\n`).join(""));
}

/** Polls `check` until it returns a value other than undefined, or throws after `ms`. */
export async function eventually<T>(check: () => T | undefined, ms = 10_000, what = "the condition"): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await Bun.sleep(20);
  }
}
