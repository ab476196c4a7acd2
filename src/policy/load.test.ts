// The policy file: the sketch of DESIGN.md section 5 loads with every key read; every rejection
// names the file, the line and the field path (docs/policy.md, "Rejected").
import { describe, test, assert, errorOf } from "../../test/shim.ts";
import { SpiffeId } from "../spiffe/index.ts";
import { PolicyError } from "./errors.ts";
import { DEFAULT_PLACEHOLDER_HEADERS } from "./inject.ts";
import { loadPolicy } from "./load.ts";
import { boundsOf, boundsText } from "./model.ts";
import { describeDecision } from "./query.ts";
import { editDistance, nearest } from "./nearest.ts";
import { keysAllowedAt, lineFinder } from "./source.ts";
import { LineCounter, parseDocument } from "yaml";

export const SKETCH = `trust_domain: example.org
agent:
  server: https://tidegate.example.org:8081
  server_fingerprint: "ab:${"cd".repeat(30)}:ef"
  join_token_file: /etc/tidegate/join-token
  sync_interval: 10s
  retry_max: 2m
workloads:
  - name: github-mcp
    id: spiffe://example.org/mcp/github
    selectors: ["unix:uid:1001"]
    user: mcp
    run_by: { users: [alice], groups: [developers] }
egress:
  - name: github-api
    from: spiffe://example.org/mcp/github
    to: { host: api.github.com, port: 443 }
    action: intercept
    inject: { headers: { Authorization: "Bearer \${secret:github_token}" } }
    http: { methods: [GET, POST], paths: ["/repos/**"] }
    upgrade: [websocket]
  - name: partner-email
    from: [spiffe://example.org/agent/*, spiffe://example.org/bot]
    to: { host: "*.partner.com", port: 443 }
    action: intercept
    mtls: { server_id: spiffe://partner.com/mcp/email }
    mcp: { tools: { allow: [send_email], deny: [delete_all] }, resources: { allow: ["file:///data/*"] }, prompts: { deny: [admin_*] } }
  - name: internal
    from: "spiffe://example.org/**"
    to: { cidr: 10.0.0.0/8, port: 8000-8080 }
    action: tls
    ca: /etc/tidegate/internal-ca.pem
    upstream: { port: 8443, key_exchange: classical }
  - name: resolver
    from: "spiffe://example.org/**"
    to: { cidr: 127.0.0.53/32, port: 53, proto: udp }
    action: direct
  - name: v6-deny
    from: "spiffe://example.org/**"
    to: { cidr: "2001:db8::/32", port: any }
    action: deny
inbound:
  - name: email-mcp
    id: spiffe://example.org/mcp/email
    listen: 0.0.0.0:8443
    forward: 127.0.0.1:3000
    allow: [spiffe://example.org/agent/*, spiffe://partner.com/agent/*]
    proxy_protocol: true
    forward_client_cert: true
    mcp: { tools: { allow: [send_email] } }
  - name: unix-mcp
    id: spiffe://example.org/mcp/unix
    listen: "[::1]:9443"
    forward: unix:/run/mcp.sock
    allow: spiffe://example.org/agent/*
federation:
  - trust_domain: partner.com
  - trust_domain: other.test
dns:
  servers: [127.0.0.53, "[::1]:5353", 10.0.0.2:53]
  hosts:
    API.Internal.: [10.1.2.3, "fd00::3"]
`;

describe("loadPolicy: the full sketch", () => {
  const p = loadPolicy(SKETCH, "sketch.yaml");
  test("top level, agent settings and workloads", () => {
    assert.equal(p.trustDomain.name, "example.org");
    assert.deepEqual(p.agent, {
      server: "https://tidegate.example.org:8081/",
      serverFingerprint: `ab:${"cd".repeat(30)}:ef`,
      trustBundle: null,
      joinTokenFile: "/etc/tidegate/join-token",
      syncIntervalMs: 10_000,
      retryMaxMs: 120_000,
      runGroup: "tidegate",
      drainTimeoutMs: 10_000,
      maxConnectionsPerWorkload: 1024,
    });
    assert.equal(p.workloads.length, 1);
    const w = p.workloads[0]!;
    assert.equal(w.id.toString(), "spiffe://example.org/mcp/github");
    assert.deepEqual([w.name, w.selectors, w.user, w.runBy], ["github-mcp", ["unix:uid:1001"], "mcp", { users: ["alice"], groups: ["developers"] }]);
  });
  test("workload selectors of every attestor are kept as written, the workload's own tidegate:workload too", () => {
    const all = ["unix:uid:0", "unix:user:mcp", "unix:gid:1001", "unix:supplementary_group:docker", "unix:path:/usr/bin/node", `unix:sha256:${"ab".repeat(32)}`, "cgroup:path:/system.slice/mcp.service", `container:id:${"0f".repeat(32)}`, "k8s:ns:payments", "k8s:pod-label:app:web", "tidegate:workload:w"];
    const w = loadPolicy(`trust_domain: example.org\nworkloads:\n  - name: w\n    id: spiffe://example.org/w\n    selectors: ${JSON.stringify(all)}\n`, "w.yaml").workloads[0]!;
    assert.deepEqual(w.selectors, all);
  });
  test("egress rules keep order, names, lines and every option", () => {
    assert.deepEqual(p.egress.map((r) => [r.index, r.name, r.line, r.action, r.proto]), [
      [0, "github-api", 15, "intercept", "tcp"],
      [1, "partner-email", 22, "intercept", "tcp"],
      [2, "internal", 28, "tls", "tcp"],
      [3, "resolver", 34, "direct", "udp"],
      [4, "v6-deny", 38, "deny", "tcp"],
    ]);
    const [gh, partner, internal, , v6] = p.egress;
    assert.equal(gh!.to.kind === "host" && gh!.to.host.text, "api.github.com");
    assert.deepEqual(gh!.inject.map((h) => [h.name, h.secrets]), [["Authorization", ["github_token"]]]);
    assert.deepEqual(gh!.http?.methods, ["GET", "POST"]);
    assert.deepEqual(gh!.http?.paths?.map((x) => x.text), ["/repos/**"]);
    assert.deepEqual([gh!.upgrade, partner!.upgrade], [["websocket"], []]);
    assert.deepEqual(partner!.from.map((f) => f.text), ["spiffe://example.org/agent/*", "spiffe://example.org/bot"]);
    assert.equal(partner!.serverId?.toString(), "spiffe://partner.com/mcp/email");
    assert.deepEqual([...partner!.tools!.allow!], ["send_email"]);
    assert.deepEqual([...partner!.tools!.deny], ["delete_all"]);
    assert.equal(partner!.mcp?.tools, partner!.tools);
    assert.deepEqual([partner!.mcp?.resources?.decide("file:///data/x"), partner!.mcp?.resources?.decide("file:///etc/x"), partner!.mcp?.prompts?.decide("admin_x")], ["allowed", "not_allowed", "denied"]);
    assert.deepEqual([gh!.mcp, internal!.mcp], [null, null]);
    assert.equal(internal!.to.kind === "cidr" && internal!.to.cidr.text, "10.0.0.0/8");
    assert.deepEqual([internal!.ports.lo, internal!.ports.hi, internal!.ca, internal!.upstreamPort], [8000, 8080, "/etc/tidegate/internal-ca.pem", 8443]);
    // upstream.key_exchange: classical where given, else the hybrid default
    assert.deepEqual([internal!.keyExchange, gh!.keyExchange, partner!.keyExchange], ["classical", "hybrid", "hybrid"]);
    assert.deepEqual([v6!.ports.lo, v6!.ports.hi], [1, 65535]);
  });
  test("inbound, federation and dns", () => {
    assert.deepEqual(p.inbound.map((r) => [r.name, r.forwardClientCert]), [["email-mcp", true], ["unix-mcp", false]]);
    assert.deepEqual(p.inbound.map((r) => [r.name, r.id.toString(), r.listen, r.forward, r.proxyProtocol, r.allow.length]), [
      ["email-mcp", "spiffe://example.org/mcp/email", { host: "0.0.0.0", port: 8443 }, { kind: "tcp", host: "127.0.0.1", port: 3000 }, true, 2],
      ["unix-mcp", "spiffe://example.org/mcp/unix", { host: "::1", port: 9443 }, { kind: "unix", path: "/run/mcp.sock" }, false, 1],
    ]);
    assert.deepEqual(p.federation.map((f) => f.trustDomain.name), ["partner.com", "other.test"]);
    assert.deepEqual(p.dns.servers, [{ host: "127.0.0.53", port: 53 }, { host: "::1", port: 5353 }, { host: "10.0.0.2", port: 53 }]);
    assert.deepEqual(p.dns.hosts.get("api.internal")?.map((a) => a.text), ["10.1.2.3", "fd00::3"]);
  });
  test("proxy: the bounds on upstream legs, and agent.drain_timeout; each has a default", () => {
    const p = loadPolicy("trust_domain: example.org\nagent: { drain_timeout: 0s }\nproxy: { connect_timeout: 2s, first_byte_timeout: 1m, idle_timeout: 1h, header_timeout: 5s }\n", "p.yaml");
    assert.deepEqual(p.proxy, { connectTimeoutMs: 2000, firstByteTimeoutMs: 60_000, idleTimeoutMs: 3_600_000, headerTimeoutMs: 5000 });
    assert.equal(p.agent.drainTimeoutMs, 0);
    const d = loadPolicy("trust_domain: example.org\n", "d.yaml");
    assert.deepEqual(d.proxy, { connectTimeoutMs: 10_000, firstByteTimeoutMs: 30_000, idleTimeoutMs: 300_000, headerTimeoutMs: 30_000 });
    assert.equal(d.agent.drainTimeoutMs, 10_000);
    assert.deepEqual(loadPolicy("trust_domain: example.org\nproxy: { idle_timeout: 150ms }\n", "s.yaml").proxy.idleTimeoutMs, 150);
  });
  test("agent.max_connections_per_workload: 1 to 65536, default 1024", () => {
    assert.equal(loadPolicy("trust_domain: example.org\n", "d.yaml").agent.maxConnectionsPerWorkload, 1024);
    assert.equal(loadPolicy("trust_domain: example.org\nagent: { max_connections_per_workload: 1 }\n", "p.yaml").agent.maxConnectionsPerWorkload, 1);
    assert.equal(loadPolicy("trust_domain: example.org\nagent: { max_connections_per_workload: 65536 }\n", "p.yaml").agent.maxConnectionsPerWorkload, 65536);
  });
  test("a rule's own proxy: bounds, over the top-level ones for its connections (boundsOf); none: null", () => {
    const p = loadPolicy(
      `trust_domain: example.org
proxy: { idle_timeout: 5m }
egress:
  - { name: slow-api, from: spiffe://example.org/a, to: { host: a.com, port: 443 }, action: intercept, proxy: { first_byte_timeout: 10m, idle_timeout: 1h } }
  - { name: plain, from: spiffe://example.org/a, to: { host: b.com, port: 443 }, action: passthrough }
inbound:
  - { name: long-tools, id: spiffe://example.org/s, listen: 127.0.0.1:9443, forward: 127.0.0.1:9000, allow: [spiffe://example.org/c], proxy: { connect_timeout: 2s, first_byte_timeout: 2m, idle_timeout: 2h, header_timeout: 5s } }
`,
      "b.yaml",
    );
    assert.deepEqual(p.egress[0]!.bounds, { firstByteTimeoutMs: 600_000, idleTimeoutMs: 3_600_000 });
    assert.equal(p.egress[1]!.bounds, null);
    assert.deepEqual(p.inbound[0]!.bounds, { connectTimeoutMs: 2000, firstByteTimeoutMs: 120_000, idleTimeoutMs: 7_200_000, headerTimeoutMs: 5000 });
    assert.deepEqual(boundsOf(p.proxy, p.egress[0]!.bounds), { connectTimeoutMs: 10_000, firstByteTimeoutMs: 600_000, idleTimeoutMs: 3_600_000, headerTimeoutMs: 30_000 });
    assert.equal(boundsOf(p.proxy, p.egress[1]!.bounds), p.proxy);
    // Summaries (conn_open's, `tidegate policy explain`) name a rule's own bounds.
    assert.equal(boundsText(p.inbound[0]!.bounds), "connect_timeout 2s, first_byte_timeout 2m, idle_timeout 2h, header_timeout 5s");
    assert.equal(describeDecision({ verdict: "allow", rule: p.egress[0]!, action: "intercept", upstreamPort: 443 }), "allow intercept by rule slow-api (upstream port 443, first_byte_timeout 10m, idle_timeout 1h)");
    assert.equal(describeDecision({ verdict: "allow", rule: p.egress[1]!, action: "passthrough", upstreamPort: 443 }), "allow passthrough by rule plain (upstream port 443)");
  });
  test("agent.trust_bundle instead of a fingerprint", () => {
    assert.equal(loadPolicy("trust_domain: example.org\nagent: { trust_bundle: /etc/tidegate/bundle.pem }\n", "t.yaml").agent.trustBundle, "/etc/tidegate/bundle.pem");
  });
  test("a minimal file: trust domain only, no rules (everything denied)", () => {
    const a = loadPolicy("trust_domain: example.org\naudit: { dir: /srv/audit, checkpoint_every: 10, checkpoint_interval: 5s, max_file_size: 65536, on_failure: serve, export: { otlp: 'http://127.0.0.1:4318/v1/logs' } }\n", "a.yaml").audit;
    assert.deepEqual(a, { dir: "/srv/audit", checkpointEvery: 10, checkpointIntervalMs: 5000, maxFileBytes: 65536, onFailure: "serve", exportOtlp: "http://127.0.0.1:4318/v1/logs" });
    assert.deepEqual(loadPolicy("trust_domain: example.org\n", "d.yaml").audit, { dir: null, checkpointEvery: null, checkpointIntervalMs: null, maxFileBytes: null, onFailure: "refuse", exportOtlp: null });
    assert.throws(() => loadPolicy("trust_domain: example.org\naudit: { export: { otlp: 'https://u:hunter2@c.example/' } }\n", "p.yaml"), (e: Error) => !e.message.includes("hunter2"));
    // nor with another scheme, or text that does not parse as a URL (the message becomes policy_rejected's reason, in the audit log)
    for (const url of ["grpc://u:hunter2@c.example:4317", "http://u:hunter2@c example/v1/logs"]) {
      assert.throws(() => loadPolicy(`trust_domain: example.org\naudit: { export: { otlp: '${url}' } }\n`, "p.yaml"), (e: Error) => !e.message.includes("hunter2"));
    }
    const m = loadPolicy("trust_domain: example.org\n", "m.yaml");
    assert.deepEqual([m.egress.length, m.inbound.length, m.workloads.length, m.dns.servers], [0, 0, 0, null]);
  });
  test("inject.placeholder_headers: the names lowercase, in order; absent: the default credential headers; [] kept empty", () => {
    const rule = (inject: string) => `trust_domain: example.org\negress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: intercept\n    inject: ${inject}\n`;
    const listed = loadPolicy(rule(`{ headers: { X-Key: "\${secret:k}" }, placeholder_headers: [X-Custom-Auth, api-key] }`), "p.yaml").egress[0]!;
    assert.deepEqual(listed.placeholderHeaders, ["x-custom-auth", "api-key"]);
    assert.ok(Object.isFrozen(listed.placeholderHeaders));
    assert.deepEqual(loadPolicy(rule(`{ headers: { X-Key: "\${secret:k}" } }`), "p.yaml").egress[0]!.placeholderHeaders, ["authorization", "x-api-key", "api-key"]);
    assert.deepEqual(DEFAULT_PLACEHOLDER_HEADERS, ["Authorization", "X-Api-Key", "Api-Key"]);
    assert.deepEqual(loadPolicy(rule(`{ headers: { X-Key: "\${secret:k}" }, placeholder_headers: [] }`), "p.yaml").egress[0]!.placeholderHeaders, []);
  });
  test("the policy is frozen", () => {
    assert.ok(Object.isFrozen(p) && Object.isFrozen(p.egress) && Object.isFrozen(p.egress[0]));
  });
});

const RULE = "  - name: r\n    from: spiffe://example.org/a\n";

// [what, document after "trust_domain: example.org\n" (unless it starts with "!"), line, path, why]
const REJECTIONS: [string, string, number, string, RegExp][] = [
  ["not YAML", "egress: [\n", 3, "", /not valid YAML/],
  ["a duplicate key", "dns: {}\ndns: {}\n", 3, "", /not valid YAML: Map keys must be unique/],
  ["no trust_domain", "!egress: []\n", 1, "trust_domain", /required/],
  ["a bad trust domain", "!trust_domain: Example.org\n", 1, "trust_domain", /spiffeid/],
  ["a list at the top", "!- a\n", 1, "(top)", /expected a mapping/],
  ["an unknown top-level key", "egres: []\n", 2, "egres", /unknown key \(allowed: agent, audit, dns, egress, federation, inbound, proxy, stdio, trust_domain, workloads; did you mean egress\?\)$/],
  ["agent: unknown key", "agent: { servr: https://a }\n", 2, "agent.servr", /unknown key \(allowed: [a-z_, ]*\bserver\b[a-z_, ]*; did you mean server\?\)$/],
  ["agent.server not https", "agent: { server: 'http://a:1' }\n", 2, "agent.server", /not an https/],
  ["agent.server with credentials", "agent: { server: 'https://u:p@a:1' }\n", 2, "agent.server", /user name or password/],
  ["agent.server_fingerprint short", "agent: { server_fingerprint: abcd }\n", 2, "agent.server_fingerprint", /SHA-256/],
  ["agent.trust_bundle relative", "agent: { trust_bundle: b.pem }\n", 2, "agent.trust_bundle", /absolute/],
  ["agent: fingerprint and bundle", `agent:\n  server_fingerprint: "${"ab".repeat(32)}"\n  trust_bundle: /b.pem\n`, 4, "agent.trust_bundle", /not both/],
  ["agent.run_group not a group", "agent: { run_group: 'a b' }\n", 2, "agent.run_group", /not a group/],
  ["agent.sync_interval not a duration", "agent: { sync_interval: 5 }\n", 2, "agent.sync_interval", /expected string/],
  ["agent.retry_max bad unit", "agent: { retry_max: 5y }\n", 2, "agent.retry_max", /not a duration/],
  ["agent.drain_timeout a bare number", "agent: { drain_timeout: '10' }\n", 2, "agent.drain_timeout", /not a duration/],
  ["agent.drain_timeout over 24 days", "agent: { drain_timeout: 25d }\n", 2, "agent.drain_timeout", /at most 24d/],
  ["agent.max_connections_per_workload 0", "agent: { max_connections_per_workload: 0 }\n", 2, "agent.max_connections_per_workload", /at least 1/],
  ["agent.max_connections_per_workload over the kernel's map", "agent: { max_connections_per_workload: 65537 }\n", 2, "agent.max_connections_per_workload", /at most 65536/],
  ["agent.max_connections_per_workload a fraction", "agent: { max_connections_per_workload: 1.5 }\n", 2, "agent.max_connections_per_workload", /not a whole number/],
  ["agent.max_connections_per_workload a string", "agent: { max_connections_per_workload: many }\n", 2, "agent.max_connections_per_workload", /expected number/],
  ["proxy: unknown key", "proxy: { total_timeout: 1h }\n", 2, "proxy.total_timeout", /unknown key \(allowed: connect_timeout, first_byte_timeout, header_timeout, idle_timeout\)$/],
  ["proxy.connect_timeout 0", "proxy: { connect_timeout: 0s }\n", 2, "proxy.connect_timeout", /longer than 0/],
  ["proxy.first_byte_timeout 0", "proxy: { first_byte_timeout: 0ms }\n", 2, "proxy.first_byte_timeout", /longer than 0/],
  ["proxy.idle_timeout over 24 days", "proxy: { idle_timeout: 30d }\n", 2, "proxy.idle_timeout", /at most 24d/],
  ["proxy.idle_timeout not a duration", "proxy: { idle_timeout: forever }\n", 2, "proxy.idle_timeout", /not a duration/],
  ["proxy.header_timeout 0", "proxy: { header_timeout: 0s }\n", 2, "proxy.header_timeout", /longer than 0/],
  ["workloads: bad name", "workloads:\n  - { name: 'a b', id: spiffe://example.org/w }\n", 3, "workloads[0].name", /not a workload name/],
  ["workloads: name over 63 (its cgroup folder's limit)", `workloads:\n  - { name: ${"w".repeat(64)}, id: spiffe://example.org/w }\n`, 3, "workloads[0].name", /1-63/],
  ["workloads: bad id", "workloads:\n  - { name: w, id: 'spiffe://example.org/a//b' }\n", 3, "workloads[0].id", /spiffeid/],
  ["workloads: id elsewhere", "workloads:\n  - { name: w, id: spiffe://other.org/w }\n", 3, "workloads[0].id", /not in trust domain example\.org/],
  ["workloads: id without path", "workloads:\n  - { name: w, id: spiffe://example.org }\n", 3, "workloads[0].id", /needs a path/],
  ["workloads: reserved id", "workloads:\n  - { name: w, id: spiffe://example.org/tidegate/agent/x }\n", 3, "workloads[0].id", /reserved/],
  ["workloads: duplicate name", "workloads:\n  - { name: w, id: spiffe://example.org/a }\n  - { name: w, id: spiffe://example.org/b }\n", 4, "workloads[1].name", /already the name of workloads\[0\]/],
  ["workloads: duplicate id", "workloads:\n  - { name: v, id: spiffe://example.org/a }\n  - { name: w, id: spiffe://example.org/a }\n", 4, "workloads[1].id", /already the id/],
  ["workloads: bad selector", "workloads:\n  - { name: w, id: spiffe://example.org/a, selectors: [uid1000] }\n", 3, "workloads[0].selectors[0]", /selector "uid1000" is not TYPE:KEY:VALUE/],
  ["workloads: selector of a type no attestor gives", "workloads:\n  - name: w\n    id: spiffe://example.org/a\n    selectors: ['unix:uid:1000', 'bogus:thing']\n", 5, "workloads[0].selectors[1]", /selector "bogus:thing" has type "bogus", which no attestor gives \(types: unix, cgroup, container, k8s, tidegate\)$/],
  ["workloads: selector with a misspelt type", "workloads:\n  - { name: w, id: spiffe://example.org/a, selectors: ['tidgate:workload:w'] }\n", 3, "workloads[0].selectors[0]", /type "tidgate", which no attestor gives .*; did you mean tidegate\?$/],
  ["workloads: selector with a misspelt key", "workloads:\n  - { name: w, id: spiffe://example.org/a, selectors: ['unix:ud:1000'] }\n", 3, "workloads[0].selectors[0]", /unix has no key "ud" .*; did you mean unix:uid\?$/],
  ["workloads: unix:uid not a number", "workloads:\n  - { name: w, id: spiffe://example.org/a, selectors: ['unix:uid:abc'] }\n", 3, "workloads[0].selectors[0]", /selector "unix:uid:abc": the value of unix:uid must be a decimal id .*, not "abc"$/],
  ["workloads: unix:gid not a number", "workloads:\n  - { name: w, id: spiffe://example.org/a, selectors: ['unix:gid:staff'] }\n", 3, "workloads[0].selectors[0]", /the value of unix:gid must be a decimal id/],
  ["workloads: another workload's tidegate:workload", "workloads:\n  - { name: w, id: spiffe://example.org/a, selectors: ['tidegate:workload:v'] }\n", 3, "workloads[0].selectors[0]", /"tidegate:workload:v" would make the workload select nothing: tidegate:workload:w is implied/],
  ["workloads: an inbound listener's selector", "workloads:\n  - { name: w, id: spiffe://example.org/a, selectors: ['unix:uid:1', 'tidegate:inbound:in'] }\n", 3, "workloads[0].selectors[1]", /"tidegate:inbound:in" would make the workload select nothing/],
  ["workloads: bad user", "workloads:\n  - { name: w, id: spiffe://example.org/a, user: 'a;b' }\n", 3, "workloads[0].user", /not a user/],
  ["workloads: run_by unknown key", "workloads:\n  - { name: w, id: spiffe://example.org/a, run_by: { user: [a] } }\n", 3, "workloads[0].run_by.user", /unknown key \(allowed: groups, users; did you mean users\?\)$/],
  ["egress: unknown key in a rule", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    actoin: deny\n`, 6, "egress[0].actoin", /unknown key \(allowed: action, ca, from, http, inject, mcp, mtls, name, proxy, to, upgrade, upstream; did you mean action\?\)$/],
  ["egress: proxy: on a deny rule", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: deny\n    proxy: { idle_timeout: 1h }\n`, 7, "egress[0].proxy", /not allowed with action deny \(only with passthrough, tls, mtls, intercept\)/],
  ["egress: proxy: on a direct rule", `egress:\n${RULE}    to: { cidr: 10.0.0.0/8, port: 1 }\n    action: direct\n    proxy: { idle_timeout: 1h }\n`, 7, "egress[0].proxy", /not allowed with action direct/],
  ["egress: proxy: header_timeout on a rule (its head is read before the rule is known)", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: passthrough\n    proxy: { header_timeout: 5s }\n`, 7, "egress[0].proxy.header_timeout", /unknown key \(allowed: connect_timeout, first_byte_timeout, idle_timeout/],
  ["egress: proxy: empty", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: passthrough\n    proxy: {}\n`, 7, "egress[0].proxy", /give at least one bound/],
  ["egress: proxy: a zero bound", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: passthrough\n    proxy: { idle_timeout: 0s }\n`, 7, "egress[0].proxy.idle_timeout", /must be longer than 0/],
  ["inbound: proxy: a bound over 24d", "inbound:\n  - { name: i, id: spiffe://example.org/s, listen: 127.0.0.1:9443, forward: 127.0.0.1:9000, allow: [spiffe://example.org/c], proxy: { first_byte_timeout: 30d } }\n", 3, "inbound[0].proxy.first_byte_timeout", /must be at most 24d/],
  ["stdio: an unknown key under mcp", "stdio:\n  - { name: s, from: spiffe://example.org/a, server: spiffe://example.org/b, mcp: { tool: { deny: [x] } } }\n", 3, "stdio[0].mcp.tool", /unknown key \(allowed: prompts, resources, tools; did you mean tools\?\)$/],
  ["egress: no action", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n`, 3, "egress[0].action", /required/],
  ["egress: bad action", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: allow\n`, 6, "egress[0].action", /expected .*"deny".*got "allow"/],
  ["egress: bad name", `egress:\n  - name: -r\n    from: spiffe://example.org/a\n    to: { host: a.com, port: 1 }\n    action: deny\n`, 3, "egress[0].name", /not a name/],
  ["egress: bad from pattern", `egress:\n  - name: r\n    from: spiffe://example.org/a*\n    to: { host: a.com, port: 1 }\n    action: deny\n`, 4, "egress[0].from", /spiffeid_bad_pattern|wildcard|pattern/],
  ["egress: empty from list", `egress:\n  - name: r\n    from: []\n    to: { host: a.com, port: 1 }\n    action: deny\n`, 4, "egress[0].from", /non-empty list/],
  ["egress: from another trust domain", `egress:\n  - name: r\n    from: [spiffe://example.org/a, spiffe://exmaple.org/b]\n    to: { host: a.com, port: 1 }\n    action: deny\n`, 4, "egress[0].from[1]", /not in trust domain example\.org/],
  ["egress: no to", `egress:\n${RULE}    action: deny\n`, 3, "egress[0].to", /required/],
  ["egress: host and cidr", `egress:\n${RULE}    to: { host: a.com, cidr: 10.0.0.0/8, port: 1 }\n    action: deny\n`, 5, "egress[0].to", /exactly one of host and cidr/],
  ["egress: neither host nor cidr", `egress:\n${RULE}    to: { port: 1 }\n    action: deny\n`, 5, "egress[0].to", /exactly one of host and cidr/],
  ["egress: an address as host", `egress:\n${RULE}    to: { host: 10.0.0.1, port: 1 }\n    action: deny\n`, 5, "egress[0].to.host", /cidr/],
  ["egress: a wildcard over a TLD", `egress:\n${RULE}    to: { host: "*.com", port: 1 }\n    action: deny\n`, 5, "egress[0].to.host", /broad/],
  ["egress: host bits set", `egress:\n${RULE}    to: { cidr: 10.0.0.1/8, port: 1 }\n    action: deny\n`, 5, "egress[0].to.cidr", /did you mean 10\.0\.0\.0\/8/],
  ["egress: no port", `egress:\n${RULE}    to: { host: a.com }\n    action: deny\n`, 5, "egress[0].to.port", /required|port/],
  ["egress: port 0", `egress:\n${RULE}    to: { host: a.com, port: 0 }\n    action: deny\n`, 5, "egress[0].to.port", /port/],
  ["egress: reversed port range", `egress:\n${RULE}    to: { host: a.com, port: 90-80 }\n    action: deny\n`, 5, "egress[0].to.port", /port/],
  ["egress: bad proto", `egress:\n${RULE}    to: { host: a.com, port: 1, proto: sctp }\n    action: deny\n`, 5, "egress[0].to.proto", /expected/],
  ["egress: udp with passthrough", `egress:\n${RULE}    to: { cidr: 10.0.0.0/8, port: 53, proto: udp }\n    action: passthrough\n`, 5, "egress[0].to.proto", /udp goes only with deny or direct/],
  ["egress: udp on a host", `egress:\n${RULE}    to: { host: dns.test, port: 53, proto: udp }\n    action: deny\n`, 5, "egress[0].to.host", /udp rules name a cidr/],
  ["egress: direct on a host", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: direct\n`, 5, "egress[0].to.host", /direct rules name a cidr/],
  ["egress: mtls without mtls:", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: mtls\n`, 3, "egress[0].mtls", /required with action mtls/],
  ["egress: mtls: on tls", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: tls\n    mtls: { server_id: spiffe://example.org/s }\n`, 7, "egress[0].mtls", /not allowed with action tls/],
  ["egress: mtls: without server_id", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: mtls\n    mtls: {}\n`, 7, "egress[0].mtls.server_id", /required/],
  ["egress: server_id of an unknown trust domain", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: mtls\n    mtls: { server_id: spiffe://partner.com/s }\n`, 7, "egress[0].mtls.server_id", /neither ours nor under federation/],
  ["egress: ca on passthrough", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: passthrough\n    ca: /ca.pem\n`, 7, "egress[0].ca", /not allowed with action passthrough/],
  ["egress: ca with mtls:", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: intercept\n    mtls: { server_id: spiffe://example.org/s }\n    ca: /ca.pem\n`, 8, "egress[0].ca", /not allowed with mtls/],
  ["egress: inject on tls", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: tls\n    inject: { headers: { X-Key: "\${secret:k}" } }\n`, 7, "egress[0].inject", /only with intercept/],
  ["egress: inject Host", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: intercept\n    inject: { headers: { Host: evil.test } }\n`, 7, "egress[0].inject.headers", /cannot be injected/],
  ["egress: inject a bad reference", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: intercept\n    inject: { headers: { X-Key: "\${secrt:k}" } }\n`, 7, "egress[0].inject.headers", /does not start a \$\{secret:NAME\}/],
  ["egress: inject a CR LF", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: intercept\n    inject: { headers: { X-Key: "a\\r\\nX-Evil: 1" } }\n`, 7, "egress[0].inject.headers", /control character/],
  ["egress: inject an unknown key", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: intercept\n    inject: { headers: { X-Key: "\${secret:k}" }, placeholder_header: [X-A] }\n`, 7, "egress[0].inject.placeholder_header", /unknown key \(allowed: headers, placeholder_headers; did you mean placeholder_headers\?\)$/],
  ["egress: placeholder_headers not a list", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: intercept\n    inject: { headers: { X-Key: "\${secret:k}" }, placeholder_headers: X-A }\n`, 7, "egress[0].inject.placeholder_headers", /expected/],
  ["egress: placeholder_headers a name that is not a token", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: intercept\n    inject: { headers: { X-Key: "\${secret:k}" }, placeholder_headers: ["X A"] }\n`, 7, "egress[0].inject.placeholder_headers", /header name "X A" is not an HTTP token/],
  ["egress: placeholder_headers Host", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: intercept\n    inject: { headers: { X-Key: "\${secret:k}" }, placeholder_headers: [Host] }\n`, 7, "egress[0].inject.placeholder_headers", /header "Host" cannot be injected/],
  ["egress: placeholder_headers a name twice, in another case", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: intercept\n    inject: { headers: { X-Key: "\${secret:k}" }, placeholder_headers: [X-Auth, x-auth] }\n`, 7, "egress[0].inject.placeholder_headers", /header "x-auth" is listed twice in placeholder_headers/],
  ["egress: placeholder_headers a header the rule injects", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: intercept\n    inject: { headers: { X-Key: "\${secret:k}" }, placeholder_headers: [x-key] }\n`, 7, "egress[0].inject.placeholder_headers", /header x-key is one the rule injects/],
  ["egress: http on passthrough", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: passthrough\n    http: { methods: [GET] }\n`, 7, "egress[0].http", /only with intercept, deny/],
  ["egress: empty http", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: intercept\n    http: {}\n`, 7, "egress[0].http", /give methods, paths or both/],
  ["egress: empty methods", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: intercept\n    http: { methods: [] }\n`, 7, "egress[0].http.methods", /must not be empty/],
  ["egress: lowercase method", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: intercept\n    http: { methods: [get] }\n`, 7, "egress[0].http.methods[0]", /method/],
  ["egress: bad path pattern", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: intercept\n    http: { paths: [repos] }\n`, 7, "egress[0].http.paths[0]", /path/],
  ["egress: mcp on tls", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: tls\n    mcp: { tools: { allow: [a] } }\n`, 7, "egress[0].mcp", /only with intercept/],
  ["egress: bad tool name", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: intercept\n    mcp: { tools: { allow: ["a b"] } }\n`, 7, "egress[0].mcp.tools.allow[0]", /MCP tool name/],
  ["egress: resource pattern with a space", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: intercept\n    mcp: { resources: { deny: ["file:///a b"] } }\n`, 7, "egress[0].mcp.resources.deny[0]", /resource URI or pattern/],
  ["egress: bad prompt name", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: intercept\n    mcp: { prompts: { allow: ["a/b"] } }\n`, 7, "egress[0].mcp.prompts.allow[0]", /MCP tool name/],
  ["egress: unknown mcp key", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: intercept\n    mcp: { tool: { allow: [a] } }\n`, 7, "egress[0].mcp.tool", /unknown|not allowed|key/],
  ["egress: upgrade on tls", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: tls\n    upgrade: [websocket]\n`, 7, "egress[0].upgrade", /not allowed with action tls \(only with intercept\)/],
  ["egress: upgrade to h2c", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: intercept\n    upgrade: [h2c]\n`, 7, "egress[0].upgrade[0]", /websocket/],
  ["egress: upgrade empty", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: intercept\n    upgrade: []\n`, 7, "egress[0].upgrade", /must not be empty/],
  ["egress: upgrade with mcp", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: intercept\n    mcp: {}\n    upgrade: [websocket]\n`, 8, "egress[0].upgrade", /not with mcp/],
  // Found by load.fuzz.test.ts: printing the value threw a TypeError (a cyclic structure).
  ["egress: a value that contains itself (an alias in its own anchor)", `egress:\n${RULE}    to: { cidr: 10.0.0.0/8, port: 53, proto: &c [*c] }\n    action: direct\n`, 5, "egress[0].to.proto", /expected .*, got a value that contains itself/],
  ["egress: upstream on deny", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: deny\n    upstream: { port: 2 }\n`, 7, "egress[0].upstream", /not allowed with action deny/],
  ["egress: upstream port 70000", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: tls\n    upstream: { port: 70000 }\n`, 7, "egress[0].upstream.port", /port/],
  ["egress: upstream with neither port nor key_exchange", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: tls\n    upstream: {}\n`, 7, "egress[0].upstream", /give port, key_exchange or both/],
  ["egress: key_exchange on passthrough", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: passthrough\n    upstream: { key_exchange: classical }\n`, 7, "egress[0].upstream.key_exchange", /not allowed with action passthrough/],
  ["egress: key_exchange other than hybrid or classical", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: tls\n    upstream: { key_exchange: x25519 }\n`, 7, "egress[0].upstream.key_exchange", /hybrid/],
  ["egress: duplicate rule names", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: deny\n${RULE}    to: { host: b.com, port: 1 }\n    action: deny\n`, 7, "egress[1].name", /already the name of egress\[0\] \(line 3\)/],
  ["inbound: a name used by egress", `egress:\n${RULE}    to: { host: a.com, port: 1 }\n    action: deny\ninbound:\n  - { name: r, id: spiffe://example.org/srv, listen: 127.0.0.1:9443, forward: 127.0.0.1:3000, allow: spiffe://example.org/a }\n`, 8, "inbound[0].name", /already the name of egress\[0\]/],
  ["inbound: forward_client_cert not a boolean", "inbound:\n  - { name: i, id: spiffe://example.org/srv, listen: 127.0.0.1:9443, forward: 127.0.0.1:3000, allow: spiffe://example.org/a, forward_client_cert: yes please }\n", 3, "inbound[0].forward_client_cert", /expected boolean/],
  ["inbound: no id", "inbound:\n  - { name: i, listen: 127.0.0.1:9443, forward: 127.0.0.1:3000, allow: spiffe://example.org/a }\n", 3, "inbound[0].id", /required|SPIFFE ID/],
  ["inbound: id of another trust domain", "federation:\n  - { trust_domain: partner.com }\ninbound:\n  - { name: i, id: spiffe://partner.com/srv, listen: 127.0.0.1:9443, forward: 127.0.0.1:3000, allow: spiffe://example.org/a }\n", 5, "inbound[0].id", /not in our trust domain example.org/],
  ["inbound: id not a SPIFFE ID", "inbound:\n  - { name: i, id: https://example.org/srv, listen: 127.0.0.1:9443, forward: 127.0.0.1:3000, allow: spiffe://example.org/a }\n", 3, "inbound[0].id", /SPIFFE|spiffe/],
  ["inbound: bad listen", "inbound:\n  - { name: i, id: spiffe://example.org/srv, listen: 9443, forward: 127.0.0.1:3000, allow: spiffe://example.org/a }\n", 3, "inbound[0].listen", /expected string, got 9443/],
  ["inbound: listen without a port", "inbound:\n  - { name: i, id: spiffe://example.org/srv, listen: 127.0.0.1, forward: 127.0.0.1:3000, allow: spiffe://example.org/a }\n", 3, "inbound[0].listen", /HOST:PORT/],
  ["inbound: listen port 0", "inbound:\n  - { name: i, id: spiffe://example.org/srv, listen: 127.0.0.1:0, forward: 127.0.0.1:3000, allow: spiffe://example.org/a }\n", 3, "inbound[0].listen", /port 0/],
  ["inbound: duplicate listen", "inbound:\n  - { name: i, id: spiffe://example.org/srv, listen: 127.0.0.1:9443, forward: 127.0.0.1:3000, allow: spiffe://example.org/a }\n  - { name: j, id: spiffe://example.org/srv, listen: 127.0.0.1:9443, forward: 127.0.0.1:3001, allow: spiffe://example.org/a }\n", 4, "inbound[1].listen", /already the listen address/],
  ["inbound: relative unix forward", "inbound:\n  - { name: i, id: spiffe://example.org/srv, listen: 127.0.0.1:9443, forward: 'unix:mcp.sock', allow: spiffe://example.org/a }\n", 3, "inbound[0].forward", /absolute path/],
  ["inbound: allow of an unknown trust domain", "inbound:\n  - { name: i, id: spiffe://example.org/srv, listen: 127.0.0.1:9443, forward: 127.0.0.1:3000, allow: spiffe://partner.com/a }\n", 3, "inbound[0].allow", /neither ours nor under federation/],
  ["inbound: no allow", "inbound:\n  - { name: i, id: spiffe://example.org/srv, listen: 127.0.0.1:9443, forward: 127.0.0.1:3000 }\n", 3, "inbound[0].allow", /required|SPIFFE ID pattern/],
  ["inbound: proxy_protocol not a boolean", "inbound:\n  - { name: i, id: spiffe://example.org/srv, listen: 127.0.0.1:9443, forward: 127.0.0.1:3000, allow: spiffe://example.org/a, proxy_protocol: v2 }\n", 3, "inbound[0].proxy_protocol", /expected boolean/],
  ["federation: our own trust domain", "federation:\n  - { trust_domain: example.org }\n", 3, "federation[0].trust_domain", /our own/],
  ["federation: twice", "federation:\n  - { trust_domain: p.test }\n  - { trust_domain: p.test }\n", 4, "federation[1].trust_domain", /listed twice/],
  ["federation: where the bundle comes from is the server's (server.yaml)", "federation:\n  - { trust_domain: p.test, bundle_endpoint: 'https://a/' }\n", 3, "federation[0].bundle_endpoint", /unknown key/],
  ["audit: on_failure other than refuse or serve", "audit: { on_failure: ignore }\n", 2, "audit.on_failure", /refuse/],
  ["audit: a file size under 4096", "audit: { max_file_size: 100 }\n", 2, "audit.max_file_size", /at least 4096/],
  ["audit: checkpoint_every 0", "audit: { checkpoint_every: 0 }\n", 2, "audit.checkpoint_every", /at least 1/],
  ["audit: a relative dir", "audit: { dir: logs }\n", 2, "audit.dir", /absolute/],
  ["audit: an export URL with a password", "audit: { export: { otlp: 'https://u:hunter2@c.example/v1/logs' } }\n", 2, "audit.export.otlp", /user name or password/],
  ["audit: an export URL of another scheme", "audit: { export: { otlp: 'ftp://c.example/' } }\n", 2, "audit.export.otlp", /http/],
  ["dns: a server that is a name", "dns: { servers: [dns.google] }\n", 2, "dns.servers[0]", /address/],
  ["dns: a server port 0", "dns: { servers: ['127.0.0.1:0'] }\n", 2, "dns.servers[0]", /port/],
  ["dns: a wildcard host", "dns: { hosts: { '*.a.test': [10.0.0.1] } }\n", 2, "dns.hosts.*.a.test", /host/],
  ["dns: a host without addresses", "dns: { hosts: { a.test: [] } }\n", 2, "dns.hosts.a.test", /must not be empty/],
  ["dns: a bad address", "dns: { hosts: { a.test: [10.0.0.256] } }\n", 2, "dns.hosts.a.test[0]", /address/],
  ["dns: a host twice after normalization", "dns:\n  hosts:\n    a.test: [10.0.0.1]\n    A.TEST.: [10.0.0.2]\n", 5, "dns.hosts.A.TEST.", /listed twice/],
];

describe("loadPolicy: every rejection names file, line and field", () => {
  for (const [what, body, line, path, why] of REJECTIONS) {
    test(what, () => {
      const doc = body.startsWith("!") ? body.slice(1) : `trust_domain: example.org\n${body}`;
      const e = errorOf(() => loadPolicy(doc, "p.yaml"), PolicyError);
      assert.equal(e.code, "policy_invalid");
      const prefix = path === "" ? `policy: p.yaml:${line}: ` : `policy: p.yaml:${line}: ${path}: `;
      assert.ok(e.message.startsWith(prefix), `message ${JSON.stringify(e.message)} should start with ${JSON.stringify(prefix)}`);
      assert.match(e.message, why);
    });
  }
  test("did you mean: a swap of two neighbours is one edit", () => {
    assert.deepEqual([editDistance("prot", "port"), editDistance("actoin", "action"), editDistance("abc", ""), editDistance("kitten", "sitting"), editDistance("tools", "tools")], [1, 1, 3, 3, 0]);
    assert.deepEqual([nearest("prot", ["cidr", "host", "port", "proto"]), nearest("xyz", ["ca", "to"]), nearest("SERVR", ["server", "servers"]), nearest("tol", ["to"]), nearest("w3", ["w1", "w2"]), nearest("clent", ["client", "server"]), nearest("Egress", ["egress"])], [["port", "proto"], [], ["server"], [], [], ["client"], ["egress"]]);
  });
  test("an unknown key whose mapping the walk cannot find points at the docs", () => {
    assert.deepEqual(keysAllowedAt({ type: "string" }, ["a"]), []);
  });
  test("a converter's message follows the field once, without a second 'policy: '", () => {
    const doc = `trust_domain: example.org\negress:\n${RULE}    to: { host: a.com, port: [80, 443] }\n    action: deny\n`;
    assert.equal(errorOf(() => loadPolicy(doc, "p.yaml"), PolicyError).message, 'policy: p.yaml:5: egress[0].to.port: port [80, 443]: a list: a rule takes one port, a range "N-M" or "any"; write a rule per port');
  });
  test("a rule's error never reaches a later rule: the first problem is reported", () => {
    const doc = `trust_domain: example.org\negress:\n${RULE}    to: { host: a.com, port: 0 }\n    action: deny\n${RULE}    to: { host: b.com, port: 1 }\n    action: nope\n`;
    assert.match(errorOf(() => loadPolicy(doc, "p.yaml"), PolicyError).message, /p\.yaml:5: egress\[0\]\.to\.port/);
  });
  test("a secret reference is named in the policy, never resolved", () => {
    const p = loadPolicy(SKETCH, "s.yaml");
    assert.equal(JSON.stringify(p.egress[0]!.inject[0]!.parts), JSON.stringify(["Bearer ", { secret: "github_token" }]));
  });
  test("SpiffeId values in the policy are real SpiffeIds", () => {
    const p = loadPolicy(SKETCH, "s.yaml");
    assert.ok(p.workloads[0]!.id instanceof SpiffeId);
  });
});

// `tidegate policy check` reads any file, and prints its errors to a terminal: whatever the file
// holds (a key, a value, an alias name) is quoted, never written as itself. An unknown key was
// once echoed raw, so a file could retitle the terminal, recolour it, or reverse what it showed.
describe("messages quote what the file says: no control, C1, bidi or format character as itself", () => {
  const UNSAFE = /[\u0000-\u001f\u007f-\u009f\p{Cf}\p{Zl}\p{Zp}]/u;
  const EVIL = "\u001b]0;owned\u0007\u001b[31m\u009b31m\u202egnp.exe\u2028";
  const cases: [string, string, string][] = [
    ["an unknown top-level key", `"${EVIL}": 1\n`, `"\\u001b]0;owned\\u0007\\u001b[31m\\u009b31m\\u202egnp.exe\\u2028": unknown key`],
    ["an unknown nested key", `agent: { "${EVIL}": 1 }\n`, `agent."\\u001b]0;owned`],
    ["a value shown back", `agent: { drain_timeout: ["${EVIL}"] }\n`, `got ["\\u001b]0;owned\\u0007\\u001b[31m\\u009b31m\\u202egnp.exe\\u2028"]`],
    ["an alias name", `agent: *a${EVIL.replace(/[\u001b\u0007\[\];]/g, "")}\n`, "\\u009b31m\\u202egnp.exe"],
  ];
  for (const [what, doc, shows] of cases) {
    test(what, () => {
      const e = errorOf(() => loadPolicy(`trust_domain: example.org\n${doc}`, "p.yaml"), PolicyError);
      assert.equal(e.code, "policy_invalid");
      assert.ok(!UNSAFE.test(e.message), `raw in: ${JSON.stringify(e.message)}`);
      assert.ok(e.message.includes(shows), `${JSON.stringify(shows)} not in ${JSON.stringify(e.message)}`);
    });
  }

  test("plain keys stay as they were", () => {
    const e = errorOf(() => loadPolicy("trust_domain: example.org\negress:\n  - { name: r, actoin: deny }\n", "p.yaml"), PolicyError);
    assert.ok(e.message.includes("egress[0].actoin: unknown key"), e.message);
  });
});

// Each rule's line was found by walking the list up to it: 33,000 egress rules (4 MB, within the
// readers' bound) took 46 s and 1.6 GB to check. A list's item is now taken by its index.
describe("a rule's line is found without walking the list before it", () => {
  test("lineOf(['egress', i]) reads a few items of the list, not i of them", () => {
    const rules = Array.from({ length: 2000 }, (_, i) => `  - { name: r${i}, from: "spiffe://example.org/a", to: { host: h${i}.test, port: 443 }, action: passthrough }`);
    const lines = new LineCounter();
    const doc = parseDocument(`trust_domain: example.org\negress:\n${rules.join("\n")}\n`, { lineCounter: lines });
    const seq = doc.get("egress", true) as { items: unknown[] };
    let reads = 0;
    seq.items = new Proxy(seq.items, {
      get(target, key, receiver) {
        if (typeof key === "string" && /^\d+$/.test(key)) reads++;
        return Reflect.get(target, key, receiver);
      },
    });
    const lineOf = lineFinder(doc, lines);
    assert.equal(lineOf(["egress", 1999]), 2002);
    assert.equal(lineOf(["egress", 0, "to", "host"]), 3);
    assert.ok(reads <= 4, `${reads} items read`);
  });
});
