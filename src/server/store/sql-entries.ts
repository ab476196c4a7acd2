/** Registration entries in SQLite: one row per entry, selectors stored canonical (sorted, unique). */
import { sqliteCode, type SqlConnection, type SqlParams } from "./connection.ts";
import type { EntryFilter, NewRegistrationEntry, RegistrationEntry } from "./datastore.ts";
import { StoreError, quote } from "./errors.ts";
import { canonicalSelectors, dnsNameList, fromMs, parseList, positiveInteger, text, toMs } from "./validate.ts";

interface EntryRow {
  id: string;
  spiffe_id: string;
  parent_id: string;
  selectors: string;
  ttl_seconds: number;
  dns_names: string;
  created_at: number;
  revision: number;
}

const COLUMNS = "id, spiffe_id, parent_id, selectors, ttl_seconds, dns_names, created_at, revision";

function toEntry(r: EntryRow): RegistrationEntry {
  return Object.freeze({
    id: r.id,
    spiffeId: r.spiffe_id,
    parentId: r.parent_id,
    selectors: Object.freeze(parseList(r.selectors)),
    ttlSeconds: r.ttl_seconds,
    dnsNames: Object.freeze(parseList(r.dns_names)),
    createdAt: fromMs(r.created_at),
    revision: r.revision,
  });
}

export function createEntry(db: SqlConnection, input: NewRegistrationEntry): RegistrationEntry {
  const row: EntryRow = {
    id: crypto.randomUUID(),
    spiffe_id: text(input.spiffeId, "spiffeId"),
    parent_id: text(input.parentId, "parentId"),
    selectors: JSON.stringify(canonicalSelectors(input.selectors)),
    ttl_seconds: positiveInteger(input.ttlSeconds, "ttlSeconds"),
    dns_names: JSON.stringify(dnsNameList(input.dnsNames)),
    created_at: toMs(input.createdAt, "createdAt"),
    revision: 1,
  };
  try {
    db.query(
      `INSERT INTO registration_entries (${COLUMNS})
       VALUES ($id, $spiffe_id, $parent_id, $selectors, $ttl_seconds, $dns_names, $created_at, $revision)`,
    ).run(row as unknown as SqlParams);
  } catch (e) {
    if (sqliteCode(e) === "SQLITE_CONSTRAINT_UNIQUE" || sqliteCode(e) === "SQLITE_CONSTRAINT_PRIMARYKEY") {
      throw new StoreError(
        "store_entry_exists",
        `store: an entry for ${quote(row.spiffe_id)} under parent ${quote(row.parent_id)} with selectors ${row.selectors} already exists`,
        { cause: e },
      );
    }
    throw e;
  }
  return toEntry(row);
}

export function getEntry(db: SqlConnection, id: string): RegistrationEntry | null {
  const r = db.query(`SELECT ${COLUMNS} FROM registration_entries WHERE id = $id`).get({ id }) as EntryRow | null;
  return r === null ? null : toEntry(r);
}

export function listEntries(db: SqlConnection, filter: EntryFilter = {}): RegistrationEntry[] {
  // Fixed SQL per filter shape, so each can use its index (an "IS NULL OR" form would not).
  const where: string[] = [];
  const params: SqlParams = {};
  if (filter.parentId !== undefined) {
    where.push("parent_id = $parent_id");
    params.parent_id = filter.parentId;
  }
  if (filter.spiffeId !== undefined) {
    where.push("spiffe_id = $spiffe_id");
    params.spiffe_id = filter.spiffeId;
  }
  const clause = where.length === 0 ? "" : `WHERE ${where.join(" AND ")}`;
  const rows = db.query(`SELECT ${COLUMNS} FROM registration_entries ${clause} ORDER BY spiffe_id, id`).all(params) as EntryRow[];
  return rows.map(toEntry);
}

export function deleteEntry(db: SqlConnection, id: string): boolean {
  return db.query("DELETE FROM registration_entries WHERE id = $id").run({ id }).changes > 0;
}

export function countEntries(db: SqlConnection): number {
  return (db.query("SELECT count(*) AS n FROM registration_entries").get({}) as { n: number }).n;
}
