/**
 * The file-level checks before SQLite touches a datastore file: it is created (empty, mode 0600)
 * only when it does not exist, and an existing file must be a regular file that starts with the
 * SQLite header. Nothing here writes to an existing file.
 */
import { closeSync, mkdirSync, openSync, readSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { StoreError } from "./errors.ts";

/** https://www.sqlite.org/fileformat.html#the_database_header: 16 bytes of magic, 100 of header. */
const MAGIC = "SQLite format 3\0";
const HEADER_SIZE = 100;

function errnoOf(e: unknown): string {
  return typeof e === "object" && e !== null && "code" in e && typeof e.code === "string" ? e.code : "";
}

function ioError(path: string, what: string, e: unknown): StoreError {
  const detail = e instanceof Error ? e.message : String(e);
  return new StoreError("store_io", `store: cannot ${what} ${JSON.stringify(path)} (${detail})`, { cause: e });
}

/**
 * Makes sure `path` is either a new empty file (created here, 0600, its directory 0700 if that
 * was missing) or an existing regular file with a SQLite header. Returns whether it was created.
 * An empty existing file counts as new: SQLite treats it as an empty database.
 */
export function prepareFile(path: string, readonly: boolean): { created: boolean } {
  let size: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new StoreError("store_io", `store: ${JSON.stringify(path)} is not a regular file`);
    size = st.size;
  } catch (e) {
    if (e instanceof StoreError) throw e;
    if (errnoOf(e) !== "ENOENT") throw ioError(path, "stat", e);
    if (readonly) throw new StoreError("store_missing", `store: ${JSON.stringify(path)} does not exist`, { cause: e });
    return createEmpty(path);
  }
  if (size > 0) checkHeader(path, size);
  return { created: false };
}

function createEmpty(path: string): { created: boolean } {
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  } catch (e) {
    throw ioError(path, "create the directory of", e);
  }
  try {
    // "wx": fails if the file appeared meanwhile, so an existing file is never truncated.
    closeSync(openSync(path, "wx", 0o600));
    return { created: true };
  } catch (e) {
    if (errnoOf(e) === "EEXIST") return prepareFile(path, false);
    throw ioError(path, "create", e);
  }
}

function checkHeader(path: string, size: number): void {
  const header = new Uint8Array(HEADER_SIZE);
  let n = 0;
  try {
    const fd = openSync(path, "r");
    try {
      n = readSync(fd, header, 0, HEADER_SIZE, 0);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    throw ioError(path, "read", e);
  }
  const magic = new TextDecoder("latin1").decode(header.subarray(0, MAGIC.length));
  if (size < HEADER_SIZE || n < HEADER_SIZE || magic !== MAGIC) {
    throw new StoreError(
      "store_corrupt",
      `store: ${JSON.stringify(path)} is not a SQLite database (no SQLite header in its first ${HEADER_SIZE} bytes); refusing to use it, it was left as it is`,
    );
  }
}
