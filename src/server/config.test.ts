// server.yaml: defaults, the instance's port-0 listeners, and every rejection naming the file,
// the line and the field path.
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_SETTINGS, loadServerConfig, parseServerConfig, renewedAfterSeconds, ServerConfigError, shortSvidTtls } from "./config.ts";
import { rotationTime } from "../agent/rotation.ts";
import { BACKDATE_SECONDS } from "../x509/mint.ts";

describe("server config", () => {
  test("an empty or absent file gives the defaults of docs/server-api.md", () => {
    expect(parseServerConfig("", "s.yaml")).toEqual(DEFAULT_SETTINGS);
    expect(loadServerConfig({ serverConfig: "/nonexistent/tidegate/server.yaml", instance: null })).toEqual(DEFAULT_SETTINGS);
    expect(DEFAULT_SETTINGS.listen.public).toEqual({ host: "127.0.0.1", port: 8081 });
    expect(DEFAULT_SETTINGS.ca.rootTtlSeconds).toBe(8760 * 3600);
    expect(DEFAULT_SETTINGS.listen.maxConnectionsPerSource).toBe(64);
    expect(DEFAULT_SETTINGS.audit.onFailure).toBe("refuse");
  });

  test("svid lifetimes under 20 s are named with when agents renew them; the defaults are not", () => {
    expect(shortSvidTtls(DEFAULT_SETTINGS)).toEqual([]);
    const s = parseServerConfig("svid: { default_ttl: 8s, node_ttl: 19s, server_ttl: 20s }", "s.yaml");
    const short = shortSvidTtls(s);
    expect(short.map((x) => [x.setting, x.ttl_seconds])).toEqual([["svid.default_ttl", 8], ["svid.node_ttl", 19]]);
    expect(short[0]!.note).toBe("svid.default_ttl 8s is under 20s: SVIDs are backdated 10s for clock skew and renewed at half their whole lifetime, so these are renewed as soon as they are issued, again and again");
    expect(short[1]!.note).toEndWith("so these are renewed 4.5s after they are issued");
  });

  test("renewedAfterSeconds is what the agent's rotation rule gives for the CA's validity (backdated)", () => {
    const issued = Date.UTC(2026, 0, 1);
    for (const ttl of [5, 10, 19, 60, 3600]) {
      const at = rotationTime(issued - BACKDATE_SECONDS * 1000, issued + ttl * 1000, () => 0.5); // the middle of the jitter
      expect({ ttl, after: Math.max(0, (at - issued) / 1000) }).toEqual({ ttl, after: renewedAfterSeconds(ttl) });
    }
  });

  test("with an instance, listeners the file does not name bind 127.0.0.1:0", () => {
    const s = parseServerConfig("listen: { api: '127.0.0.1:9000' }", "s.yaml", { instance: "t1" });
    expect(s.listen.public).toEqual({ host: "127.0.0.1", port: 0 });
    expect(s.listen.api).toEqual({ host: "127.0.0.1", port: 9000 });
  });

  test("every setting is read", () => {
    const s = parseServerConfig(
      [
        "listen: { public: '0.0.0.0:443', api: '[::1]:8443', max_connections_per_source: 500 }",
        "dns_names: [id.example.org, localhost]",
        "ca: { root_ttl: 48h, signing_ttl: 1h, root_rotate_before: 0s }",
        "bundle: { refresh_hint: 10s }",
        "svid: { default_ttl: 5m, node_ttl: 2m, server_ttl: 1h }",
        "join_token: { default_ttl: 90s }",
        "rate_limit: { svid_per_node: 20000/s, attest_per_source: 1/s }",
        "audit: { on_failure: serve }",
      ].join("\n"),
      "s.yaml",
    );
    expect(s).toEqual({
      listen: { public: { host: "0.0.0.0", port: 443 }, api: { host: "::1", port: 8443 }, maxConnectionsPerSource: 500 },
      dnsNames: ["id.example.org", "localhost"],
      ca: { rootTtlSeconds: 172800, signingTtlSeconds: 3600, rootRotateBeforeSeconds: 0, refreshHintSeconds: 10 },
      svid: { defaultTtlSeconds: 300, nodeTtlSeconds: 120, serverTtlSeconds: 3600 },
      joinToken: { defaultTtlSeconds: 90 },
      rateLimit: { svidPerNode: 20000, attestPerSource: 1 },
      federation: [],
      audit: { onFailure: "serve" },
    });
  });

  test("federation: both profiles, with defaults for max_age and default_refresh", () => {
    const s = parseServerConfig(
      [
        "federation:",
        "  - trust_domain: partner.test",
        "    bundle_endpoint: https://10.0.0.4:8081/.well-known/spiffe-bundle",
        "    profile: https_spiffe",
        "    endpoint_id: spiffe://partner.test/tidegate/server",
        "    bundle: /etc/tidegate/partner.test.bundle",
        "    max_age: 10m",
        "    default_refresh: 30s",
        "  - { trust_domain: web.test, bundle_endpoint: 'https://bundle.web.test/', profile: https_web, ca: /etc/ssl/web.pem }",
      ].join("\n"),
      "s.yaml",
    );
    expect(s.federation.map((f) => [f.trustDomain.name, f.bundleEndpoint, f.profile, f.endpointId?.toString() ?? null, f.bundleFile, f.caFile, f.maxAgeSeconds, f.defaultRefreshSeconds])).toEqual([
      ["partner.test", "https://10.0.0.4:8081/.well-known/spiffe-bundle", "https_spiffe", "spiffe://partner.test/tidegate/server", "/etc/tidegate/partner.test.bundle", null, 600, 30],
      ["web.test", "https://bundle.web.test/", "https_web", null, null, "/etc/ssl/web.pem", 86400, 300],
    ]);
  });

  const rejections: [string, string, RegExp][] = [
    ["an unknown top-level key", "listen: {}\nfederate: []\n", /^server config: s\.yaml:2: federate: unknown key/],
    ["federation: a trust domain twice", "federation:\n  - { trust_domain: p.test, bundle_endpoint: 'https://a/', profile: https_web }\n  - { trust_domain: p.test, bundle_endpoint: 'https://b/', profile: https_web }\n", /^server config: s\.yaml:3: federation\[1\]\.trust_domain: p\.test is listed twice/],
    ["federation: an http endpoint", "federation:\n  - { trust_domain: p.test, bundle_endpoint: 'http://a/', profile: https_web }\n", /federation\[0\]\.bundle_endpoint: .*https/],
    ["federation: an unknown profile", "federation:\n  - { trust_domain: p.test, bundle_endpoint: 'https://a/', profile: web }\n", /federation\[0\]\.profile/],
    ["federation: a bad trust domain", "federation:\n  - { trust_domain: 'P_.test!', bundle_endpoint: 'https://a/', profile: https_web }\n", /federation\[0\]\.trust_domain/],
    ["federation: https_spiffe without endpoint_id", "federation:\n  - { trust_domain: p.test, bundle_endpoint: 'https://a/', profile: https_spiffe, bundle: /b.pem }\n", /federation\[0\]\.endpoint_id: required with profile https_spiffe/],
    ["federation: https_spiffe endpoint_id of another trust domain", "federation:\n  - { trust_domain: p.test, bundle_endpoint: 'https://a/', profile: https_spiffe, endpoint_id: 'spiffe://q.test/s', bundle: /b.pem }\n", /federation\[0\]\.endpoint_id: must be in trust domain p\.test/],
    ["federation: https_spiffe without an initial bundle", "federation:\n  - { trust_domain: p.test, bundle_endpoint: 'https://a/', profile: https_spiffe, endpoint_id: 'spiffe://p.test/s' }\n", /federation\[0\]\.bundle: required with profile https_spiffe/],
    ["federation: https_spiffe with a ca file", "federation:\n  - { trust_domain: p.test, bundle_endpoint: 'https://a/', profile: https_spiffe, endpoint_id: 'spiffe://p.test/s', bundle: /b.pem, ca: /c.pem }\n", /federation\[0\]\.ca: only with profile https_web/],
    ["federation: https_web with endpoint_id", "federation:\n  - { trust_domain: p.test, bundle_endpoint: 'https://a/', profile: https_web, endpoint_id: 'spiffe://p.test/s' }\n", /federation\[0\]\.endpoint_id: only with profile https_spiffe/],
    ["federation: https_web with an initial bundle", "federation:\n  - { trust_domain: p.test, bundle_endpoint: 'https://a/', profile: https_web, bundle: /b.pem }\n", /federation\[0\]\.bundle: only with profile https_spiffe/],
    ["federation: a relative ca path", "federation:\n  - { trust_domain: p.test, bundle_endpoint: 'https://a/', profile: https_web, ca: c.pem }\n", /federation\[0\]\.ca: .*absolute path/],
    ["federation: a bad max_age", "federation:\n  - { trust_domain: p.test, bundle_endpoint: 'https://a/', profile: https_web, max_age: soon }\n", /federation\[0\]\.max_age/],
    ["an unknown nested key", "ca:\n  root_ttl: 1h\n  sign_ttl: 1h\n", /^server config: s\.yaml:3: ca\.sign_ttl: unknown key/],
    ["a bad duration", "svid:\n  node_ttl: 1x\n", /^server config: s\.yaml:2: svid\.node_ttl: .*"1x" is not a duration/],
    ["a bare number as duration", "svid:\n  node_ttl: 60\n", /^server config: s\.yaml:2: svid\.node_ttl: expected string/],
    ["a zero TTL", "join_token: { default_ttl: 0s }\n", /^server config: s\.yaml:1: join_token\.default_ttl: .*positive whole number of seconds/],
    ["a sub-second TTL", "svid: { default_ttl: 1500ms }\n", /svid\.default_ttl: .*whole number of seconds/],
    ["a rate without /s", "\nrate_limit:\n  svid_per_node: 500\n", /^server config: s\.yaml:3: rate_limit\.svid_per_node: expected string/],
    ["a rate of 0", "rate_limit: { attest_per_source: 0/s }\n", /rate_limit\.attest_per_source: "0\/s" is not a rate/],
    ["a listen address without a port", "listen:\n  public: localhost\n", /^server config: s\.yaml:2: listen\.public: "localhost" is not HOST:PORT/],
    ["a port above 65535", "listen: { api: '1.2.3.4:70000' }\n", /listen\.api: .*port above 65535/],
    ["a connection cap of 0 (no way to turn the cap off)", "listen:\n  max_connections_per_source: 0\n", /^server config: s\.yaml:2: listen\.max_connections_per_source: .*at least 1/],
    ["a connection cap over 65536", "listen: { max_connections_per_source: 65537 }\n", /listen\.max_connections_per_source: .*at most 65536/],
    ["a fractional connection cap", "listen: { max_connections_per_source: 1.5 }\n", /listen\.max_connections_per_source: .*whole number/],
    ["a connection cap as text", "listen: { max_connections_per_source: '64' }\n", /listen\.max_connections_per_source: expected number/],
    ["audit.on_failure other than refuse or serve", "audit:\n  on_failure: ignore\n", /^server config: s\.yaml:2: audit\.on_failure: .*refuse/],
    ["an agent-only audit key", "audit: { dir: /var/log }\n", /audit\.dir: unknown key \(allowed: on_failure/],
    ["a misspelt listen key", "listen: { max_connections: 10 }\n", /listen\.max_connections: unknown key \(allowed: api, max_connections_per_source, public/],
    ["a bad DNS name in a list", "dns_names:\n  - ok.example\n  - bad_name\n", /^server config: s\.yaml:3: dns_names\[1\]: "bad_name" is not a DNS name/],
    ["a list where a mapping goes", "ca: [1]\n", /^server config: s\.yaml:1: ca: expected a mapping/],
    ["not YAML", "ca: {\n", /^server config: s\.yaml:\d+: not valid YAML/],
    ["a duplicate key", "ca: {}\nca: {}\n", /^server config: s\.yaml:2: not valid YAML/],
    // Found by config.fuzz.test.ts: printing the value threw a TypeError (a cyclic structure).
    ["a list that contains itself (an alias in its own anchor)", "ca: {}\ndns_names: &c [*c]\n", /^server config: s\.yaml:2: dns_names\[0\]: expected string, got a value that contains itself/],
    ["a mapping that contains itself", "listen: &c { public: *c }\n", /^server config: s\.yaml:1: listen\.public: expected string, got a value that contains itself/],
  ];
  for (const [what, text, message] of rejections) {
    test(`rejects ${what}`, () => {
      let err: unknown;
      try {
        parseServerConfig(text, "s.yaml");
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ServerConfigError);
      expect((err as ServerConfigError).code).toBe("server_config_invalid");
      expect((err as Error).message).toMatch(message);
    });
  }

  test("loadServerConfig reads the file and names it in errors", () => {
    const dir = mkdtempSync(join(tmpdir(), "tidegate-config-"));
    try {
      const file = join(dir, "server.yaml");
      writeFileSync(file, "svid:\n  server_ttl: 2h\n  bogus: 1\n");
      expect(() => loadServerConfig({ serverConfig: file, instance: null })).toThrow(`server config: ${file}:3: svid.bogus: unknown key`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// The settings file is read before anything else the server does: a FIFO once blocked `server
// init` and `tidegate up` forever, and /dev/zero was read until memory ran out (8 GB seen).
describe("loadServerConfig reads a regular file of at most 4 MiB, nothing else", () => {
  const cases: [string, (dir: string) => string, string][] = [
    ["a FIFO", (dir) => { const f = join(dir, "fifo.yaml"); Bun.spawnSync(["mkfifo", f]); return f; }, "is not a regular file"],
    ["/dev/zero", () => "/dev/zero", "is not a regular file"],
    ["a directory", (dir) => dir, "is not a regular file"],
    ["a file over 4 MiB", (dir) => { const f = join(dir, "big.yaml"); writeFileSync(f, `# ${"x".repeat(4 * 1024 * 1024)}\n`); return f; }, "more than 4194304"],
  ];
  for (const [what, make, message] of cases) {
    test(what, () => {
      const dir = mkdtempSync(join(tmpdir(), "tidegate-config-"));
      try {
        const file = make(dir);
        const t0 = performance.now();
        const err = (() => { try { loadServerConfig({ serverConfig: file, instance: null }); } catch (e) { return e; } })();
        expect(performance.now() - t0).toBeLessThan(2000);
        expect(err).toBeInstanceOf(ServerConfigError);
        expect((err as ServerConfigError).code).toBe("server_config_unreadable");
        expect((err as Error).message).toContain(`server config: ${JSON.stringify(file)}`);
        expect((err as Error).message).toContain(message);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
