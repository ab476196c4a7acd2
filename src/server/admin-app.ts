/**
 * The admin API on server.sock (docs/server-api.md, "Server admin API"): plain HTTP on a Unix
 * socket only root can open (0600 in a 0700 directory). Registration entries, join tokens, nodes,
 * CA rotation and status. The token creation answer is the only place a join token ever appears;
 * the server keeps only its SHA-256.
 */
import { Hono } from "hono";
import type { Logger } from "../runtime/log.ts";
import type { TrustDomain } from "../spiffe/index.ts";
import { toBase64Url, webcrypto } from "../x509/index.ts";
import type { CaStatus } from "../ca/manager.ts";
import type { Datastore } from "./store/index.ts";
import type { ServerSettings } from "./config.ts";
import { ApiError, errorHandler, notFound } from "./errors.ts";
import { checkEntry } from "./entry-input.ts";
import { nodeId } from "./ids.ts";
import { tokenHash } from "./issuer.ts";
import { EntryBody, entryJson, limitBody, readBody, RotateBody, TokenBody } from "./wire.ts";

import type { FederationStatus } from "./federation.ts";
import type { AuditGate } from "./audit-gate.ts";

export interface AdminDeps {
  readonly trustDomain: TrustDomain;
  readonly settings: ServerSettings;
  readonly store: Datastore;
  readonly logger: Logger;
  readonly now: () => Date;
  readonly addresses: () => { public: string; api: string };
  readonly caStatus: () => CaStatus;
  readonly fingerprint: () => string;
  readonly bundleSequence: () => number;
  /** Our bundle as the bundle endpoint serves it (SPIFFE JWKS text). */
  readonly bundleJwks?: () => string;
  /** Each federated trust domain's state (federation.ts); none when not federating. */
  readonly federation?: () => readonly FederationStatus[];
  /** The per-source connection cap and how many connections each TLS listener refused over it (source-cap.ts). */
  readonly connections?: () => ConnectionsStatus;
  /** Refuses a change while the audit log cannot be written (audit-gate.ts); none: never. */
  readonly auditGate?: AuditGate;
  /** The server's audit log, as status reports it. */
  readonly audit?: () => AuditStatus;
  /** Rotates (the signing CA, or publishes a new root) and applies the change to the listeners. */
  readonly rotate: (root: boolean) => Promise<void>;
}

export interface ConnectionsStatus {
  readonly max_per_source: number;
  readonly public: { readonly refused: number };
  readonly api: { readonly refused: number };
}

export interface AuditStatus {
  readonly dir: string;
  readonly healthy: boolean;
  readonly error: string | null;
  readonly seq: number;
  readonly on_failure: "refuse" | "serve";
}

export function caStatusJson(s: CaStatus) {
  return {
    roots: s.roots.map((r) => ({
      serial: r.serial,
      sha256: r.sha256,
      state: r.state,
      not_before: r.notBefore.toISOString(),
      not_after: r.notAfter.toISOString(),
      ...(r.activateAt !== undefined ? { activate_at: r.activateAt.toISOString() } : {}),
    })),
    signing: { serial: s.signing.serial, root: s.signing.root, not_before: s.signing.notBefore.toISOString(), not_after: s.signing.notAfter.toISOString() },
  };
}

export function adminApp(d: AdminDeps): Hono {
  const app = new Hono();
  app.onError(errorHandler(d.logger, "admin"));
  app.use(limitBody());
  app.notFound(notFound);

  app.get("/v1/status", async (c) => {
    const a = d.addresses();
    return c.json({
      trust_domain: d.trustDomain.name,
      public: a.public,
      api: a.api,
      ca: caStatusJson(d.caStatus()),
      bundle_sequence: d.bundleSequence(),
      entries: await d.store.countEntries(),
      nodes: (await d.store.listNodes()).length,
      federation: d.federation?.() ?? [],
      ...(d.connections !== undefined ? { connections: d.connections() } : {}),
      ...(d.audit !== undefined ? { audit: d.audit() } : {}),
    });
  });

  app.get("/v1/bundle", (c) => {
    c.header("content-type", "application/json");
    return c.body(d.bundleJwks?.() ?? "");
  });

  app.post("/v1/entries", async (c) => {
    const input = checkEntry(d.trustDomain, await readBody(c, EntryBody), d.settings.svid.defaultTtlSeconds, d.now());
    d.auditGate?.("entry creation");
    const entry = await d.store.createEntry(input);
    d.logger.info("entry_created", { entry_id: entry.id, spiffe_id: entry.spiffeId, parent_id: entry.parentId });
    return c.json(entryJson(entry), 201);
  });
  app.get("/v1/entries", async (c) => {
    const parentId = c.req.query("parent_id");
    const entries = await d.store.listEntries(parentId === undefined ? {} : { parentId });
    return c.json({ entries: entries.map(entryJson) });
  });
  app.get("/v1/entries/:id", async (c) => {
    const entry = await d.store.getEntry(c.req.param("id"));
    if (entry === null) throw new ApiError("entry_unknown", `server: no registration entry ${JSON.stringify(c.req.param("id"))}`);
    return c.json(entryJson(entry));
  });
  app.delete("/v1/entries/:id", async (c) => {
    const id = c.req.param("id");
    d.auditGate?.("entry deletion");
    if (!(await d.store.deleteEntry(id))) throw new ApiError("entry_unknown", `server: no registration entry ${JSON.stringify(id)}`);
    d.logger.info("entry_deleted", { entry_id: id });
    return c.body(null, 204);
  });

  app.post("/v1/tokens", async (c) => {
    const body = await readBody(c, TokenBody);
    nodeId(d.trustDomain, body.node);
    d.auditGate?.("join token creation");
    const now = d.now();
    const expiresAt = new Date(now.getTime() + (body.ttl_seconds ?? d.settings.joinToken.defaultTtlSeconds) * 1000);
    const token = toBase64Url(webcrypto.getRandomValues(new Uint8Array(32)));
    await d.store.createJoinToken({ tokenHash: tokenHash(token), nodeName: body.node, expiresAt, now });
    d.logger.info("token_created", { node: body.node, expires_at: expiresAt.toISOString() });
    return c.json({ token, node: body.node, expires_at: expiresAt.toISOString(), server_fingerprint: d.fingerprint() }, 201);
  });

  app.get("/v1/nodes", async (c) => {
    const nodes = await d.store.listNodes();
    return c.json({
      nodes: nodes.map((n) => ({
        node: n.nodeName,
        spiffe_id: n.spiffeId,
        serial: n.serial,
        not_after: n.notAfter.toISOString(),
        attested_at: n.attestedAt.toISOString(),
      })),
    });
  });

  app.post("/v1/ca/rotate", async (c) => {
    const body = await readBody(c, RotateBody);
    d.auditGate?.("ca rotation");
    await d.rotate(body.root === true);
    return c.json(caStatusJson(d.caStatus()));
  });
  return app;
}
