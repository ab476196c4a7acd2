/**
 * The identity server's datastore: what it stores and the operations on it, independent of the
 * database behind it (embedded SQLite now, PostgreSQL for several replicas later).
 *
 * Every method returns a Promise, and fails by rejecting with a StoreError (never by throwing
 * synchronously), so a networked implementation can stand in unchanged. Times are Dates in the API
 * and whole milliseconds since the Unix epoch in storage; a Date's sub-millisecond part does not
 * exist, so nothing is rounded. Records returned are frozen; each read returns fresh Dates.
 *
 * Guarantees every implementation must keep:
 * - `consumeJoinToken` succeeds at most once per token, even with concurrent callers in several
 *   processes: the check and the mark happen in one write transaction.
 * - When `recordIssued` resolves, the record survives a crash of the server process (the caller
 *   records a certificate before it returns the chain).
 * - A duplicate entry (same SPIFFE ID, parent and selector set) is refused, never merged.
 */

export type CertificateKind = "workload" | "node" | "server" | "ca";

export const CERTIFICATE_KINDS: readonly CertificateKind[] = ["workload", "node", "server", "ca"];

/** A registration entry: the one source of workload identities (DESIGN.md section 2). */
export interface RegistrationEntry {
  /** A random UUID assigned by the store. */
  readonly id: string;
  readonly spiffeId: string;
  /** The SPIFFE ID of the node allowed to obtain this identity: spiffe://TD/tidegate/agent/NODE. */
  readonly parentId: string;
  /** SPIRE "type:value" selectors, sorted (by UTF-16 code unit) and without duplicates. */
  readonly selectors: readonly string[];
  readonly ttlSeconds: number;
  /** In the order given, without duplicates. */
  readonly dnsNames: readonly string[];
  readonly createdAt: Date;
  /** 1 at creation; would increase on every update. */
  readonly revision: number;
}

export interface NewRegistrationEntry {
  readonly spiffeId: string;
  readonly parentId: string;
  /** At least one; sorted and deduplicated by the store. */
  readonly selectors: readonly string[];
  /** A positive whole number of seconds. */
  readonly ttlSeconds: number;
  readonly dnsNames?: readonly string[];
  readonly createdAt: Date;
}

export interface EntryFilter {
  readonly parentId?: string;
  readonly spiffeId?: string;
}

/**
 * A one-time join token, known to the store only by the SHA-256 of the token (64 lowercase hex
 * digits). The token itself never reaches the store.
 */
export interface JoinTokenRecord {
  readonly tokenHash: string;
  /** The node the token is bound to: attesting with it yields this node's SVID. */
  readonly nodeName: string;
  readonly createdAt: Date;
  /** The token is expired from this instant on (now >= expiresAt). */
  readonly expiresAt: Date;
  readonly usedAt: Date | null;
}

export interface NewJoinToken {
  readonly tokenHash: string;
  readonly nodeName: string;
  readonly expiresAt: Date;
  readonly now: Date;
}

/** A node that attested, and the node SVID it holds. */
export interface AttestedNode {
  readonly nodeName: string;
  readonly spiffeId: string;
  /** The node SVID's serial, lowercase hex. */
  readonly serial: string;
  readonly notAfter: Date;
  readonly attestedAt: Date;
  readonly updatedAt: Date;
}

/** A certificate the server signed, recorded before its chain is returned. */
export interface IssuedCertificate {
  /** Lowercase hex; unique. */
  readonly serial: string;
  readonly spiffeId: string;
  readonly kind: CertificateKind;
  readonly nodeName: string | null;
  readonly entryId: string | null;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly issuedAt: Date;
}

/** One version of a trust domain's bundle, as served (SPIFFE JWKS text). */
export interface BundleRecord {
  readonly trustDomain: string;
  /** 1 for a trust domain's first bundle, then +1 on every append (the JWKS spiffe_sequence). */
  readonly sequence: number;
  readonly jwks: string;
  readonly createdAt: Date;
}

export interface NewBundle {
  readonly trustDomain: string;
  readonly jwks: string;
  readonly createdAt: Date;
}

export interface Datastore {
  /** Rejects with store_entry_exists for the same spiffeId + parentId + selector set. */
  createEntry(input: NewRegistrationEntry): Promise<RegistrationEntry>;
  getEntry(id: string): Promise<RegistrationEntry | null>;
  /** Ordered by SPIFFE ID, then id. */
  listEntries(filter?: EntryFilter): Promise<RegistrationEntry[]>;
  deleteEntry(id: string): Promise<boolean>;
  countEntries(): Promise<number>;

  /** Rejects with store_token_exists if the hash is already stored. */
  createJoinToken(input: NewJoinToken): Promise<void>;
  getJoinToken(tokenHash: string): Promise<JoinTokenRecord | null>;
  /**
   * Marks the token used and returns its node name, at most once per token. Rejects with
   * store_token_unknown, store_token_used (checked before expiry) or store_token_expired.
   */
  consumeJoinToken(tokenHash: string, now: Date): Promise<string>;
  /** Deletes tokens expired at `now` (used or not); returns how many. */
  pruneJoinTokens(now: Date): Promise<number>;

  /** Inserts or replaces the node's record. */
  upsertNode(node: AttestedNode): Promise<void>;
  getNode(nodeName: string): Promise<AttestedNode | null>;
  /** Ordered by node name. */
  listNodes(): Promise<AttestedNode[]>;
  deleteNode(nodeName: string): Promise<boolean>;

  /** Durable against a crash of the process once resolved; store_serial_exists on a reused serial. */
  recordIssued(cert: IssuedCertificate): Promise<void>;
  getIssued(serial: string): Promise<IssuedCertificate | null>;
  countIssued(): Promise<number>;
  /** Deletes records whose notAfter is before `before`; returns how many. */
  pruneIssued(before: Date): Promise<number>;

  /** Stores the next version of the trust domain's bundle and returns its sequence. */
  appendBundle(input: NewBundle): Promise<number>;
  latestBundle(trustDomain: string): Promise<BundleRecord | null>;
  /** Oldest first. */
  listBundles(trustDomain: string): Promise<BundleRecord[]>;

  getState(key: string): Promise<string | null>;
  setState(key: string, value: string): Promise<void>;

  /** Releases the file (and, for SQLite, the lock that keeps a second server out). Idempotent. */
  close(): Promise<void>;
}
