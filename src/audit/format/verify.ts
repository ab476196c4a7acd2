/**
 * Verifying an audit log (docs/audit.md, "Verification"): the files of one chain in order, each
 * line checked against the one before it, each checkpoint's count, signature and certificate
 * chain, and the agent's last checkpoint (its state) found in the files. Verification stops at
 * the first broken link and reports it (file, 1-based line, seq, code); it never throws for a
 * bad log, only for a bad `state` argument (`audit_bad_state`).
 *
 * Breaks, each an AuditError code, each with its test in verify-tamper.test.ts (named in brackets):
 * - `audit_malformed_line`: a line that is not UTF-8, an empty line, a line parseLine rejects,
 *   or an event that fails its schema.
 * - `audit_torn_line`: a file's last line without "\n", unless the next file's first line is an
 *   audit_recovered event whose torn_bytes is the torn line's byte count and whose file is that
 *   file's name (compared without directories); then a warning, and the chain continues from the
 *   last complete line.
 * - `audit_bad_genesis`: the first line has seq 1 and a prev other than GENESIS_PREV. A first
 *   line with seq N > 1 is accepted with the warning "starts at seq N: earlier files not given".
 * - `audit_seq_gap`: a seq that is not the previous one plus 1 (deleted, inserted, moved line);
 *   a rotated file (`audit-<12 digits>.jsonl`) whose first seq is not the one its name says.
 * - `audit_prev_mismatch`: a prev that is not the SHA-256 of the previous line (edited line).
 * - `audit_checkpoint_covers`, `audit_checkpoint_count`, `audit_checkpoint_signature`,
 *   `audit_checkpoint_chain`: see verify-checkpoint.ts; the count is that of the lines since
 *   the previous checkpoint (at most that plus the lines before the files when none precedes).
 *   With `bundles: null` the chain is not checked against a trust bundle: a warning says so.
 * - `audit_checkpoint_time_reversed`: a checkpoint, its signature and chain good, dated before the
 *   previous checkpoint of the chain (the files given: a first checkpoint has none before it).
 *   Events' times are not compared (the wall clock may step back; the writer clamps checkpoints).
 * - `audit_tail_cut`: `state` given and the files end before its seq (even exactly at an
 *   earlier checkpoint). `audit_state_mismatch`: the line at the state's seq is not a
 *   checkpoint with the state's hash, or the files begin after it (the lines up to the latest
 *   checkpoint were removed).
 * - `audit_empty`: no line in any file.
 * Events after the last checkpoint pass with a warning: no signature covers them yet.
 *
 * Tests: malformed ["not JSON, not UTF-8, empty, or failing its schema", "the whitespace of a line
 * edited"]; torn ["a torn line not recovered...", "a torn line in the last file"]; bad_genesis
 * ["a first line with seq 1..."]; seq_gap ["a line deleted", "a line inserted...", "two lines
 * swapped", "a middle file deleted"]; prev_mismatch ["a field edited"]; covers ["covers another
 * seq/hash"]; count ["a count too low/high", "a line inserted and every later line re-chained"];
 * signature ["a signature over another count", "...by another key", "...with a bit flipped",
 * "a leaf with a P-384 key", "the checkpoint's time edited"]; chain ["a signer other than the
 * leaf's", "a chain from another CA", "a checkpoint dated after the leaf expired", "chain entries
 * that are not certificates"]; time_reversed ["a checkpoint dated before the one before it"];
 * tail_cut ["cut before the last checkpoint", "cut exactly at an earlier checkpoint"];
 * state_mismatch ["the line at the state's seq..."]; empty and bad_state (verify.test.ts,
 * "arguments"). verify.property.test.ts: any one-byte edit is found.
 */
import type { X509BundleSource } from "../../x509/verify.ts";
import { AuditError, auditError, quote, type AuditErrorCode } from "./errors.ts";
import { GENESIS_PREV, parseLine } from "./line.ts";
import { validateEvent, type AuditEventOf } from "./schema.ts";
import { isHex64 } from "./fields.ts";
import { splitFile, type SplitLine } from "./split.ts";
import { checkCovers, checkSignedCheckpoint, type LeafCache } from "./verify-checkpoint.ts";

/** One file of the chain: bytes (preferred: torn lines are measured exactly) or decoded text. */
export interface AuditFile {
  readonly name: string;
  readonly text: string | Uint8Array;
}

export interface AuditState {
  /** The seq of the agent's latest checkpoint line, and the SHA-256 of that line. */
  readonly seq: number;
  readonly hash: string;
}

export interface VerifyInput {
  /** In chain order (the caller sorts them by their first seq). */
  readonly files: readonly AuditFile[];
  readonly bundles: X509BundleSource | null;
  readonly state: AuditState | null;
  readonly now: Date;
}

export interface VerifyBreak {
  readonly file: string;
  /** 1-based line within the file. */
  readonly line: number;
  readonly seq: number | null;
  readonly code: AuditErrorCode;
  readonly message: string;
}

export interface VerifyReport {
  readonly ok: boolean;
  /** Lines verified, checkpoints included. */
  readonly events: number;
  readonly checkpoints: number;
  readonly lastSeq: number | null;
  readonly lastCheckpointSeq: number | null;
  /** Lines after the last checkpoint (all of them when there is none). */
  readonly unsealedTail: number;
  readonly firstBreak: VerifyBreak | null;
  readonly warnings: string[];
  /** The signers of the checkpoints verified, in order of first appearance. */
  readonly signers: string[];
}

const baseName = (name: string) => name.slice(name.lastIndexOf("/") + 1);

function checkState(state: AuditState | null): void {
  if (state === null) return;
  if (!Number.isSafeInteger(state.seq) || state.seq < 1 || !isHex64(state.hash)) {
    throw auditError("audit_bad_state", "state is not {seq: a positive integer, hash: 64 lowercase hex digits}");
  }
}

class Walk {
  events = 0;
  checkpoints = 0;
  firstSeq: number | null = null;
  lastSeq: number | null = null;
  lastHash = GENESIS_PREV;
  lastCheckpointSeq: number | null = null;
  /** The time of the last checkpoint checked, as its toISOString() text (which sorts as the instants do). */
  lastCheckpointTime: string | null = null;
  sinceCheckpoint = 0;
  datedLater = 0;
  atState: { file: string; line: number; hash: string; type: string } | null = null;
  readonly warnings: string[] = [];
  readonly signers: string[] = [];
  readonly cache: LeafCache = new Map();
  /** The file of the first line checked. */
  firstFile: string | null = null;

  constructor(readonly input: VerifyInput) {}

  /** Checks one complete line against the chain so far; throws AuditError on a break. */
  async step(l: SplitLine, where: { file: string; line: number }, seqOut: { seq: number | null }): Promise<void> {
    if (l.text === null) throw auditError("audit_malformed_line", "line is not UTF-8");
    if (l.text === "") throw auditError("audit_malformed_line", "empty line");
    const p = parseLine(l.text);
    seqOut.seq = p.seq;
    try {
      validateEvent(p.event);
    } catch (e) {
      if (e instanceof AuditError) throw auditError("audit_malformed_line", `seq ${p.seq}: ${e.message.replace(/^audit: /, "")}`);
      throw e;
    }
    if (this.lastSeq === null) {
      if (p.seq === 1 && p.prev !== GENESIS_PREV) throw auditError("audit_bad_genesis", "seq 1 has a prev other than 64 zeros");
      if (p.seq !== 1) this.warnings.push(`starts at seq ${p.seq}: earlier files not given`);
      this.firstSeq = p.seq;
      this.firstFile = where.file;
    } else {
      if (p.seq !== this.lastSeq + 1) throw auditError("audit_seq_gap", `seq ${p.seq} follows seq ${this.lastSeq}`);
      if (p.prev !== this.lastHash) throw auditError("audit_prev_mismatch", `seq ${p.seq}: prev is not the hash of the line before it (seq ${this.lastSeq}): that line or this one was edited`);
    }
    if (p.type === "checkpoint") {
      const ev = p.event as AuditEventOf<"checkpoint">;
      checkCovers(p, ev);
      this.checkCount(p.seq, ev.events);
      await checkSignedCheckpoint(p, ev, { bundles: this.input.bundles, cache: this.cache });
      this.checkTimeOrder(p.seq, p.time);
      if (!this.signers.includes(ev.signer)) this.signers.push(ev.signer);
      if (Date.parse(p.time) > this.input.now.getTime()) this.datedLater++;
      this.checkpoints++;
      this.lastCheckpointSeq = p.seq;
      this.lastCheckpointTime = p.time;
      this.sinceCheckpoint = 0;
    } else {
      this.sinceCheckpoint++;
    }
    this.events++;
    this.lastSeq = p.seq;
    this.lastHash = l.hash;
    if (this.input.state?.seq === p.seq) this.atState = { ...where, hash: l.hash, type: p.type };
  }

  /**
   * A checkpoint is dated no earlier than the one before it: the writer clamps its clock to that.
   * Otherwise a key whose certificate has expired could still sign checkpoints dated inside its
   * validity, since each chain is verified at its checkpoint's own time. Events' times are not
   * compared: they are the wall clock's, which may step back.
   */
  checkTimeOrder(seq: number, time: string): void {
    const last = this.lastCheckpointTime;
    if (last !== null && time < last) {
      throw auditError("audit_checkpoint_time_reversed", `checkpoint at seq ${seq} is dated ${time}, before the previous checkpoint (seq ${this.lastCheckpointSeq}, ${last})`);
    }
  }

  checkCount(seq: number, events: number): void {
    const seen = this.sinceCheckpoint;
    // Before the first checkpoint of files that start mid-chain, lines before the files may count too.
    const unseen = this.lastCheckpointSeq === null ? this.firstSeq! - 1 : 0;
    if (events < seen || events > seen + unseen) {
      const expected = unseen === 0 ? `${seen}` : `${seen} to ${seen + unseen}`;
      throw auditError("audit_checkpoint_count", `checkpoint at seq ${seq} counts ${events} events since the previous checkpoint, not ${expected}`);
    }
  }
}

/** See the header. Throws only AuditError `audit_bad_state` (a bad `state` argument). */
/** A rotated file's name says its first seq (`audit-<12 digits>.jsonl`): a file renamed or made up to fill a gap is refused. */
function checkRotatedName(file: string, firstSeq: number | null): void {
  const m = /(?:^|\/)audit-(\d{12})\.jsonl$/.exec(file);
  if (m === null || firstSeq === null) return;
  if (Number(m[1]) !== firstSeq) throw auditError("audit_seq_gap", `file ${quote(file)} is named for seq ${Number(m[1])} but begins at seq ${firstSeq}`);
}

export async function verifyAudit(input: VerifyInput): Promise<VerifyReport> {
  checkState(input.state);
  const w = new Walk(input);
  const report = (firstBreak: VerifyBreak | null): VerifyReport => ({
    ok: firstBreak === null,
    events: w.events,
    checkpoints: w.checkpoints,
    lastSeq: w.lastSeq,
    lastCheckpointSeq: w.lastCheckpointSeq,
    unsealedTail: w.lastSeq === null ? 0 : w.lastSeq - (w.lastCheckpointSeq ?? (w.firstSeq ?? 1) - 1),
    firstBreak,
    warnings: w.warnings,
    signers: w.signers,
  });
  const tornBreak = (t: { file: string; line: number; bytes: number }): VerifyReport =>
    report({ file: t.file, line: t.line, seq: null, code: "audit_torn_line", message: `audit: ${quote(t.file)} ends with a line of ${t.bytes} bytes without its newline` });

  let torn: { file: string; line: number; bytes: number } | null = null;
  let lastFile: { name: string; lines: number } | null = null;
  for (const f of input.files) {
    const split = await splitFile(f.text);
    if (split.lines.length === 0 && split.torn === null) {
      w.warnings.push(`file ${quote(f.name)} is empty`);
      continue;
    }
    for (let i = 0; i < split.lines.length; i++) {
      const l = split.lines[i]!;
      if (torn !== null) {
        if (!isRecovery(l, torn)) return tornBreak(torn);
        w.warnings.push(`${quote(torn.file)} ends with a torn line of ${torn.bytes} bytes, recovered in ${quote(f.name)}`);
        torn = null;
      }
      const seq = { seq: null as number | null };
      try {
        await w.step(l, { file: f.name, line: i + 1 }, seq);
        if (i === 0) checkRotatedName(f.name, seq.seq);
      } catch (e) {
        if (!(e instanceof AuditError)) throw e;
        return report({ file: f.name, line: i + 1, seq: seq.seq, code: e.code, message: e.message });
      }
    }
    if (torn !== null) return tornBreak(torn);
    if (split.torn !== null) torn = { file: f.name, line: split.lines.length + 1, bytes: split.torn.bytes };
    lastFile = { name: f.name, lines: split.lines.length };
  }
  if (torn !== null) return tornBreak(torn);
  if (w.lastSeq === null || lastFile === null) {
    return report({ file: input.files.at(-1)?.name ?? "", line: 0, seq: null, code: "audit_empty", message: "audit: no line in the files given" });
  }
  const cut = checkAgainstState(w, lastFile);
  if (cut !== null) return report(cut);
  addWarnings(w, report(null).unsealedTail);
  return report(null);
}

/** True when `l` is the audit_recovered event that accounts for the torn line `torn`. */
function isRecovery(l: SplitLine, torn: { file: string; bytes: number }): boolean {
  if (l.text === null) return false;
  try {
    const p = parseLine(l.text);
    const file = p.event.file;
    return p.type === "audit_recovered" && p.event.torn_bytes === torn.bytes && typeof file === "string" && baseName(file) === baseName(torn.file);
  } catch {
    return false;
  }
}

function checkAgainstState(w: Walk, last: { name: string; lines: number }): VerifyBreak | null {
  const state = w.input.state;
  if (state === null) return null;
  const lastSeq = w.lastSeq!;
  if (state.seq > lastSeq) {
    return {
      file: last.name,
      line: last.lines + 1,
      seq: lastSeq + 1,
      code: "audit_tail_cut",
      message: `audit: the files end at seq ${lastSeq}, before the checkpoint at seq ${state.seq} the agent's state records: the tail was cut`,
    };
  }
  if (state.seq < w.firstSeq!) {
    // The state names the latest checkpoint: files that begin after it lack every line up to it.
    return {
      file: w.firstFile ?? "",
      line: 1,
      seq: w.firstSeq!,
      code: "audit_state_mismatch",
      message: `audit: the files begin at seq ${w.firstSeq}, after the checkpoint at seq ${state.seq} the agent's state records: the lines up to it are missing`,
    };
  }
  const at = w.atState!;
  if (at.type !== "checkpoint" || at.hash !== state.hash) {
    return {
      file: at.file,
      line: at.line,
      seq: state.seq,
      code: "audit_state_mismatch",
      message: `audit: the line at seq ${state.seq} is not the checkpoint the agent's state records`,
    };
  }
  return null;
}

function addWarnings(w: Walk, unsealed: number): void {
  if (w.checkpoints > 0 && w.input.bundles === null) w.warnings.push("checkpoint chains were not checked against a trust bundle");
  if (w.datedLater > 0) w.warnings.push(`${w.datedLater} checkpoints are dated after ${w.input.now.toISOString()}`);
  if (unsealed === 0) return;
  const what = w.lastCheckpointSeq === null ? `no checkpoint: ${unsealed} events are not signed` : `${unsealed} events after the last checkpoint`;
  w.warnings.push(
    w.input.state === null
      ? `${what}: the agent is running, crashed, or the tail was cut; give --state to tell`
      : `${what}: the agent is running or crashed, or lines after it were cut`,
  );
}
