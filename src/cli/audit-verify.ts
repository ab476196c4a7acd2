/**
 * `tidegate audit verify` (docs/audit.md, "Commands" and "Verification"): reads the files of one
 * chain and runs verifyAudit (src/audit/format/verify.ts) over them, with the trust bundle and
 * state of ./audit-trust.ts, then prints its report.
 *
 * Reading a live log: the agent may append, or rotate, while the files are read. The state is
 * read before the files (the agent records a checkpoint only after writing it, so the files read
 * afterwards hold it); the directory is listed again after reading, and the whole verification
 * is done again (up to 5 times) when a file rotated meanwhile or the active file ended in half a
 * line. Each file is read when the verifier reaches it and released after, so memory grows with
 * the largest file, not the whole log.
 */
import { UsageError } from "./usage-error.ts";
import { closeSync, readFileSync } from "node:fs";
import { basename } from "node:path";
import { verifyAudit, type AuditFile, type VerifyReport } from "../audit/format/index.ts";
import { ACTIVE_FILE, AuditFileError, openLogFile } from "../audit/sink/files.ts";
import type { Output } from "./command.ts";
import { dirSources, type LogSource } from "./audit-files.ts";
import type { StateRecord, Trust } from "./audit-trust.ts";

export interface VerifyRun {
  readonly report: VerifyReport;
  readonly files: readonly string[];
  /** The SPIFFE IDs that signed the checkpoints verified, in order of first appearance. */
  readonly signers: readonly string[];
}

interface Pass {
  readonly run: VerifyRun;
  /** The files read were not those of one moment: read again. */
  readonly unsteady: boolean;
}

/** One verification of `sources`; `liveDir`: the directory they were listed from, when live. */
async function pass(sources: readonly LogSource[], trust: Trust, state: StateRecord | null, now: Date, liveDir: string | null): Promise<Pass> {
  const live = liveDir !== null;
  let unsteady = false;
  const files: AuditFile[] = sources.map((s) => ({
    name: s.name,
    get text(): Uint8Array {
      let bytes: Buffer;
      try {
        const fd = openLogFile(s.path);
        try {
          bytes = readFileSync(fd);
        } finally {
          closeSync(fd);
        }
      } catch (e) {
        // Gone since it was listed: only a rotation does that to a live log. Anything else (a
        // file that cannot be read) is never taken as empty: a check that cannot be done is not skipped.
        if (e instanceof AuditFileError) throw e;
        if (!(live && (e as { code?: string }).code === "ENOENT")) throw new UsageError(`cannot read ${s.path}: ${(e as { code?: string }).code ?? String(e)}`);
        unsteady = true;
        bytes = Buffer.alloc(0);
      }
      const first = /^\{"seq":(\d+),/.exec(bytes.subarray(0, 64).toString("latin1"));
      if (live && first !== null && Number(first[1]) !== s.firstSeq) unsteady = true;
      return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    },
  }));
  const report = await verifyAudit({ files, bundles: trust.bundles, state: state === null ? null : { seq: state.seq, hash: state.hash }, now });
  if (live) {
    const again = dirSources(liveDir);
    const key = (l: readonly LogSource[]) => l.map((s) => `${s.path}@${s.firstSeq}`).join("|");
    if (key(again) !== key(sources)) unsteady = true;
    const b = report.firstBreak;
    if (b !== null && b.code === "audit_torn_line" && basename(b.file) === ACTIVE_FILE) unsteady = true;
  }
  // The signers of the checkpoints verified (never a text search of the files: a forged line may name anyone).
  return { run: { report, files: sources.map((s) => s.name), signers: report.signers }, unsteady };
}

/**
 * Verifies `explicit` files (already in chain order), or else the files of `dir`, read again as
 * the header says while the log moves under the reader.
 */
export async function verifyFiles(opts: { dir: string; explicit: readonly LogSource[] | null; trust: Trust; state: StateRecord | null; now: () => Date }): Promise<VerifyRun> {
  if (opts.explicit !== null) return (await pass(opts.explicit, opts.trust, opts.state, opts.now(), null)).run;
  let last: Pass | null = null;
  for (let attempt = 0; attempt < 5; attempt++) {
    if (attempt > 0) await Bun.sleep(20 * attempt);
    const sources = dirSources(opts.dir);
    if (sources.length === 0) return (await pass([], opts.trust, opts.state, opts.now(), null)).run;
    last = await pass(sources, opts.trust, opts.state, opts.now(), opts.dir);
    if (!last.unsteady) return last.run;
  }
  const run = last!.run;
  return { ...run, report: { ...run.report, warnings: [...run.report.warnings, "the log kept changing while it was read (5 tries): the report is of the last try"] } };
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/**
 * Checkpoints signed by anyone but `signer` break the run: any SVID that chains to the bundle
 * could otherwise sign a made-up log (another node's, a compromised workload's). Null: not pinned.
 */
export function pinSigner(run: VerifyRun, signer: string | null): VerifyRun {
  if (signer === null || run.report.firstBreak !== null) return run;
  const other = run.signers.find((s) => s !== signer);
  if (other === undefined) return run;
  const firstBreak = { file: run.files[0] ?? "", line: 0, seq: null, code: "audit_checkpoint_chain" as const, message: `audit: a checkpoint is signed by ${other}, not by ${signer} (the node whose log this is; --signer names another)` };
  return { ...run, report: { ...run.report, ok: false, firstBreak } };
}

/** The `unsealed` row: what no signed checkpoint covers, said truly for a log with no event or no checkpoint. */
function unsealedRow(r: VerifyReport): string {
  if (r.events === 0 || r.checkpoints === 0) return `${plural(r.events, "event")}, none under a signed checkpoint`;
  return r.unsealedTail === 0 ? "none: every event is under a signed checkpoint" : `${plural(r.unsealedTail, "event")} after the last checkpoint`;
}

/** The human report: a summary on stdout, warnings on stderr, then the verdict on stdout. */
export function printRun(run: VerifyRun, ctx: { trust: Trust; state: StateRecord | null; where: string }, io: Output): void {
  const r = run.report;
  const rows: [string, string][] = [];
  rows.push(["files", `${plural(run.files.length, "file")} ${ctx.where}`]);
  const range = r.lastSeq === null ? "" : ` (seq ${r.lastSeq - r.events + 1} to ${r.lastSeq})`;
  rows.push(["events", `${r.events}${range}${r.firstBreak === null ? "" : ", verified before the break"}`]);
  rows.push(["checkpoints", r.checkpoints === 0 ? "none" : `${r.checkpoints}, the last at seq ${r.lastCheckpointSeq}`]);
  rows.push(["unsealed", unsealedRow(r)]);
  rows.push(["signers", run.signers.length === 0 ? "none" : run.signers.join(", ")]);
  rows.push(["trust bundle", ctx.trust.bundleFrom ?? "none: checkpoint certificates checked against their own keys only"]);
  rows.push(["state", ctx.state === null ? "none" : `${ctx.state.path}: the checkpoint at seq ${ctx.state.seq}`]);
  io.out(rows.map(([k, v]) => `${k.padEnd(12)} ${v}`).join("\n") + "\n");
  for (const w of r.warnings) io.err(`warning: ${w}\n`);
  if (ctx.trust.bundles === null && r.checkpoints > 0) {
    io.err("warning: give --bundle FILE (the trust domain's roots) to check who signed the checkpoints\n");
  }
  const b = r.firstBreak;
  if (b === null) {
    // An unkeyed SHA-256 chain proves order, not authorship: without a checkpoint, anyone able to write the log could have rebuilt it.
    const unsigned = r.checkpoints === 0 ? ", but unsigned: no checkpoint vouches for these events, and anyone able to write the log could have rebuilt the chain" : "";
    io.out(`ok: the chain is intact${r.lastSeq === null ? "" : ` up to seq ${r.lastSeq}`}${unsigned}\n`);
    return;
  }
  const where = b.line > 0 ? `${b.file} line ${b.line}` : b.file || ctx.where;
  io.out(`BROKEN: ${where}${b.seq === null ? "" : ` (seq ${b.seq})`}: ${b.code}: ${b.message.replace(/^audit: /, "")}\n`);
}

/** The `--json` form: the VerifyReport, with the files read and the signers beside it. */
export function jsonRun(run: VerifyRun, ctx: { trust: Trust; state: StateRecord | null }): string {
  const state = ctx.state === null ? null : { path: ctx.state.path, seq: ctx.state.seq, hash: ctx.state.hash };
  return JSON.stringify({ ...run.report, files: run.files, signers: run.signers, bundle: ctx.trust.bundleFrom, state }, null, 2) + "\n";
}
