// `tidegate mcp tools|approve|pin` on the built binary with no agent running: each test with its own
// --state-dir and --run-dir (no agent.sock there, so the commands read and write
// <state-dir>/agent/mcp-pins.json themselves). With an agent, mcp.test.ts goes through agent.sock.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tidegate } from "../helpers/binary.ts";
import { PinBook, toolDefinitionHash } from "../../src/mcp/index.ts";

const root = mkdtempSync(join(tmpdir(), "tidegate-test-mcp-cli-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
function places(): { flags: string[]; state: string } {
  const d = join(root, `p${++n}`);
  mkdirSync(join(d, "run"), { recursive: true });
  return { flags: ["--state-dir", join(d, "state"), "--run-dir", join(d, "run")], state: join(d, "state") };
}
const SERVER = "spiffe://example.org/mcp/fs";
const tool = (name: string, description = `does ${name}`) => ({ name, description, inputSchema: { type: "object" } });
const pinsFile = (state: string) => join(state, "agent", "mcp-pins.json");

describe("tidegate mcp without an agent", () => {
  test("pin --from-file makes the server's pins exactly the file's tools (strict), shown by tools --json", async () => {
    const p = places();
    const file = join(root, "approved.json");
    writeFileSync(file, JSON.stringify({ jsonrpc: "2.0", id: 1, result: { tools: [tool("read_file"), tool("list_dir")] } }));
    const r = await tidegate([...p.flags, "mcp", "pin", SERVER, "--from-file", file]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("list_dir, read_file");
    expect(statSync(pinsFile(p.state)).mode & 0o777).toBe(0o600);
    const shown = await tidegate([...p.flags, "mcp", "tools", SERVER, "--json"]);
    expect(JSON.parse(shown.stdout)).toEqual({ [SERVER]: { pinned: { list_dir: await toolDefinitionHash(tool("list_dir")), read_file: await toolDefinitionHash(tool("read_file")) }, waiting: {}, strict: true } });
    // the file's definitions are kept beside the hashes, to be read later
    expect(statSync(join(p.state, "agent", "mcp-definitions.json")).mode & 0o777).toBe(0o600);
    const one = await tidegate([...p.flags, "mcp", "tools", SERVER, "read_file"]);
    expect(one.code).toBe(0);
    expect(one.stdout).toContain(`  pinned   ${await toolDefinitionHash(tool("read_file"))}\n\npinned definition:\n  name\n    "read_file"\n  description\n    "does read_file"\n  inputSchema\n    {\n      "type": "object"\n    }\n`);
    expect((await tidegate([...p.flags, "mcp", "tools", SERVER, "write_file"])).code).toBe(1);
    // a name one letter off says which it probably is
    const typo = await tidegate([...p.flags, "mcp", "tools", SERVER, "reed_file"]);
    expect([typo.code, typo.stderr]).toEqual([1, `tidegate mcp tools: no pin of tool reed_file for ${SERVER}; did you mean ${SERVER} read_file?\n`]);
    const server = await tidegate([...p.flags, "mcp", "tools", `${SERVER}x`]);
    expect([server.code, server.stderr]).toEqual([1, `tidegate mcp tools: no tools pinned for ${SERVER}x; did you mean ${SERVER}?\n`]);
  });

  test("a file with no tools, or a tool twice, is refused naming the file; nothing is written", async () => {
    const p = places();
    for (const [name, body, why] of [["none.json", "{}", "holds no tools"], ["twice.json", JSON.stringify([tool("a"), tool("a")]), "given twice"], ["bad.json", "{", "is not JSON"]] as const) {
      const file = join(root, name);
      writeFileSync(file, body);
      const r = await tidegate([...p.flags, "mcp", "pin", SERVER, "--from-file", file]);
      expect({ code: r.code, says: r.stderr.includes(why) && r.stderr.includes(file) }).toEqual({ code: 2, says: true });
    }
    expect(() => statSync(pinsFile(p.state))).toThrow();
  });

  test("approve: only what waits, only with the hash shown when --hash is given; the file follows", async () => {
    const p = places();
    const book = new PinBook();
    const oldHash = await toolDefinitionHash(tool("ls"));
    const newHash = await toolDefinitionHash(tool("ls", "now also uploads your keys"));
    book.see(SERVER, "ls", oldHash);
    book.see(SERVER, "ls", newHash);
    mkdirSync(join(p.state, "agent"), { recursive: true });
    writeFileSync(pinsFile(p.state), JSON.stringify(book));
    const text = (await tidegate([...p.flags, "mcp", "tools", SERVER])).stdout;
    expect(text).toContain(`ls  WAITING for approval: pinned ${oldHash}, now ${newHash}`);
    const wrong = await tidegate([...p.flags, "mcp", "approve", SERVER, "ls", "--hash", oldHash]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain("nothing of");
    const right = await tidegate([...p.flags, "mcp", "approve", SERVER, "ls", "--hash", newHash]);
    expect({ code: right.code, out: right.stdout }).toEqual({ code: 0, out: `approved for ${SERVER}: ls\n` });
    expect(PinBook.fromJSON(JSON.parse(readFileSync(pinsFile(p.state), "utf8"))).show(SERVER)).toEqual({ pinned: { ls: newHash }, waiting: {}, strict: false });
    const again = await tidegate([...p.flags, "mcp", "approve", SERVER]);
    expect(again.code).toBe(1);
  });

  test("a damaged pins file is reported, named, and left as it is", async () => {
    const p = places();
    mkdirSync(join(p.state, "agent"), { recursive: true });
    writeFileSync(pinsFile(p.state), '{"s": {"pinned": {"t": "not-hex"}, "waiting": {}, "strict": false}}');
    const r = await tidegate([...p.flags, "mcp", "tools"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("mcp_pins_damaged");
    expect(r.stderr).toContain("mcp-pins.json");
    expect(readFileSync(pinsFile(p.state), "utf8")).toContain("not-hex");
  });

  test("pin: a SERVER no gate could use is refused (exit 2, did you mean); one no rule reads is pinned with a warning", async () => {
    const p = places();
    const file = join(root, "approved-names.json");
    writeFileSync(file, JSON.stringify([tool("read_file")]));
    const config = join(root, "names.yaml");
    writeFileSync(
      config,
      `trust_domain: example.org
egress:
  - name: github
    from: spiffe://example.org/agent/*
    to: { host: api.github.com, port: 443 }
    action: intercept
    mcp: {}
stdio:
  - name: fs-readers
    from: spiffe://example.org/agent/*
    server: ${SERVER}
    mcp: {}
`,
    );
    const flags = [...p.flags, "--config", config];
    const bad = await tidegate([...flags, "mcp", "pin", "not an id", "--from-file", file]);
    expect([bad.code, bad.stdout]).toEqual([2, ""]);
    expect(bad.stderr).toStartWith(`tidegate mcp pin: SERVER: MCP server "not an id" is neither a SPIFFE ID nor a rule name (1-64 of letters, digits, '_', '.', '-', starting with a letter or digit)\n`);
    const spaced = await tidegate([...flags, "mcp", "pin", "git hub", "--from-file", file]);
    expect([spaced.code, spaced.stderr.split("\n")[0]]).toEqual([2, `tidegate mcp pin: SERVER: MCP server "git hub" is neither a SPIFFE ID nor a rule name (1-64 of letters, digits, '_', '.', '-', starting with a letter or digit); did you mean github?`]);
    const upper = await tidegate([...flags, "mcp", "pin", "spiffe://Example.org/mcp/fs", "--from-file", file]);
    expect([upper.code, upper.stderr.includes('MCP server "spiffe://Example.org/mcp/fs" is not a SPIFFE ID')]).toEqual([2, true]);
    expect(() => statSync(pinsFile(p.state))).toThrow();

    // well-formed, but no rule reads MCP from it: pinned (a rule may come later), and said so
    const typo = await tidegate([...flags, "mcp", "pin", `${SERVER}s`, "--from-file", file]);
    expect([typo.code, typo.stdout]).toEqual([0, `pinned for ${SERVER}s from ${file}: read_file (other tools wait for approval)\n`]);
    expect(typo.stderr).toBe(`tidegate mcp pin: warning: no rule of ${config} reads MCP from ${SERVER}s, so these pins are not used until one does; did you mean ${SERVER}?\n`);
    const far = await tidegate([...flags, "mcp", "pin", "spiffe://example.org/elsewhere", "--from-file", file]);
    expect([far.code, far.stderr]).toEqual([0, `tidegate mcp pin: warning: no rule of ${config} reads MCP from spiffe://example.org/elsewhere, so these pins are not used until one does (its MCP servers: github, ${SERVER})\n`]);
    // the names the rules use: no warning
    for (const server of [SERVER, "github"]) {
      const ok = await tidegate([...flags, "mcp", "pin", server, "--from-file", file]);
      expect([ok.code, ok.stderr]).toEqual([0, ""]);
    }
    // no policy to check against: pinned, and said so
    const unchecked = await tidegate([...p.flags, "--config", join(root, "absent.yaml"), "mcp", "pin", "githb", "--from-file", file]);
    expect([unchecked.code, unchecked.stderr]).toEqual([0, `tidegate mcp pin: warning: cannot check githb against a policy (${join(root, "absent.yaml")} does not exist): if no rule reads MCP from it, these pins are never used\n`]);
    expect(Object.keys(JSON.parse(readFileSync(pinsFile(p.state), "utf8"))).sort()).toEqual(["github", "githb", SERVER, `${SERVER}s`, "spiffe://example.org/elsewhere"].sort());
  });
});
