/**
 * Federation (docs/federation.md): the bundles of other trust domains, fetched from their bundle
 * endpoints and handed to this server's agents in every sync answer.
 *
 * Guaranteed:
 * - one bundle per trust domain, kept apart and never merged with ours or each other's (each
 *   is parsed for its own trust domain; agents keep them per trust domain, BundleSet);
 * - a trust domain is fetched at once when the server starts, then every half refresh interval:
 *   the bundle's `spiffe_refresh_hint` (else `default_refresh`), or `max_age` when that is
 *   shorter. So a root its owner publishes one hint before using it reaches this server at least
 *   half a hint ahead, and a bundle is refreshed twice within its maximum age; a failed fetch is
 *   retried after 1, 2, 4 ... s, never later than that half interval;
 * - https_spiffe authenticates the endpoint with the bundle last fetched (the configured initial
 *   bundle until the first fetch), as the SPIFFE Federation spec's profile does; https_web with
 *   the `ca` file or the system's roots (federation-fetch.ts lists the refusals);
 * - a fetched bundle is refused (and the held one kept) when it is not a SPIFFE JWKS bundle, holds
 *   no X.509 root, or carries a sequence lower than the held one's;
 * - a bundle not refreshed within `max_age` is no longer handed out (`federated_bundle_dropped`);
 *   agents are told each bundle's expiry, so they drop it in time even when this server is
 *   unreachable. It is still used to authenticate the endpoint, and a later fetch restores it;
 * - the last fetched bundle and when it was fetched survive a restart (datastore state), so the
 *   maximum age counts from the real fetch, not from the start.
 */
import { Bundle, parseJwksBundle, parsePemBundle, type TrustDomain } from "../spiffe/index.ts";
import type { Logger } from "../runtime/log.ts";
import { readRegularText } from "../runtime/bounded-read.ts";
import type { FederationSetting } from "./config.ts";
import { ServerConfigError } from "./config.ts";
import { fetchBundle, FederationError, type BundleFetcher } from "./federation-fetch.ts";
import type { Datastore } from "./store/index.ts";

/** A federated bundle as agents get it. */
export interface FederatedBundle {
  readonly trustDomain: string;
  readonly jwks: unknown;
  readonly sequence: number | null;
  readonly roots: number;
  readonly refreshedAt: number;
  readonly expiresAt: number;
}

/** What `tidegate server status` shows of one federated trust domain. */
export interface FederationStatus {
  readonly trust_domain: string;
  readonly bundle_endpoint: string;
  readonly profile: string;
  readonly state: "current" | "never_fetched" | "dropped";
  readonly refreshed_at: string | null;
  readonly expires_at: string | null;
  readonly next_fetch_at: string;
  readonly failures: number;
  readonly last_error: string | null;
}

interface Held {
  readonly bundle: Bundle;
  readonly jwksText: string;
  readonly jwks: unknown;
  readonly refreshedAt: number;
}

interface Member {
  readonly f: FederationSetting;
  readonly initial: Bundle | null;
  readonly caPem: string | null;
  held: Held | null;
  dropped: boolean;
  nextAt: number;
  failures: number;
  lastError: string | null;
  inflight: Promise<void> | null;
}

const STATE_KEY = (td: TrustDomain) => `federation.bundle.${td.name}`;
const MIN_INTERVAL_MS = 1000;

export interface FederationDeps {
  readonly settings: readonly FederationSetting[];
  readonly ownTrustDomain: TrustDomain;
  readonly store: Pick<Datastore, "getState" | "setState">;
  readonly logger: Logger;
  readonly now: () => number;
  readonly fetcher?: BundleFetcher;
}

function readSettingFile(path: string, what: string): string {
  try {
    return readRegularText(path, `server config: federation: the ${what}`);
  } catch (e) {
    throw new ServerConfigError("server_config_invalid", (e as Error).message, { cause: e });
  }
}

/** The initial bundle file (PEM roots or SPIFFE JWKS) of an https_spiffe member, for its trust domain. */
async function initialBundle(f: FederationSetting): Promise<Bundle> {
  const text = readSettingFile(f.bundleFile!, "initial bundle of " + f.trustDomain.name);
  let b: Bundle;
  try {
    b = text.trimStart().startsWith("{") ? await parseJwksBundle(f.trustDomain, text) : parsePemBundle(f.trustDomain, text);
  } catch (e) {
    throw new ServerConfigError("server_config_invalid", `server config: federation: ${f.bundleFile} is not a bundle of ${f.trustDomain.name} (PEM roots or SPIFFE JWKS): ${(e as Error).message}`, { cause: e });
  }
  if (b.x509Authorities.length === 0) throw new ServerConfigError("server_config_invalid", `server config: federation: ${f.bundleFile} holds no X.509 root`);
  return b;
}

async function parseFetched(td: TrustDomain, text: string): Promise<Bundle> {
  let b: Bundle;
  try {
    b = await parseJwksBundle(td, text);
  } catch (e) {
    throw new FederationError("federation_bundle_bad", `federation: what ${td.name}'s endpoint sent is not a SPIFFE bundle: ${(e as Error).message}`, { cause: e });
  }
  if (b.x509Authorities.length === 0) throw new FederationError("federation_bundle_bad", `federation: the bundle ${td.name}'s endpoint sent holds no X.509 root`);
  return b;
}

const iso = (ms: number) => new Date(ms).toISOString();

export class Federation {
  readonly #d: FederationDeps;
  readonly #members: Member[];
  readonly #abort = new AbortController();

  private constructor(d: FederationDeps, members: Member[]) {
    this.#d = d;
    this.#members = members;
  }

  /** Reads the initial bundles and CA files and what the datastore kept; fetches nothing yet. */
  static async open(d: FederationDeps): Promise<Federation> {
    const members: Member[] = [];
    for (const f of d.settings) {
      if (f.trustDomain.equals(d.ownTrustDomain)) {
        throw new ServerConfigError("server_config_invalid", `server config: federation: ${f.trustDomain.name} is this server's own trust domain`);
      }
      const initial = f.profile === "https_spiffe" ? await initialBundle(f) : null;
      const caPem = f.profile === "https_web" && f.caFile !== null ? readSettingFile(f.caFile, "CA file of " + f.trustDomain.name) : null;
      members.push({ f, initial, caPem, held: await loadHeld(d, f), dropped: false, nextAt: d.now(), failures: 0, lastError: null, inflight: null });
    }
    const fed = new Federation(d, members);
    fed.#checkAges();
    return fed;
  }

  get trustDomains(): readonly string[] {
    return this.#members.map((m) => m.f.trustDomain.name);
  }

  /** The bundles agents get now: fetched, and not older than their maximum age. */
  served(): FederatedBundle[] {
    const now = this.#d.now();
    const out: FederatedBundle[] = [];
    for (const m of this.#members) {
      const h = m.held;
      if (h === null) continue;
      const expiresAt = h.refreshedAt + m.f.maxAgeSeconds * 1000;
      if (now >= expiresAt) continue;
      out.push({ trustDomain: m.f.trustDomain.name, jwks: h.jwks, sequence: h.bundle.sequence ?? null, roots: h.bundle.x509Authorities.length, refreshedAt: h.refreshedAt, expiresAt });
    }
    return out;
  }

  status(): FederationStatus[] {
    const now = this.#d.now();
    return this.#members.map((m) => {
      const h = m.held;
      const expiresAt = h === null ? null : h.refreshedAt + m.f.maxAgeSeconds * 1000;
      return {
        trust_domain: m.f.trustDomain.name,
        bundle_endpoint: m.f.bundleEndpoint,
        profile: m.f.profile,
        state: h === null ? "never_fetched" : now >= expiresAt! ? "dropped" : "current",
        refreshed_at: h === null ? null : iso(h.refreshedAt),
        expires_at: expiresAt === null ? null : iso(expiresAt),
        next_fetch_at: iso(m.nextAt),
        failures: m.failures,
        last_error: m.lastError,
      };
    });
  }

  /** Starts every fetch that is due and logs bundles that aged out; resolves when those fetches end. */
  tick(): Promise<void> {
    this.#checkAges();
    const now = this.#d.now();
    const started: Promise<void>[] = [];
    for (const m of this.#members) {
      if (m.inflight !== null || now < m.nextAt || this.#abort.signal.aborted) continue;
      m.inflight = this.#refresh(m).finally(() => {
        m.inflight = null;
      });
      started.push(m.inflight);
    }
    return Promise.all(started).then(() => undefined);
  }

  /** Aborts fetches in flight and waits for them. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await Promise.all(this.#members.map((m) => m.inflight ?? Promise.resolve()));
  }

  #checkAges(): void {
    const now = this.#d.now();
    for (const m of this.#members) {
      const h = m.held;
      if (h === null || m.dropped || now < h.refreshedAt + m.f.maxAgeSeconds * 1000) continue;
      m.dropped = true;
      this.#d.logger.warn("federated_bundle_dropped", {
        trust_domain: m.f.trustDomain.name,
        refreshed_at: iso(h.refreshedAt),
        max_age_seconds: m.f.maxAgeSeconds,
        last_error: m.lastError,
      });
    }
  }

  async #refresh(m: Member): Promise<void> {
    const d = this.#d;
    const td = m.f.trustDomain;
    try {
      const text = await (d.fetcher ?? fetchBundle)(m.f, { held: m.held?.bundle ?? m.initial, caPem: m.caPem }, this.#abort.signal);
      const bundle = await parseFetched(td, text);
      const before = m.held?.bundle;
      if (before?.sequence !== undefined && bundle.sequence !== undefined && bundle.sequence < before.sequence) {
        throw new FederationError("federation_bundle_stale", `federation: ${td.name}'s endpoint sent sequence ${bundle.sequence}, older than the held ${before.sequence}: kept the held bundle`);
      }
      const now = d.now();
      const held: Held = { bundle, jwksText: text, jwks: JSON.parse(text), refreshedAt: now };
      await d.store.setState(STATE_KEY(td), JSON.stringify({ jwks: text, refreshed_at: now }));
      const restored = m.dropped;
      m.held = held;
      m.dropped = false;
      m.failures = 0;
      m.lastError = null;
      m.nextAt = now + halfInterval(m.f, bundle);
      if (before === undefined || restored || !before.equals(bundle)) {
        d.logger.info("federated_bundle_updated", {
          trust_domain: td.name,
          sequence: bundle.sequence ?? null,
          roots: bundle.x509Authorities.length,
          refresh_hint_seconds: bundle.refreshHintSeconds ?? null,
          expires_at: iso(now + m.f.maxAgeSeconds * 1000),
          ...(restored ? { restored: true } : {}),
        });
      }
    } catch (e) {
      if (this.#abort.signal.aborted) return;
      m.failures += 1;
      m.lastError = (e as Error).message;
      const wait = Math.min(halfInterval(m.f, m.held?.bundle ?? null), MIN_INTERVAL_MS * 2 ** Math.min(m.failures - 1, 16));
      m.nextAt = d.now() + wait;
      d.logger.warn("federation_fetch_failed", { trust_domain: td.name, code: (e as { code?: string }).code ?? "unexpected", error: m.lastError, failures: m.failures, retry_in_ms: wait });
    }
  }
}

/** Half of the refresh interval: the bundle's hint (else default_refresh), or max_age when shorter; at least 1 s. */
function halfInterval(f: FederationSetting, bundle: Bundle | null): number {
  const seconds = Math.min(bundle?.refreshHintSeconds ?? f.defaultRefreshSeconds, f.maxAgeSeconds);
  return Math.max(MIN_INTERVAL_MS, (seconds * 1000) / 2);
}

/** What the datastore kept of a member: its last fetched bundle and when; null when nothing usable. */
async function loadHeld(d: FederationDeps, f: FederationSetting): Promise<Held | null> {
  const raw = await d.store.getState(STATE_KEY(f.trustDomain));
  if (raw === null) return null;
  try {
    const o = JSON.parse(raw) as { jwks: string; refreshed_at: number };
    const bundle = await parseFetched(f.trustDomain, o.jwks);
    if (!Number.isSafeInteger(o.refreshed_at)) return null;
    return { bundle, jwksText: o.jwks, jwks: JSON.parse(o.jwks), refreshedAt: o.refreshed_at };
  } catch (e) {
    d.logger.warn("federation_state_unreadable", { trust_domain: f.trustDomain.name, error: (e as Error).message });
    return null;
  }
}
