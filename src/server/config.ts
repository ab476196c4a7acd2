/**
 * The identity server's settings, `server.yaml` (docs/server-api.md, "Places and settings").
 *
 * Guaranteed: an absent file means every default; a present file is validated whole, and any
 * problem (an unknown key, a value of the wrong type, a bad duration, address or rate) rejects it
 * with a ServerConfigError naming the file, the line and the field path, e.g.
 * `server config: /etc/tidegate/server.yaml:7: ca.signing_ttl: "1x" is not a duration`.
 * With an instance (tests, benchmarks) a listener the file does not name binds 127.0.0.1 on a
 * free port, chosen at the first start and kept in the server state for later starts (server.ts).
 */
import { existsSync } from "node:fs";
import { readRegularText } from "../runtime/bounded-read.ts";
import * as v from "valibot";
import { TidegateError } from "../errors.ts";
import { converted, mapping, readYaml } from "../policy/source.ts";
import { parseDuration, parseSeconds } from "../runtime/duration.ts";
import type { Places } from "../runtime/instance.ts";
import { httpsUrl, spiffeId, trustDomain } from "../policy/schema.ts";
import type { SpiffeId, TrustDomain } from "../spiffe/index.ts";
import { parseHostPort, type HostPort } from "./host-port.ts";
import { BACKDATE_SECONDS } from "../x509/mint.ts";
import { DEFAULT_MAX_CONNECTIONS_PER_SOURCE } from "./source-cap.ts";
import type { AuditOnFailure } from "./audit-gate.ts";

export class ServerConfigError extends TidegateError {}

export interface ServerSettings {
  /** `maxConnectionsPerSource`: open connections one source address may hold at each TLS listener (source-cap.ts). */
  readonly listen: { readonly public: HostPort; readonly api: HostPort; readonly maxConnectionsPerSource: number };
  /** DNS SANs of the server's own SVID. */
  readonly dnsNames: readonly string[];
  readonly ca: {
    readonly rootTtlSeconds: number;
    readonly signingTtlSeconds: number;
    /** 0: never rotate the root on its own. */
    readonly rootRotateBeforeSeconds: number;
    readonly refreshHintSeconds: number;
  };
  readonly svid: { readonly defaultTtlSeconds: number; readonly nodeTtlSeconds: number; readonly serverTtlSeconds: number };
  readonly joinToken: { readonly defaultTtlSeconds: number };
  /** Requests per second; the token bucket's burst is one second's worth. */
  readonly rateLimit: { readonly svidPerNode: number; readonly attestPerSource: number };
  /** Trust domains whose bundles this server fetches and hands to its agents (docs/federation.md). */
  readonly federation: readonly FederationSetting[];
  /** While the server's audit log cannot be written: refuse what would need an event, or serve on (audit-gate.ts). */
  readonly audit: { readonly onFailure: AuditOnFailure };
}

/** One `federation:` item: where a trust domain publishes its bundle and how to trust that endpoint. */
export interface FederationSetting {
  readonly trustDomain: TrustDomain;
  /** The bundle endpoint's URL (https). */
  readonly bundleEndpoint: string;
  readonly profile: "https_spiffe" | "https_web";
  /** https_spiffe: the SPIFFE ID the endpoint presents (in `trustDomain`). */
  readonly endpointId: SpiffeId | null;
  /** https_spiffe: the initial bundle (PEM roots or SPIFFE JWKS), obtained out of band. */
  readonly bundleFile: string | null;
  /** https_web: the CA file the endpoint's certificate chains to; null: the system's roots. */
  readonly caFile: string | null;
  /** A bundle not refreshed for this long is dropped (agents stop trusting the trust domain). */
  readonly maxAgeSeconds: number;
  /** How often to refresh when the bundle carries no refresh hint. */
  readonly defaultRefreshSeconds: number;
}

export const FEDERATION_DEFAULTS = { maxAgeSeconds: 24 * 3600, defaultRefreshSeconds: 300 } as const;

export const DEFAULT_PUBLIC: HostPort = { host: "127.0.0.1", port: 8081 };
export const DEFAULT_API: HostPort = { host: "127.0.0.1", port: 8082 };
const INSTANCE_LISTEN: HostPort = { host: "127.0.0.1", port: 0 };

export const DEFAULT_SETTINGS: ServerSettings = {
  listen: { public: DEFAULT_PUBLIC, api: DEFAULT_API, maxConnectionsPerSource: DEFAULT_MAX_CONNECTIONS_PER_SOURCE },
  dnsNames: ["localhost"],
  ca: { rootTtlSeconds: 8760 * 3600, signingTtlSeconds: 24 * 3600, rootRotateBeforeSeconds: 720 * 3600, refreshHintSeconds: 300 },
  svid: { defaultTtlSeconds: 3600, nodeTtlSeconds: 3600, serverTtlSeconds: 24 * 3600 },
  joinToken: { defaultTtlSeconds: 600 },
  rateLimit: { svidPerNode: 500, attestPerSource: 10 },
  federation: [],
  audit: { onFailure: "refuse" },
};

const seconds = converted((t) => parseSeconds(t, "duration"));
const secondsOrZero = converted((t) => {
  const ms = parseDuration(t, "duration");
  if (ms % 1000 !== 0) throw new Error(`duration: ${JSON.stringify(t)} must be a whole number of seconds`);
  return ms / 1000;
});
const rate = converted((t) => {
  const m = /^([1-9][0-9]{0,8})\/s$/.exec(t);
  if (m === null) throw new Error(`${JSON.stringify(t.slice(0, 64))} is not a rate (use N/s with N a whole number >= 1, e.g. 500/s)`);
  return Number(m[1]);
});
const hostPort = converted((t) => parseHostPort(t));
/** The most connections per source the cap allows: more than a host's ephemeral ports to one address. */
export const MAX_CONNECTIONS_PER_SOURCE_LIMIT = 65536;
const connectionCap = v.pipe(
  v.number(),
  v.integer("is not a whole number"),
  v.minValue(1, "must be at least 1"),
  v.maxValue(MAX_CONNECTIONS_PER_SOURCE_LIMIT, `must be at most ${MAX_CONNECTIONS_PER_SOURCE_LIMIT}`),
);
const absolutePath = v.pipe(v.string(), v.regex(/^\/[^\u0000]*$/, "is not an absolute path"));
const dnsName = v.pipe(
  v.string(),
  v.regex(/^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/, "is not a DNS name"),
);

const Schema = v.nullish(
  mapping({
    listen: v.optional(mapping({ public: v.optional(hostPort), api: v.optional(hostPort), max_connections_per_source: v.optional(connectionCap) })),
    dns_names: v.optional(v.array(dnsName)),
    ca: v.optional(mapping({ root_ttl: v.optional(seconds), signing_ttl: v.optional(seconds), root_rotate_before: v.optional(secondsOrZero) })),
    bundle: v.optional(mapping({ refresh_hint: v.optional(seconds) })),
    svid: v.optional(mapping({ default_ttl: v.optional(seconds), node_ttl: v.optional(seconds), server_ttl: v.optional(seconds) })),
    join_token: v.optional(mapping({ default_ttl: v.optional(seconds) })),
    rate_limit: v.optional(mapping({ svid_per_node: v.optional(rate), attest_per_source: v.optional(rate) })),
    audit: v.optional(mapping({ on_failure: v.optional(v.picklist(["refuse", "serve"])) })),
    federation: v.optional(
      v.array(
        mapping({
          trust_domain: trustDomain,
          bundle_endpoint: httpsUrl,
          profile: v.picklist(["https_spiffe", "https_web"]),
          endpoint_id: v.optional(spiffeId),
          bundle: v.optional(absolutePath),
          ca: v.optional(absolutePath),
          max_age: v.optional(seconds),
          default_refresh: v.optional(seconds),
        }),
      ),
    ),
  }),
);

/** Parses server.yaml text; `file` names it in errors. */
export function parseServerConfig(text: string, file: string, places?: Pick<Places, "instance">): ServerSettings {
  const { value, fail } = readYaml(Schema, text, file, {
    subject: "server config",
    docsHint: "docs/server-api.md",
    makeError: (message) => new ServerConfigError("server_config_invalid", message),
  });
  const o = value ?? {};
  const d = DEFAULT_SETTINGS;
  const fallback = places !== undefined && places.instance !== null;
  return {
    listen: {
      public: o.listen?.public ?? (fallback ? INSTANCE_LISTEN : d.listen.public),
      api: o.listen?.api ?? (fallback ? INSTANCE_LISTEN : d.listen.api),
      maxConnectionsPerSource: o.listen?.max_connections_per_source ?? d.listen.maxConnectionsPerSource,
    },
    dnsNames: o.dns_names ?? d.dnsNames,
    ca: {
      rootTtlSeconds: o.ca?.root_ttl ?? d.ca.rootTtlSeconds,
      signingTtlSeconds: o.ca?.signing_ttl ?? d.ca.signingTtlSeconds,
      rootRotateBeforeSeconds: o.ca?.root_rotate_before ?? d.ca.rootRotateBeforeSeconds,
      refreshHintSeconds: o.bundle?.refresh_hint ?? d.ca.refreshHintSeconds,
    },
    svid: {
      defaultTtlSeconds: o.svid?.default_ttl ?? d.svid.defaultTtlSeconds,
      nodeTtlSeconds: o.svid?.node_ttl ?? d.svid.nodeTtlSeconds,
      serverTtlSeconds: o.svid?.server_ttl ?? d.svid.serverTtlSeconds,
    },
    joinToken: { defaultTtlSeconds: o.join_token?.default_ttl ?? d.joinToken.defaultTtlSeconds },
    rateLimit: {
      svidPerNode: o.rate_limit?.svid_per_node ?? d.rateLimit.svidPerNode,
      attestPerSource: o.rate_limit?.attest_per_source ?? d.rateLimit.attestPerSource,
    },
    federation: federationOf(o.federation ?? [], fail),
    audit: { onFailure: o.audit?.on_failure ?? d.audit.onFailure },
  };
}

type FederationInput = NonNullable<NonNullable<v.InferOutput<typeof Schema>>["federation"]>;

/**
 * The checks that span fields: each trust domain once; https_spiffe names the endpoint's SPIFFE
 * ID, in the federated trust domain, and an initial bundle; https_web takes neither (a `ca` file
 * at most). Our own trust domain is refused when the server starts (federation.ts), where it is known.
 */
function federationOf(items: FederationInput, fail: (path: (string | number)[], why: string) => never): FederationSetting[] {
  const seen = new Set<string>();
  return items.map((f, i) => {
    const at = (k: string) => ["federation", i, k];
    const td = f.trust_domain as TrustDomain;
    if (seen.has(td.name)) fail(at("trust_domain"), `${td.name} is listed twice`);
    seen.add(td.name);
    if (f.profile === "https_spiffe") {
      if (f.endpoint_id === undefined) fail(at("endpoint_id"), "required with profile https_spiffe (the SPIFFE ID the endpoint presents)");
      if (!(f.endpoint_id as SpiffeId).trustDomain.equals(td)) fail(at("endpoint_id"), `must be in trust domain ${td.name} (an endpoint of another trust domain is not supported)`);
      if (f.bundle === undefined) fail(at("bundle"), "required with profile https_spiffe (the trust domain's bundle, obtained out of band, to authenticate the endpoint the first time)");
      if (f.ca !== undefined) fail(at("ca"), "only with profile https_web (https_spiffe authenticates the endpoint with the trust domain's bundle)");
    } else {
      if (f.endpoint_id !== undefined) fail(at("endpoint_id"), "only with profile https_spiffe");
      if (f.bundle !== undefined) fail(at("bundle"), "only with profile https_spiffe");
    }
    return {
      trustDomain: td,
      bundleEndpoint: f.bundle_endpoint,
      profile: f.profile,
      endpointId: (f.endpoint_id as SpiffeId | undefined) ?? null,
      bundleFile: f.bundle ?? null,
      caFile: f.ca ?? null,
      maxAgeSeconds: f.max_age ?? FEDERATION_DEFAULTS.maxAgeSeconds,
      defaultRefreshSeconds: f.default_refresh ?? FEDERATION_DEFAULTS.defaultRefreshSeconds,
    };
  });
}

/** Reads `places.serverConfig`; an absent file gives the defaults; anything but a regular file of at most 4 MiB is `server_config_unreadable`. */
export function loadServerConfig(places: Pick<Places, "serverConfig" | "instance">): ServerSettings {
  const file = places.serverConfig;
  if (!existsSync(file)) return parseServerConfig("", file, places);
  let text: string;
  try {
    // A regular file of at most 4 MiB: a FIFO or /dev/zero is refused, never waited on or read.
    text = readRegularText(file, "server config");
  } catch (cause) {
    throw new ServerConfigError("server_config_unreadable", (cause as Error).message, { cause });
  }
  return parseServerConfig(text, file, places);
}

/**
 * An SVID is backdated BACKDATE_SECONDS for clock skew (src/x509/mint.ts), and agents renew it at
 * half its whole lifetime, the backdate included (src/agent/rotation.ts, SPIRE's rule): about
 * (ttl - 10) / 2 seconds after it is issued. So a TTL under twice the backdate is renewed within
 * 5 s of issuance, and one of 10 s or less at once, over and over, each agent asking the server
 * for it about once a second. Allowed (a test wants SVIDs that turn over fast), but said.
 */
export const SHORT_TTL_SECONDS = 2 * BACKDATE_SECONDS;

/** When agents renew an SVID of `ttlSeconds` after its issuance, at the middle of its jitter; 0: at once. */
export function renewedAfterSeconds(ttlSeconds: number): number {
  return Math.max(0, (ttlSeconds - BACKDATE_SECONDS) / 2);
}

/** What to say of an SVID lifetime under SHORT_TTL_SECONDS (null when it is not). */
export function shortTtlNote(what: string, ttlSeconds: number): string | null {
  if (ttlSeconds >= SHORT_TTL_SECONDS) return null;
  const after = renewedAfterSeconds(ttlSeconds);
  return `${what} ${ttlSeconds}s is under ${SHORT_TTL_SECONDS}s: SVIDs are backdated ${BACKDATE_SECONDS}s for clock skew and renewed at half their whole lifetime, so these are renewed ${after === 0 ? "as soon as they are issued, again and again" : `${after}s after they are issued`}`;
}

/** The `svid:` lifetimes of `s` under SHORT_TTL_SECONDS, each with what to say of it (the server logs them at start). */
export function shortSvidTtls(s: ServerSettings): { setting: string; ttl_seconds: number; note: string }[] {
  const all: [string, number][] = [["svid.default_ttl", s.svid.defaultTtlSeconds], ["svid.node_ttl", s.svid.nodeTtlSeconds], ["svid.server_ttl", s.svid.serverTtlSeconds]];
  return all.flatMap(([setting, ttl]) => {
    const note = shortTtlNote(setting, ttl);
    return note === null ? [] : [{ setting, ttl_seconds: ttl, note }];
  });
}
