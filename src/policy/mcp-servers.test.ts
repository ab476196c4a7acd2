// The names MCP pins are kept under (`tidegate mcp pin SERVER`): which texts can be one, which
// rules of a policy read MCP from a server so named, and what a typo was probably meant as.
import { assert, describe, test } from "../../test/shim.ts";
import { PolicyError } from "./errors.ts";
import { loadPolicy } from "./load.ts";
import { mcpServerNames, mcpServerNaming, parseMcpServerName, rulesNamingMcpServer } from "./mcp-servers.ts";

const P = loadPolicy(
  `trust_domain: example.org
workloads:
  - { name: fs, id: spiffe://example.org/mcp/fs }
  - { name: web, id: spiffe://example.org/web }
egress:
  - name: github
    from: spiffe://example.org/agent/*
    to: { host: api.github.com, port: 443 }
    action: intercept
    mcp: {}
  - name: partner-email
    from: spiffe://example.org/agent/*
    to: { host: mcp.partner.com, port: 443 }
    action: intercept
    mtls: { server_id: spiffe://example.org/mcp/email }
    mcp: { tools: { allow: [send_email] } }
  - name: plain
    from: spiffe://example.org/agent/*
    to: { host: example.com, port: 443 }
    action: intercept
inbound:
  - name: email-mcp
    id: spiffe://example.org/mcp/inbox
    listen: 127.0.0.1:8443
    forward: 127.0.0.1:3000
    allow: [spiffe://example.org/agent/*]
    mcp: {}
  - name: no-mcp
    id: spiffe://example.org/svc/raw
    listen: 127.0.0.1:8444
    forward: 127.0.0.1:3001
    allow: [spiffe://example.org/agent/*]
stdio:
  - name: fs-readers
    from: spiffe://example.org/agent/*
    server: spiffe://example.org/mcp/*
    mcp: { tools: { allow: ["read_*"] } }
  - name: notes
    from: spiffe://example.org/agent/*
    server: spiffe://example.org/tools/notes
    mcp: {}
`,
  "p.yaml",
);

const codeOf = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    return e instanceof PolicyError ? `${e.code}: ${e.message}` : `not a PolicyError: ${String(e)}`;
  }
  return "no error";
};

describe("parseMcpServerName", () => {
  test("a SPIFFE ID, or a rule name", () => {
    assert.deepEqual(parseMcpServerName("github"), { kind: "rule", text: "github" });
    assert.deepEqual(parseMcpServerName("a.b_c-9"), { kind: "rule", text: "a.b_c-9" });
    const id = parseMcpServerName("spiffe://example.org/mcp/fs");
    assert.equal(id.kind, "id");
    assert.equal(id.kind === "id" && id.id.toString(), "spiffe://example.org/mcp/fs");
  });
  const refused: [string, string, RegExp][] = [
    ["words with spaces", "not an id", /^policy_bad_mcp_server: policy: MCP server "not an id" is neither a SPIFFE ID nor a rule name \(1-64 of/],
    ["the empty string", "", /MCP server "" is neither/],
    ["a name over 64 characters", "a".repeat(65), /is neither a SPIFFE ID nor a rule name/],
    ["a name starting with a dash", "-x", /is neither/],
    ["a URL that is not spiffe", "https://mcp.partner.com", /MCP server "https:\/\/mcp.partner.com" is not a SPIFFE ID: spiffeid: /],
    ["an upper-case trust domain", "spiffe://Example.org/x", /is not a SPIFFE ID: spiffeid: .*invalid trust domain character/],
    ["a path with an empty segment", "spiffe://example.org/a//b", /is not a SPIFFE ID/],
    ["a rule name with a slash", "mcp/github", /MCP server "mcp\/github" is not a SPIFFE ID/],
    ["a host and port", "mcp.partner.com:443", /is not a SPIFFE ID/],
  ];
  for (const [name, text, message] of refused) {
    test(`refused: ${name}`, () => assert.match(codeOf(() => parseMcpServerName(text)), message));
  }
});

describe("rulesNamingMcpServer", () => {
  const rules = (text: string) => rulesNamingMcpServer(P, parseMcpServerName(text));
  test("an intercept rule with mcp: by its name, or by its mtls.server_id when it has one", () => {
    assert.deepEqual(rules("github"), ["egress rule github"]);
    assert.deepEqual(rules("spiffe://example.org/mcp/email"), ["egress rule partner-email", "stdio rule fs-readers"]);
    assert.deepEqual(rules("partner-email"), []);
    assert.deepEqual(rules("plain"), [], "no mcp: on the rule: nothing of MCP is read");
  });
  test("an inbound rule with mcp: by its id; a stdio rule by its server patterns", () => {
    assert.deepEqual(rules("spiffe://example.org/mcp/inbox"), ["inbound rule email-mcp", "stdio rule fs-readers"]);
    assert.deepEqual(rules("spiffe://example.org/svc/raw"), [], "an inbound rule without mcp:");
    assert.deepEqual(rules("spiffe://example.org/tools/notes"), ["stdio rule notes"]);
    assert.deepEqual(rules("spiffe://example.org/mcp/anything"), ["stdio rule fs-readers"]);
    assert.deepEqual(rules("spiffe://other.org/mcp/fs"), []);
    assert.deepEqual(rules("email-mcp"), [], "an inbound rule pins under its id, not its name");
  });
});

describe("mcpServerNames and mcpServerNaming", () => {
  test("every name the rules pin under, the workloads a stdio wildcard matches included", () => {
    assert.deepEqual(mcpServerNames(P), ["github", "spiffe://example.org/mcp/email", "spiffe://example.org/mcp/inbox", "spiffe://example.org/mcp/fs", "spiffe://example.org/tools/notes"]);
  });
  const naming = (text: string) => mcpServerNaming(P, parseMcpServerName(text));
  test("a typo of a name the policy has: what it was probably meant as", () => {
    assert.deepEqual(naming("githb").meant, ["github"]);
    assert.deepEqual(naming("githb").readBy, []);
    assert.deepEqual(naming("spiffe://example.org/tools/note").meant, ["spiffe://example.org/tools/notes"]);
  });
  test("an intercept rule's name when it has mtls.server_id: that ID", () => {
    assert.deepEqual(naming("partner-email"), { readBy: [], servers: mcpServerNames(P), meant: ["spiffe://example.org/mcp/email"] });
  });
  test("an ID only a stdio wildcard reads, near a known one: still a did-you-mean", () => {
    assert.deepEqual(naming("spiffe://example.org/mcp/emai"), { readBy: ["stdio rule fs-readers"], servers: mcpServerNames(P), meant: ["spiffe://example.org/mcp/email"] });
    assert.deepEqual(naming("spiffe://example.org/mcp/fs").meant, []);
    assert.deepEqual(naming("spiffe://example.org/mcp/brand-new").meant, []);
    assert.deepEqual(naming("spiffe://example.org/mcp/inbox").meant, []);
  });
  test("nothing near: no guess", () => {
    assert.deepEqual(naming("spiffe://example.org/zzz"), { readBy: [], servers: mcpServerNames(P), meant: [] });
  });
});
