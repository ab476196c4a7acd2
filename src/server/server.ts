/**
 * `tidegate server`: the identity server as one object (docs/server-api.md). `startServer` opens
 * the datastore and the CA of an initialised state directory, mints the server's SVID, binds the
 * public listener (TLS) and the API listener (mutual TLS, node SVIDs), writes server.json, serves
 * the admin API on server.sock, and ticks the CA every `tickIntervalMs`. `stop` closes it all and
 * removes server.sock and server.json. A failure while starting undoes what was started.
 *
 *   const s = await startServer({ places, settings });   // s.publicUrl, s.apiUrl, s.socketPath
 *   await s.stop();
 */
import { AuditLog } from "../audit/sink/audit-log.ts";
import { AUDIT_STATE_FILE } from "../audit/sink/files.ts";
import { followingSigner, type SvidLike } from "../audit/sink/signer.ts";
import { auditingLogger } from "../audit/sink/server-events.ts";
import { chainFromPem, holdSvid } from "../agent/svid-cache.ts";
import { unlinkSync, writeFileSync, chmodSync, mkdirSync, renameSync } from "node:fs";
import { dirname, join } from "node:path";
import type { TLSSocket } from "node:tls";
import { createLogger, type Logger } from "../runtime/log.ts";
import type { Places } from "../runtime/instance.ts";
import { serveUnix, type UnixServer } from "../runtime/unix-http.ts";
import type { CaManager } from "../ca/index.ts";
import type { Datastore } from "./store/index.ts";
import { shortSvidTtls, type ServerSettings } from "./config.ts";
import { adminApp } from "./admin-app.ts";
import { apiApp } from "./api-app.ts";
import { CaKeeper } from "./ca-keeper.ts";
import { Federation } from "./federation.ts";
import { formatHostPort, type HostPort } from "./host-port.ts";
import { openServerState, type ServerPaths } from "./init.ts";
import { Issuer } from "./issuer.ts";
import { authenticateNode, ConnectionVerdicts, peerChain } from "./node-auth.ts";
import { publicApp } from "./public-app.ts";
import { RateLimiter } from "./rate-limit.ts";
import { createTlsListener, type TlsListener, type TlsMaterial } from "./tls-listener.ts";
import { svidRoute } from "./fast-svid-route.ts";
import { SourceCap } from "./source-cap.ts";
import { auditGate } from "./audit-gate.ts";

export interface StartServerOptions {
  readonly places: Places;
  readonly settings: ServerSettings;
  /** The clock for certificates, tokens and the CA (tests shift it); TLS itself uses the real one. */
  readonly now?: () => Date;
  readonly logger?: Logger;
  /** How often the CA's due work runs (default 1000 ms). */
  readonly tickIntervalMs?: number;
  /** Each listener's per-answer deadline (tls-listener.ts, default ANSWER_TIMEOUT_MS; tests shorten it). */
  readonly answerTimeoutMs?: number;
}

export interface RunningServer {
  readonly trustDomain: string;
  readonly publicUrl: string;
  readonly apiUrl: string;
  readonly public: HostPort;
  readonly api: HostPort;
  readonly socketPath: string;
  readonly paths: ServerPaths;
  /** For tests and tools in the same process. */
  readonly store: Datastore;
  readonly ca: CaManager;
  /** The PEM of the bundle's roots, as served now. */
  rootsPem(): string;
  /** Runs the CA's due work now (what the timer does). */
  tick(): Promise<void>;
  stop(): Promise<void>;
}

function url(hp: HostPort): string {
  return `https://${formatHostPort(hp)}`;
}

/** The server's SVID as a checkpoint signer sees it, one object per certificate. */
function svidOfMaterial(current: () => TlsMaterial | null): () => SvidLike | null {
  let held: { pem: string; svid: SvidLike } | null = null;
  return () => {
    const m = current();
    if (m === null) return null;
    if (held === null || held.pem !== m.certPem) held = { pem: m.certPem, svid: holdSvid(chainFromPem(m.certPem), m.keyPem) };
    return held.svid;
  };
}

function writeServerJson(path: string, body: unknown): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(body, null, 2) + "\n", { mode: 0o644 });
  chmodSync(tmp, 0o644);
  renameSync(tmp, path);
}

export async function startServer(opts: StartServerOptions): Promise<RunningServer> {
  const now = opts.now ?? (() => new Date());
  const { settings } = opts;
  const { paths, store, ca } = await openServerState({ places: opts.places, settings, now: now() });
  // The server's own audit log (docs/audit.md, "The server's log"), signed with its SVID once the
  // CA keeper has minted it: node attestations, SVIDs issued, CA rotations, admin actions.
  let material: TlsMaterial | null = null;
  const plain = opts.logger ?? createLogger();
  const auditDir = join(opts.places.auditDir, "server");
  const onFailure = settings.audit.onFailure;
  const audit = AuditLog.open({
    dir: auditDir,
    statePath: join(paths.dir, AUDIT_STATE_FILE),
    signer: followingSigner(svidOfMaterial(() => material)),
    onHealth(healthy, error) {
      if (healthy) plain.info("audit_recovered", { dir: auditDir });
      else
        plain.error("audit_unwritable", {
          dir: auditDir,
          error,
          effect:
            onFailure === "refuse"
              ? "attestation, SVID issuance and admin changes are refused (503 audit_unavailable) until it can be written (audit.on_failure: refuse); events wait in memory (up to 10,000)"
              : "served on; events wait in memory (up to 10,000) until it can be written (audit.on_failure: serve)",
        });
    },
  });
  const gate = auditGate(audit, onFailure);
  const logger = auditingLogger(plain, audit);
  const undo: (() => Promise<void> | void)[] = [() => audit.close(), () => store.close()];
  // Every step runs whatever the one before did: a step that throws at once (server.json already
  // removed by hand, say) must not leave the listeners open and the stop waiting for ever.
  const cleanup = async () => {
    for (const fn of undo.reverse()) {
      try {
        await fn();
      } catch {
        // what this step could not undo is gone or unreachable; the next steps still run
      }
    }
  };
  try {
    const td = ca.trustDomain;
    const keeper = await CaKeeper.start({ ca, store, settings, logger, now });
    material = keeper.material;
    const federation = await Federation.open({ settings: settings.federation, ownTrustDomain: td, store, logger, now: () => now().getTime() });
    undo.push(() => federation.stop());
    const verdicts = new ConnectionVerdicts();
    let bound: { public: HostPort; api: HostPort } = { public: settings.listen.public, api: settings.listen.api };
    const issuer = new Issuer({
      trustDomain: td,
      settings,
      store,
      ca,
      logger,
      now,
      bundle: () => keeper.served,
      federated: () => federation.served(),
      svidLimiter: new RateLimiter(settings.rateLimit.svidPerNode),
      auditGate: gate,
    });
    const pub = publicApp({
      issuer,
      bundle: () => keeper.served,
      attestLimiter: new RateLimiter(settings.rateLimit.attestPerSource),
      apiPort: () => bound.api.port,
      logger,
    });
    const api = apiApp({ issuer, verdicts, logger, now });
    const timeouts = opts.answerTimeoutMs !== undefined ? { answerTimeoutMs: opts.answerTimeoutMs } : {};
    const max = settings.listen.maxConnectionsPerSource;
    const caps = { public: new SourceCap({ listener: "public", max, logger }), api: new SourceCap({ listener: "api", max, logger }) };
    const publicListener: TlsListener = createTlsListener({ material: keeper.material, requestCert: false, fetch: (r, env) => pub.fetch(r, env), cap: caps.public, ...timeouts });
    const apiListener: TlsListener = createTlsListener({
      material: keeper.material,
      cap: caps.api,
      requestCert: true,
      fetch: (r, env) => api.fetch(r, env),
      intercept: svidRoute({ issuer, verdicts, logger, now }),
      onSecure: (socket: TLSSocket) => verdicts.set(socket, authenticateNode(peerChain(socket), td, keeper.served.source, now())),
      ...timeouts,
    });
    keeper.onMaterial((m) => {
      material = m;
      publicListener.setContext(m);
      apiListener.setContext(m);
    });
    undo.push(() => publicListener.close(), () => apiListener.close());
    bound = { public: await listenRemembered(store, "public", publicListener, settings.listen.public), api: await listenRemembered(store, "api", apiListener, settings.listen.api) };

    const admin = adminApp({
      trustDomain: td,
      settings,
      store,
      logger,
      now,
      addresses: () => ({ public: formatHostPort(bound.public), api: formatHostPort(bound.api) }),
      caStatus: () => ca.status(),
      fingerprint: () => ca.activeRootFingerprint(),
      bundleSequence: () => keeper.served.sequence,
      federation: () => federation.status(),
      bundleJwks: () => keeper.served.jwksText,
      rotate: (root) => keeper.rotate(root),
      auditGate: gate,
      audit: () => ({ dir: auditDir, healthy: audit.healthy, error: audit.error, seq: audit.seq, on_failure: onFailure }),
      connections: () => ({ max_per_source: max, public: { refused: caps.public.refused }, api: { refused: caps.api.refused } }),
    });
    const unix: UnixServer = serveUnix(paths.socket, (r) => admin.fetch(r));
    undo.push(() => unix.stop());
    writeServerJson(paths.serverJson, {
      trust_domain: td.name,
      public: formatHostPort(bound.public),
      api: formatHostPort(bound.api),
      pid: process.pid,
    });
    undo.push(() => unlinkSync(paths.serverJson));

    let timer: ReturnType<typeof setTimeout> | undefined;
    let stopped = false;
    let inflight: Promise<void> = Promise.resolve();
    void federation.tick();
    const tickAndPrune = async () => {
      void federation.tick(); // fetches run on their own: a slow endpoint does not hold the CA back
      await keeper.tick();
      await store.pruneJoinTokens(now());
    };
    const schedule = () => {
      timer = setTimeout(() => {
        inflight = tickAndPrune()
          .catch((e: unknown) => logger.error("ca_tick_failed", { code: (e as { code?: string }).code ?? "unexpected", message: (e as Error).message }))
          .finally(() => {
            if (!stopped) schedule();
          });
      }, opts.tickIntervalMs ?? 1000);
    };
    schedule();
    undo.push(() => {
      stopped = true;
      clearTimeout(timer);
      return inflight;
    });
    logger.info("server_started", { trust_domain: td.name, public: formatHostPort(bound.public), api: formatHostPort(bound.api), socket: paths.socket });
    for (const t of shortSvidTtls(settings)) logger.warn("svid_ttl_short", t);

    let stopping: Promise<void> | undefined;
    return {
      trustDomain: td.name,
      publicUrl: url(bound.public),
      apiUrl: url(bound.api),
      public: bound.public,
      api: bound.api,
      socketPath: paths.socket,
      paths,
      store,
      ca,
      rootsPem: () => keeper.served.rootsPem,
      tick: () => keeper.tick(),
      stop: () => {
        stopping ??= cleanup().then(() => logger.info("server_stopped", { trust_domain: td.name }));
        return stopping;
      },
    };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/**
 * A listener configured with port 0 (an instance's default) gets a free port on its first start,
 * and the same port on every later start: agents keep the server's address in their state, so a
 * restarted server must be where they left it. The port is kept in the datastore's server state.
 */
async function listenRemembered(store: Datastore, name: "public" | "api", listener: TlsListener, want: HostPort): Promise<HostPort> {
  if (want.port !== 0) return listener.listen(want);
  const key = `listen.${name}.port`;
  const remembered = Number(await store.getState(key));
  const bound = await listener.listen(Number.isInteger(remembered) && remembered > 0 ? { ...want, port: remembered } : want);
  if (bound.port !== remembered) await store.setState(key, String(bound.port));
  return bound;
}
