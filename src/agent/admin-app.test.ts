// agent.sock's POST /v1/mcp/pin on its own (a stand-in enforcer: the pins and the policy in
// force): a server name no gate could use is refused with 400, as `tidegate mcp pin` refuses it;
// a well-formed one is pinned, and the answer says which rules read MCP from it.
import { describe, expect, test } from "bun:test";
import { adminApp } from "./admin-app.ts";
import type { AgentCore } from "./agent-core.ts";
import type { Enforcer } from "./enforcer.ts";
import { loadPolicy, type Policy } from "../policy/index.ts";

const HASH = "ab".repeat(32);
const POLICY = loadPolicy(
  `trust_domain: example.org
egress:
  - name: github
    from: spiffe://example.org/agent/*
    to: { host: api.github.com, port: 443 }
    action: intercept
    mcp: {}
`,
  "p.yaml",
);

function app(policy: Policy | null) {
  const pinned: string[] = [];
  const enforcer = { holder: { policy }, pinTools: (server: string) => pinned.push(server) } as unknown as Enforcer;
  const a = adminApp({} as AgentCore, () => 0, { enforcer, captureUnavailable: null });
  const pin = async (server: unknown) => {
    const res = await a.request("/v1/mcp/pin", { method: "POST", body: JSON.stringify({ server, hashes: { a: HASH } }) });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
  return { pin, pinned };
}

describe("POST /v1/mcp/pin", () => {
  test("a server name no gate could use: 400 policy_bad_mcp_server naming it, nothing pinned", async () => {
    const a = app(POLICY);
    for (const [server, why] of [
      ["not an id", /^agent: MCP server "not an id" is neither a SPIFFE ID nor a rule name/],
      ["spiffe://Example.org/x", /^agent: MCP server "spiffe:\/\/Example.org\/x" is not a SPIFFE ID: spiffeid: /],
      ["", /^agent: MCP server "" is neither/],
    ] as const) {
      const r = await a.pin(server);
      expect([r.status, r.body.error.code]).toEqual([400, "policy_bad_mcp_server"]);
      expect(r.body.error.message).toMatch(why);
    }
    expect((await a.pin(7)).body.error.code).toBe("bad_request");
    expect(a.pinned).toEqual([]);
  });

  test("a well-formed name is pinned; the answer says which rules read it, and what a typo was meant as", async () => {
    const a = app(POLICY);
    expect(await a.pin("github")).toEqual({ status: 200, body: { pinned: ["a"], read_by: ["egress rule github"], servers: ["github"], meant: [] } });
    expect(await a.pin("githb")).toEqual({ status: 200, body: { pinned: ["a"], read_by: [], servers: ["github"], meant: ["github"] } });
    expect(await a.pin("spiffe://example.org/mcp/fs")).toEqual({ status: 200, body: { pinned: ["a"], read_by: [], servers: ["github"], meant: [] } });
    expect(a.pinned).toEqual(["github", "githb", "spiffe://example.org/mcp/fs"]);
  });

  test("with no policy loaded: pinned, read_by null", async () => {
    const a = app(null);
    expect(await a.pin("github")).toEqual({ status: 200, body: { pinned: ["a"], read_by: null, servers: [], meant: [] } });
  });
});
