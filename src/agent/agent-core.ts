/**
 * The agent's identity loops as one step function, `tick()`: it does whatever is due at `now()`
 * and answers when it next needs to run. The runner (agent.ts) sleeps in between; unit tests call
 * tick() with a hand-moved clock, so hours of rotations take milliseconds.
 *
 * What is due, in order:
 * 1. The node SVID, at its rotation time (half life, +-10 %, rotation.ts) or when a sync answered
 *    404 node_unknown: POST /v1/node/renew with a CSR for a new key; the server re-attests a node
 *    it lost while the SVID still verifies. An expired node SVID cannot be renewed: only a new
 *    join token helps (reported by health).
 * 2. Sync, every syncIntervalMs: GET /v1/sync. A bundle that differs from the one held replaces
 *    it (the server is verified against the new one from the next call on). The federated trust
 *    domains' bundles replace the held ones whole (federated.ts): one the server no longer hands
 *    over is dropped. SVIDs whose entry is gone are dropped.
 * 3. Workload SVIDs, only after a sync reached the server: for every entry without an SVID, with
 *    an SVID past its rotation time or no longer fitting the entry, POST /v1/svid, a few at a time.
 * Failures back off: sync and node renewal each with their own capped exponential backoff with
 * full jitter (backoff.ts, cap retryMaxMs); each entry too, except a 429, which waits Retry-After.
 * While the server is unreachable the agent keeps what it holds; health.ts says when that expired.
 */
import type { Bundle } from "../spiffe/index.ts";
import { SpiffeId, TrustDomain, formatPemBundle } from "../spiffe/index.ts";
import type { Logger } from "../runtime/log.ts";
import { Backoff } from "./backoff.ts";
import { describeError, ServerError } from "./errors.ts";
import { acceptNodeAnswer, freshKey, persistBundle, persistNode, readServerBundle } from "./node-svid.ts";
import { apiOrigin, callServer, type ClientCert } from "./server-client.ts";
import { chainPem, type HeldSvid } from "./svid-cache.ts";
import type { StateFiles } from "./state-files.ts";
import { sha256Hex, tlsTrustOf } from "./trust.ts";
import { RenewAnswer, SyncAnswer, readAnswer, type Entry } from "./wire.ts";
import { federatedChanges, loadFederated, persistFederated, readFederated, type FederatedMap } from "./federated.ts";
import { fitsEntry, removeSvid, requestSvid, writeSvid } from "./workload-svid.ts";
import type { AgentIdentity } from "./bootstrap.ts";

export interface CoreOptions {
  readonly files: StateFiles;
  readonly identity: AgentIdentity;
  readonly svids?: Map<string, HeldSvid>;
  readonly syncIntervalMs: number;
  readonly retryMaxMs: number;
  readonly now: () => number;
  readonly random?: () => number;
  readonly logger: Logger;
  readonly signal?: AbortSignal;
  /** Workload SVID requests in flight at once. */
  readonly concurrency?: number;
}

interface Retry {
  readonly backoff: Backoff;
  at: number;
  error: string | null;
}

export class AgentCore {
  readonly identity: AgentIdentity;
  readonly svids: Map<string, HeldSvid>;
  /** null until the first sync of this run. */
  entries: Map<string, Entry> | null = null;
  bundleRoots: string[] = [];
  /** Federated trust domains' bundles by name, with their expiry; replaced whole at each change. */
  federated: FederatedMap = new Map();
  readonly lastSync = { at: null as number | null, error: null as string | null, nextAt: 0, failures: 0 };
  readonly node: Retry;
  readonly entryRetry = new Map<string, Retry>();
  nodeUnknown = false;
  reachable = false;
  private readonly sync: Backoff;

  constructor(private readonly o: CoreOptions) {
    this.identity = o.identity;
    this.svids = o.svids ?? new Map();
    this.sync = this.newBackoff();
    this.node = { backoff: this.newBackoff(), at: 0, error: null };
  }

  private newBackoff(): Backoff {
    return new Backoff({ maxMs: this.o.retryMaxMs, ...(this.o.random ? { random: this.o.random } : {}) });
  }

  async init(): Promise<void> {
    this.bundleRoots = await Promise.all(this.identity.bundle.x509Authorities.map((r) => sha256Hex(r)));
    this.federated = await loadFederated(this.o.files, this.identity.bundle.trustDomain);
  }

  get bundle(): Bundle {
    return this.identity.bundle;
  }

  private clientCert(): ClientCert {
    return { chainPem: chainPem(this.identity.node.chain), keyPem: this.identity.node.keyPem };
  }

  private call(method: "GET" | "POST", path: string, body?: unknown): Promise<unknown> {
    return callServer({
      origin: apiOrigin(this.identity.config.server, this.identity.config.api_port),
      method,
      path,
      ...(body !== undefined ? { body } : {}),
      trust: tlsTrustOf(this.identity.bundle),
      clientCert: this.clientCert(),
      ...(this.o.signal ? { signal: this.o.signal } : {}),
    });
  }

  /** Runs what is due now; returns the time (ms) of the next thing due. */
  async tick(): Promise<number> {
    const now = this.o.now();
    const nodeValid = this.identity.node.notAfter > now;
    if (nodeValid && (this.nodeUnknown || now >= this.identity.node.rotateAt) && now >= this.node.at) await this.renewNode();
    if (nodeValid && now >= this.lastSync.nextAt) await this.syncNow();
    if (this.reachable && this.entries !== null) await this.issueDue();
    return this.nextWake();
  }

  nextWake(): number {
    const now = this.o.now();
    const times = [this.lastSync.nextAt];
    const node = this.identity.node;
    if (node.notAfter > now) times.push(Math.max(this.nodeUnknown ? now : node.rotateAt, this.node.at));
    if (this.reachable && this.entries !== null) {
      for (const e of this.entries.values()) {
        const held = this.svids.get(e.id);
        const due = held === undefined || !fitsEntry(held, e) ? now : held.rotateAt;
        times.push(Math.max(due, this.entryRetry.get(e.id)?.at ?? 0));
      }
    }
    return Math.min(...times);
  }

  private async renewNode(): Promise<void> {
    const id = this.identity.config;
    const reattest = this.nodeUnknown;
    try {
      const key = await freshKey(SpiffeId.parse(id.spiffe_id));
      const body = await this.call("POST", "/v1/node/renew", { csr: key.csr });
      const answer = readAnswer(RenewAnswer, body, "POST /v1/node/renew");
      const r = await acceptNodeAnswer(answer, key, TrustDomain.parse(id.trust_domain), this.o.now(), "POST /v1/node/renew", this.o.random);
      await persistNode(this.o.files, r.svid, this.identity.bundle);
      this.identity.node = r.svid;
      this.nodeUnknown = false;
      this.node.backoff.reset();
      this.node.at = 0;
      this.node.error = null;
      this.o.logger.info(reattest ? "node_reattested" : "node_renewed", { node: id.node, serial: r.svid.serial, expires_at: iso(r.svid.notAfter), rotate_at: iso(r.svid.rotateAt) });
      await this.adoptBundle(r.bundle);
      if (reattest) this.lastSync.nextAt = this.o.now();
    } catch (e) {
      if (this.o.signal?.aborted) return;
      const wait = this.node.backoff.next();
      this.node.at = this.o.now() + wait;
      this.node.error = describeError(e);
      this.o.logger.warn("node_renew_failed", { node: id.node, error: this.node.error, retry_in_ms: wait, failures: this.node.backoff.count });
    }
  }

  /**
   * Syncs at the next round instead of at the interval's end: the entries changed on the server
   * and the caller knows it (`tidegate up` applying its config's workloads). Not while syncs
   * fail: their backoff stands.
   */
  syncSoon(): void {
    this.syncAsked += 1;
    if (this.lastSync.failures === 0) this.lastSync.nextAt = Math.min(this.lastSync.nextAt, this.o.now());
  }

  /** Counts syncSoon() calls: one that comes while a sync is under way asks for another after it. */
  private syncAsked = 0;

  private async syncNow(): Promise<void> {
    const now = this.o.now();
    const asked = this.syncAsked;
    try {
      const answer = readAnswer(SyncAnswer, await this.call("GET", "/v1/sync"), "GET /v1/sync");
      const bundle = await readServerBundle(this.identity.bundle.trustDomain, answer.bundle, "GET /v1/sync");
      const federated = await readFederated(answer.federated ?? [], this.identity.bundle.trustDomain, "GET /v1/sync");
      const entries = new Map<string, Entry>();
      for (const e of answer.entries) entries.set(e.id, e);
      this.entries = entries;
      this.reachable = true;
      this.sync.reset();
      // The answer may predate a change the caller of syncSoon() knows of: then once more.
      Object.assign(this.lastSync, { at: now, error: null, nextAt: asked === this.syncAsked ? now + this.o.syncIntervalMs : this.o.now(), failures: 0 });
      await this.adoptBundle(bundle);
      await this.adoptFederated(federated);
      this.dropGone(entries);
    } catch (e) {
      if (this.o.signal?.aborted) return;
      this.reachable = false;
      if (e instanceof ServerError && e.code === "node_unknown") this.nodeUnknown = true;
      const wait = this.sync.next();
      Object.assign(this.lastSync, { error: describeError(e), nextAt: now + wait, failures: this.sync.count });
      this.o.logger.warn("sync_failed", { error: this.lastSync.error, retry_in_ms: wait, failures: this.sync.count, node_unknown: this.nodeUnknown });
    }
  }

  /** Replaces the trusted bundle when the server's differs (sequence or roots). */
  private async adoptBundle(next: Bundle): Promise<void> {
    const held = this.identity.bundle;
    if (next.sequence === held.sequence && formatPemBundle(next) === formatPemBundle(held)) return;
    this.identity.bundle = next;
    this.bundleRoots = await Promise.all(next.x509Authorities.map((r) => sha256Hex(r)));
    await persistBundle(this.o.files, next);
    this.o.logger.info("bundle_updated", { from_sequence: held.sequence ?? null, sequence: next.sequence ?? null, roots: this.bundleRoots });
  }

  /** Replaces the federated bundles when anything in them changed (a bundle, a trust domain, an expiry). */
  private async adoptFederated(next: FederatedMap): Promise<void> {
    const change = federatedChanges(this.federated, next);
    if (!change.any) return;
    this.federated = next;
    await persistFederated(this.o.files, next);
    for (const td of change.updated) {
      const h = next.get(td)!;
      this.o.logger.info("federated_bundle_updated", { trust_domain: td, sequence: h.bundle.sequence ?? null, roots: await Promise.all(h.bundle.x509Authorities.map((r) => sha256Hex(r))), expires_at: iso(h.expiresAt) });
    }
    for (const td of change.dropped) this.o.logger.warn("federated_bundle_dropped", { trust_domain: td, reason: "not_handed_over" });
  }

  private dropGone(entries: Map<string, Entry>): void {
    for (const [id, held] of [...this.svids]) {
      if (entries.has(id)) continue;
      this.svids.delete(id);
      this.entryRetry.delete(id);
      removeSvid(this.o.files, id);
      this.o.logger.info("svid_dropped", { entry_id: id, spiffe_id: held.spiffeId, reason: "entry_gone" });
    }
    for (const id of [...this.entryRetry.keys()]) if (!entries.has(id)) this.entryRetry.delete(id);
  }

  private async issueDue(): Promise<void> {
    const now = this.o.now();
    const due = [...this.entries!.values()].filter((e) => {
      const held = this.svids.get(e.id);
      const wanted = held === undefined || now >= held.rotateAt || !fitsEntry(held, e);
      return wanted && now >= (this.entryRetry.get(e.id)?.at ?? 0);
    });
    const queue = due.slice();
    const worker = async () => {
      for (let e = queue.shift(); e !== undefined && this.reachable; e = queue.shift()) await this.issue(e);
    };
    await Promise.all(Array.from({ length: Math.min(this.o.concurrency ?? 8, queue.length) }, worker));
  }

  private async issue(e: Entry): Promise<void> {
    const before = this.svids.get(e.id);
    try {
      const svid = await requestSvid(e, {
        apiOrigin: apiOrigin(this.identity.config.server, this.identity.config.api_port),
        trust: tlsTrustOf(this.identity.bundle),
        clientCert: this.clientCert(),
        bundle: this.identity.bundle,
        now: this.o.now(),
        ...(this.o.random ? { random: this.o.random } : {}),
        ...(this.o.signal ? { signal: this.o.signal } : {}),
      });
      if (this.entries?.has(e.id) !== true) return;
      writeSvid(this.o.files, e.id, svid);
      this.svids.set(e.id, svid);
      this.entryRetry.delete(e.id);
      this.o.logger.info(before ? "svid_rotated" : "svid_issued", { entry_id: e.id, spiffe_id: svid.spiffeId, serial: svid.serial, expires_at: iso(svid.notAfter), rotate_at: iso(svid.rotateAt) });
    } catch (err) {
      if (this.o.signal?.aborted) return;
      const r = this.entryRetry.get(e.id) ?? { backoff: this.newBackoff(), at: 0, error: null };
      this.entryRetry.set(e.id, r);
      const backoffWait = r.backoff.next();
      const wait = err instanceof ServerError && err.status === 429 && err.retryAfterMs !== undefined ? err.retryAfterMs : backoffWait;
      r.at = this.o.now() + wait;
      r.error = describeError(err);
      if (UNREACHABLE.has((err as { code?: string }).code ?? "")) this.reachable = false;
      this.o.logger.warn("svid_request_failed", { entry_id: e.id, spiffe_id: e.spiffe_id, error: r.error, retry_in_ms: wait });
    }
  }
}

/** Failures that say the server is not there (or not itself), rather than refusing one request. */
const UNREACHABLE = new Set(["server_unreachable", "server_untrusted", "server_spiffe_id_mismatch"]);

export function iso(ms: number): string {
  return new Date(ms).toISOString();
}
