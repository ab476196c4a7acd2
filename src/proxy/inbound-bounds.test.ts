// An inbound listener's backend leg under small bounds (`proxy:`), over real loopback sockets and
// real mutual TLS with SVIDs from a test CA: a backend that never completes the TCP connect (a full
// accept queue), one that accepts and never writes, one that answers and goes silent; each ends
// the client's connection and is recorded with its own reason. A slow, steady backend lasting
// longer than the idle bound goes through whole. Where the listener parses HTTP
// (forward_client_cert), a request head sent a byte at a time is cut at the header bound. Stopping: the port closes while a connection in
// flight goes on, and `endAll` cuts what is left, recorded (`drain_timeout`).
import type { Socket, SocketHandler } from "bun";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { memoryAudit } from "../audit/sink/memory-audit.ts";
import { createTestCa } from "../../test/helpers/test-ca.ts";
import type { InboundRule, ProxySettings } from "../policy/model.ts";
import { createLogger } from "../runtime/log.ts";
import { SpiffeId, TrustDomain } from "../spiffe/index.ts";
import { parsePattern } from "../spiffe/match.ts";
import { encodePem } from "../x509/pem.ts";
import { fullBacklog, ticker, waitUntil } from "./bounds-test-kit.ts";
import type { Credential, IdentitySource, TrustNow } from "./identity-source.ts";
import { InboundListener } from "./inbound-listener.ts";
import { PeerVerifier } from "./peer-verifier.ts";
import { credentialOf, trustOf } from "./test-identity.ts";

const TD = TrustDomain.parse("example.org");
const BOUNDS: ProxySettings = { connectTimeoutMs: 300, firstByteTimeoutMs: 300, idleTimeoutMs: 400, headerTimeoutMs: 600 };
/** Top-level bounds far above a listener's own 150 ms, for telling the two apart by time with room for a loaded machine's handshakes. */
const LONG: ProxySettings = { connectTimeoutMs: 3000, firstByteTimeoutMs: 3000, idleTimeoutMs: 3000, headerTimeoutMs: 3000 };
const creds = new Map<string, Credential>();
let trust: TrustNow;
let audit = memoryAudit();
const identity: IdentitySource = { svid: (id) => creds.get(id) ?? null, trust: () => trust };
const opened: { stop(force?: boolean): void }[] = [];

beforeAll(async () => {
  const ca = await createTestCa();
  for (const path of ["/client", "/backend"]) creds.set(`spiffe://example.org${path}`, await credentialOf(await ca.mintLeaf(path)));
  trust = trustOf(ca);
});

afterEach(() => {
  for (const o of opened.splice(0)) o.stop(true);
});

afterAll(() => {
  for (const o of opened.splice(0)) o.stop(true);
});

/** An inbound listener forwarding to 127.0.0.1:`backendPort`, with BOUNDS; its port. `xfcc`: it parses HTTP (forward_client_cert). */
function listenerFor(backendPort: number, xfcc = false, bounds: ProxySettings = BOUNDS, own: InboundRule["bounds"] = null): { listener: InboundListener; port: number } {
  audit = memoryAudit();
  const rule: InboundRule = {
    index: 0,
    name: "in",
    line: 1,
    id: SpiffeId.parse("spiffe://example.org/backend"),
    listen: { host: "127.0.0.1", port: 0 },
    forward: { kind: "tcp", host: "127.0.0.1", port: backendPort },
    allow: [{ text: "spiffe://example.org/client", matcher: parsePattern("spiffe://example.org/client") }],
    proxyProtocol: false,
    forwardClientCert: xfcc,
    tools: null,
    mcp: null,
    bounds: own,
  };
  const listener = new InboundListener(rule, creds.get("spiffe://example.org/backend")!, { identity, verifier: new PeerVerifier(), logger: createLogger({ write: () => {} }), audit, timeouts: () => bounds });
  opened.push({ stop: () => listener.stop() });
  return { listener, port: (listener as unknown as { listener: { port: number } }).listener.port };
}

function backend(socket: SocketHandler<unknown>): number {
  const s = Bun.listen<unknown>({ hostname: "127.0.0.1", port: 0, allowHalfOpen: true, socket });
  opened.push(s);
  return s.port;
}

/** A client with the SVID of /client: sends `line` after the handshake; how it ended. */
async function client(port: number, line: string, everyMs = 0) {
  const c = creds.get("spiffe://example.org/client")!;
  let text = "";
  let sent = 0;
  const { promise, resolve } = Promise.withResolvers<{ text: string; error: string | null }>();
  let ended = false;
  const finish = (e?: Error | null) => {
    ended = true;
    resolve({ text, error: e == null ? null : ((e as { code?: string }).code ?? e.message) });
  };
  await Bun.connect({
    hostname: "127.0.0.1",
    port,
    tls: { cert: c.chain.map((d) => encodePem("CERTIFICATE", d)).join(""), key: c.keyPem, ca: trust.allCaPem, rejectUnauthorized: false },
    socket: {
      handshake: (s) => {
        if (everyMs === 0) return void s.write(line);
        // a byte every `everyMs` until all is sent or the connection ends
        void (async () => {
          for (const ch of line) {
            if (ended) return;
            s.write(ch);
            sent++;
            await Bun.sleep(everyMs);
          }
        })();
      },
      data: (_s, d) => void (text += new TextDecoder().decode(d)),
      close: (_s, e) => finish(e),
      error: (_s, e) => finish(e),
      connectError: (_s, e) => finish(e),
    },
  }).catch((e: Error) => finish(e));
  return { done: promise, text: () => text, sent: () => sent };
}

const closeOf = () => waitUntil("the inbound conn_close", () => audit.of("conn_close")[0]);

describe("inbound backend bounds", () => {
  test("a backend that never completes the TCP connect: backend_connect_timeout, nothing forwarded", async () => {
    const stuck = await fullBacklog();
    try {
      const { port } = listenerFor(stuck.port);
      const out = await (await client(port, "hello\n")).done;
      expect(out.text).toBe("");
      expect(await closeOf()).toMatchObject({ side: "inbound", outcome: "backend_failed", reason: "backend_connect_timeout", detail: "no connection to the backend within 300 ms", src: { spiffe_id: "spiffe://example.org/client" } });
    } finally {
      stuck.stop();
    }
  });

  test("a backend that refuses the connection: backend_failed; an L4 client gets the connection closed, nothing else", async () => {
    const gone = backend({ data() {} });
    opened.pop()!.stop(true); // nothing listens on that port now
    const { port } = listenerFor(gone);
    const out = await (await client(port, "GET / HTTP/1.1\r\nHost: b\r\n\r\n")).done;
    expect(out.text).toBe("");
    expect(await closeOf()).toMatchObject({ side: "inbound", outcome: "backend_failed" });
  });

  test("where it parses HTTP, a backend that refuses is answered 502 backend_failed once the request head is in, whole or trickled", async () => {
    const gone = backend({ data() {} });
    opened.pop()!.stop(true);
    for (const everyMs of [0, 5]) {
      const { port } = listenerFor(gone, true);
      const out = await (await client(port, "GET /x HTTP/1.1\r\nHost: b\r\n\r\n", everyMs)).done;
      expect(out.text).toBe("HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\ncontent-length: 25\r\nconnection: close\r\n\r\ntidegate: backend_failed\n");
      expect(await closeOf()).toMatchObject({ side: "inbound", outcome: "backend_failed" });
    }
  });

  test("where it parses HTTP, a backend that refuses and a client that never finishes its head: closed at the header bound, no answer", async () => {
    const gone = backend({ data() {} });
    opened.pop()!.stop(true);
    const { port } = listenerFor(gone, true);
    const started = performance.now();
    const out = await (await client(port, "GET /x HTTP/1.1\r\nHost: b\r\n")).done;
    expect(out.text).toBe("");
    expect(performance.now() - started).toBeGreaterThanOrEqual(BOUNDS.headerTimeoutMs - 50);
  });

  test("a backend that accepts and never writes: backend_first_byte_timeout, the client's end reset", async () => {
    let got = "";
    const { port } = listenerFor(backend({ data: (_s: Socket<unknown>, d: Uint8Array) => void (got += new TextDecoder().decode(d)) }));
    const out = await (await client(port, "hello\n")).done;
    expect(out.error).toBe("ECONNRESET");
    expect(got).toBe("hello\n");
    expect(await closeOf()).toMatchObject({ outcome: "backend_failed", reason: "backend_first_byte_timeout", detail: "no byte from the backend within 300 ms of the last byte sent to it", bytes_up: 6 });
  });

  test("a backend that answers, then goes silent: idle_timeout", async () => {
    const { port } = listenerFor(backend({ data: (s: Socket<unknown>) => void s.write("first part\n") }));
    const out = await (await client(port, "hello\n")).done;
    expect([out.text, out.error]).toEqual(["first part\n", "ECONNRESET"]);
    expect(await closeOf()).toMatchObject({ outcome: "terminated", reason: "idle_timeout", bytes_down: 11 });
  });

  test("the listener's own bounds (its rule's proxy:) replace the top-level ones: a silent backend is given up at its 150 ms first-byte bound, and one silent after its first bytes waits its 1.2 s idle bound", async () => {
    const silent = listenerFor(backend({ data() {} }), false, LONG, { firstByteTimeoutMs: 150 });
    let started = performance.now();
    expect((await (await client(silent.port, "hello\n")).done).error).toBe("ECONNRESET");
    expect(performance.now() - started).toBeLessThan(1500);
    expect(await closeOf()).toMatchObject({ outcome: "backend_failed", reason: "backend_first_byte_timeout", detail: "no byte from the backend within 150 ms of the last byte sent to it" });
    const quiet = listenerFor(backend({ data: (s: Socket<unknown>) => void s.write("first part\n") }), false, BOUNDS, { idleTimeoutMs: 1200 });
    started = performance.now();
    const out = await (await client(quiet.port, "hello\n")).done;
    expect([out.text, out.error]).toEqual(["first part\n", "ECONNRESET"]);
    expect(performance.now() - started).toBeGreaterThanOrEqual(1150);
    expect(await closeOf()).toMatchObject({ outcome: "terminated", reason: "idle_timeout", detail: "no byte either way for 1200 ms" });
  });

  test("a slow, steady backend lasting 3 idle bounds goes through whole", async () => {
    const { port } = listenerFor(backend(ticker(12).handler));
    const out = await (await client(port, "go\n")).done;
    expect(out.text).toContain("tick 11\n");
    const e = await closeOf();
    expect(e).toMatchObject({ outcome: "forwarded", bytes_down: out.text.length });
    expect(e.reason).toBeUndefined();
  });
});

describe("inbound: a slow request head where the listener parses HTTP (forward_client_cert)", () => {
  test("a head sent a byte every 100 ms is cut at the header bound: header_timeout, the backend gets nothing", async () => {
    let got = "";
    // A long idle bound: bytes the listener holds while a head is incomplete are not forwarded, so they would not restart it.
    const { port } = listenerFor(backend({ data: (_s: Socket<unknown>, d: Uint8Array) => void (got += new TextDecoder().decode(d)) }), true, { ...BOUNDS, idleTimeoutMs: 60_000 });
    const started = performance.now();
    const c = await client(port, "GET /slow HTTP/1.1\r\nHost: backend\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n", 100);
    await c.done;
    expect(performance.now() - started).toBeGreaterThanOrEqual(590);
    expect(c.sent()).toBeGreaterThanOrEqual(5); // it was trickling
    expect(c.sent()).toBeLessThan(20);
    expect(got).toBe("");
    expect(await closeOf()).toMatchObject({ side: "inbound", outcome: "refused", reason: "header_timeout", detail: "no whole request head within 600 ms", bytes_up: 0 });
  });

  test("a whole head goes through with the caller's identity added", async () => {
    let got = "";
    const { port } = listenerFor(backend({ data: (s: Socket<unknown>, d: Uint8Array) => {
      got += new TextDecoder().decode(d);
      if (got.endsWith("\r\n\r\n")) s.end("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
    } }), true);
    const out = await (await client(port, "GET /fast HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n\r\n")).done;
    expect(out.text).toStartWith("HTTP/1.1 204 ");
    expect(got).toContain("x-forwarded-client-cert: By=spiffe://example.org/backend;URI=spiffe://example.org/client\r\n");
    expect(await closeOf()).toMatchObject({ outcome: "forwarded", requests: 1 });
  });
});

describe("inbound: a client that resets its connection mid-stream", () => {
  test("recorded client_gone with the bytes so far; the backend's connection is closed", async () => {
    const ticking = ticker(Infinity, 50);
    const { port } = listenerFor(backend(ticking.handler), false, { ...BOUNDS, idleTimeoutMs: 60_000 });
    const c = creds.get("spiffe://example.org/client")!;
    let text = "";
    const sock = await Bun.connect({
      hostname: "127.0.0.1",
      port,
      tls: { cert: c.chain.map((d) => encodePem("CERTIFICATE", d)).join(""), key: c.keyPem, ca: trust.allCaPem, rejectUnauthorized: false },
      socket: { handshake: (s) => void s.write("go\n"), data: (_s, d) => void (text += new TextDecoder().decode(d)) },
    });
    await waitUntil("two lines", () => (text.includes("tick 1") ? true : undefined));
    sock.terminate(); // a reset
    const e = await closeOf();
    expect(e).toMatchObject({ side: "inbound", outcome: "client_gone", detail: "the client reset its connection", bytes_up: 3 });
    expect(e.bytes_down as number).toBeGreaterThanOrEqual(14);
    await waitUntil("the backend's connection closed", () => (ticking.seen.closed === 1 ? true : undefined));
  });
});

describe("inbound drain (a stopping agent)", () => {
  test("stop closes the port while a connection in flight goes on; endAll cuts it, recorded drain_timeout", async () => {
    const { listener, port } = listenerFor(backend({ data: (s: Socket<unknown>) => void s.write("answer\n") }));
    const first = await client(port, "hello\n");
    await waitUntil("the answer", () => (first.text() === "answer\n" ? true : undefined));
    listener.stop();
    const late = await (await client(port, "late\n")).done;
    expect(late.error).toBe("ECONNREFUSED");
    expect(listener.connections).toBe(1);
    await Bun.sleep(100); // less than the idle bound: still open
    expect(listener.endAll({ outcome: "terminated", reason: "drain_timeout", detail: "still open at the deadline" })).toBe(1);
    expect(listener.connections).toBe(0);
    expect((await first.done).error).toBe("ECONNRESET");
    expect(audit.of("conn_close")).toHaveLength(1);
    expect(audit.of("conn_close")[0]).toMatchObject({ outcome: "terminated", reason: "drain_timeout", bytes_up: 6, bytes_down: 7 });
  });
});
