// `policy explain --inbound`: what a listener does with a client, in the listener's own order:
// trust domain, allow, then the mcp: filter asked about. Each refusal with its reason code.
import { describe, expect, test } from "bun:test";
import { loadPolicy } from "../policy/index.ts";
import { SpiffeId } from "../spiffe/index.ts";
import { explainInbound, inboundRule, renderInbound } from "./policy-inbound.ts";
import { UsageError } from "./usage-error.ts";

const P = loadPolicy(
  `trust_domain: example.org
federation:
  - trust_domain: partner.test
inbound:
  - name: tools
    id: spiffe://example.org/mcp/tools
    listen: 127.0.0.1:8443
    forward: 127.0.0.1:3000
    allow: [spiffe://example.org/agent/*, spiffe://partner.test/bot]
    mcp: { tools: { allow: [echo, "list_*"], deny: [list_secrets] }, resources: { deny: ["file:///etc/*"] }, prompts: { deny: [admin] } }
  - name: plain
    id: spiffe://example.org/svc/db
    listen: 127.0.0.1:5433
    forward: unix:/run/db.sock
    allow: spiffe://example.org/agent/*
    proxy: { idle_timeout: 1h }
`,
  "p.yaml",
);
const id = (s: string) => SpiffeId.parse(s);
const ask = (rule: string, from: string, more: { tool?: string; resource?: string; prompt?: string } = {}) => explainInbound(P, inboundRule(P, rule), { from: id(from), ...more });

describe("policy explain --inbound", () => {
  test("a client of ours that allow names: accepted, naming the pattern it matched", () => {
    const e = ask("tools", "spiffe://example.org/agent/bot");
    expect(e).toMatchObject({ verdict: "allow", reason: null, matched: "spiffe://example.org/agent/*", mcp: null });
    expect(renderInbound(e, id("spiffe://example.org/agent/bot"))).toBe(
      [
        "decision   allow: listener tools accepts the client (allow spiffe://example.org/agent/*)",
        `rule       tools (line ${e.rule.line}), inbound`,
        "caller     spiffe://example.org/agent/bot",
        "listener   127.0.0.1:8443 as spiffe://example.org/mcp/tools, forwarding to 127.0.0.1:3000",
        "",
      ].join("\n"),
    );
  });
  test("a listener with its own bounds says them in the decision", () => {
    expect(ask("plain", "spiffe://example.org/agent/bot").summary).toBe("allow: listener plain accepts the client (allow spiffe://example.org/agent/*; idle_timeout 1h)");
  });
  test("a federated client that allow names is accepted; one of a trust domain not federated is client_untrusted", () => {
    expect(ask("tools", "spiffe://partner.test/bot")).toMatchObject({ verdict: "allow", matched: "spiffe://partner.test/bot" });
    const e = ask("tools", "spiffe://stranger.test/bot");
    expect(e).toMatchObject({ verdict: "deny", reason: "client_untrusted" });
    expect(e.summary).toBe("deny: stranger.test is neither this trust domain (example.org) nor named under federation:, so no SVID of it verifies");
  });
  test("a client allow does not name: client_not_allowed, listing the patterns", () => {
    const e = ask("tools", "spiffe://example.org/svc/other");
    expect(e).toMatchObject({ verdict: "deny", reason: "client_not_allowed", matched: null });
    expect(e.summary).toBe("deny: spiffe://example.org/svc/other matches none of allow: spiffe://example.org/agent/*, spiffe://partner.test/bot");
  });
  test("the mcp: filters: tools, resources (normalized) and prompts, each with its reason", () => {
    const bot = "spiffe://example.org/agent/bot";
    expect(ask("tools", bot, { tool: "list_files" })).toMatchObject({ verdict: "allow", mcp: { kind: "tool", name: "list_files", by: "mcp.tools" } });
    expect(ask("tools", bot, { tool: "list_secrets" })).toMatchObject({ verdict: "deny", reason: "tool_denied" });
    expect(ask("tools", bot, { tool: "rm" })).toMatchObject({ verdict: "deny", reason: "tool_not_allowed" });
    expect(ask("tools", bot, { resource: "FILE:///etc/passwd" })).toMatchObject({ verdict: "deny", reason: "resource_denied", mcp: { name: "file:///etc/passwd" } });
    expect(ask("tools", bot, { resource: "file:///data/../etc/passwd" })).toMatchObject({ verdict: "deny", reason: "resource_bad_uri" });
    expect(ask("tools", bot, { resource: "file:///data/a.txt" })).toMatchObject({ verdict: "allow" });
    expect(ask("tools", bot, { prompt: "admin" })).toMatchObject({ verdict: "deny", reason: "prompt_denied" });
    // a refused client is refused before any filter is asked
    expect(ask("tools", "spiffe://example.org/svc/other", { tool: "echo" })).toMatchObject({ reason: "client_not_allowed", mcp: null });
  });
  test("a listener without mcp: reads no MCP, so every tool passes, and says so", () => {
    const e = ask("plain", "spiffe://example.org/agent/bot", { tool: "anything" });
    expect(e).toMatchObject({ verdict: "allow", mcp: { by: "no mcp:" } });
    expect(e.summary).toContain("it has no mcp:, so it reads no MCP and every tool passes");
    expect(renderInbound(e, id("spiffe://example.org/agent/bot"))).toContain("forwarding to unix:/run/db.sock");
  });
  test("an inbound rule the policy does not have: a usage error naming those it has", () => {
    expect(() => inboundRule(P, "nope")).toThrow(UsageError);
    expect(() => inboundRule(P, "nope")).toThrow("p.yaml has no inbound rule of that name (it has tools, plain)");
  });
});
