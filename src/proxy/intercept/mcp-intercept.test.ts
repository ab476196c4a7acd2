// MCP under an intercept rule with mcp: (exchange.ts with the gate of src/proxy/mcp), in one process
// over real sockets (test-harness.ts): the workload's plain HTTP to api.test, re-originated with TLS
// to a Bun server standing in for an MCP server. The SDK and server-everything paths are in
// test/e2e/mcp.test.ts; here: the refusals and bounds that need a server misbehaving on purpose.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { apiRule, createHarness, exchange, type Harness } from "./test-harness.ts";

let h: Harness;
const MCP = "    mcp: { tools: { deny: [rm] } }\n";
/** The policy the proxy starts with (a test reloads variants of it, then puts it back). */
let policy: string;
let api: ReturnType<typeof Bun.serve>;
let port: number;
const seen: string[] = [];
const enc = new TextEncoder();

beforeAll(async () => {
  h = await createHarness();
  api = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    tls: h.apiTls,
    idleTimeout: 0,
    async fetch(req) {
      if (req.method === "GET") {
        // The session's stream: a comment at once, then one every 100 ms (inside the idle bound below) until the client goes.
        let ping: ReturnType<typeof setInterval> | undefined;
        const body = new ReadableStream<Uint8Array>({
          start(c) {
            c.enqueue(enc.encode(": open\n\n"));
            ping = setInterval(() => c.enqueue(enc.encode(": ping\n\n")), 100);
          },
          cancel: () => clearInterval(ping),
        });
        return new Response(body, { headers: { "content-type": "text/event-stream" } });
      }
      const m = (await req.json()) as { id: number; method: string; params?: { name?: string } };
      seen.push(`${m.method}:${m.params?.name ?? ""}`);
      const name = m.params?.name;
      if (name === "hang") return new Promise<Response>(() => {}); // never answers
      if (name === "stream") {
        // progress every 60 ms for 360 ms, then silence: an idle bound of 300 ms must not cut the
        // stream while it reports, and must end it once it stops
        const body = new ReadableStream<Uint8Array>({
          async start(c) {
            for (let i = 1; i <= 6; i++) {
              await Bun.sleep(60);
              c.enqueue(enc.encode(`data: ${JSON.stringify({ jsonrpc: "2.0", method: "notifications/progress", params: { progress: i } })}\n\n`));
            }
          },
        });
        return new Response(body, { headers: { "content-type": "text/event-stream" } });
      }
      if (m.method === "tools/list") return Response.json({ jsonrpc: "2.0", id: m.id, result: { tools: [{ name: "echo" }, { name: "rm" }] } });
      return Response.json({ jsonrpc: "2.0", id: m.id, result: { content: [{ type: "text", text: "ok" }] } });
    },
  });
  policy = `trust_domain: example.org\negress:\n${apiRule("mcp-api", 80, h, api.port!, MCP)}`;
  port = h.start(policy, { secrets: { api_token: "t0ken-value" }, timeouts: { connectTimeoutMs: 10_000, firstByteTimeoutMs: 150, idleTimeoutMs: 300, headerTimeoutMs: 10_000 } });
});

afterAll(() => {
  h?.stop();
  api?.stop(true);
});

const post = (id: number, method: string, name?: string) => {
  const body = JSON.stringify({ jsonrpc: "2.0", id, method, ...(name !== undefined ? { params: { name, arguments: {} } } : {}) });
  return `POST /mcp HTTP/1.1\r\nHost: api.test\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
};
const closing = (text: string) => text.replace("Host: api.test\r\n", "Host: api.test\r\nConnection: close\r\n");

describe("intercept with mcp:", () => {
  test("a denied tool is answered here and never reaches the server; tools/list comes back filtered; the token is injected", async () => {
    const before = seen.length;
    const out = await exchange(port, post(1, "tools/call", "rm") + closing(post(2, "tools/list")));
    expect(out).toContain('"code":-32001');
    expect(out).toContain("rule mcp-api");
    expect(out).toContain('"name":"echo"');
    expect(out).not.toContain('"name":"rm"');
    expect(seen.slice(before)).toEqual(["tools/list:"]);
    const calls = h.lines.filter((l) => l.type === "tool_call");
    expect(calls.at(-1)).toMatchObject({ tool: "rm", decision: "deny", rule: "mcp-api", reason: "tool_denied", caller_id: "spiffe://example.org/w", server_id: "mcp-api" });
  });

  test("a server that never answers gets the workload a 504 after the first-byte bound", async () => {
    const out = await exchange(port, post(3, "tools/call", "hang"));
    expect(out).toStartWith("HTTP/1.1 504 ");
    expect(out).toContain("upstream_first_byte_timeout");
    expect(h.lines.filter((l) => l.type === "tool_call").at(-1)).toMatchObject({ tool: "hang", outcome: "no_answer", duration_ms: null });
  });

  test("progress events keep an answer alive past the idle bound; silence then ends the connection", async () => {
    const out = await exchange(port, post(4, "tools/call", "stream"));
    expect(out.split("notifications/progress").length - 1).toBe(6);
    const closed = h.lines.filter((l) => l.type === "conn_close").at(-1);
    expect(closed).toMatchObject({ outcome: "terminated", reason: "idle_timeout" });
  });
});

describe("intercept with mcp: a session's stream", () => {
  /** A plain connection to the proxy that sends `text` and keeps what comes back; `end` resets it (a half-close would leave the stream open). */
  async function open(text: string): Promise<{ got: () => string; closed: Promise<string>; end(): void }> {
    let got = "";
    const { promise: closed, resolve } = Promise.withResolvers<string>();
    const socket = await Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: { data: (_s, c) => void (got += new TextDecoder().decode(c)), close: () => resolve("closed"), error: (_s, e) => resolve((e as { code?: string }).code ?? String(e)) },
    });
    socket.write(text);
    return { got: () => got, closed, end: () => socket.terminate() };
  }
  const until = async (what: string, ok: () => boolean, ms = 3000) => {
    const deadline = Date.now() + ms;
    while (!ok() && Date.now() < deadline) await Bun.sleep(20);
    if (!ok()) throw new Error(`timed out waiting for ${what}`);
  };
  const session = "Mcp-Session-Id: sess-7\r\n";
  const CHANGED = `data: {"jsonrpc":"2.0","method":"notifications/tools/list_changed"}`;

  test("a reload that narrows the rule's tools: the stream, decided again, follows the rule and tells the client its tools list changed, though the list went over another connection", async () => {
    const list = await open(post(1, "tools/list").replace("Host: api.test\r\n", `Host: api.test\r\n${session}`));
    await until("the tools list", () => list.got().includes('"echo"'));
    const stream = await open(`GET /mcp HTTP/1.1\r\nHost: api.test\r\nAccept: text/event-stream\r\n${session}\r\n`);
    try {
      await until("the stream's first event", () => stream.got().includes(": open"));
      h.reload(policy.replace("deny: [rm]", "deny: [rm, echo]"));
      expect(await h.inFlight.recheck()).toEqual({ cut: 0, failed: 0, error: null });
      await until("tools/list_changed on the stream", () => stream.got().includes(CHANGED));
      expect(list.got()).not.toContain("list_changed");
      // Said once: another tick adds nothing.
      await Bun.sleep(1200);
      expect(stream.got().split(CHANGED).length - 1).toBe(1);
    } finally {
      h.reload(policy);
      list.end();
      stream.end();
    }
  }, 10_000);

  const cuts: [string, () => string, RegExp][] = [
    ["whose rule for the stream's request has no mcp: (the stream the client opens again is not read)", () => policy.replace(MCP, ""), /^a policy reload: the request that opened the MCP session's stream would now go by rule mcp-api, which has no mcp:$/],
    ["that refuses the stream's request", () => "trust_domain: example.org\negress: []\n", /now refuses the request that opened the MCP session's stream/],
  ];
  for (const [what, next, detail] of cuts) {
    test(`a reload ${what} ends the stream: policy_changed, naming the session's stream`, async () => {
      await until("the connections of the tests before to be gone", () => h.inFlight.size === 0);
      const stream = await open(`GET /mcp HTTP/1.1\r\nHost: api.test\r\nAccept: text/event-stream\r\n${session}\r\n`);
      try {
        await until("the stream's first event", () => stream.got().includes(": open"));
        const before = h.lines.length;
        h.reload(next());
        expect(await h.inFlight.recheck()).toEqual({ cut: 1, failed: 0, error: null });
        await stream.closed;
        const close = h.lines.slice(before).find((l) => l.type === "conn_close");
        expect(close).toMatchObject({ outcome: "terminated", reason: "policy_changed" });
        expect(String(close!.detail)).toMatch(detail);
      } finally {
        h.reload(policy);
        stream.end();
      }
    }, 10_000);
  }
});
