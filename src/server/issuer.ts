/**
 * What the agent-facing routes do, independent of HTTP: join-token attestation, node SVID renewal,
 * sync, and workload SVID issuance (docs/server-api.md).
 *
 * Guaranteed:
 * - a join token is looked up by its SHA-256 only, and consumed (atomically, once) only after its
 *   CSR passed every check, so a rejected request leaves the token usable and nothing stored lost;
 * - a node obtains workload SVIDs only for entries whose parent_id is its own node ID; any other
 *   entry is refused (403 entry_not_for_node) and logged, whatever the agent asks;
 * - every certificate is recorded in the datastore (durable) before its chain is returned.
 */
import { createHash } from "node:crypto";
import type { Logger } from "../runtime/log.ts";
import { SpiffeId, type TrustDomain } from "../spiffe/index.ts";
import type { Datastore } from "./store/index.ts";
import type { ServerSettings } from "./config.ts";
import { ApiError } from "./errors.ts";
import { nodeId } from "./ids.ts";
import type { ServedBundle } from "./bundle-state.ts";
import type { FederatedBundle } from "./federation.ts";
import { chainJson, csrBytes, entryJson, type EntryJson } from "./wire.ts";
import type { RateLimiter } from "./rate-limit.ts";
import type { AuditGate } from "./audit-gate.ts";

/** The CA operations the issuer needs (src/ca's CaManager). */
export interface CsrMinter {
  mintFromCsr(opts: { csr: Uint8Array; id: SpiffeId; ttlSeconds: number; now: Date; dnsNames?: readonly string[] }): Promise<{
    readonly chain: readonly Uint8Array[];
    readonly serial: string;
    readonly notBefore: Date;
    readonly notAfter: Date;
  }>;
}

export interface IssuerDeps {
  readonly trustDomain: TrustDomain;
  readonly settings: ServerSettings;
  readonly store: Datastore;
  readonly ca: CsrMinter;
  readonly logger: Logger;
  readonly now: () => Date;
  /** The bundle as currently served. */
  readonly bundle: () => ServedBundle;
  /** The federated trust domains' bundles agents get now (federation.ts); none by default. */
  readonly federated?: () => readonly FederatedBundle[];
  readonly svidLimiter: RateLimiter;
  /** Refuses issuance while the audit log cannot be written (audit-gate.ts); none: never. */
  readonly auditGate?: AuditGate;
}

/** A federated bundle in a sync answer (docs/server-api.md). */
export interface FederatedJson {
  trust_domain: string;
  bundle: unknown;
  expires_at: string;
}

export interface NodeSvidAnswer {
  node: string;
  spiffe_id: string;
  svid: string[];
  bundle: unknown;
}

export function tokenHash(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/**
 * IDs parsed per issuance, kept by their text (parsing is pure, a SpiffeId immutable): building
 * them anew on every POST /v1/svid made about 3 KB of garbage per issuance (measured; the CA's
 * minting makes some 13 KB), so more GC pauses.
 * Emptied when full, so no stream of names can grow it without bound.
 */
const MAX_CACHED_IDS = 10_000;
function remember<V>(cache: Map<string, V>, key: string, value: V): V {
  if (cache.size >= MAX_CACHED_IDS) cache.clear();
  cache.set(key, value);
  return value;
}

export class Issuer {
  readonly #d: IssuerDeps;
  /** Node name -> its node ID's text. */
  readonly #callerIds = new Map<string, string>();
  /** An entry's spiffe_id text -> the parsed ID. */
  readonly #entryIds = new Map<string, SpiffeId>();

  constructor(deps: IssuerDeps) {
    this.#d = deps;
  }

  /** POST /v1/attest/join-token. `source` is the caller's address, for the log. */
  async attestJoinToken(token: string, csr: string, source: string): Promise<NodeSvidAnswer> {
    const d = this.#d;
    const now = d.now();
    const hash = tokenHash(token);
    const record = await d.store.getJoinToken(hash);
    if (record === null) throw new ApiError("token_unknown", "server: the join token is not known");
    if (record.usedAt !== null) throw new ApiError("token_used", "server: the join token was already used");
    if (now.getTime() >= record.expiresAt.getTime()) throw new ApiError("token_expired", `server: the join token expired at ${record.expiresAt.toISOString()}`);
    const node = record.nodeName;
    const id = nodeId(d.trustDomain, node);
    d.auditGate?.("join-token attestation"); // before the token is consumed: it stays usable
    const minted = await d.ca.mintFromCsr({ csr: csrBytes(csr), id, ttlSeconds: d.settings.svid.nodeTtlSeconds, now });
    await d.store.consumeJoinToken(hash, now);
    const answer = await this.#keepNodeSvid(node, id, minted, now, now);
    d.logger.info("node_attested", { node, spiffe_id: id.toString(), serial: minted.serial, not_after: minted.notAfter.toISOString(), source });
    return answer;
  }

  /** POST /v1/node/renew by an authenticated node; recreates a node record the server lost. */
  async renewNode(node: string, csr: string): Promise<NodeSvidAnswer> {
    const d = this.#d;
    const now = d.now();
    const id = nodeId(d.trustDomain, node);
    d.auditGate?.("node svid renewal");
    const minted = await d.ca.mintFromCsr({ csr: csrBytes(csr), id, ttlSeconds: d.settings.svid.nodeTtlSeconds, now });
    const previous = await d.store.getNode(node);
    const answer = await this.#keepNodeSvid(node, id, minted, now, previous?.attestedAt ?? now);
    d.logger.info(previous !== null ? "node_renewed" : "node_reattested", { node, spiffe_id: id.toString(), serial: minted.serial, not_after: minted.notAfter.toISOString() });
    return answer;
  }

  async #keepNodeSvid(
    node: string,
    id: SpiffeId,
    minted: Awaited<ReturnType<CsrMinter["mintFromCsr"]>>,
    now: Date,
    /** When the node first attested: now for a join, the stored time for a renewal. */
    attestedAt: Date,
  ): Promise<NodeSvidAnswer> {
    const d = this.#d;
    await d.store.recordIssued({
      serial: minted.serial,
      spiffeId: id.toString(),
      kind: "node",
      nodeName: node,
      entryId: null,
      notBefore: minted.notBefore,
      notAfter: minted.notAfter,
      issuedAt: now,
    });
    await d.store.upsertNode({
      nodeName: node,
      spiffeId: id.toString(),
      serial: minted.serial,
      notAfter: minted.notAfter,
      attestedAt,
      updatedAt: now,
    });
    return { node, spiffe_id: id.toString(), svid: chainJson(minted.chain), bundle: d.bundle().jwks };
  }

  /**
   * GET /v1/sync: the entries parented to the node, the bundle, and each federated trust domain's
   * bundle with the time after which the agent must stop trusting it (its maximum age).
   */
  async sync(node: string): Promise<{ node: string; entries: EntryJson[]; bundle: unknown; bundle_sequence: number; federated: FederatedJson[] }> {
    const d = this.#d;
    if ((await d.store.getNode(node)) === null) {
      throw new ApiError("node_unknown", `server: node ${JSON.stringify(node)} is not known to the server (renew the node SVID to re-attest)`);
    }
    const entries = await d.store.listEntries({ parentId: nodeId(d.trustDomain, node).toString() });
    const served = d.bundle();
    const federated = (d.federated?.() ?? []).map((f) => ({ trust_domain: f.trustDomain, bundle: f.jwks, expires_at: new Date(f.expiresAt).toISOString() }));
    return { node, entries: entries.map(entryJson), bundle: served.jwks, bundle_sequence: served.sequence, federated };
  }

  /** POST /v1/svid: a workload SVID for an entry parented to the calling node. */
  async issueWorkloadSvid(node: string, entryId: string, csr: string): Promise<{ entry_id: string; spiffe_id: string; svid: string[]; expires_at: string }> {
    const d = this.#d;
    const wait = d.svidLimiter.take(node);
    if (wait > 0) throw new ApiError("rate_limited", `server: node ${JSON.stringify(node)} is over ${d.settings.rateLimit.svidPerNode} SVID requests a second`, { retryAfter: wait });
    const entry = await d.store.getEntry(entryId);
    if (entry === null) throw new ApiError("entry_unknown", `server: no registration entry ${JSON.stringify(entryId)}`);
    const caller = this.#callerIds.get(node) ?? remember(this.#callerIds, node, nodeId(d.trustDomain, node).toString());
    if (entry.parentId !== caller) {
      d.logger.warn("entry_not_for_node", { node, entry_id: entry.id, spiffe_id: entry.spiffeId, parent_id: entry.parentId });
      throw new ApiError("entry_not_for_node", `server: entry ${JSON.stringify(entry.id)} is not parented to node ${JSON.stringify(node)}`);
    }
    d.auditGate?.("workload svid issuance");
    const now = d.now();
    const minted = await d.ca.mintFromCsr({
      csr: csrBytes(csr),
      id: this.#entryIds.get(entry.spiffeId) ?? remember(this.#entryIds, entry.spiffeId, SpiffeId.parse(entry.spiffeId)),
      ttlSeconds: entry.ttlSeconds,
      now,
      dnsNames: entry.dnsNames,
    });
    await d.store.recordIssued({
      serial: minted.serial,
      spiffeId: entry.spiffeId,
      kind: "workload",
      nodeName: node,
      entryId: entry.id,
      notBefore: minted.notBefore,
      notAfter: minted.notAfter,
      issuedAt: now,
    });
    const notAfter = minted.notAfter.toISOString();
    d.logger.info("svid_issued", { node, entry_id: entry.id, spiffe_id: entry.spiffeId, serial: minted.serial, not_after: notAfter });
    return { entry_id: entry.id, spiffe_id: entry.spiffeId, svid: chainJson(minted.chain), expires_at: notAfter };
  }
}
