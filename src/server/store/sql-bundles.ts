/**
 * Bundle history in SQLite. A trust domain's bundles are numbered 1, 2, 3, ... in the order
 * appended; the number is the served spiffe_sequence.
 */
import { writeTransaction, type SqlConnection } from "./connection.ts";
import type { BundleRecord, NewBundle } from "./datastore.ts";
import { anyText, fromMs, text, toMs } from "./validate.ts";

interface BundleRow {
  trust_domain: string;
  sequence: number;
  jwks: string;
  created_at: number;
}

const COLUMNS = "trust_domain, sequence, jwks, created_at";

function toBundle(r: BundleRow): BundleRecord {
  return Object.freeze({ trustDomain: r.trust_domain, sequence: r.sequence, jwks: r.jwks, createdAt: fromMs(r.created_at) });
}

export function appendBundle(db: SqlConnection, input: NewBundle): number {
  const td = text(input.trustDomain, "trustDomain", 255);
  const jwks = anyText(input.jwks, "jwks");
  const createdAt = toMs(input.createdAt, "createdAt");
  return writeTransaction(db, () => {
    const last = db.query("SELECT max(sequence) AS s FROM bundle_history WHERE trust_domain = $td").get({ td }) as { s: number | null };
    const sequence = (last.s ?? 0) + 1;
    db.query(`INSERT INTO bundle_history (${COLUMNS}) VALUES ($td, $sequence, $jwks, $createdAt)`).run({ td, sequence, jwks, createdAt });
    return sequence;
  });
}

export function latestBundle(db: SqlConnection, trustDomain: string): BundleRecord | null {
  const r = db
    .query(`SELECT ${COLUMNS} FROM bundle_history WHERE trust_domain = $td ORDER BY sequence DESC LIMIT 1`)
    .get({ td: trustDomain }) as BundleRow | null;
  return r === null ? null : toBundle(r);
}

export function listBundles(db: SqlConnection, trustDomain: string): BundleRecord[] {
  const rows = db.query(`SELECT ${COLUMNS} FROM bundle_history WHERE trust_domain = $td ORDER BY sequence`).all({ td: trustDomain }) as BundleRow[];
  return rows.map(toBundle);
}
