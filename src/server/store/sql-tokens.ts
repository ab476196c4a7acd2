/**
 * Join tokens in SQLite, known only by their SHA-256. Consuming one is a check-and-mark inside a
 * single BEGIN IMMEDIATE transaction: the write lock is held from the read of the row to the
 * marking of it, so of two consumers (threads or processes) exactly one sees it unused.
 */
import { sqliteCode, writeTransaction, type SqlConnection } from "./connection.ts";
import type { JoinTokenRecord, NewJoinToken } from "./datastore.ts";
import { StoreError, quote } from "./errors.ts";
import { fromMs, text, toMs, tokenHash } from "./validate.ts";

interface TokenRow {
  token_hash: string;
  node_name: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
}

const COLUMNS = "token_hash, node_name, created_at, expires_at, used_at";

function toToken(r: TokenRow): JoinTokenRecord {
  return Object.freeze({
    tokenHash: r.token_hash,
    nodeName: r.node_name,
    createdAt: fromMs(r.created_at),
    expiresAt: fromMs(r.expires_at),
    usedAt: r.used_at === null ? null : fromMs(r.used_at),
  });
}

export function createJoinToken(db: SqlConnection, input: NewJoinToken): void {
  const row = {
    token_hash: tokenHash(input.tokenHash),
    node_name: text(input.nodeName, "nodeName", 255),
    created_at: toMs(input.now, "now"),
    expires_at: toMs(input.expiresAt, "expiresAt"),
  };
  try {
    db.query(
      `INSERT INTO join_tokens (token_hash, node_name, created_at, expires_at, used_at)
       VALUES ($token_hash, $node_name, $created_at, $expires_at, NULL)`,
    ).run(row);
  } catch (e) {
    if (sqliteCode(e).startsWith("SQLITE_CONSTRAINT")) {
      throw new StoreError("store_token_exists", "store: a join token with the same hash already exists", { cause: e });
    }
    throw e;
  }
}

export function getJoinToken(db: SqlConnection, hash: string): JoinTokenRecord | null {
  const r = db.query(`SELECT ${COLUMNS} FROM join_tokens WHERE token_hash = $h`).get({ h: tokenHash(hash) }) as TokenRow | null;
  return r === null ? null : toToken(r);
}

/** The node name the token was bound to; a used token is reported as used even once expired. */
export function consumeJoinToken(db: SqlConnection, hash: string, now: Date): string {
  const h = tokenHash(hash);
  const at = toMs(now, "now");
  return writeTransaction(db, () => {
    const r = db.query(`SELECT ${COLUMNS} FROM join_tokens WHERE token_hash = $h`).get({ h }) as TokenRow | null;
    if (r === null) throw new StoreError("store_token_unknown", "store: the join token is unknown");
    if (r.used_at !== null) {
      throw new StoreError(
        "store_token_used",
        `store: the join token for node ${quote(r.node_name)} was already used at ${fromMs(r.used_at).toISOString()}`,
      );
    }
    if (at >= r.expires_at) {
      throw new StoreError(
        "store_token_expired",
        `store: the join token for node ${quote(r.node_name)} expired at ${fromMs(r.expires_at).toISOString()}`,
      );
    }
    const marked = db.query("UPDATE join_tokens SET used_at = $at WHERE token_hash = $h AND used_at IS NULL").run({ at, h });
    // Cannot happen under the write lock; kept so a broken lock fails closed, not open.
    if (marked.changes !== 1) throw new StoreError("store_token_used", "store: the join token was used concurrently");
    return r.node_name;
  });
}

export function pruneJoinTokens(db: SqlConnection, now: Date): number {
  return db.query("DELETE FROM join_tokens WHERE expires_at <= $at").run({ at: toMs(now, "now") }).changes;
}
