/**
 * Keeps what the server serves in step with its CA: runs the CA's due work (`tick`) and operator
 * rotations, then
 * - when the bundle changed: recomputes the served bundle, appends it to the datastore's bundle
 *   history, logs bundle_updated;
 * - when the server's SVID is at half life or was issued by a signing CA no longer current:
 *   mints a new one (new key);
 * - when either changed: hands the new TLS material to the listeners (new handshakes use it).
 * CA events are logged as they come (ca_rotated, root_published, root_activated...); a failed
 * rotation is logged as an error and retried at the next tick by the CA itself.
 */
import type { Logger } from "../runtime/log.ts";
import type { CaEvent, CaManager } from "../ca/manager.ts";
import type { Datastore } from "./store/index.ts";
import type { ServerSettings } from "./config.ts";
import { serveBundle, type ServedBundle } from "./bundle-state.ts";
import { ServerSvid } from "./server-svid.ts";
import type { TlsMaterial } from "./tls-listener.ts";

export interface CaKeeperDeps {
  readonly ca: CaManager;
  readonly store: Datastore;
  readonly settings: ServerSettings;
  readonly logger: Logger;
  readonly now: () => Date;
}

export class CaKeeper {
  readonly #d: CaKeeperDeps;
  #served: ServedBundle;
  #svid: ServerSvid;
  #listeners: ((m: TlsMaterial) => void)[] = [];
  #busy: Promise<void> = Promise.resolve();

  private constructor(d: CaKeeperDeps, served: ServedBundle, svid: ServerSvid) {
    this.#d = d;
    this.#served = served;
    this.#svid = svid;
  }

  /** Runs the CA's due work once (catching up on time the server was down), then mints the SVID. */
  static async start(d: CaKeeperDeps): Promise<CaKeeper> {
    logEvents(d.logger, await d.ca.tick(d.now()));
    const served = await serveBundle(d.ca.bundle());
    await recordBundle(d, served);
    const svid = await mintSvid(d);
    return new CaKeeper(d, served, svid);
  }

  get served(): ServedBundle {
    return this.#served;
  }

  get svid(): ServerSvid {
    return this.#svid;
  }

  get material(): TlsMaterial {
    return this.#svid.material(this.#served.rootsPem);
  }

  onMaterial(fn: (m: TlsMaterial) => void): void {
    this.#listeners.push(fn);
  }

  /** The CA's due work now; one at a time. */
  tick(): Promise<void> {
    return this.#serial(async () => logEvents(this.#d.logger, await this.#d.ca.tick(this.#d.now())));
  }

  /** rotate-ca: a new signing CA now, or (root) a new root published now. CA errors propagate. */
  rotate(root: boolean): Promise<void> {
    return this.#serial(async () => {
      const now = this.#d.now();
      logEvents(this.#d.logger, await (root ? this.#d.ca.rotateRoot(now) : this.#d.ca.rotateSigning(now)));
    });
  }

  #serial(work: () => Promise<void>): Promise<void> {
    const run = this.#busy.then(async () => {
      try {
        await work();
      } finally {
        await this.#refresh();
      }
    });
    this.#busy = run.catch(() => undefined);
    return run;
  }

  async #refresh(): Promise<void> {
    const d = this.#d;
    let changed = false;
    const bundle = d.ca.bundle();
    if (bundle !== this.#served.bundle) {
      const served = await serveBundle(bundle);
      if (served.jwksText !== this.#served.jwksText) {
        await recordBundle(d, served);
        changed = true;
      }
      this.#served = served;
    }
    if (this.#svid.stale(d.now(), d.ca.status().signing.serial)) {
      this.#svid = await mintSvid(d);
      changed = true;
    }
    if (changed) for (const fn of this.#listeners) fn(this.material);
  }
}

async function mintSvid(d: CaKeeperDeps): Promise<ServerSvid> {
  const svid = await ServerSvid.mint(d.ca, d.ca.trustDomain, d.settings.dnsNames, d.settings.svid.serverTtlSeconds, d.now());
  await d.store.recordIssued({
    serial: svid.serial,
    spiffeId: `spiffe://${d.ca.trustDomain.name}/tidegate/server`,
    kind: "server",
    nodeName: null,
    entryId: null,
    notBefore: svid.fields.notBefore,
    notAfter: svid.notAfter,
    issuedAt: d.now(),
  });
  d.logger.info("server_svid_minted", { serial: svid.serial, not_after: svid.notAfter.toISOString() });
  return svid;
}

/** Appends the bundle to the history when it differs from the last one stored. */
async function recordBundle(d: CaKeeperDeps, served: ServedBundle): Promise<void> {
  const td = d.ca.trustDomain.name;
  const last = await d.store.latestBundle(td);
  if (last?.jwks === served.jwksText) return;
  const row = await d.store.appendBundle({ trustDomain: td, jwks: served.jwksText, createdAt: d.now() });
  d.logger.info("bundle_updated", { trust_domain: td, spiffe_sequence: served.sequence, history_row: row, roots: served.bundle.x509Authorities.length });
}

function logEvents(logger: Logger, events: readonly CaEvent[]): void {
  for (const e of events) {
    if (e.type === "bundle_updated") continue; // logged with the served bundle by recordBundle
    const { type, ...fields } = e;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(fields)) out[k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = v instanceof Date ? v.toISOString() : v;
    if (type === "ca_rotation_failed") logger.error(type, out);
    else logger.info(type, out);
  }
}
