// The combining rule of query.ts, case by case: first match, inspect, not_interceptable, tools,
// wildcards, ranges, UDP, no name; the engine and explain agree on each, and explain names the
// near misses of a deny.
import { describe, test, assert } from "../../test/shim.ts";
import { SpiffeId } from "../spiffe/index.ts";
import { parseIp } from "./address.ts";
import { PolicyEngine } from "./engine.ts";
import { explain } from "./explain.ts";
import { loadPolicy } from "./load.ts";
import type { Decision, Query } from "./query.ts";
import { describeDecision } from "./query.ts";

export const RULES = `trust_domain: example.org
egress:
  - name: link-local
    from: "spiffe://example.org/**"
    to: { cidr: 169.254.0.0/16, port: any }
    action: deny
  - name: gh-read
    from: spiffe://example.org/mcp/github
    to: { host: api.github.com, port: 443 }
    action: intercept
    http: { methods: [GET], paths: ["/repos/**"] }
  - name: gh-no-delete
    from: spiffe://example.org/mcp/github
    to: { host: api.github.com, port: 443 }
    action: deny
    http: { methods: [DELETE] }
  - name: gh-rest
    from: spiffe://example.org/mcp/github
    to: { host: api.github.com, port: 443 }
    action: passthrough
  - name: one-label
    from: spiffe://example.org/agent/*
    to: { host: "*.example.net", port: 443 }
    action: tls
  - name: any-depth
    from: spiffe://example.org/agent/*
    to: { host: "**.corp.test", port: 8000-8443 }
    action: mtls
    mtls: { server_id: spiffe://example.org/svc }
  - name: v6-range
    from: "spiffe://example.org/**"
    to: { cidr: "2001:db8::/32", port: 1000-2000 }
    action: passthrough
  - name: partner-tools
    from: spiffe://example.org/agent/*
    to: { host: mcp.partner.test, port: 443 }
    action: intercept
    mcp: { tools: { allow: [send_email, read_inbox], deny: [read_inbox] } }
  - name: glob-tools
    from: spiffe://example.org/agent/*
    to: { host: files.partner.test, port: 443 }
    action: intercept
    mcp: { tools: { allow: ["read_*", "list_?"], deny: ["read_secret*"] } }
  - name: plain-upgrade
    from: "spiffe://example.org/**"
    to: { host: plain.test, port: 80 }
    action: intercept
    upstream: { port: 443, key_exchange: classical }
  - name: resolver
    from: "spiffe://example.org/**"
    to: { cidr: 10.0.0.53/32, port: 53, proto: udp }
    action: direct
`;

const policy = loadPolicy(RULES, "rules.yaml");
const engine = new PolicyEngine(policy);
const GH = SpiffeId.parse("spiffe://example.org/mcp/github");
const AGENT = SpiffeId.parse("spiffe://example.org/agent/a1");
const STRANGER = SpiffeId.parse("spiffe://other.org/agent/a1");

function q(from: SpiffeId, to: string, port: number, more: Partial<Query> = {}): Query {
  const address = /^[0-9.]+$|:/.test(to) ? parseIp(to) : parseIp("192.0.2.1");
  const name = /^[0-9.]+$|:/.test(to) ? null : to;
  return { from, proto: "tcp", port, address, name, ...more };
}

function summary(d: Decision): string {
  return describeDecision(d);
}

const CASES: [string, Query, string][] = [
  ["an address in a deny range, any port, any caller in the domain", q(AGENT, "169.254.10.10", 80), "deny by rule link-local"],
  ["the same as an IPv4-mapped IPv6 address", q(AGENT, "::ffff:169.254.10.10", 8080), "deny by rule link-local"],
  ["a caller of another trust domain: no rule", q(STRANGER, "169.254.10.10", 80), "deny: no rule matches"],
  ["a rule with http conditions, before the request: inspect", q(GH, "api.github.com", 443), "inspect: intercept and decide per request (rule gh-read has http conditions)"],
  ["GET /repos/x: the http rule", q(GH, "api.github.com", 443, { http: { method: "GET", path: "/repos/a/b" } }), "allow intercept by rule gh-read (upstream port 443)"],
  ["DELETE: the deny rule with http conditions", q(GH, "api.github.com", 443, { http: { method: "DELETE", path: "/repos/a" } }), "deny by rule gh-no-delete"],
  [
    "POST falls to a passthrough rule on an intercepted connection",
    q(GH, "api.github.com", 443, { http: { method: "POST", path: "/repos/a" } }),
    "deny: rule gh-rest (passthrough) needs the raw connection, but an earlier rule's http conditions had it intercepted",
  ],
  ["another caller does not see the github rules", q(AGENT, "api.github.com", 443), "deny: no rule matches"],
  ["*. matches one label", q(AGENT, "a.example.net", 443), "allow tls by rule one-label (upstream port 443)"],
  ["*. does not match two labels", q(AGENT, "a.b.example.net", 443), "deny: no rule matches"],
  ["*. does not match the parent itself", q(AGENT, "example.net", 443), "deny: no rule matches"],
  ["**. matches any depth", q(AGENT, "a.b.c.corp.test", 8443), "allow mtls by rule any-depth (upstream port 8443)"],
  ["**. does not match the parent itself", q(AGENT, "corp.test", 8443), "deny: no rule matches"],
  ["a port range's low end", q(AGENT, "x.corp.test", 8000), "allow mtls by rule any-depth (upstream port 8000)"],
  ["below a port range", q(AGENT, "x.corp.test", 7999), "deny: no rule matches"],
  ["an IPv6 range", q(AGENT, "2001:db8:ffff::1", 1500), "allow passthrough by rule v6-range (upstream port 1500)"],
  ["just outside the IPv6 range", q(AGENT, "2001:db9::1", 1500), "deny: no rule matches"],
  ["an allowed tool", q(AGENT, "mcp.partner.test", 443, { tool: "send_email" }), "allow intercept by rule partner-tools (upstream port 443)"],
  ["a tool not in allow", q(AGENT, "mcp.partner.test", 443, { tool: "delete_all" }), "deny: rule partner-tools does not allow this MCP tool"],
  ["a tool in allow and in deny: deny wins", q(AGENT, "mcp.partner.test", 443, { tool: "read_inbox" }), "deny: rule partner-tools does not allow this MCP tool"],
  ["a tool a glob allows", q(AGENT, "files.partner.test", 443, { tool: "read_file" }), "allow intercept by rule glob-tools (upstream port 443)"],
  ["a tool '?' allows (one character)", q(AGENT, "files.partner.test", 443, { tool: "list_a" }), "allow intercept by rule glob-tools (upstream port 443)"],
  ["'?' is exactly one character", q(AGENT, "files.partner.test", 443, { tool: "list_ab" }), "deny: rule glob-tools does not allow this MCP tool"],
  ["a tool a deny glob names, though allow's glob matches: deny wins", q(AGENT, "files.partner.test", 443, { tool: "read_secrets" }), "deny: rule glob-tools does not allow this MCP tool"],
  ["a tool no allow glob matches", q(AGENT, "files.partner.test", 443, { tool: "write_file" }), "deny: rule glob-tools does not allow this MCP tool"],
  ["no tool (initialize, tools/list): the rule allows", q(AGENT, "mcp.partner.test", 443), "allow intercept by rule partner-tools (upstream port 443)"],
  ["upstream.port replaces the dialled port; a classical key exchange is named", q(AGENT, "plain.test", 80), "allow intercept by rule plain-upgrade (upstream port 443, key exchange classical)"],
  ["udp to the resolver", q(AGENT, "10.0.0.53", 53, { proto: "udp" }), "allow direct by rule resolver (upstream port 53)"],
  ["tcp to the resolver's address: the rule is udp", q(AGENT, "10.0.0.53", 53), "deny: no rule matches"],
  ["udp elsewhere", q(AGENT, "10.0.0.54", 53, { proto: "udp" }), "deny: no rule matches"],
  ["a connection that names no host matches no host rule", { from: AGENT, proto: "tcp", port: 443, address: parseIp("192.0.2.1"), name: null }, "deny: no rule matches"],
];

describe("engine: the combining rule", () => {
  for (const [what, query, want] of CASES) {
    test(what, () => {
      assert.equal(summary(engine.decide(query)), want);
      assert.equal(summary(explain(policy, query).decision), want, "explain agrees");
    });
  }
  test("the same engine answers many callers; rulesFor lists a caller's rules in order", () => {
    assert.deepEqual(engine.rulesFor(GH).map((r) => r.name), ["link-local", "gh-read", "gh-no-delete", "gh-rest", "v6-range", "plain-upgrade", "resolver"]);
    assert.deepEqual(engine.rulesFor(STRANGER), []);
  });
});

describe("explain: near misses and the rules tried", () => {
  test("a wrong port names the rule and the field", () => {
    const e = explain(policy, q(AGENT, "x.corp.test", 9000));
    assert.deepEqual(e.nearMisses.map((m) => [m.rule.name, m.field, m.why]), [["any-depth", "to.port", "port 9000 is not in 8000-8443"]]);
  });
  test("a wrong protocol", () => {
    const e = explain(policy, q(AGENT, "10.0.0.53", 53));
    assert.deepEqual(e.nearMisses.map((m) => [m.rule.name, m.field, m.why]), [["resolver", "to.proto", "protocol tcp is not udp"]]);
  });
  test("a method and a path", () => {
    const e = explain(policy, q(GH, "api.github.com", 443, { http: { method: "POST", path: "/user" } }));
    assert.deepEqual(e.nearMisses, [], "gh-read fails on two fields, gh-no-delete would deny");
    const e2 = explain(policy, q(GH, "api.github.com", 443, { http: { method: "GET", path: "/user" } }));
    assert.deepEqual(e2.nearMisses.map((m) => [m.rule.name, m.field, m.why]), [["gh-read", "http.paths", 'path "/user" matches none of /repos/**']]);
  });
  test("no host named: the host rules that would match otherwise", () => {
    const e = explain(policy, { from: AGENT, proto: "tcp", port: 443, address: parseIp("192.0.2.1"), name: null, tool: null });
    assert.deepEqual(e.nearMisses.map((m) => [m.rule.name, m.field]), [["one-label", "to.host"], ["partner-tools", "to.host"], ["glob-tools", "to.host"]]);
    assert.match(e.nearMisses[0]!.why, /named no host/);
  });
  test("a rule for another caller is not a near miss", () => {
    assert.deepEqual(explain(policy, q(AGENT, "api.github.com", 444)).nearMisses, []);
  });
  test("no near misses for an allow", () => {
    assert.deepEqual(explain(policy, q(AGENT, "a.example.net", 443)).nearMisses, []);
  });
  test("the steps list this caller's rules tried before the decision, with what they failed", () => {
    const e = explain(policy, q(GH, "api.github.com", 443, { http: { method: "DELETE", path: "/x" } }));
    assert.deepEqual(e.steps.map((s) => [s.rule.name, s.failed]), [
      ["link-local", ["to.cidr"]],
      ["gh-read", ["http.methods", "http.paths"]],
      ["gh-no-delete", []],
    ]);
  });
});
