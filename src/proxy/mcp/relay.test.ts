import { describe, expect, test } from "bun:test";
import { type GateRule, McpGate, PinBook, SessionLists, toolDecider } from "../../mcp/index.ts";
import { MAX_MCP_BODY } from "./http-filter.ts";
import { MAX_HELD, McpRelay } from "./relay.ts";
import { waitFor } from "../../../test/helpers/processes.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function stand(opts: { deny?: string[]; pins?: PinBook; timeouts?: { firstByteMs: number; idleMs: number; headerMs?: number }; resources?: string[]; prompts?: string[]; closed?: { reason: string; message: string } } = {}) {
  const events: { type: string; fields: Record<string, unknown> }[] = [];
  const gate = new McpGate(
    { caller: "spiffe://example.org/client", server: "spiffe://example.org/mcp/x", connId: "c1", rule: { name: "mcp-x", tools: toolDecider({ allow: null, deny: new Set(opts.deny ?? ["rm"]) }), resources: toolDecider({ allow: null, deny: new Set(opts.resources ?? []) }), prompts: toolDecider({ allow: null, deny: new Set(opts.prompts ?? []) }), ...(opts.closed !== undefined ? { closed: opts.closed } : {}) } },
    { pins: opts.pins ?? null, audit: (type, fields) => events.push({ type, fields }), now: () => performance.now() },
  );
  const toBackend: string[] = [];
  const toClient: string[] = [];
  const ends = { backend: 0, client: 0 };
  const relay = new McpRelay(gate, (h) => [...h.headers.entries, ["x-added", "1"]], {
    toBackend: (b) => toBackend.push(dec.decode(b)),
    toClient: (b) => toClient.push(dec.decode(b)),
    endBackend: () => void ends.backend++,
    endClient: () => void ends.client++,
  }, opts.timeouts);
  return { relay, events, toBackend, toClient, ends, backend: () => toBackend.join(""), client: () => toClient.join("") };
}

const post = (body: string, extra = "") => enc.encode(`POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${extra}Content-Length: ${enc.encode(body).length}\r\n\r\n${body}`);
const call = (id: number, name: string) => JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: { q: "marker-123" } } });
const list = (id: number) => JSON.stringify({ jsonrpc: "2.0", id, method: "tools/list" });
const jsonAnswer = (body: string) => enc.encode(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${enc.encode(body).length}\r\n\r\n${body}`);
const tools = (id: number, names: string[]) => JSON.stringify({ jsonrpc: "2.0", id, result: { tools: names.map((name) => ({ name, inputSchema: { type: "object" } })) } });
const settle = () => new Promise((r) => setTimeout(r, 20));

function bodyOf(http: string): string {
  return http.slice(http.indexOf("\r\n\r\n") + 4);
}

describe("McpRelay", () => {
  test("an allowed call goes to the backend, rewritten and framed with Content-Length; its answer comes back", async () => {
    const s = stand();
    s.relay.clientData(post(call(1, "echo")));
    await settle();
    expect(s.backend()).toContain("x-added: 1\r\n");
    expect(s.backend()).toContain(call(1, "echo"));
    s.relay.backendData(jsonAnswer(JSON.stringify({ jsonrpc: "2.0", id: 1, result: { content: [] } })));
    await settle();
    expect(s.client()).toStartWith("HTTP/1.1 200 OK\r\n");
    expect(bodyOf(s.client())).toBe(JSON.stringify({ jsonrpc: "2.0", id: 1, result: { content: [] } }));
    expect(s.events.map((e) => [e.type, e.fields.tool, e.fields.decision])).toEqual([["tool_call", "echo", "allow"]]);
  });

  test("a denied call is answered here with -32001 naming the rule; nothing reaches the backend; the connection goes on", async () => {
    const s = stand();
    s.relay.clientData(post(call(1, "rm")));
    await settle();
    expect(s.backend()).toBe("");
    expect(s.client()).toStartWith("HTTP/1.1 200 OK\r\n");
    const answer = JSON.parse(bodyOf(s.client())) as { id: number; error: { code: number; message: string } };
    expect(answer.id).toBe(1);
    expect(answer.error.code).toBe(-32001);
    expect(answer.error.message).toContain("rule mcp-x");
    expect(s.ends).toEqual({ backend: 0, client: 0 });
    s.relay.clientData(post(call(2, "echo")));
    await settle();
    expect(s.backend()).toContain(call(2, "echo"));
  });

  // Every policy refusal is the call's own error with status 200, so an SDK client raises it for
  // that call and goes on; a 400 would read as the transport failing.
  for (const [what, method, params, reason] of [
    ["a denied resource read", "resources/read", { uri: "file:///etc/secret.conf" }, "resource_denied"],
    ["a resource URI the rule cannot decide", "resources/read", { uri: "file:///etc/../etc/secret.conf" }, "resource_bad_uri"],
    ["a denied prompt", "prompts/get", { name: "admin_reset" }, "prompt_denied"],
  ] as const) {
    test(`${what} is answered 200 with -32001 (${reason}); the connection goes on`, async () => {
      const s = stand({ resources: ["file:///etc/secret.conf"], prompts: ["admin_reset"] });
      s.relay.clientData(post(JSON.stringify({ jsonrpc: "2.0", id: 7, method, params })));
      await settle();
      expect(s.backend()).toBe("");
      expect(s.client()).toStartWith("HTTP/1.1 200 OK\r\n");
      const answer = JSON.parse(bodyOf(s.client())) as { id: number; error: { code: number; data: { reason: string } } };
      expect([answer.id, answer.error.code, answer.error.data.reason]).toEqual([7, -32001, reason]);
      expect(s.ends).toEqual({ backend: 0, client: 0 });
    });
  }

  test("a JSON tools/list answer is filtered and its Content-Length fixed", async () => {
    const s = stand();
    s.relay.clientData(post(list(3)));
    await settle();
    s.relay.backendData(jsonAnswer(tools(3, ["echo", "rm", "add"])));
    await settle();
    const body = bodyOf(s.client());
    expect((JSON.parse(body) as { result: { tools: { name: string }[] } }).result.tools.map((t) => t.name)).toEqual(["echo", "add"]);
    expect(s.client()).toContain(`content-length: ${enc.encode(body).length}\r\n`);
  });

  test("an SSE answer is passed event by event, chunked, the tools/list event filtered, as each arrives", async () => {
    const s = stand();
    s.relay.clientData(post(list(4)));
    await settle();
    s.relay.backendData(enc.encode("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"));
    const progress = `event: message\ndata: ${JSON.stringify({ jsonrpc: "2.0", method: "notifications/progress", params: { progress: 1 } })}\n\n`;
    s.relay.backendData(enc.encode(`${progress.length.toString(16)}\r\n${progress}\r\n`));
    await settle();
    expect(s.client()).toContain("transfer-encoding: chunked");
    expect(s.client()).toContain("notifications/progress");
    expect(s.client()).not.toContain("0\r\n\r\n");
    const ev = `event: message\nid: 7\ndata: ${tools(4, ["rm", "echo"])}\n\n`;
    s.relay.backendData(enc.encode(`${ev.length.toString(16)}\r\n${ev}\r\n0\r\n\r\n`));
    await settle();
    const out = s.client();
    expect(out).toContain('"name":"echo"');
    expect(out).not.toContain('"name":"rm"');
    expect(out).toContain("id: 7\n");
    expect(out).toEndWith("0\r\n\r\n");
  });

  test("an SSE event that does not parse is dropped", async () => {
    const s = stand();
    s.relay.clientData(post(list(5)));
    await settle();
    const ev = `data: {"jsonrpc":"2.0","id":5,"result":{"tools":[]},"result":{"tools":[{"name":"rm"}]}}\n\n`;
    s.relay.backendData(enc.encode(`HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: ${ev.length}\r\n\r\n${ev}`));
    await settle();
    expect(s.client()).not.toContain("rm");
  });

  test("a body that is not JSON gets 400 with -32700 and never reaches the backend", async () => {
    const s = stand();
    s.relay.clientData(post("{nope"));
    await settle();
    expect(s.backend()).toBe("");
    expect(s.client()).toStartWith("HTTP/1.1 400 ");
    expect((JSON.parse(bodyOf(s.client())) as { error: { code: number } }).error.code).toBe(-32700);
  });

  test("a header that disagrees with the body gets 400 with -32020", async () => {
    const s = stand();
    s.relay.clientData(post(call(6, "rm"), "Mcp-Method: tools/call\r\nMcp-Name: echo\r\n"));
    await settle();
    expect(s.backend()).toBe("");
    expect((JSON.parse(bodyOf(s.client())) as { error: { code: number } }).error.code).toBe(-32020);
  });

  test(`a body over ${MAX_MCP_BODY} bytes gets 413 and the connection is closed`, async () => {
    const s = stand();
    s.relay.clientData(enc.encode(`POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: ${MAX_MCP_BODY + 1}\r\n\r\n`));
    s.relay.clientData(new Uint8Array(MAX_MCP_BODY + 1));
    await settle();
    expect(s.backend()).toBe("");
    expect(s.client()).toStartWith("HTTP/1.1 413 ");
    expect(s.ends).toEqual({ backend: 1, client: 1 });
  });

  test("pipelined requests are answered in order, the second sent only after the first answer", async () => {
    const s = stand();
    s.relay.clientData(new Uint8Array([...post(call(1, "echo")), ...post(call(2, "rm")), ...post(call(3, "add"))]));
    await settle();
    expect(s.backend()).toContain(call(1, "echo"));
    expect(s.backend()).not.toContain(call(3, "add"));
    s.relay.backendData(jsonAnswer(JSON.stringify({ jsonrpc: "2.0", id: 1, result: {} })));
    await settle();
    expect(s.backend()).toContain(call(3, "add"));
    const order = s.toClient.filter((c) => c.includes('"id"')).map((c) => (JSON.parse(c.includes("\r\n\r\n") ? bodyOf(c) : c) as { id: number }).id);
    expect(order).toEqual([1, 2]);
  });

  test("heads pipelined behind a pending answer count toward MAX_HELD: a stream of bodiless requests is refused (mcp_too_much_ahead)", async () => {
    const s = stand();
    s.relay.clientData(post(call(1, "echo")));
    await settle();
    expect(s.backend()).toContain(call(1, "echo"));
    const get = "GET /mcp HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n";
    const chunk = enc.encode(get.repeat(Math.ceil((1024 * 1024) / get.length)));
    for (let sent = 0; sent <= MAX_HELD && s.ends.client === 0; sent += chunk.length) s.relay.clientData(chunk);
    await settle();
    expect(s.client()).toContain("mcp_too_much_ahead");
    expect(s.ends.client).toBe(1);
    expect(s.backend()).not.toContain("GET /mcp");
  });

  test("a smuggling shape is answered 400 and the connection closed", async () => {
    const s = stand();
    s.relay.clientData(enc.encode("POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"));
    await settle();
    expect(s.client()).toStartWith("HTTP/1.1 400 ");
    expect(s.relay.refused?.reason).toBeString();
    expect(s.ends).toEqual({ backend: 1, client: 1 });
  });

  test("an upgrade request is refused", async () => {
    const s = stand();
    s.relay.clientData(enc.encode("GET /mcp HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"));
    await settle();
    expect(s.client()).toStartWith("HTTP/1.1 403 ");
    expect(s.relay.refused?.reason).toBe("upgrade_refused");
  });

  test("a backend that closes before answering gets the client a 502", async () => {
    const s = stand();
    s.relay.clientData(post(call(1, "echo")));
    await settle();
    s.relay.backendEnd();
    await settle();
    expect(s.client()).toStartWith("HTTP/1.1 502 ");
    expect(s.relay.refused?.reason).toBe("backend_closed");
  });

  describe("a conversation no rule lets go on (a reload removed it): answered here and the connection closed", () => {
    const closed = { reason: "rule_removed", message: "tidegate: inbound rule mcp-x was removed" };
    test("a POSTed call: 200 with -32001 and the reason, Connection: close", async () => {
      const s = stand({ closed });
      s.relay.clientData(post(call(1, "echo")));
      await settle();
      expect(s.backend()).toBe("");
      expect(s.client()).toStartWith("HTTP/1.1 200 OK\r\n");
      expect(s.client().toLowerCase()).toContain("connection: close\r\n");
      expect(JSON.parse(bodyOf(s.client()))).toMatchObject({ id: 1, error: { code: -32001, message: closed.message, data: { reason: "rule_removed" } } });
      expect([s.ends.client, s.ends.backend, s.relay.refused?.reason]).toEqual([1, 1, "rule_removed"]);
    });
    test("a GET of the event stream, which carries no message: 403 with -32001, Connection: close", async () => {
      const s = stand({ closed });
      s.relay.clientData(enc.encode("GET /mcp HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"));
      await settle();
      expect(s.backend()).toBe("");
      expect(s.client()).toStartWith("HTTP/1.1 403 ");
      expect(s.client().toLowerCase()).toContain("connection: close\r\n");
      expect(JSON.parse(bodyOf(s.client()))).toMatchObject({ id: null, error: { code: -32001, message: closed.message } });
      expect([s.ends.client, s.ends.backend]).toEqual([1, 1]);
    });
  });

  test("a GET stream passes without a body and its events are gated", async () => {
    const s = stand();
    s.relay.clientData(enc.encode("GET /mcp HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"));
    await settle();
    expect(s.backend()).toStartWith("GET /mcp HTTP/1.1\r\n");
    const ev = `data: ${tools(9, ["rm"])}\n\n`;
    s.relay.backendData(enc.encode(`HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n${ev.length.toString(16)}\r\n${ev}\r\n`));
    await settle();
    expect(s.client()).toContain('"tools":[]');
  });

  test("client end with nothing pending ends both sides; calls never answered are logged at close", async () => {
    const s = stand();
    s.relay.clientData(post(call(1, "echo")));
    await settle();
    s.relay.gone();
    expect(s.events.map((e) => e.fields.outcome)).toEqual(["no_answer"]);
    const t = stand();
    t.relay.clientEnd();
    await settle();
    expect(t.ends).toEqual({ backend: 1, client: 1 });
  });
});

describe("McpRelay: answers the gate cannot read are replaced (review finding 2)", () => {
  const hidden = tools(1, ["rm", "echo"]);
  const cases: [string, string][] = [
    ["gzip", `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: ${hidden.length}\r\n\r\n${hidden}`],
    ["a JSON body under another type", `HTTP/1.1 200 OK\r\nContent-Type: text/html; x=application/json\r\nContent-Length: ${hidden.length}\r\n\r\n${hidden}`],
    ["two Content-Types", `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Type: application/json\r\nContent-Length: ${hidden.length}\r\n\r\n${hidden}`],
    ["application/json-seq", `HTTP/1.1 200 OK\r\nContent-Type: application/json-seq\r\nContent-Length: ${hidden.length}\r\n\r\n${hidden}`],
    ["UTF-16 SSE", `HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-16le\r\nContent-Length: ${hidden.length + 8}\r\n\r\ndata: ${hidden}\n\n`],
    ["no Content-Type", `HTTP/1.1 200 OK\r\nContent-Length: ${hidden.length}\r\n\r\n${hidden}`],
  ];
  for (const [name, answer] of cases) {
    test(`${name}: the client gets -32603 for its request, never the body`, async () => {
      const s = stand();
      s.relay.clientData(post(list(1)));
      await settle();
      s.relay.backendData(enc.encode(answer));
      await settle();
      expect(s.client()).not.toContain('"rm"');
      const body = JSON.parse(bodyOf(s.client())) as { id: number; error: { code: number; message: string } };
      expect([body.id, body.error.code]).toEqual([1, -32603]);
      expect(body.error.message).toContain("cannot be checked");
    });
  }
  test("charset=utf-8 and a parameterised SSE type pass", async () => {
    const s = stand();
    s.relay.clientData(post(list(2)));
    await settle();
    const ok = tools(2, ["echo"]);
    s.relay.backendData(enc.encode(`HTTP/1.1 200 OK\r\nContent-Type: Application/JSON; charset="UTF-8"\r\nContent-Length: ${ok.length}\r\n\r\n${ok}`));
    await settle();
    expect(bodyOf(s.client())).toBe(ok);
  });
  test("requests ask for identity encoding whatever the client sent", async () => {
    const s = stand();
    s.relay.clientData(post(list(3), "Accept-Encoding: gzip, br\r\n"));
    await settle();
    expect(s.backend()).toContain("accept-encoding: identity\r\n");
    expect(s.backend()).not.toContain("gzip");
  });
  test("a DELETE with Content-Length: 0 passes (it carries no message)", async () => {
    const s = stand();
    s.relay.clientData(enc.encode("DELETE /mcp HTTP/1.1\r\nHost: x\r\nMcp-Session-Id: s1\r\nContent-Length: 0\r\n\r\n"));
    await settle();
    expect(s.backend()).toStartWith("DELETE /mcp HTTP/1.1\r\n");
  });
  test("an answer that ends without its JSON-RPC answer frees the request's slot (review finding 9)", async () => {
    const s = stand();
    s.relay.clientData(post(call(1, "echo")));
    await settle();
    s.relay.backendData(enc.encode("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy"));
    await settle();
    expect(s.events.map((e) => [e.fields.tool, e.fields.outcome])).toEqual([["echo", "no_answer"]]);
    s.relay.clientData(post(call(1, "echo")));
    await settle();
    expect(s.backend().split(call(1, "echo")).length).toBe(3); // the same id again is not a duplicate
  });
  test("an SSE event that does not parse gives the waiting request an error instead of a hang", async () => {
    const s = stand();
    s.relay.clientData(post(call(4, "echo")));
    await settle();
    const ev = `data: {"jsonrpc":"2.0","id":4,"result":{},"result":{}}\n\n`;
    s.relay.backendData(enc.encode(`HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: ${ev.length}\r\n\r\n${ev}`));
    await settle();
    expect(s.client()).toContain('"id":4');
    expect(s.client()).toContain("-32603");
  });
});

test("a 202 without a Content-Type whose chunked body is empty passes (nothing to check)", async () => {
  const s = stand();
  s.relay.clientData(post(JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" })));
  await settle();
  s.relay.backendData(enc.encode("HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"));
  await settle();
  expect(s.client()).toStartWith("HTTP/1.1 202 Accepted\r\n");
  expect(s.client()).toContain("content-length: 0\r\n");
  expect(s.client()).not.toContain("-32603");
});

describe("McpRelay timeouts", () => {
  test("a request head sent a byte every 20 ms is answered 408 header_timeout at the header bound; the backend gets nothing", async () => {
    const s = stand({ timeouts: { firstByteMs: 60_000, idleMs: 60_000, headerMs: 150 } });
    const bytes = post(call(1, "echo"));
    let sent = 0;
    for (; sent < 30 && s.relay.refused === null; sent++) {
      s.relay.clientData(bytes.subarray(sent, sent + 1));
      await Bun.sleep(20);
    }
    expect(s.relay.refused).toEqual({ reason: "header_timeout", detail: "no whole request head within 150 ms" });
    expect(sent).toBeLessThan(30);
    expect(s.client()).toStartWith("HTTP/1.1 408 ");
    expect(s.backend()).toBe("");
    expect(s.ends).toEqual({ backend: 1, client: 1 });
  });
  test("between requests of a kept-alive connection no head is awaited: a quiet spell longer than the header bound is not cut", async () => {
    const s = stand({ timeouts: { firstByteMs: 60_000, idleMs: 60_000, headerMs: 100 } });
    s.relay.clientData(post(list(1)));
    await settle();
    s.relay.backendData(jsonAnswer(tools(1, ["echo"])));
    await Bun.sleep(250);
    expect(s.relay.refused).toBeNull();
    s.relay.clientData(post(call(2, "echo")));
    await settle();
    expect(s.backend()).toContain('"id":2');
    expect(s.relay.refused).toBeNull();
  });
  test("a backend that never answers gets the client a 504 after the first-byte timeout", async () => {
    const s = stand({ timeouts: { firstByteMs: 50, idleMs: 60_000 } });
    s.relay.clientData(post(call(1, "echo")));
    // the timer starts once the call is decided (a hash that may resolve a loop turn later): wait for the refusal, not a fixed time
    await waitFor("the first-byte timeout", () => (s.relay.refused !== null ? true : undefined), 5000, 5);
    expect(s.client()).toStartWith("HTTP/1.1 504 ");
    expect(s.relay.refused?.reason).toBe("backend_first_byte_timeout");
    expect(s.events.map((e) => e.fields.outcome)).toEqual(["no_answer"]);
  });
  test("SSE events keep a long call alive past the idle timeout; silence then ends it", async () => {
    const s = stand({ timeouts: { firstByteMs: 60_000, idleMs: 300 } });
    s.relay.clientData(post(call(1, "slow")));
    await settle();
    s.relay.backendData(enc.encode("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"));
    const ev = `data: ${JSON.stringify({ jsonrpc: "2.0", method: "notifications/progress", params: { progress: 1 } })}\n\n`;
    for (let i = 0; i < 6; i++) {
      await Bun.sleep(60); // 360 ms in all, past the idle timeout, each gap well under it
      s.relay.backendData(enc.encode(`${ev.length.toString(16)}\r\n${ev}\r\n`));
    }
    await Bun.sleep(5); // the last event through the gate (well under the idle timeout)
    expect(s.relay.refused).toBeNull();
    expect(s.client().split("notifications/progress").length - 1).toBe(6);
    await Bun.sleep(600);
    expect(s.relay.refused?.reason).toBe("idle_timeout");
    expect(s.ends).toEqual({ backend: 1, client: 1 });
  });
});

describe("McpRelay: a fault of the gate is contained", () => {
  class Faulty extends McpGate {
    constructor(private readonly side: "client" | "server") {
      super({ caller: "c", server: "s", connId: null, rule: { name: "r", tools: null } }, { pins: null, audit: () => {}, now: () => 0 });
    }
    override async fromClient(bytes: Uint8Array | string) {
      if (this.side === "client") throw new TypeError("boom");
      return super.fromClient(bytes);
    }
    override async fromServer(bytes: Uint8Array | string) {
      if (this.side === "server") throw new TypeError("boom");
      return super.fromServer(bytes);
    }
  }
  const relayWith = (gate: McpGate) => {
    const client: string[] = [];
    const ends = { backend: 0, client: 0 };
    const relay = new McpRelay(gate, (h) => h.headers.entries, { toBackend: () => {}, toClient: (b) => void client.push(dec.decode(b)), endBackend: () => void ends.backend++, endClient: () => void ends.client++ });
    return { relay, client: () => client.join(""), ends };
  };
  test("a request the gate fails on gets 502 internal_error, the connection closed, nothing thrown", async () => {
    const s = relayWith(new Faulty("client"));
    s.relay.clientData(post(call(1, "echo")));
    await settle();
    expect(s.client()).toStartWith("HTTP/1.1 502 ");
    expect(s.relay.refused?.reason).toBe("internal_error");
    expect(s.ends).toEqual({ backend: 1, client: 1 });
  });
  test("SSE events the gate fails on are not passed, and the answer still ends", async () => {
    const s = relayWith(new Faulty("server"));
    s.relay.clientData(post(call(1, "echo")));
    await settle();
    const ev = `data: ${tools(1, ["rm"])}\n\n`;
    s.relay.backendData(enc.encode(`HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n${ev.length.toString(16)}\r\n${ev}\r\n0\r\n\r\n`));
    await settle();
    expect(s.client()).not.toContain("rm");
    expect(s.client()).toEndWith("0\r\n\r\n");
  });
});

test("a close-delimited SSE answer ends once: one last chunk, then the connection closes", async () => {
  const s = stand();
  s.relay.clientData(post(list(1)));
  await settle();
  s.relay.backendData(enc.encode(`HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: ${tools(1, ["echo"])}\n\n`));
  s.relay.backendEnd();
  await settle();
  expect(s.client().split("0\r\n\r\n").length - 1).toBe(1);
  expect(s.client()).toEndWith("0\r\n\r\n");
  expect(s.ends).toEqual({ backend: 1, client: 1 });
});

describe("McpRelay: a session's stream and its other connections", () => {
  test("a tools list answered on one connection, then narrowed by a reload: the session's GET stream, on another connection, carries tools/list_changed within a second or so; once the stream's connection goes, nothing more is written", async () => {
    let rule: GateRule = { name: "mcp-x", tools: null, lists: { tool: "all", resource: "all", prompt: "all" } };
    const sessions = new SessionLists();
    const conn = () => {
      const gate = new McpGate({ caller: "spiffe://example.org/client", server: "spiffe://example.org/mcp/x", connId: null, rule: () => rule }, { pins: null, audit: () => {}, now: () => 0, sessions, announcesLists: true });
      const toClient: string[] = [];
      const relay = new McpRelay(gate, (h) => h.headers.entries, { toBackend: () => {}, toClient: (b) => toClient.push(dec.decode(b)), endBackend: () => {}, endClient: () => {} });
      return { relay, client: () => toClient.join("") };
    };
    const posts = conn();
    const stream = conn();
    posts.relay.clientData(post(list(1), "Mcp-Session-Id: sess-1\r\n"));
    await settle();
    posts.relay.backendData(jsonAnswer(tools(1, ["echo", "rm"])));
    stream.relay.clientData(enc.encode("GET /mcp HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nMcp-Session-Id: sess-1\r\n\r\n"));
    await settle();
    stream.relay.backendData(enc.encode("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"));
    await settle();
    expect(bodyOf(posts.client())).toContain('"echo"');
    rule = { name: "mcp-x", tools: toolDecider({ allow: null, deny: new Set(["echo"]) }), lists: { tool: "deny echo", resource: "all", prompt: "all" } };
    const deadline = Date.now() + 3000;
    while (!stream.client().includes("list_changed") && Date.now() < deadline) await Bun.sleep(50);
    expect(stream.client()).toContain(`data: {"jsonrpc":"2.0","method":"notifications/tools/list_changed"}\n\n`);
    expect(posts.client()).not.toContain("list_changed");
    expect([stream.relay.announced, posts.relay.announced]).toEqual([1, 0]);
    stream.relay.gone();
    posts.relay.gone();
    expect(sessions.size).toBe(0);
    const written = stream.client();
    rule = { name: "mcp-x", tools: null, lists: { tool: "all", resource: "all", prompt: "all" } };
    await Bun.sleep(1200);
    expect(stream.client()).toBe(written);
  }, 10_000);
});
