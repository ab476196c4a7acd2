import { describe, expect, test } from "bun:test";
import { ResponseParser, type ResponseHead } from "../../http1/index.ts";
import { type GateRule, McpGate, SessionLists, toolDecider } from "../../mcp/index.ts";
import { McpResponse } from "./http-filter.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const all: GateRule = { name: "r1", tools: null, lists: { tool: "all", resource: "all", prompt: "all" } };
const narrowed: GateRule = { name: "r1", tools: toolDecider({ allow: null, deny: new Set(["write"]) }), lists: { tool: "deny write", resource: "all", prompt: "all" } };
const CHANGED = `data: {"jsonrpc":"2.0","method":"notifications/tools/list_changed"}\n\n`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function head(text: string): ResponseHead {
  const p = new ResponseParser();
  p.expect("GET");
  const e = p.push(enc.encode(text))[0]!;
  if (e.kind !== "head") throw new Error(`no head: ${e.kind}`);
  return e.head;
}
const SSE = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
const JSON_ANSWER = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n";

/** A session whose tools list was sent (through another gate), and its stream's answer through `McpResponse`, announcing every 20 ms. */
async function stand(answer = SSE, withStream = true) {
  let rule = all;
  const sessions = new SessionLists();
  const h = { get: (n: string) => (n === "mcp-session-id" ? "s1" : null), forEach: () => {} };
  const gateOf = () => new McpGate({ caller: "spiffe://example.org/agent", server: "spiffe://example.org/mcp/fs", connId: null, rule: () => rule }, { pins: null, audit: () => {}, now: () => 0, sessions });
  const posts = gateOf();
  await posts.fromClient(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }), h);
  await posts.fromServer(JSON.stringify({ jsonrpc: "2.0", id: 1, result: { tools: [{ name: "read" }, { name: "write" }] } }));
  const gate = gateOf();
  const out: string[] = [];
  let told = 0;
  const res = new McpResponse(gate, head(answer), null, (b) => out.push(dec.decode(b)), withStream ? { seen: gate.lists(h), told: (n) => void (told += n), everyMs: 20 } : null);
  return { res, out, text: () => out.join(""), set: (r: GateRule) => void (rule = r), count: () => out.join("").split(CHANGED).length - 1, told: () => told };
}

const chunk = (s: string) => enc.encode(`${s}`);

describe("McpResponse: a session's stream tells the client of list changes", () => {
  test("after a reload narrows the tools filter, the stream carries tools/list_changed once, as an event of its own between the server's", async () => {
    const s = await stand();
    s.res.body(chunk("data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{}}\n\n"));
    await sleep(60);
    expect(s.count()).toBe(0);
    s.set(narrowed);
    await sleep(60);
    s.res.body(chunk(": after\n\n"));
    await sleep(60);
    expect(s.count()).toBe(1);
    const text = s.text();
    expect(text.indexOf("notifications/message")).toBeLessThan(text.indexOf("list_changed"));
    expect(text.indexOf("list_changed")).toBeLessThan(text.indexOf(": after"));
    // Re-chunked: each event its own chunk, whole.
    expect(text).toContain(`${enc.encode(CHANGED).length.toString(16)}\r\n${CHANGED}\r\n`);
    s.set(all);
    await sleep(60);
    expect(s.count()).toBe(2);
    expect(s.told()).toBe(2);
    s.res.stop();
  });

  test("no more once the answer ended, or once the carrier stops it", async () => {
    for (const how of ["end", "stop"] as const) {
      const s = await stand();
      if (how === "end") await s.res.end();
      else s.res.stop();
      const before = s.text();
      s.set(narrowed);
      await sleep(80);
      expect(s.text()).toBe(before);
      expect(s.count()).toBe(0);
    }
  });

  test("not on an answer without the session's record, nor on a JSON answer", async () => {
    const none = await stand(SSE, false);
    const json = await stand(JSON_ANSWER, true);
    none.set(narrowed);
    json.set(narrowed);
    await sleep(80);
    expect(none.count()).toBe(0);
    expect(json.count()).toBe(0);
    none.res.stop();
    json.res.stop();
  });
});

/** The body of a chunked answer as emitted (head dropped, chunks joined). */
function dechunk(text: string): string {
  let rest = text.slice(text.indexOf("\r\n\r\n") + 4);
  let body = "";
  for (;;) {
    const nl = rest.indexOf("\r\n");
    const size = Number.parseInt(rest.slice(0, nl), 16);
    if (!(size > 0)) return body;
    const bytes = enc.encode(rest.slice(nl + 2));
    body += dec.decode(bytes.subarray(0, size));
    rest = dec.decode(bytes.subarray(size + 2));
  }
}

describe("McpResponse: SSE events read one way by the gate and another by a client", () => {
  const denyRm: GateRule = { name: "r1", tools: toolDecider({ allow: null, deny: new Set(["rm_rf"]) }) };
  const through = async (stream: string): Promise<string> => {
    const gate = new McpGate({ caller: "spiffe://example.org/agent", server: "spiffe://example.org/mcp/fs", connId: null, rule: denyRm }, { pins: null, audit: () => {}, now: () => 0 });
    const out: string[] = [];
    const res = new McpResponse(gate, head(SSE), null, (b) => out.push(dec.decode(b)));
    res.body(enc.encode(stream));
    await res.end();
    return dechunk(out.join(""));
  };
  const L = "\u2028";
  const smuggles: [string, string][] = [
    // Go (go-sdk's bufio.Scanner) ends lines at LF only: a lone CR keeps `"tools":[...]`, a line the gate ignores, in its data.
    ["a lone CR, for a client that ends lines at LF only", `data: {"jsonrpc":"2.0","id":1,"result":{"tools":[],\r"tools":[{"name":"rm_rf"}],\ndata: "z":1}}\n\n`],
    // httpx-sse before 0.4.2 (the Python SDK's client) splits lines at U+2028, U+0085, VT, FF and FS-RS too.
    ["U+2028 in a comment, for a client that splits lines there", `: x${L}data: {"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"rm_rf"}]}}${L}${L}\n\n`],
    ["VT in an id line", `id: 5\u000bdata: {"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"rm_rf"}]}}\u000b\u000b\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{}}\n\n`],
    ["NEL in an event type", `event: x\u0085data: {"jsonrpc":"2.0","id":4,"result":{"tools":[{"name":"rm_rf"}]}}\u0085\u0085\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{}}\n\n`],
  ];
  for (const [name, stream] of smuggles) {
    test(`${name}: what reaches the client has no line break the gate did not see, nor the hidden tool`, async () => {
      const body = await through(stream);
      expect(body).not.toContain("rm_rf");
      expect(body).not.toMatch(/\r(?!\n)|[\u000b\u000c\u001c-\u001e\u0085\u2028\u2029]/);
    });
  }

  test("a message with U+2028 in a string still reaches the client, escaped; a plain stream passes byte for byte", async () => {
    const msg = { jsonrpc: "2.0", method: "notifications/message", params: { data: `a${L}b\u0085c` } };
    const body = await through(`id: 7\ndata: ${JSON.stringify(msg)}\n\n`);
    expect(body).not.toMatch(/[\u0085\u2028]/);
    expect(body.startsWith("id: 7\n")).toBe(true);
    expect(JSON.parse(body.split("\n").find((l) => l.startsWith("data: "))!.slice(6))).toEqual(msg);
    const plain = `: ping\r\n\r\nid: 1\r\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{}}\n\n`;
    expect(await through(plain)).toBe(plain);
  });
});

describe("McpResponse: a redirect", () => {
  // fetch (the TypeScript SDK) and httpx as the Python SDK sets it up follow a 307/308 with the
  // same POST: the answer would come from where the gate never reads it.
  for (const status of ["307 Temporary Redirect", "308 Permanent Redirect", "302 Found"]) {
    test(`${status} with a Location is replaced by the request's error, never passed`, async () => {
      const gate = new McpGate({ caller: "spiffe://example.org/agent", server: "spiffe://example.org/mcp/fs", connId: null, rule: all }, { pins: null, audit: () => {}, now: () => 0 });
      const out: string[] = [];
      const res = new McpResponse(gate, head(`HTTP/1.1 ${status}\r\nLocation: http://elsewhere.example/mcp\r\nContent-Length: 0\r\n\r\n`), 1, (b) => out.push(dec.decode(b)));
      await res.end();
      const text = out.join("");
      expect(text).not.toMatch(/location/i);
      expect(text.startsWith("HTTP/1.1 200")).toBe(true);
      expect(text).toContain('"code":-32603');
    });
  }
});
