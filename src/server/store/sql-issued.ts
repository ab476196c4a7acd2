/**
 * Issued certificates in SQLite, one row per serial. A row is committed (in the WAL) before the
 * call returns; see sqlite.ts for what that survives.
 */
import { sqliteCode, type SqlConnection } from "./connection.ts";
import { CERTIFICATE_KINDS, type CertificateKind, type IssuedCertificate } from "./datastore.ts";
import { StoreError, quote } from "./errors.ts";
import { fromMs, serialHex, text, toMs } from "./validate.ts";

interface IssuedRow {
  serial: string;
  spiffe_id: string;
  kind: CertificateKind;
  node_name: string | null;
  entry_id: string | null;
  not_before: number;
  not_after: number;
  issued_at: number;
}

const COLUMNS = "serial, spiffe_id, kind, node_name, entry_id, not_before, not_after, issued_at";

function toIssued(r: IssuedRow): IssuedCertificate {
  return Object.freeze({
    serial: r.serial,
    spiffeId: r.spiffe_id,
    kind: r.kind,
    nodeName: r.node_name,
    entryId: r.entry_id,
    notBefore: fromMs(r.not_before),
    notAfter: fromMs(r.not_after),
    issuedAt: fromMs(r.issued_at),
  });
}

export function recordIssued(db: SqlConnection, cert: IssuedCertificate): void {
  if (!CERTIFICATE_KINDS.includes(cert.kind)) {
    throw new StoreError("store_invalid_record", `store: certificate kind is not one of ${CERTIFICATE_KINDS.join(", ")}: ${quote(String(cert.kind))}`);
  }
  const row: IssuedRow = {
    serial: serialHex(cert.serial),
    spiffe_id: text(cert.spiffeId, "spiffeId"),
    kind: cert.kind,
    node_name: cert.nodeName === null ? null : text(cert.nodeName, "nodeName", 255),
    entry_id: cert.entryId === null ? null : text(cert.entryId, "entryId", 255),
    not_before: toMs(cert.notBefore, "notBefore"),
    not_after: toMs(cert.notAfter, "notAfter"),
    issued_at: toMs(cert.issuedAt, "issuedAt"),
  };
  try {
    db.query(
      `INSERT INTO issued_certificates (${COLUMNS})
       VALUES ($serial, $spiffe_id, $kind, $node_name, $entry_id, $not_before, $not_after, $issued_at)`,
    ).run({ ...row });
  } catch (e) {
    if (sqliteCode(e) === "SQLITE_CONSTRAINT_PRIMARYKEY") {
      throw new StoreError("store_serial_exists", `store: a certificate with serial ${row.serial} is already recorded`, { cause: e });
    }
    throw e;
  }
}

export function getIssued(db: SqlConnection, serial: string): IssuedCertificate | null {
  const r = db.query(`SELECT ${COLUMNS} FROM issued_certificates WHERE serial = $s`).get({ s: serialHex(serial) }) as IssuedRow | null;
  return r === null ? null : toIssued(r);
}

export function countIssued(db: SqlConnection): number {
  return (db.query("SELECT count(*) AS n FROM issued_certificates").get({}) as { n: number }).n;
}

export function pruneIssued(db: SqlConnection, before: Date): number {
  return db.query("DELETE FROM issued_certificates WHERE not_after < $t").run({ t: toMs(before, "before") }).changes;
}
