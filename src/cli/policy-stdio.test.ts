// `policy explain --stdio`: which stdio rule lets a caller start a server (the rules tried before
// it, each with the side it failed), then that rule's mcp: filter; no rule is run_mcp_no_rule.
import { describe, expect, test } from "bun:test";
import { loadPolicy } from "../policy/index.ts";
import { SpiffeId } from "../spiffe/index.ts";
import { explainStdio, renderStdio } from "./policy-stdio.ts";

const P = loadPolicy(
  `trust_domain: example.org
stdio:
  - name: other-host
    from: spiffe://example.org/host/other
    server: spiffe://example.org/mcp/*
    mcp: { tools: {} }
  - name: desktop-fs
    from: spiffe://example.org/host/desktop
    server: spiffe://example.org/mcp/fs
    mcp: { tools: { deny: ["delete_*"] }, resources: { allow: ["file:///home/*"] }, prompts: { deny: [admin] } }
`,
  "p.yaml",
);
const id = (s: string) => SpiffeId.parse(s);
const DESKTOP = id("spiffe://example.org/host/desktop");
const FS = id("spiffe://example.org/mcp/fs");

describe("policy explain --stdio", () => {
  test("the rule that lets the caller use the server, the rules tried before it with the side each failed", () => {
    const e = explainStdio(P, FS, { from: DESKTOP });
    expect({ verdict: e.verdict, reason: e.reason, rule: e.rule?.name, tried: e.tried.map((t) => [t.rule.name, t.failed]) }).toEqual({ verdict: "allow", reason: null, rule: "desktop-fs", tried: [["other-host", ["from"]]] });
    expect(renderStdio(e, DESKTOP, FS)).toBe(
      [
        "decision   allow: stdio rule desktop-fs lets the caller use the server",
        `rule       desktop-fs (line ${e.rule!.line}), stdio`,
        "caller     spiffe://example.org/host/desktop",
        "server     spiffe://example.org/mcp/fs",
        `tried      other-host (line ${P.stdio[0]!.line}): from does not match`,
        "",
      ].join("\n"),
    );
  });

  test("no rule: run_mcp_no_rule, every rule tried with what failed", () => {
    const e = explainStdio(P, id("spiffe://example.org/mcp/git"), { from: DESKTOP, tool: "x" });
    expect({ verdict: e.verdict, reason: e.reason, rule: e.rule, mcp: e.mcp }).toEqual({ verdict: "deny", reason: "run_mcp_no_rule", rule: null, mcp: null });
    expect(e.summary).toBe("deny: no stdio rule lets spiffe://example.org/host/desktop use spiffe://example.org/mcp/git, so tidegate run --mcp-stdio refuses to start the server");
    expect(e.tried.map((t) => [t.rule.name, t.failed])).toEqual([["other-host", ["from"]], ["desktop-fs", ["server"]]]);
    expect(explainStdio(loadPolicy("trust_domain: example.org\n", "q.yaml"), FS, { from: DESKTOP }).summary).toContain("the policy has no stdio rules");
  });

  test("the rule's mcp: filter decides a tool, a resource and a prompt, each refusal with its reason", () => {
    const ask = (more: { tool?: string; resource?: string; prompt?: string }) => {
      const e = explainStdio(P, FS, { from: DESKTOP, ...more });
      return [e.verdict, e.reason];
    };
    expect(ask({ tool: "read_file" })).toEqual(["allow", null]);
    expect(ask({ tool: "delete_file" })).toEqual(["deny", "tool_denied"]);
    expect(ask({ resource: "file:///home/a.txt" })).toEqual(["allow", null]);
    expect(ask({ resource: "file:///etc/passwd" })).toEqual(["deny", "resource_not_allowed"]);
    expect(ask({ resource: "file:///home/../etc/passwd" })).toEqual(["deny", "resource_bad_uri"]);
    expect(ask({ prompt: "admin" })).toEqual(["deny", "prompt_denied"]);
    expect(explainStdio(P, FS, { from: DESKTOP, tool: "delete_file" }).summary).toBe("deny: tool delete_file is denied by mcp.tools of stdio rule desktop-fs");
  });
});
