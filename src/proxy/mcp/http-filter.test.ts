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
