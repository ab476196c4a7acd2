/**
 * Recognising a datastore file and bringing its schema up to date. A file is refused, never
 * re-initialised, when it fails SQLite's quick_check, belongs to another application, or has a
 * schema newer than this code.
 */
import { writeTransaction, type SqlConnection } from "./connection.ts";
import { StoreError } from "./errors.ts";
import { APPLICATION_ID, LATEST_VERSION, MIGRATIONS } from "./migrations.ts";

/** PRAGMA quick_check: the b-trees, free list and record formats (not index contents). */
export function checkIntegrity(db: SqlConnection, path: string): void {
  const rows = db.query("PRAGMA quick_check(5)").all({}) as { quick_check: string }[];
  const problems = rows.map((r) => r.quick_check);
  if (problems.length !== 1 || problems[0] !== "ok") {
    throw new StoreError(
      "store_corrupt",
      `store: ${JSON.stringify(path)} failed SQLite's integrity check (${problems.join("; ").slice(0, 300)}); refusing to use it, it was left as it is`,
    );
  }
}

export type FileKind = { kind: "empty" } | { kind: "tidegate"; version: number };

/** What the (integrity-checked) file holds; throws store_foreign or store_too_new. */
export function recognise(db: SqlConnection, path: string): FileKind {
  const appId = (db.query("PRAGMA application_id").get({}) as { application_id: number }).application_id;
  const version = (db.query("PRAGMA user_version").get({}) as { user_version: number }).user_version;
  const objects = (db.query("SELECT count(*) AS n FROM sqlite_schema").get({}) as { n: number }).n;
  const p = JSON.stringify(path);
  if (appId === APPLICATION_ID) {
    if (version > LATEST_VERSION) {
      throw new StoreError(
        "store_too_new",
        `store: ${p} has schema version ${version}, newer than this tidegate knows (${LATEST_VERSION}); use a newer tidegate`,
      );
    }
    return { kind: "tidegate", version };
  }
  if (appId === 0 && version === 0 && objects === 0) return { kind: "empty" };
  const whose = appId === 0 ? "it has no tidegate marker" : `its application id is 0x${(appId >>> 0).toString(16)}`;
  throw new StoreError(
    "store_foreign",
    `store: ${p} is a SQLite database of another application (${whose}, ${objects} schema objects); refusing to use it, it was left as it is`,
  );
}

/** Applies every step after `from`, in order, each in its own transaction with its version. */
export function migrate(db: SqlConnection, from: number): void {
  for (const step of MIGRATIONS) {
    if (step.version <= from) continue;
    writeTransaction(db, () => {
      db.exec(step.sql);
      db.exec(`PRAGMA user_version = ${step.version}`);
      db.exec(`PRAGMA application_id = ${APPLICATION_ID}`);
    });
  }
}

/** A read-only open needs the schema this code reads: no migration is possible. */
export function requireCurrent(file: FileKind, path: string): void {
  const version = file.kind === "empty" ? 0 : file.version;
  if (version < LATEST_VERSION) {
    throw new StoreError(
      "store_outdated",
      `store: ${JSON.stringify(path)} has schema version ${version}, this tidegate reads ${LATEST_VERSION}; open it read-write once to migrate`,
    );
  }
}
