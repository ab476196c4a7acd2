/**
 * The part of a SQLite connection the record modules use, so that only sqlite.ts imports
 * the SQLite driver; plus the one transaction helper and the mapping of SQLite failures to StoreErrors.
 */
import { StoreError, type StoreErrorCode } from "./errors.ts";

export type SqlValue = string | number | null;
export type SqlParams = Record<string, SqlValue>;

export interface SqlStatement {
  get(params: SqlParams): unknown;
  all(params: SqlParams): unknown[];
  run(params: SqlParams): { changes: number };
}

export interface SqlConnection {
  exec(sql: string): unknown;
  /** A prepared statement, cached by the connection. */
  query(sql: string): SqlStatement;
  readonly inTransaction: boolean;
}

/**
 * Runs `fn` inside BEGIN IMMEDIATE ... COMMIT: the write lock is taken before the first read, so
 * a read-check-write in `fn` cannot interleave with another connection's (in this process or
 * another). Rolls back if `fn` throws.
 */
export function writeTransaction<T>(db: SqlConnection, fn: () => T): T {
  db.exec("BEGIN IMMEDIATE");
  try {
    const result = fn();
    db.exec("COMMIT");
    return result;
  } catch (e) {
    if (db.inTransaction) db.exec("ROLLBACK");
    throw e;
  }
}

/** The SQLite result-code name of a driver error ("SQLITE_BUSY", ...), or "". */
export function sqliteCode(e: unknown): string {
  if (typeof e === "object" && e !== null && "code" in e && typeof e.code === "string") return e.code;
  return "";
}

/**
 * A StoreError for a SQLite failure. `phase` is "open" while the file is being opened (a busy
 * file then means another process holds it) or "use" afterwards. StoreErrors pass through.
 */
export function storeFailure(e: unknown, path: string, phase: "open" | "use", what: string): StoreError {
  if (e instanceof StoreError) return e;
  const sc = sqliteCode(e);
  const p = JSON.stringify(path);
  const detail = e instanceof Error ? e.message : String(e);
  let code: StoreErrorCode;
  let message: string;
  if (sc.startsWith("SQLITE_BUSY") || sc.startsWith("SQLITE_LOCKED")) {
    if (phase === "open") {
      code = "store_locked";
      message = `store: ${p} is locked by another process (is another tidegate server running?)`;
    } else {
      code = "store_busy";
      message = `store: ${what}: ${p} stayed locked by another connection past the busy timeout`;
    }
  } else if (sc.startsWith("SQLITE_CORRUPT") || sc === "SQLITE_NOTADB") {
    code = "store_corrupt";
    message = `store: ${p} is corrupt or not a database (${detail}); refusing to use it, it was left as it is`;
  } else if (sc.startsWith("SQLITE_READONLY")) {
    code = "store_readonly";
    message = `store: ${what}: ${p} is read-only (${detail})`;
  } else if (sc.startsWith("SQLITE_IOERR") || sc.startsWith("SQLITE_CANTOPEN") || sc === "SQLITE_FULL" || sc === "SQLITE_PERM") {
    code = "store_io";
    message = `store: ${what}: cannot read or write ${p} (${detail})`;
  } else {
    code = "store_failed";
    message = `store: ${what} failed on ${p} (${detail})`;
  }
  return new StoreError(code, message, { cause: e });
}
