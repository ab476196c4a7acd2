/** Attested nodes in SQLite: one row per node name, replaced on every (re-)attestation or renewal. */
import type { SqlConnection } from "./connection.ts";
import type { AttestedNode } from "./datastore.ts";
import { fromMs, serialHex, text, toMs } from "./validate.ts";

interface NodeRow {
  node_name: string;
  spiffe_id: string;
  serial: string;
  not_after: number;
  attested_at: number;
  updated_at: number;
}

const COLUMNS = "node_name, spiffe_id, serial, not_after, attested_at, updated_at";

function toNode(r: NodeRow): AttestedNode {
  return Object.freeze({
    nodeName: r.node_name,
    spiffeId: r.spiffe_id,
    serial: r.serial,
    notAfter: fromMs(r.not_after),
    attestedAt: fromMs(r.attested_at),
    updatedAt: fromMs(r.updated_at),
  });
}

export function upsertNode(db: SqlConnection, node: AttestedNode): void {
  const row: NodeRow = {
    node_name: text(node.nodeName, "nodeName", 255),
    spiffe_id: text(node.spiffeId, "spiffeId"),
    serial: serialHex(node.serial),
    not_after: toMs(node.notAfter, "notAfter"),
    attested_at: toMs(node.attestedAt, "attestedAt"),
    updated_at: toMs(node.updatedAt, "updatedAt"),
  };
  db.query(
    `INSERT OR REPLACE INTO attested_nodes (${COLUMNS})
     VALUES ($node_name, $spiffe_id, $serial, $not_after, $attested_at, $updated_at)`,
  ).run({ ...row });
}

export function getNode(db: SqlConnection, nodeName: string): AttestedNode | null {
  const r = db.query(`SELECT ${COLUMNS} FROM attested_nodes WHERE node_name = $n`).get({ n: nodeName }) as NodeRow | null;
  return r === null ? null : toNode(r);
}

export function listNodes(db: SqlConnection): AttestedNode[] {
  return (db.query(`SELECT ${COLUMNS} FROM attested_nodes ORDER BY node_name`).all({}) as NodeRow[]).map(toNode);
}

export function deleteNode(db: SqlConnection, nodeName: string): boolean {
  return db.query("DELETE FROM attested_nodes WHERE node_name = $n").run({ n: nodeName }).changes > 0;
}
