/**
 * The writer of an audit log (DESIGN.md section 8, docs/audit.md): one hash chain of JSON lines in
 * a directory (files.ts), written by one process.
 *
 * Guarantees:
 * - each event is written with write(2) when it is emitted (so a crash of the process loses
 *   none); the file is fdatasync'ed at least every `fsyncIntervalMs` while lines were written,
 *   and at close;
 * - a signed checkpoint every `checkpointEvery` events, every `checkpointIntervalMs` while events
 *   came, at rotation and at close; the latest checkpoint's seq and line hash go to `statePath`
 *   (written whole), so `audit verify --state` finds a tail cut even exactly at a checkpoint.
 *   The state is written only after the log is fdatasync'ed, so it is never ahead of the log. At
 *   close this is done before returning; the state of any other checkpoint (every
 *   `checkpointEvery` events, or at rotation) is written by the next periodic sync, its
 *   fdatasync and the state's write on the thread pool, off the event loop, at most one a sync:
 *   so the state may lag the log by up to `fsyncIntervalMs` and the write, and a newer state
 *   always wins. (A state per checkpoint cost the agent's requests about 1.3 ms each on the event
 *   loop, and on the thread pool its fsyncs' journal commits still stopped the loop's appends for
 *   milliseconds.)
 *   Without a signer (no SVID yet) no checkpoint is written, and the count goes on;
 * - a checkpoint is never dated before the one before it (docs/audit.md, "Checkpoint times"): its
 *   time is max(now, the previous checkpoint's), across rotation and reopening (the last
 *   checkpoint the files hold, or the state's when it records a later one), so a clock that
 *   stepped back cannot make `audit verify` refuse it (`audit_checkpoint_time_reversed`); except
 *   where the previous checkpoint's time is past the signer's notAfter (the clock had jumped
 *   forward past it): such a date would never verify, so the clock's time is used and verify
 *   reports that one step back;
 * - the active file is rotated once it reaches `maxFileBytes`, the chain continuing in the next;
 *   the rotated file ends in a checkpoint and is fdatasync'ed before it is renamed;
 * - on open, the chain goes on from the last complete line; a file that ends in a torn line
 *   (power lost mid-write) is left as it is, rotated, and the next file begins with
 *   `audit_recovered` naming it and the torn byte count;
 * - the active file must stay the one in the folder: one removed or replaced under the writer is
 *   noticed within a second, the log turns unhealthy, and a new file goes on with the chain after
 *   an `audit_gap` counting the lines the removed one held (verify shows the missing seqs);
 * - a string longer than a text field holds (65,536 characters), at any depth of an event, is cut
 *   to fit and says so (format/cut.ts): one emitter's over-long field never fails the schema,
 *   which would stop `audit verify` at that line for good;
 * - a write that fails (disk full, I/O error, log removed) makes the log unhealthy (onHealth):
 *   events wait in memory (at most `maxPending`; later ones are counted, then reported by an
 *   `audit_gap` event) and are written in order once a retry succeeds; bytes of a line the failed
 *   write left half-written are cut off first, so the chain never holds a broken line.
 */
import { closeSync, fdatasync, fdatasyncSync, fstatSync, ftruncateSync, openSync, renameSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import { buildCheckpointFields, checkpointPayload, cutLongText, formatLine, TEXT_MAX, type AuditEventType } from "../format/index.ts";
import { ACTIVE_FILE, rotatedName } from "./files.ts";
import { readRecorded, recoverChain } from "./recover.ts";
import type { AgentAuditLog, AuditSigner, Fields } from "./audit.ts";
import { writeAtomic, writeAtomicInBackground } from "../../runtime/atomic-write.ts";

export { NULL_AUDIT, NullAuditLog, type AgentAuditLog, type Audit, type AuditSigner, type Fields } from "./audit.ts";

export interface AuditLogOptions {
  readonly dir: string;
  /** Where the latest checkpoint is recorded; null: nowhere. */
  readonly statePath: string | null;
  signer(): AuditSigner | null;
  readonly checkpointEvery?: number;
  readonly checkpointIntervalMs?: number;
  readonly fsyncIntervalMs?: number;
  readonly maxFileBytes?: number;
  readonly maxPending?: number;
  /** Fields every event carries (instance, node_id), after seq, time and type. */
  readonly base?: Fields;
  readonly now?: () => Date;
  onHealth?(healthy: boolean, error: string | null): void;
  /** After each line written (the exporter wakes up). */
  onWritten?(seq: number): void;
}

/** Field names formatLine writes itself or refuses: an event naming one takes the checked path. */
const SLOW_KEYS = ["seq", "time", "type", "prev"];
const INDEX_KEY = /^\d+$/;
const COMMA = 0x2c;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
/** The lowercase hex digits of each byte value, high and low. */
const HEX_HI = new Uint8Array(256);
const HEX_LO = new Uint8Array(256);
for (let b = 0; b < 256; b++) {
  const h = b.toString(16).padStart(2, "0");
  HEX_HI[b] = h.charCodeAt(0);
  HEX_LO[b] = h.charCodeAt(1);
}
const PREV_KEY = new TextEncoder().encode(',"prev":"');
const LINE_END = new TextEncoder().encode('"}\n');
/** `,"prev":"` + 64 hex digits + `"}\n`. */
const TAIL_BYTES = PREV_KEY.length + 64 + LINE_END.length;

type Tunables = { readonly checkpointEvery: number; readonly checkpointIntervalMs: number; readonly fsyncIntervalMs: number; readonly maxFileBytes: number; readonly maxPending: number };

export const AUDIT_DEFAULTS: Tunables = Object.freeze({ checkpointEvery: 1000, checkpointIntervalMs: 60_000, fsyncIntervalMs: 1000, maxFileBytes: 64 * 1024 * 1024, maxPending: 10_000 });

interface Pending {
  readonly type: AuditEventType;
  readonly fields: Fields;
  readonly time: Date;
}

export class AuditLog implements AgentAuditLog {
  readonly #o: AuditLogOptions & Tunables;
  readonly #now: () => Date;
  #fd: number;
  /** Bytes of the active file that hold complete lines. */
  #size: number;
  #fileFirstSeq: number;
  #seq: number;
  /** The SHA-256 of the last line (what the next line's prev names); its hex made when asked. */
  readonly #headBytes = new Uint8Array(32);
  #headHex: string | null;
  #sinceCheckpoint: number;
  /** The time (ms) of the last checkpoint of the chain: the next is dated no earlier. */
  #checkpointFloor: number;
  #dirty = false;
  #pending: Pending[] = [];
  #dropped = 0;
  #droppedSince: string | null = null;
  #error: string | null = null;
  #closed = false;
  /** Lines of an active file that was removed under the writer, counted in the next audit_gap. */
  #lostLines = 0;
  readonly #timers: ReturnType<typeof setInterval>[] = [];
  /** The base fields as JSON without braces, encoded (null when there are none), and their names. */
  readonly #baseBytes: Uint8Array | null;
  readonly #baseKeys: readonly string[];
  readonly #encoder = new TextEncoder();
  #buf = new Uint8Array(16 * 1024);

  private constructor(o: AuditLogOptions, state: { fd: number; size: number; fileFirstSeq: number; seq: number; head: string; since: number; checkpointMs: number | null }) {
    this.#o = { ...o, ...(o.base !== undefined ? { base: cutLongText(o.base) } : {}), checkpointEvery: o.checkpointEvery ?? AUDIT_DEFAULTS.checkpointEvery, checkpointIntervalMs: o.checkpointIntervalMs ?? AUDIT_DEFAULTS.checkpointIntervalMs, fsyncIntervalMs: o.fsyncIntervalMs ?? AUDIT_DEFAULTS.fsyncIntervalMs, maxFileBytes: o.maxFileBytes ?? AUDIT_DEFAULTS.maxFileBytes, maxPending: o.maxPending ?? AUDIT_DEFAULTS.maxPending };
    this.#now = o.now ?? (() => new Date());
    this.#fd = state.fd;
    this.#size = state.size;
    this.#fileFirstSeq = state.fileFirstSeq;
    this.#seq = state.seq;
    this.#headHex = state.head;
    this.#headBytes.set(Uint8Array.fromHex(state.head));
    this.#sinceCheckpoint = state.since;
    this.#checkpointFloor = state.checkpointMs ?? Number.NEGATIVE_INFINITY;
    const baseBody = this.#o.base === undefined ? "{}" : JSON.stringify(this.#o.base);
    this.#baseBytes = baseBody.length > 2 ? new TextEncoder().encode(baseBody.slice(1, -1)) : null;
    this.#baseKeys = Object.keys(o.base ?? {});
    const every = (ms: number, fn: () => void) => {
      const t = setInterval(fn, ms);
      (t as { unref?: () => void }).unref?.();
      this.#timers.push(t);
    };
    every(this.#o.fsyncIntervalMs, () => this.#fsyncSoon());
    every(this.#o.checkpointIntervalMs, () => {
      if (this.#sinceCheckpoint > 0 && this.#error === null) this.checkpoint();
    });
    every(1000, () => {
      if (this.#error !== null) this.#retry();
      else this.#checkFile();
    });
  }

  /** Opens (or creates) the log in `o.dir` and goes on with its chain (recover.ts). */
  static open(o: AuditLogOptions): AuditLog {
    const r = recoverChain(o.dir);
    // The state records a checkpoint beyond what the files hold: lines were removed while the
    // writer was down. The chain goes on from what is there, and says so first; its next
    // checkpoint is dated no earlier than the recorded one.
    const recorded = o.statePath === null ? null : readRecorded(o.statePath);
    const beyond = recorded !== null && recorded.seq > r.seq ? recorded : null;
    const floor = Math.max(r.checkpointMs ?? Number.NEGATIVE_INFINITY, beyond?.timeMs ?? Number.NEGATIVE_INFINITY);
    const log = new AuditLog(o, { ...r, checkpointMs: Number.isFinite(floor) ? floor : null });
    if (r.recovered !== null) log.emit("audit_recovered", { torn_bytes: r.recovered.torn, file: r.recovered.file });
    if (beyond !== null) {
      const now = (o.now ?? (() => new Date()))().toISOString();
      log.emit("audit_gap", { dropped: beyond.seq - r.seq, since: now, until: now, reason: "log_missing", recorded_seq: beyond.seq });
    }
    return log;
  }

  get healthy(): boolean {
    return this.#error === null;
  }

  get error(): string | null {
    return this.#error;
  }

  /** The seq of the last line written. */
  get seq(): number {
    return this.#seq;
  }

  emit(type: AuditEventType, fields: Fields): void {
    if (this.#closed) return;
    const time = this.#now();
    if (this.#error !== null) return this.#hold({ type, fields, time });
    this.#append(type, fields, time);
  }

  /** The hex of the last line's hash (GENESIS_PREV before the first). */
  get #head(): string {
    return (this.#headHex ??= this.#headBytes.toHex());
  }

  /** Writes a signed checkpoint now (when a signer is at hand); its state follows in the background. */
  checkpoint(): void {
    this.#checkpoint(false);
  }

  #checkpoint(stateNow: boolean): void {
    const signer = this.#o.signer();
    if (signer === null || this.#error !== null) return;
    const now = this.#now();
    // After the clock stepped back: the previous checkpoint's time, while the signer's leaf is still
    // valid then; past its expiry the checkpoint could never verify, so it takes the clock's time and
    // verify shows the step back there, once (docs/audit.md, "Checkpoint times").
    const floor = this.#checkpointFloor;
    const time = now.getTime() < floor && floor <= (signer.notAfterMs ?? Number.POSITIVE_INFINITY) ? new Date(floor) : now;
    const seq = this.#seq + 1;
    const sig = signer.sign(checkpointPayload(seq, time, this.#head, signer.id, this.#sinceCheckpoint));
    const fields = buildCheckpointFields({ signer: signer.id, chain: signer.chain, sig, covers: { seq: this.#seq, hash: this.#head }, events: this.#sinceCheckpoint });
    if (!this.#write("checkpoint", { ...fields }, time)) return;
    this.#sinceCheckpoint = 0;
    this.#checkpointFloor = time.getTime();
    if (this.#o.statePath === null) return;
    const state = `${JSON.stringify({ seq: this.#seq, hash: this.#head, time: time.toISOString() })}\n`;
    if (stateNow) return this.#stateNow(state);
    // Written by the next periodic sync (#fsyncSoon), after its fdatasync.
    this.#statePending = state;
    this.#statePendingGen = ++this.#stateGen;
  }

  /** Each state made takes the next number. */
  #stateGen = 0;
  /** A state numbered at or below this is not renamed into place: a newer one was, or its file was removed. */
  #stateFloor = 0;
  /** The latest state not yet renamed into place (close writes it at once), and its number. */
  #statePending: string | null = null;
  #statePendingGen = 0;
  /** A periodic sync is writing a state: the next one waits, so one in flight always finishes. */
  #stateWriting = false;

  #stateNow(state: string): void {
    this.#stateFloor = ++this.#stateGen;
    this.#statePending = null;
    try {
      // The checkpoint line is on disk before the state names it: never a state ahead of the log.
      fdatasyncSync(this.#fd);
      writeAtomic(this.#o.statePath!, state, 0o600);
    } catch (e) {
      this.#fail(e);
    }
  }

  /** Before the log is closed: a checkpoint over the events not yet under one, its state written at once; with none, the state still waiting written at once. */
  #seal(): void {
    if (this.#sinceCheckpoint > 0) this.#checkpoint(true);
    else if (this.#statePending !== null && this.#statePendingGen > this.#stateFloor && this.#error === null && this.#fd >= 0) this.#stateNow(this.#statePending);
  }

  /** A checkpoint, fdatasync and close: what an orderly stop does. */
  close(): void {
    if (this.#closed) return;
    if (this.#error !== null) this.#retry();
    this.#seal();
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    if (this.#fd < 0) return;
    try {
      fdatasyncSync(this.#fd);
    } catch {
      // reported through health already, or the disk is gone: nothing more to do at exit
    }
    closeSync(this.#fd);
    this.#fd = -1;
  }

  #append(type: AuditEventType, fields: Fields, time: Date): void {
    if (!this.#write(type, fields, time)) return;
    this.#sinceCheckpoint += 1;
    if (this.#sinceCheckpoint >= this.#o.checkpointEvery) this.checkpoint();
    if (this.#size >= this.#o.maxFileBytes) this.#rotate();
  }

  /**
   * Encodes the line of an event, with its newline, into #buf; its length in bytes. The line is
   * formatLine's output for `{ ...base, ...fields }`. The per-event path (every intercepted
   * request's) builds no line string: the head (seq, time, type), the base's JSON (encoded once),
   * the event's own JSON and the tail (prev) are encoded one after another into the kept buffer,
   * the own JSON's braces overwritten by the commas around it. An event that names a base field, a
   * reserved one or an integer-like one goes through formatLine itself, which merges and checks.
   * The sink's tests hold the two equal. Either way a string longer than a text field holds is
   * cut (cutLongText), so the line passes its schema; on the fast path only when the event's
   * JSON is longer than that, which any such string makes it, so a usual event costs one compare.
   */
  #encodeLine(seq: number, time: Date, type: AuditEventType, fields: Fields): number {
    if (this.#needsSlowPath(fields)) {
      const cut = cutLongText(fields);
      const line = `${formatLine(seq, time, type, this.#o.base === undefined ? cut : { ...this.#o.base, ...cut }, this.#head)}\n`;
      this.#room(line.length * 3);
      return this.#encoder.encodeInto(line, this.#buf).written;
    }
    let body = JSON.stringify(fields);
    // A string's JSON is at least as long as the string: a body within TEXT_MAX holds none to cut.
    if (body.length > TEXT_MAX) {
      const cut = cutLongText(fields);
      if (cut !== fields) body = JSON.stringify(cut);
    }
    const head = `{"seq":${seq},"time":"${this.#iso(time)}","type":"${type}",`;
    const base = this.#baseBytes;
    this.#room(3 * (head.length + body.length) + TAIL_BYTES + (base === null ? 0 : base.length + 1));
    const buf = this.#buf;
    let at = this.#encoder.encodeInto(head, buf).written;
    if (base !== null) {
      buf.set(base, at);
      at += base.length;
      buf[at++] = COMMA;
    }
    // buf[at - 1] is a comma
    if (body.length > 2) {
      const n = this.#encoder.encodeInto(body, buf.subarray(at - 1)).written; // its "{" lands on the comma
      buf[at - 1] = COMMA;
      at += n - 2; // at its "}", which the tail overwrites
    } else at -= 1; // no own fields: the tail's comma replaces this one
    // The tail, written in place: the hash's hex straight from its bytes, no string made.
    buf.set(PREV_KEY, at);
    at += PREV_KEY.length;
    const h = this.#headBytes;
    for (let i = 0; i < 32; i++) {
      const b = h[i]!;
      buf[at++] = HEX_HI[b]!;
      buf[at++] = HEX_LO[b]!;
    }
    buf.set(LINE_END, at);
    return at + LINE_END.length;
  }

  /** time.toISOString(), made once per millisecond (events come many to a millisecond under load). */
  #isoMs = Number.NaN;
  #isoText = "";
  #iso(time: Date): string {
    const ms = time.getTime();
    if (ms !== this.#isoMs) {
      this.#isoText = time.toISOString();
      this.#isoMs = ms;
    }
    return this.#isoText;
  }

  #needsSlowPath(fields: Fields): boolean {
    for (const k of SLOW_KEYS) if (k in fields) return true;
    for (const k of this.#baseKeys) if (k in fields) return true;
    for (const k in fields) {
      const c = k.charCodeAt(0);
      if (c >= DIGIT_0 && c <= DIGIT_9 && INDEX_KEY.test(k)) return true;
    }
    return false;
  }

  #room(bytes: number): void {
    if (bytes > this.#buf.length) this.#buf = new Uint8Array(Math.max(bytes, this.#buf.length * 2));
  }

  /** Formats and writes one line; false (and unhealthy, the event held) when the write failed. */
  #write(type: AuditEventType, fields: Fields, time: Date): boolean {
    const seq = this.#seq + 1;
    const n = this.#encodeLine(seq, time, type, fields);
    let bytes = 0;
    try {
      // A short write (a nearly full disk) goes on from where it stopped.
      while (bytes < n) bytes += writeSync(this.#fd, this.#buf, bytes, n - bytes);
    } catch (e) {
      this.#fail(e);
      if (type !== "checkpoint") this.#hold({ type, fields, time });
      return false;
    }
    this.#size += n;
    this.#seq = seq;
    Bun.SHA256.hash(this.#buf.subarray(0, n - 1), this.#headBytes);
    this.#headHex = null;
    this.#dirty = true;
    this.#o.onWritten?.(seq);
    return true;
  }

  #hold(p: Pending): void {
    if (this.#pending.length < this.#o.maxPending) return void this.#pending.push(p);
    this.#dropped += 1;
    this.#droppedSince ??= p.time.toISOString();
  }

  #fail(e: unknown): void {
    const code = (e as { code?: string }).code ?? (e instanceof Error ? e.message : String(e));
    if (this.#error === null) {
      this.#error = code;
      this.#o.onHealth?.(false, code);
    }
  }

  /** Cuts what a failed write left, then writes what waited; healthy again if all went. */
  #retry(): void {
    try {
      if (this.#fd < 0) this.#reopen();
      else ftruncateSync(this.#fd, this.#size);
    } catch {
      return;
    }
    const error = this.#error;
    this.#error = null;
    const waiting = this.#pending;
    this.#pending = [];
    for (let i = 0; i < waiting.length; i++) {
      const p = waiting[i]!;
      this.#append(p.type, p.fields, p.time);
      if (this.#error !== null) {
        this.#pending = this.#pending.concat(waiting.slice(i + 1));
        return;
      }
    }
    if (this.#dropped > 0) {
      const dropped = this.#dropped;
      this.#dropped = 0;
      this.#append("audit_gap", { dropped, since: this.#droppedSince, until: this.#now().toISOString() }, this.#now());
      this.#droppedSince = null;
    }
    if (this.#error === null && error !== null) this.#o.onHealth?.(true, null);
  }

  /** The active file opened again (after a failed rotation, or a removed file): the chain goes on in it. */
  #reopen(): void {
    const fd = openSync(join(this.#o.dir, ACTIVE_FILE), "a", 0o600);
    this.#fd = fd;
    this.#size = fstatSync(fd).size;
    if (this.#size === 0) this.#fileFirstSeq = this.#seq + 1;
    if (this.#lostLines > 0) {
      this.#dropped += this.#lostLines;
      this.#droppedSince ??= this.#now().toISOString();
      this.#lostLines = 0;
    }
  }

  /**
   * The active file must still be the one in the folder: a removed or replaced file (an operator,
   * a log rotator) would take every later event with it. It is closed, the log turns unhealthy,
   * and the retry opens a new one, whose `audit_gap` counts the lines the removed file held.
   */
  #checkFile(): void {
    if (this.#fd < 0 || this.#error !== null || this.#closed) return;
    try {
      const open = fstatSync(this.#fd);
      let same = false;
      try {
        const named = statSync(join(this.#o.dir, ACTIVE_FILE));
        same = named.ino === open.ino && named.dev === open.dev;
      } catch {
        same = false;
      }
      if (same && open.nlink > 0) return;
      this.#lostLines = this.#seq - this.#fileFirstSeq + 1;
      this.#stateFloor = this.#stateGen; // a state waiting or in flight was about the removed file
      closeSync(this.#fd);
      this.#fd = -1;
      this.#fail({ code: "log_removed" });
    } catch (e) {
      this.#fail(e);
    }
  }

  /**
   * The file ends in a checkpoint and is fdatasync'ed before it is renamed; that checkpoint's state
   * is left to the next periodic sync (the file it names is on disk by then), so a rotation, on the
   * event loop, waits for one sync rather than three.
   */
  #rotate(): void {
    if (this.#sinceCheckpoint > 0) this.#checkpoint(false);
    if (this.#error !== null) return;
    try {
      fdatasyncSync(this.#fd);
      closeSync(this.#fd);
      this.#fd = -1; // never a closed number: the next file opened anywhere in the process may get it
      renameSync(join(this.#o.dir, ACTIVE_FILE), join(this.#o.dir, rotatedName(this.#fileFirstSeq)));
      this.#fd = openSync(join(this.#o.dir, ACTIVE_FILE), "a", 0o600);
      this.#size = 0;
      this.#fileFirstSeq = this.#seq + 1;
      this.#dirty = false;
    } catch (e) {
      this.#fail(e);
    }
  }

  /**
   * The periodic sync: the log's fdatasync when lines were written, then, when a checkpoint's state
   * waits, its write (writeAtomicInBackground), all on the thread pool. One state write a second at
   * most: each fsync forces a journal commit, during which the event loop's appends to the log
   * wait (a state per checkpoint, 16 a second under load, stopped it for milliseconds each time).
   */
  #fsyncSoon(): void {
    if (this.#closed || this.#fd < 0) return;
    const gen = this.#statePendingGen;
    const state = !this.#stateWriting && gen > this.#stateFloor ? this.#statePending : null;
    if (!this.#dirty && state === null) return;
    this.#dirty = false;
    const fd = this.#fd;
    if (state === null) {
      return void fdatasync(fd, (e) => {
        if (e !== null && fd === this.#fd) this.#fail(e);
      });
    }
    this.#stateWriting = true;
    const current = () => gen > this.#stateFloor && !this.#closed;
    const done = () => void (this.#stateWriting = false);
    fdatasync(fd, (e) => {
      if (e !== null) {
        done();
        if (fd === this.#fd) this.#fail(e);
        return;
      }
      if (!current()) return done();
      writeAtomicInBackground(this.#o.statePath!, state, 0o600, current).then(
        (wrote) => {
          done();
          if (!wrote) return;
          this.#stateFloor = gen;
          if (this.#statePendingGen === gen) this.#statePending = null;
        },
        (err) => {
          done();
          if (current()) this.#fail(err);
        },
      );
    });
  }
}
