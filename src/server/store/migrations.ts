/**
 * The versioned schema of the SQLite datastore.
 *
 * A file's version is `PRAGMA user_version`; it is a tidegate file when `PRAGMA application_id` is
 * APPLICATION_ID (both live in the database header, so they change in the same transaction as the
 * tables). Step N takes a file from version N-1 to N; steps are applied in order, each in its own
 * transaction, from the file's version up. A step is never edited once released: changes are new
 * steps appended to the list.
 *
 * Times are INTEGER milliseconds since the Unix epoch; lists are JSON arrays of strings.
 */

export interface Migration {
  readonly version: number;
  readonly description: string;
  readonly sql: string;
}

/** "TIDG": marks the file as tidegate's (see https://www.sqlite.org/pragma.html#pragma_application_id). */
export const APPLICATION_ID = 0x54494447;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "registration entries, join tokens, attested nodes, issued certificates, bundles, state",
    sql: `
CREATE TABLE registration_entries (
  id          TEXT PRIMARY KEY,
  spiffe_id   TEXT NOT NULL,
  parent_id   TEXT NOT NULL,
  selectors   TEXT NOT NULL,
  ttl_seconds INTEGER NOT NULL CHECK (ttl_seconds > 0),
  dns_names   TEXT NOT NULL,
  created_at  INTEGER NOT NULL,
  revision    INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX registration_entries_identity ON registration_entries (spiffe_id, parent_id, selectors);
CREATE INDEX registration_entries_parent ON registration_entries (parent_id);

CREATE TABLE join_tokens (
  token_hash TEXT PRIMARY KEY,
  node_name  TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at    INTEGER
) STRICT, WITHOUT ROWID;

CREATE TABLE attested_nodes (
  node_name   TEXT PRIMARY KEY,
  spiffe_id   TEXT NOT NULL,
  serial      TEXT NOT NULL,
  not_after   INTEGER NOT NULL,
  attested_at INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE issued_certificates (
  serial     TEXT PRIMARY KEY,
  spiffe_id  TEXT NOT NULL,
  kind       TEXT NOT NULL CHECK (kind IN ('workload', 'node', 'server', 'ca')),
  node_name  TEXT,
  entry_id   TEXT,
  not_before INTEGER NOT NULL,
  not_after  INTEGER NOT NULL,
  issued_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX issued_certificates_not_after ON issued_certificates (not_after);

CREATE TABLE bundle_history (
  trust_domain TEXT NOT NULL,
  sequence     INTEGER NOT NULL CHECK (sequence > 0),
  jwks         TEXT NOT NULL,
  created_at   INTEGER NOT NULL,
  PRIMARY KEY (trust_domain, sequence)
) STRICT, WITHOUT ROWID;

CREATE TABLE server_state (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT, WITHOUT ROWID;
`,
  },
];

/** The schema version this code writes and reads. */
export const LATEST_VERSION: number = MIGRATIONS.length;
