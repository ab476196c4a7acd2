import { describe, expect, test } from "bun:test";
import { McpGate, PinBook, toolDecider } from "../../mcp/index.ts";
import { MAX_MCP_BODY } from "./http-filter.ts";
import { lines, StdioRelay } from "./stdio-relay.ts";
import { gateRule } from "./gate-rule.ts";
import { loadPolicy } from "../../policy/load.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

async function* chunks(...parts: (string | Uint8Array)[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield typeof p === "string" ? enc.encode(p) : p;
}

async function collect(gen: AsyncIterable<Uint8Array | null>): Promise<(string | null)[]> {
  const out: (string | null)[] = [];
  for await (const l of gen) out.push(l === null ? null : dec.decode(l));
  return out;
}

describe("lines", () => {
  test("splits across chunks, drops a CR before LF, keeps a last line without LF", async () => {
    expect(await collect(lines(chunks("a\r\nb", "c\n", "\n", "d"), 10))).toEqual(["a", "bc", "", "d"]);
  });
  test("an over-long line is reported once as null and skipped to its end, in one chunk or many", async () => {
    expect(await collect(lines(chunks("0123456789AB\nok\n"), 10))).toEqual([null, "ok"]);
    expect(await collect(lines(chunks("01234567", "89ABCDEF", "GH\nok\n"), 10))).toEqual([null, "ok"]);
  });
});

function stand(deny: string[] = ["rm"]) {
  const events: { type: string; fields: Record<string, unknown> }[] = [];
  const gate = new McpGate(
    { caller: "spiffe://example.org/host", server: "spiffe://example.org/mcp/fs", connId: "s1", rule: { name: "fs-stdio", tools: toolDecider({ allow: null, deny: new Set(deny) }) } },
    { pins: new PinBook(), audit: (type, fields) => events.push({ type, fields }), now: () => performance.now() },
  );
  const server: string[] = [];
  const client: string[] = [];
  const ended = { server: false, client: false };
  const relay = new StdioRelay(gate, { write: (b) => void server.push(dec.decode(b)), end: () => void (ended.server = true) }, { write: (b) => void client.push(dec.decode(b)), end: () => void (ended.client = true) });
  return { relay, server, client, ended, events };
}

const call = (id: number, name: string) => JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: {} } });

describe("StdioRelay", () => {
  test("allowed lines reach the server as they came; denied ones are answered to the client and never reach it", async () => {
    const s = stand();
    await s.relay.fromClient(chunks(`${call(1, "ls")}\r\n`, `${call(2, "rm")}\n`, "\n", `${call(3, "cat")}`));
    expect(s.server).toEqual([`${call(1, "ls")}\n`, `${call(3, "cat")}\n`]);
    expect(s.client).toHaveLength(1);
    const answer = JSON.parse(s.client[0]!) as { id: number; error: { code: number; message: string } };
    expect([answer.id, answer.error.code]).toEqual([2, -32001]);
    expect(answer.error.message).toContain("rule fs-stdio");
    expect(s.ended.server).toBe(true);
    expect(s.events.filter((e) => e.fields.decision === "deny").map((e) => e.fields.tool)).toEqual(["rm"]);
  });

  test("malformed lines and batches get JSON-RPC errors, never reach the server", async () => {
    const s = stand();
    await s.relay.fromClient(chunks("{oops\n", `[${call(1, "ls")}]\n`));
    expect(s.server).toEqual([]);
    expect(s.client.map((c) => (JSON.parse(c) as { error: { code: number } }).error.code)).toEqual([-32700, -32600]);
  });

  test("a client line over the limit is refused with -32600 and skipped", async () => {
    const s = stand();
    await s.relay.fromClient(chunks(new Uint8Array(MAX_MCP_BODY + 10).fill(0x20), `\n${call(4, "ls")}\n`));
    expect(s.server).toEqual([`${call(4, "ls")}\n`]);
    expect((JSON.parse(s.client[0]!) as { error: { code: number } }).error.code).toBe(-32600);
  });

  test("the server's tools/list is filtered, its noise dropped, and the client's stdout ended at its EOF", async () => {
    const s = stand();
    const list = JSON.stringify({ jsonrpc: "2.0", id: 9, result: { tools: [{ name: "ls" }, { name: "rm" }] } });
    await s.relay.fromServer(chunks("starting up...\n", `${list}\n`, `${JSON.stringify({ jsonrpc: "2.0", method: "notifications/tools/list_changed" })}\n`));
    expect(s.client).toHaveLength(2);
    expect((JSON.parse(s.client[0]!) as { result: { tools: { name: string }[] } }).result.tools.map((t) => t.name)).toEqual(["ls"]);
    expect(s.client[1]).toContain("list_changed");
    expect(s.relay.dropped).toBe(1);
    expect(s.ended.client).toBe(true);
  });

  test("a call answered by the server is logged with its duration", async () => {
    const s = stand();
    await s.relay.fromClient(chunks(`${call(5, "ls")}\n`));
    await s.relay.fromServer(chunks(`${JSON.stringify({ jsonrpc: "2.0", id: 5, result: { content: [] } })}\n`));
    const ev = s.events.find((e) => e.type === "tool_call")!;
    expect([ev.fields.tool, ev.fields.decision, ev.fields.is_error, typeof ev.fields.duration_ms]).toEqual(["ls", "allow", false, "number"]);
  });
});

describe("lines over many small reads (review finding 8)", () => {
  test("a line cut into 1-byte reads comes whole; one over the limit in small reads is reported once", async () => {
    const text = `${"a".repeat(300)}\nb\n`;
    async function* bytes(): AsyncGenerator<Uint8Array> {
      for (const c of enc.encode(text)) yield new Uint8Array([c]);
    }
    expect(await collect(lines(bytes(), 1000))).toEqual(["a".repeat(300), "b"]);
    expect(await collect(lines(bytes(), 100))).toEqual([null, "b"]);
  });
  test("a CR before the LF does not count toward the limit", async () => {
    expect(await collect(lines(chunks("0123456789\r", "\n"), 10))).toEqual(["0123456789"]);
  });
  test("a 4 MiB line (the limit) in 1 KiB reads comes whole", async () => {
    const size = 4 * 1024 * 1024;
    async function* reads(): AsyncGenerator<Uint8Array> {
      const block = new Uint8Array(1024).fill(0x61);
      for (let i = 0; i < size / 1024; i++) yield block;
      yield enc.encode("\n");
    }
    const out = await collect(lines(reads(), size));
    expect(out.map((l) => l?.length)).toEqual([size]);
  });
});

describe("StdioRelay.announce: a reload that changes what the client may list", () => {
  const policyText = (deny: string) => `trust_domain: example.org\nstdio:\n  - { name: fs-stdio, from: spiffe://example.org/host, server: spiffe://example.org/mcp/fs, mcp: { tools: { deny: [${deny}] } } }\n`;
  const ruleOf = (deny: string) => gateRule(loadPolicy(policyText(deny), "t.yaml").stdio[0]!);

  test("the same policy loaded again is no change; a narrowed filter sends tools/list_changed once; nothing after the client's stdout ended", async () => {
    let rule = ruleOf("rm");
    const gate = new McpGate({ caller: "spiffe://example.org/host", server: "spiffe://example.org/mcp/fs", connId: "s1", rule: () => rule }, { pins: null, audit: () => {}, now: () => 0 });
    const client: string[] = [];
    let ended = false;
    const relay = new StdioRelay(gate, { write() {}, end() {} }, { write: (b) => void client.push(dec.decode(b)), end: () => void (ended = true) });
    const { promise: serverEnd, resolve: endServer } = Promise.withResolvers<void>();
    const server = (async function* () {
      yield enc.encode(`${JSON.stringify({ jsonrpc: "2.0", id: 1, result: { tools: [{ name: "ls" }, { name: "rm" }, { name: "cat" }] } })}\n`);
      await serverEnd;
    })();
    const down = relay.fromServer(server);
    await Bun.sleep(5);
    expect(client.map((l) => (JSON.parse(l) as { result: { tools: { name: string }[] } }).result.tools.map((t) => t.name))).toEqual([["ls", "cat"]]);
    rule = ruleOf("rm"); // a reload of the same file
    relay.announce();
    rule = ruleOf("rm, cat");
    relay.announce();
    relay.announce();
    await Bun.sleep(5);
    expect(client.slice(1)).toEqual([`${JSON.stringify({ jsonrpc: "2.0", method: "notifications/tools/list_changed" })}\n`]);
    expect(relay.announced).toBe(1);
    endServer();
    await down;
    expect(ended).toBe(true);
    rule = ruleOf("ls");
    relay.announce();
    expect(client).toHaveLength(2);
  });
});
