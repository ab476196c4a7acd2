import { assert, describe, test } from "../../test/shim.ts";
import { SpiffeId } from "../spiffe/id.ts";
import { loadPolicy } from "./load.ts";
import { PolicyError } from "./errors.ts";
import { stdioRuleFor } from "./stdio.ts";

const FILE = "/etc/tidegate/config.yaml";
const base = `trust_domain: example.org
federation:
  - { trust_domain: partner.test }
stdio:
  - name: fs-readers
    from: [spiffe://example.org/agent/*, spiffe://partner.test/bot]
    server: spiffe://example.org/mcp/fs
    mcp: { tools: { allow: [read_*] } }
  - name: everything-open
    from: "spiffe://example.org/**"
    server: [spiffe://example.org/mcp/fs, spiffe://example.org/mcp/other]
    mcp: {}
`;
const id = (t: string) => SpiffeId.parse(t);

describe("stdio rules", () => {
  const p = loadPolicy(base, FILE);
  test("load keeps order, names, lines, patterns and the mcp filters", () => {
    assert.deepEqual(p.stdio.map((r) => [r.index, r.name, r.line, r.from.length, r.server.length]), [[0, "fs-readers", 5, 2, 1], [1, "everything-open", 9, 1, 2]]);
    assert.deepEqual([p.stdio[0]!.mcp.tools?.decide("read_file"), p.stdio[0]!.mcp.tools?.decide("write_file"), p.stdio[1]!.mcp.tools], ["allowed", "not_allowed", null]);
  });
  const cases: [string, string, string, string | null][] = [
    ["the first rule matching both wins", "spiffe://example.org/agent/claude", "spiffe://example.org/mcp/fs", "fs-readers"],
    ["a federated caller", "spiffe://partner.test/bot", "spiffe://example.org/mcp/fs", "fs-readers"],
    ["a later rule when the first's from does not match", "spiffe://example.org/ci/job", "spiffe://example.org/mcp/fs", "everything-open"],
    ["a later rule when the first's server does not match", "spiffe://example.org/agent/claude", "spiffe://example.org/mcp/other", "everything-open"],
    ["no rule: null", "spiffe://partner.test/bot", "spiffe://example.org/mcp/other", null],
    ["no rule for an unnamed server", "spiffe://example.org/agent/claude", "spiffe://example.org/mcp/third", null],
  ];
  for (const [name, caller, server, want] of cases) test(`stdioRuleFor: ${name}`, () => assert.equal(stdioRuleFor(p, id(caller), id(server))?.name ?? null, want));

  const bad: [string, string, RegExp][] = [
    ["a server of another trust domain", "stdio:\n  - { name: s, from: spiffe://example.org/a, server: spiffe://partner.test/x, mcp: {} }\n", /stdio\[0\]\.server.*not in our trust domain/],
    ["a caller of an unknown trust domain", "stdio:\n  - { name: s, from: spiffe://else.test/a, server: spiffe://example.org/x, mcp: {} }\n", /stdio\[0\]\.from.*neither ours nor under federation/],
    ["no mcp", "stdio:\n  - { name: s, from: spiffe://example.org/a, server: spiffe://example.org/x }\n", /stdio\[0\]\.mcp/],
    ["a name an egress rule has", "egress:\n  - { name: s, from: spiffe://example.org/a, to: { cidr: 10.0.0.0/8, port: 1 }, action: deny }\nstdio:\n  - { name: s, from: spiffe://example.org/a, server: spiffe://example.org/x, mcp: {} }\n", /already the name of egress\[0\]/],
  ];
  for (const [name, extra, msg] of bad) {
    test(`load refuses ${name}`, () => {
      assert.throws(() => loadPolicy(`trust_domain: example.org\n${extra}`, FILE), (e: unknown) => e instanceof PolicyError && msg.test(e.message));
    });
  }
});
