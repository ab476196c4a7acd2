/**
 * The embedded datastore: one SQLite file through bun:sqlite (the only file that imports it).
 *
 * Opening (SqliteDatastore.open) in this order, refusing rather than repairing:
 * 1. the file is created empty with mode 0600 only if it does not exist; an existing file must
 *    start with the SQLite header (store_corrupt otherwise) - checked with plain reads;
 * 2. the exclusive hold: PRAGMA locking_mode=EXCLUSIVE, then BEGIN EXCLUSIVE; COMMIT takes the
 *    file's exclusive lock and keeps it until close(). Another process's connection then gets
 *    SQLITE_BUSY on its first read, after its busy timeout: store_locked. (The lock is a POSIX
 *    advisory lock, released by the kernel when the process dies, so a crash leaves no stale lock.)
 * 3. PRAGMA quick_check (store_corrupt); the tidegate marker, PRAGMA application_id, and the
 *    schema version, PRAGMA user_version (store_foreign, store_too_new);
 * 4. only then the first write: journal_mode=WAL, then the migrations from the file's version.
 * A refused file is closed untouched: steps 1-3 only read.
 *
 * Durability: journal_mode=WAL with synchronous=NORMAL. A commit has written its frames to the
 * WAL file (write(2), into the kernel's page cache) before the call returns, so a committed record
 * survives a crash or SIGKILL of the server process: the next open replays the WAL. It does not
 * survive a crash of the kernel or a power loss before the next checkpoint's fsync (the file stays
 * consistent, the last commits are lost). `synchronous: "full"` fsyncs the WAL on every commit and
 * survives those too, at a cost in issuance rate.
 *
 * Background WAL sync (`walSyncMs`, default 50; 0 turns it off): at most that often, after a
 * write, the WAL file is fdatasync'd on the runtime's thread pool. SQLite's own fsyncs stay where
 * they are, so durability is as above; this only leaves little for the checkpoint's fsync of the
 * WAL to write. A checkpoint runs in the committing call, on the event loop, and that fsync of
 * up to 1,000 pages was half of a 9 ms stall every ~300 issuances (docs/benchmarks.md, "Workload
 * SVID issuance"). A failed background sync changes nothing and is not reported: the
 * checkpoint's own fsync still runs and reports. Pruning, which the server runs every second and
 * which mostly removes nothing, asks for the sync only when it removed rows: an idle server
 * fdatasync'd its WAL once a second for nothing.
 *
 * With the exclusive hold SQLite keeps the WAL index in heap memory (no -shm file). `exclusive:
 * false` opens in the ordinary shared mode instead, for tests of the transactional guarantees
 * across processes and for tools that read while no server runs.
 */
import { Database } from "bun:sqlite";
import { closeSync, constants, fdatasync, openSync } from "node:fs";
import { storeFailure, writeTransaction, type SqlConnection } from "./connection.ts";
import type {
  AttestedNode,
  BundleRecord,
  Datastore,
  EntryFilter,
  IssuedCertificate,
  JoinTokenRecord,
  NewBundle,
  NewJoinToken,
  NewRegistrationEntry,
  RegistrationEntry,
} from "./datastore.ts";
import { StoreError } from "./errors.ts";
import { prepareFile } from "./open-file.ts";
import { checkIntegrity, migrate, recognise, requireCurrent } from "./schema.ts";
import * as bundles from "./sql-bundles.ts";
import * as entries from "./sql-entries.ts";
import * as issued from "./sql-issued.ts";
import * as nodes from "./sql-nodes.ts";
import * as state from "./sql-state.ts";
import * as tokens from "./sql-tokens.ts";

export interface SqliteOpenOptions {
  /** Open without writing: no file creation, no migration, no exclusive hold. */
  readonly readonly?: boolean;
  /** Hold the file exclusively until close (default true; ignored when readonly). */
  readonly exclusive?: boolean;
  /** How long to wait for another connection's lock (default 200 ms). */
  readonly busyTimeoutMs?: number;
  /** "normal" (default) survives a process crash; "full" also an OS crash or power loss. */
  readonly synchronous?: "normal" | "full";
  /** Background fdatasync of the WAL at most this often after writes (default 50 ms; 0: off; ignored with "full"). */
  readonly walSyncMs?: number;
  /** The sync a background WAL sync makes (tests); node:fs fdatasync otherwise. */
  readonly syncFile?: (fd: number, done: (err: Error | null) => void) => void;
}

const DEFAULT_WAL_SYNC_MS = 50;

export class SqliteDatastore implements Datastore {
  readonly path: string;
  readonly readonly: boolean;
  #db: Database | null;

  private constructor(db: Database, path: string, readonly: boolean, walSync: WalSync | null) {
    this.#db = db;
    this.path = path;
    this.readonly = readonly;
    this.#walSync = walSync;
  }

  readonly #walSync: WalSync | null;

  static async open(path: string, options: SqliteOpenOptions = {}): Promise<SqliteDatastore> {
    if (typeof path !== "string" || path.length === 0) throw new StoreError("store_io", "store: the datastore path is empty");
    const readonly = options.readonly ?? false;
    const exclusive = !readonly && (options.exclusive ?? true);
    const busy = options.busyTimeoutMs ?? 200;
    if (!Number.isSafeInteger(busy) || busy < 0) throw new StoreError("store_io", `store: busyTimeoutMs must be a whole number >= 0`);
    prepareFile(path, readonly);
    let db: Database;
    try {
      db = readonly ? new Database(path, { readonly: true, strict: true }) : new Database(path, { readwrite: true, create: false, strict: true });
    } catch (e) {
      throw storeFailure(e, path, "open", "open");
    }
    try {
      db.exec(`PRAGMA busy_timeout = ${busy}`);
      if (exclusive) {
        db.exec("PRAGMA locking_mode = EXCLUSIVE");
        db.exec("BEGIN EXCLUSIVE");
        db.exec("COMMIT");
      }
      const conn: SqlConnection = db;
      checkIntegrity(conn, path);
      const file = recognise(conn, path);
      if (readonly) {
        requireCurrent(file, path);
      } else {
        const mode = (db.query("PRAGMA journal_mode = WAL").get() as { journal_mode: string }).journal_mode;
        if (mode !== "wal") throw new StoreError("store_io", `store: ${JSON.stringify(path)} cannot be switched to WAL mode (got ${mode})`);
        db.exec(`PRAGMA synchronous = ${options.synchronous === "full" ? "FULL" : "NORMAL"}`);
        migrate(conn, file.kind === "empty" ? 0 : file.version);
      }
      db.exec("PRAGMA foreign_keys = ON");
    } catch (e) {
      db.close();
      throw storeFailure(e, path, "open", "open");
    }
    const walSyncMs = options.walSyncMs ?? DEFAULT_WAL_SYNC_MS;
    const walSync = readonly || options.synchronous === "full" || walSyncMs <= 0 ? null : new WalSync(`${path}-wal`, walSyncMs, options.syncFile ?? fdatasync);
    return new SqliteDatastore(db, path, readonly, walSync);
  }

  /**
   * Runs `fn` on the connection. `write`: whether it may write, or, for a write that often changes
   * nothing (the server's pruning, every second), how to tell from its result that it did: only
   * then is the WAL synced.
   */
  #use<T>(what: string, write: boolean | ((out: T) => boolean), fn: (db: SqlConnection) => T): Promise<T> {
    try {
      if (this.#db === null) throw new StoreError("store_closed", `store: ${what}: ${JSON.stringify(this.path)} is closed`);
      if (write !== false && this.readonly) {
        throw new StoreError("store_readonly", `store: ${what}: ${JSON.stringify(this.path)} was opened read-only`);
      }
      const out = fn(this.#db);
      if (write === true || (write !== false && write(out))) this.#walSync?.wrote();
      return Promise.resolve(out);
    } catch (e) {
      return Promise.reject(storeFailure(e, this.path, "use", what));
    }
  }

  createEntry(input: NewRegistrationEntry): Promise<RegistrationEntry> {
    return this.#use("create entry", true, (db) => entries.createEntry(db, input));
  }
  getEntry(id: string): Promise<RegistrationEntry | null> {
    return this.#use("get entry", false, (db) => entries.getEntry(db, id));
  }
  listEntries(filter?: EntryFilter): Promise<RegistrationEntry[]> {
    return this.#use("list entries", false, (db) => entries.listEntries(db, filter));
  }
  deleteEntry(id: string): Promise<boolean> {
    return this.#use("delete entry", true, (db) => entries.deleteEntry(db, id));
  }
  countEntries(): Promise<number> {
    return this.#use("count entries", false, (db) => entries.countEntries(db));
  }

  createJoinToken(input: NewJoinToken): Promise<void> {
    return this.#use("create join token", true, (db) => tokens.createJoinToken(db, input));
  }
  getJoinToken(tokenHash: string): Promise<JoinTokenRecord | null> {
    return this.#use("get join token", false, (db) => tokens.getJoinToken(db, tokenHash));
  }
  consumeJoinToken(tokenHash: string, now: Date): Promise<string> {
    return this.#use("consume join token", true, (db) => tokens.consumeJoinToken(db, tokenHash, now));
  }
  pruneJoinTokens(now: Date): Promise<number> {
    return this.#use("prune join tokens", (pruned) => pruned > 0, (db) => tokens.pruneJoinTokens(db, now));
  }

  upsertNode(node: AttestedNode): Promise<void> {
    return this.#use("upsert node", true, (db) => nodes.upsertNode(db, node));
  }
  getNode(nodeName: string): Promise<AttestedNode | null> {
    return this.#use("get node", false, (db) => nodes.getNode(db, nodeName));
  }
  listNodes(): Promise<AttestedNode[]> {
    return this.#use("list nodes", false, (db) => nodes.listNodes(db));
  }
  deleteNode(nodeName: string): Promise<boolean> {
    return this.#use("delete node", true, (db) => nodes.deleteNode(db, nodeName));
  }

  /**
   * Group commit: the records asked for while the event loop is busy are written in one
   * transaction at the next turn, and each promise resolves only after that COMMIT, so "recorded
   * before the chain is returned" holds as before while a burst costs one commit, not one each.
   * If the batch fails (one duplicate serial, say), each record is retried on its own so only
   * the bad one is refused.
   */
  recordIssued(cert: IssuedCertificate): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#issuedQueue.push({ cert, resolve, reject });
      if (this.#issuedQueue.length === 1) setImmediate(() => this.#flushIssued());
    });
  }

  #issuedQueue: { cert: IssuedCertificate; resolve: () => void; reject: (e: unknown) => void }[] = [];

  #flushIssued(): void {
    const batch = this.#issuedQueue;
    this.#issuedQueue = [];
    if (batch.length === 0) return;
    const one = (p: (typeof batch)[number]) =>
      this.#use("record issued certificate", true, (db) => issued.recordIssued(db, p.cert)).then(p.resolve, p.reject);
    if (batch.length === 1 || this.#db === null || this.readonly) {
      for (const p of batch) void one(p);
      return;
    }
    try {
      writeTransaction(this.#db, () => {
        for (const p of batch) issued.recordIssued(this.#db!, p.cert);
      });
    } catch {
      for (const p of batch) void one(p);
      return;
    }
    this.#walSync?.wrote();
    for (const p of batch) p.resolve();
  }
  getIssued(serial: string): Promise<IssuedCertificate | null> {
    return this.#use("get issued certificate", false, (db) => issued.getIssued(db, serial));
  }
  countIssued(): Promise<number> {
    return this.#use("count issued certificates", false, (db) => issued.countIssued(db));
  }
  pruneIssued(before: Date): Promise<number> {
    return this.#use("prune issued certificates", (pruned) => pruned > 0, (db) => issued.pruneIssued(db, before));
  }

  appendBundle(input: NewBundle): Promise<number> {
    return this.#use("append bundle", true, (db) => bundles.appendBundle(db, input));
  }
  latestBundle(trustDomain: string): Promise<BundleRecord | null> {
    return this.#use("get latest bundle", false, (db) => bundles.latestBundle(db, trustDomain));
  }
  listBundles(trustDomain: string): Promise<BundleRecord[]> {
    return this.#use("list bundles", false, (db) => bundles.listBundles(db, trustDomain));
  }

  getState(key: string): Promise<string | null> {
    return this.#use("get state", false, (db) => state.getState(db, key));
  }
  setState(key: string, value: string): Promise<void> {
    return this.#use("set state", true, (db) => state.setState(db, key, value));
  }

  /** Checkpoints the WAL into the file and releases the lock. */
  close(): Promise<void> {
    this.#flushIssued();
    const db = this.#db;
    this.#db = null;
    this.#walSync?.stop();
    if (db === null) return Promise.resolve();
    try {
      db.close();
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(storeFailure(e, this.path, "use", "close"));
    }
  }
}

/**
 * The background WAL sync: `wrote()` marks the WAL dirty; a timer, running only while there is
 * something to sync, fdatasyncs it at most every `everyMs` (one sync at a time). The WAL is opened
 * read-only on first use (fdatasync needs no write access; never through a link) and closed by
 * stop().
 */
class WalSync {
  #fd: number | null = null;
  #dirty = false;
  #busy = false;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #stopped = false;

  constructor(
    readonly walPath: string,
    readonly everyMs: number,
    readonly syncFile: (fd: number, done: (err: Error | null) => void) => void,
  ) {}

  wrote(): void {
    this.#dirty = true;
    if (this.#timer === null && !this.#busy && !this.#stopped) this.#arm();
  }

  #arm(): void {
    this.#timer = setTimeout(() => this.#tick(), this.everyMs);
    this.#timer.unref?.();
  }

  #tick(): void {
    this.#timer = null;
    if (this.#stopped || !this.#dirty) return;
    try {
      this.#fd ??= openSync(this.walPath, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch {
      return; // no WAL file (yet): nothing to sync; the next write arms the timer again
    }
    this.#dirty = false;
    this.#busy = true;
    this.syncFile(this.#fd, () => {
      this.#busy = false;
      if (this.#stopped) this.#close();
      else if (this.#dirty) this.#arm();
    });
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    if (!this.#busy) this.#close();
  }

  #close(): void {
    if (this.#fd === null) return;
    try {
      closeSync(this.#fd);
    } catch {
      // already closed
    }
    this.#fd = null;
  }
}
