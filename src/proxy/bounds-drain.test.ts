// The egress listener's bounds on an upstream leg (`proxy:`, watchdog.ts), over real loopback
// sockets with small bounds: an upstream that never completes the TCP connect (a listener whose
// accept queue is full, so the kernel drops the SYN), one that accepts and never writes, one that
// answers and goes silent, on a passthrough and on a tls leg; each ends the connection, resets the
// workload's end, and is recorded with its own reason. A slow but steady stream and a slow upload,
// each longer than the bounds, go through whole: nothing bounds a connection's whole duration.
// A workload that resets its end mid-stream is recorded `client_gone`, the upstream's end closed.
// Draining (a stopping agent): the port closes, a connection in flight ends whole; what is still
// open at the deadline is reset both ways and recorded (`drain_timeout`). Stopping: an MCP call
// whose client lost its only connection, awaited by its session for a resume, is logged then.
import type { Socket, SocketHandler } from "bun";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { memoryAudit, type MemoryAudit } from "../audit/sink/memory-audit.ts";
import { InterceptionCa } from "../intercept/ca.ts";
import { parseIp } from "../policy/address.ts";
import { PolicyEngine } from "../policy/engine.ts";
import { loadPolicy } from "../policy/load.ts";
import type { ProxySettings } from "../policy/model.ts";
import { createLogger } from "../runtime/log.ts";
import { SpiffeId } from "../spiffe/index.ts";
import { PEEK_TIMEOUT_MS, type EgressListener } from "./egress-listener.ts";
import { fullBacklog, startEgressOnFreePort, startWorkload, ticker, waitUntil } from "./bounds-test-kit.ts";
import type { InterceptDeps } from "./intercept/serve.ts";
import { SessionLists } from "../mcp/index.ts";

const W = SpiffeId.parse("spiffe://example.org/w");
const BOUNDS: ProxySettings = { connectTimeoutMs: 300, firstByteTimeoutMs: 300, idleTimeoutMs: 400, headerTimeoutMs: 600 };
/**
 * Top-level bounds far above a rule's own 150 ms, for the tests that tell the two apart by time:
 * a connection given up well before 1.5 s was given up at the rule's bound, with room for a
 * loaded machine's handshakes, where BOUNDS' 300 ms would leave none.
 */
const LONG: ProxySettings = { connectTimeoutMs: 3000, firstByteTimeoutMs: 3000, idleTimeoutMs: 3000, headerTimeoutMs: 3000 };

let listener: EgressListener | null = null;
let audit: MemoryAudit;
const servers: { stop(force?: boolean): void }[] = [];
let dir: string;
let caFile: string;
/** Interception for listenUnder's next listener (its CA's leaves); null: none. */
let intercepting: InterceptDeps | null = null;
let agentCa: InterceptionCa;
let apiTls: { cert: string; key: string };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tidegate-test-timeouts-"));
  const ca = await InterceptionCa.open({ stateDir: join(dir, "ca"), label: "api" });
  const leaf = await ca.leafFor("api.test");
  caFile = join(dir, "ca.pem");
  writeFileSync(caFile, ca.certPem);
  apiTls = { cert: leaf.certPem + ca.certPem, key: leaf.keyPem };
  agentCa = await InterceptionCa.open({ stateDir: join(dir, "agent"), label: "agent" });
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

afterEach(() => {
  listener?.stop();
  listener = null;
  for (const s of servers.splice(0)) s.stop(true);
});

/** The egress listener, with every connection recorded as coming from W toward 127.0.0.1:`port`; rule `local`'s own bounds `localBounds` (`, proxy: {...}`). */
function proxyTo(port: number, bounds: ProxySettings = BOUNDS, localBounds = ""): number {
  return listenUnder(
    `trust_domain: example.org
egress:
  - { name: api-tls, from: spiffe://example.org/w, to: { host: api.test, port: ${port} }, action: tls, ca: ${caFile} }
  - { name: local, from: spiffe://example.org/w, to: { cidr: 127.0.0.1/32, port: any }, action: passthrough${localBounds} }
`,
    port,
    bounds,
  );
}

/** The egress listener under `policy`, with every connection recorded as coming from W toward 127.0.0.1:`port`. */
function listenUnder(policy: string, port: number, bounds: ProxySettings = BOUNDS): number {
  audit = memoryAudit();
  const engine = new PolicyEngine(loadPolicy(policy, "t.yaml"));
  const record = { address: parseIp("127.0.0.1"), port, proto: "tcp" as const, pid: 42, tgid: 42, uid: 1000, gid: 1000, cgroupId: 7n };
  listener = startEgressOnFreePort({
    lookupRecord: () => record,
    identify: async () => ({ ok: true, id: W, workload: "w" }),
    engine: () => engine,
    names: () => ({ resolve: async (n: string) => (n === "api.test" ? [parseIp("127.0.0.1")] : []) }),
    logger: createLogger({ write: () => {} }),
    audit,
    timeouts: () => bounds,
    ...(intercepting !== null ? { intercept: intercepting } : {}),
  });
  return listener.port;
}

/** An upstream on 127.0.0.1 with these handlers (TLS with api.test's leaf when `tls`). */
function upstream(socket: SocketHandler<unknown>, tls = false): number {
  const s = Bun.listen<unknown>({ hostname: "127.0.0.1", port: 0, allowHalfOpen: true, socket, ...(tls ? { tls: apiTls } : {}) });
  servers.push(s);
  return s.port;
}

async function closeOf(): Promise<Record<string, unknown>> {
  return waitUntil("the conn_close", () => audit.of("conn_close")[0]);
}

describe("egress bounds: an upstream that stalls is given up, with its own reason", () => {
  test("never completes the TCP connect (its accept queue is full): upstream_connect_timeout, nothing forwarded", async () => {
    const stuck = await fullBacklog();
    try {
      const port = proxyTo(stuck.port);
      const started = performance.now();
      const w = await startWorkload(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      const out = await w.done;
      expect(out.text).toBe("");
      const e = await closeOf();
      expect(e).toMatchObject({ rule: "local", outcome: "upstream_failed", reason: "upstream_connect_timeout", bytes_up: 0, bytes_down: 0 });
      expect(e.detail).toContain("within 300 ms");
      expect(performance.now() - started).toBeGreaterThanOrEqual(290);
      expect(audit.of("conn_open")[0]).toMatchObject({ decision: "allow", rule: "local" });
    } finally {
      stuck.stop();
    }
  });

  test("accepts and never writes: upstream_first_byte_timeout, the workload's end reset", async () => {
    let got = "";
    const port = proxyTo(upstream({ data: (_s: Socket<unknown>, d: Uint8Array) => void (got += new TextDecoder().decode(d)) }));
    const w = await startWorkload(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    const out = await w.done;
    expect([out.text, out.error]).toEqual(["", "ECONNRESET"]);
    expect(got).toBe("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    const e = await closeOf();
    expect(e).toMatchObject({ rule: "local", outcome: "upstream_failed", reason: "upstream_first_byte_timeout", bytes_up: 27, bytes_down: 0 });
    expect(e.detail).toBe("no byte from the upstream within 300 ms of the last byte sent to it");
    expect(e.duration_ms as number).toBeGreaterThanOrEqual(290);
  });

  test("the same on a tls leg: handshaken and verified, then silent", async () => {
    const port = proxyTo(upstream({ data() {} }, true));
    const w = await startWorkload(port, "GET / HTTP/1.1\r\nHost: api.test\r\n\r\n");
    expect((await w.done).error).toBe("ECONNRESET");
    expect(await closeOf()).toMatchObject({ rule: "api-tls", action: "tls", outcome: "upstream_failed", reason: "upstream_first_byte_timeout" });
  });

  test("answers, then goes silent: idle_timeout after the idle bound, what came before delivered", async () => {
    const port = proxyTo(upstream({ data: (s: Socket<unknown>) => void s.write("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial") }));
    const w = await startWorkload(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    const out = await w.done;
    expect(out.text).toEndWith("partial");
    expect(out.error).toBe("ECONNRESET");
    const e = await closeOf();
    expect(e).toMatchObject({ outcome: "terminated", reason: "idle_timeout", detail: "no byte either way for 400 ms", bytes_down: out.text.length });
  });
});

describe("egress bounds: a rule's own (its proxy:)", () => {
  test("replace the top-level ones for its connections: a silent upstream is given up at the rule's 150 ms first-byte bound; one silent after its first bytes waits the rule's 1.2 s idle bound", async () => {
    let port = proxyTo(upstream({ data() {} }), LONG, ", proxy: { first_byte_timeout: 150ms }");
    let started = performance.now();
    expect((await (await startWorkload(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")).done).error).toBe("ECONNRESET");
    expect(performance.now() - started).toBeLessThan(1500);
    expect(await closeOf()).toMatchObject({ rule: "local", reason: "upstream_first_byte_timeout", detail: "no byte from the upstream within 150 ms of the last byte sent to it" });
    listener?.stop();
    port = proxyTo(upstream({ data: (s: Socket<unknown>) => void s.write("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial") }), BOUNDS, ", proxy: { idle_timeout: 1200ms }");
    started = performance.now();
    const out = await (await startWorkload(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")).done;
    expect([out.text.endsWith("partial"), out.error]).toEqual([true, "ECONNRESET"]);
    expect(performance.now() - started).toBeGreaterThanOrEqual(1150);
    expect(await closeOf()).toMatchObject({ rule: "local", reason: "idle_timeout", detail: "no byte either way for 1200 ms" });
  });

  test("under interception, each request's rule's: on one kept-alive connection a request its rule gives 1.2 s (first byte and idle) is answered after 600 ms, and the next, whose rule gives 150 ms, gets 504", async () => {
    // Answers each request head 600 ms after it came.
    const slow = upstream({ data: (sock: Socket<unknown>, d: Uint8Array) => void (new TextDecoder().decode(d).includes("\r\n\r\n") && setTimeout(() => sock.write("HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nlate"), 600)) }, true);
    intercepting = { leafFor: (name: string) => agentCa.leafFor(name), secret: () => null };
    try {
      const rule = (name: string, extra: string) => `  - { name: ${name}, from: spiffe://example.org/w, to: { host: api.test, port: 80 }, action: intercept, ca: ${caFile}, upstream: { port: ${slow} }${extra} }\n`;
      const port = listenUnder(`trust_domain: example.org\negress:\n${rule("api-slow", ', http: { paths: ["/slow/**"] }, proxy: { first_byte_timeout: 1200ms, idle_timeout: 1200ms }')}${rule("api", ", proxy: { first_byte_timeout: 150ms }")}`, 80);
      const w = await startWorkload(port, "GET /slow/report HTTP/1.1\r\nHost: api.test\r\n\r\n");
      await waitUntil("the slow answer", () => (w.text().endsWith("late") ? true : undefined), 3000);
      expect(w.text()).toStartWith("HTTP/1.1 200 OK\r\n");
      const started = performance.now();
      w.write("GET /other HTTP/1.1\r\nHost: api.test\r\n\r\n");
      const out = await w.done;
      expect(out.text.slice(out.text.indexOf("late") + 4)).toStartWith("HTTP/1.1 504 ");
      expect(performance.now() - started).toBeLessThan(1000); // the 150 ms rule's bound, not the other rule's 1.2 s
      const requests = audit.of("http_request");
      expect(requests.map((r) => [r.rule, r.status, r.reason ?? null])).toEqual([["api-slow", 200, null], ["api", 504, "upstream_first_byte_timeout"]]);
      expect(String(requests[1]!.detail)).toContain("150 ms");
    } finally {
      intercepting = null;
    }
  });

  test("under interception, a silent upstream is given up at the request's rule's 150 ms first-byte bound, 504", async () => {
    const silent = upstream({ data() {} }, true);
    intercepting = { leafFor: (name: string) => agentCa.leafFor(name), secret: () => null };
    try {
      const port = listenUnder(`trust_domain: example.org\negress:\n  - { name: api-intercept, from: spiffe://example.org/w, to: { host: api.test, port: 80 }, action: intercept, ca: ${caFile}, upstream: { port: ${silent} }, proxy: { first_byte_timeout: 150ms } }\n`, 80, LONG);
      const started = performance.now();
      const out = await (await startWorkload(port, "GET / HTTP/1.1\r\nHost: api.test\r\n\r\n")).done;
      expect(out.text).toStartWith("HTTP/1.1 504 ");
      expect(out.text).toContain("upstream_first_byte_timeout");
      expect(performance.now() - started).toBeLessThan(1500);
      const e = await closeOf();
      expect(e).toMatchObject({ rule: "api-intercept", reason: "upstream_first_byte_timeout" });
      expect(String(e.detail)).toContain("150 ms");
    } finally {
      intercepting = null;
    }
  });
});

describe("egress stop: MCP calls a session still awaits", () => {
  test("a call whose client lost its only connection is awaited for a resume, not logged; the listener's stop logs it without an answer", async () => {
    let got = "";
    const silent = upstream({ data: (_s: Socket<unknown>, d: Uint8Array) => void (got += new TextDecoder().decode(d)) }, true); // takes the call, never answers
    intercepting = { leafFor: (name: string) => agentCa.leafFor(name), secret: () => null, sessions: new SessionLists() };
    try {
      const port = listenUnder(`trust_domain: example.org\negress:\n  - { name: api-mcp, from: spiffe://example.org/w, to: { host: api.test, port: 80 }, action: intercept, ca: ${caFile}, upstream: { port: ${silent} }, mcp: {} }\n`, 80, LONG);
      const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "slow", arguments: {} } });
      const w = await startWorkload(port, `POST /mcp HTTP/1.1\r\nHost: api.test\r\nContent-Type: application/json\r\nMcp-Session-Id: s1\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      await waitUntil("the call upstream", () => (got.includes('"slow"') ? true : undefined));
      w.reset(); // the workload's only connection is lost while the call runs
      expect(await closeOf()).toMatchObject({ rule: "api-mcp", outcome: "client_gone" });
      expect(audit.of("tool_call")).toEqual([]);
      listener!.stop();
      expect(audit.of("tool_call")).toMatchObject([{ tool: "slow", decision: "allow", rule: "api-mcp", outcome: "no_answer", duration_ms: null }]);
    } finally {
      intercepting = null;
    }
  });
});

describe("egress bounds: no cap on a connection that keeps moving bytes", () => {
  test("a slow, steady answer lasting 4 idle bounds arrives whole", async () => {
    const port = proxyTo(upstream(ticker(16).handler));
    const w = await startWorkload(port, "go\n");
    const out = await w.done;
    expect(out.error).toBeNull();
    expect(out.text.split("\n").filter(Boolean)).toHaveLength(16);
    const e = await closeOf();
    expect(e).toMatchObject({ outcome: "forwarded", bytes_down: out.text.length });
    expect(e.reason).toBeUndefined();
    expect(e.duration_ms as number).toBeGreaterThan(4 * BOUNDS.idleTimeoutMs - 100);
  });

  test("a slow upload longer than the first-byte bound: each byte sent restarts it; then the answer", async () => {
    const port = proxyTo(
      upstream({
        data(s: Socket<unknown>, d: Uint8Array) {
          if (new TextDecoder().decode(d).includes("end")) s.end("done\n");
        },
      }),
    );
    const w = await startWorkload(port, "part 0\n");
    for (let i = 1; i < 10; i++) {
      await Bun.sleep(150); // half the first-byte bound; 1.5 s in all
      w.write(`part ${i}\n`);
    }
    w.write("end\n");
    const out = await w.done;
    expect([out.text, out.error]).toEqual(["done\n", null]);
    expect(await closeOf()).toMatchObject({ outcome: "forwarded", bytes_down: 5 });
  });
});

describe("egress peek: at most PEEK_TIMEOUT_MS for a name, then the address decides", () => {
  test("a workload that sends nothing (the server speaks first): decided by address after the peek; the banner arrives", async () => {
    const port = proxyTo(upstream({ open: (s: Socket<unknown>) => void s.write("220 ready\n"), data: (s: Socket<unknown>) => void s.end() }));
    const started = performance.now();
    let text = "";
    const w = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data: (_s, d) => void (text += new TextDecoder().decode(d)) } });
    await waitUntil("the banner", () => (text === "220 ready\n" ? true : undefined));
    expect(performance.now() - started).toBeGreaterThanOrEqual(PEEK_TIMEOUT_MS - 10);
    expect(audit.of("conn_open")[0]).toMatchObject({ rule: "local", decision: "allow", dst: { name: null } });
    w.write("QUIT\n");
    expect(await closeOf()).toMatchObject({ rule: "local", outcome: "forwarded", bytes_down: 10 });
  });

  test("an HTTP head trickled past the peek is decided without its Host: the host rule does not apply, the address rule does", async () => {
    const port = proxyTo(upstream({ data: (s: Socket<unknown>) => void s.end("HTTP/1.1 204 No Content\r\n\r\n") }));
    const w = await startWorkload(port, "G");
    await Bun.sleep(PEEK_TIMEOUT_MS + 100);
    w.write(`ET / HTTP/1.1\r\nHost: api.test\r\n\r\n`);
    expect((await w.done).text).toStartWith("HTTP/1.1 204 ");
    expect(await closeOf()).toMatchObject({ rule: "local", outcome: "forwarded" });
  });

  test("control: the same head sent at once gives its Host, and the host rule (tls) applies", async () => {
    const port = proxyTo(upstream({ data: (s: Socket<unknown>) => void s.end("HTTP/1.1 204 No Content\r\n\r\n") }));
    await startWorkload(port, `GET / HTTP/1.1\r\nHost: api.test\r\n\r\n`);
    expect(await closeOf()).toMatchObject({ rule: "api-tls" });
  });
});

describe("egress bounds: after the upstream's first answer only the idle bound applies", () => {
  test("a banner, then a workload sending for 4 first-byte bounds to a silent upstream: not cut", async () => {
    let got = 0;
    const port = proxyTo(
      upstream({
        open: (s: Socket<unknown>) => void s.write("banner\n"),
        data(s: Socket<unknown>, d: Uint8Array) {
          got += d.length;
          if (new TextDecoder().decode(d).includes("bye")) s.end();
        },
      }),
    );
    const w = await startWorkload(port, "hello\n");
    await waitUntil("the banner", () => (w.text() === "banner\n" ? true : undefined));
    for (let i = 0; i < 12; i++) {
      await Bun.sleep(100);
      w.write("log line\n");
    }
    w.write("bye\n");
    const out = await w.done;
    expect([out.text, out.error]).toEqual(["banner\n", null]);
    expect(got).toBe(6 + 12 * 9 + 4);
    expect(await closeOf()).toMatchObject({ outcome: "forwarded", bytes_down: 7 });
  });
});

/** An upstream answering with `n` lines, 100 ms apart (bounds-test-kit.ts `ticker`). */
function tickingUpstream(n: number) {
  const t = ticker(n);
  return { port: upstream(t.handler), seen: t.seen };
}

describe("egress: a workload that resets its connection mid-stream", () => {
  test("the connection is recorded client_gone with the bytes so far, and the upstream's connection is closed", async () => {
    const up = tickingUpstream(1000);
    const port = proxyTo(up.port, { ...BOUNDS, idleTimeoutMs: 60_000 });
    let text = "";
    const s = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data: (_s, d) => void (text += new TextDecoder().decode(d)) } });
    s.write("go\n");
    await waitUntil("two lines", () => (text.includes("tick 1") ? true : undefined));
    s.terminate(); // a reset
    const e = await closeOf();
    expect(e).toMatchObject({ rule: "local", outcome: "client_gone", detail: "the workload reset its connection", bytes_up: 3 });
    expect(e.bytes_down).toBeGreaterThanOrEqual(14);
    await waitUntil("the upstream's connection closed", () => (up.seen.closed === 1 ? true : undefined));
    expect(listener!.inFlight()).toBe(0);
  });

  test("a workload that closes in order is recorded forwarded", async () => {
    const up = tickingUpstream(2);
    const port = proxyTo(up.port, { ...BOUNDS, idleTimeoutMs: 60_000 });
    const w = await startWorkload(port, "go\n");
    expect((await w.done).error).toBeNull();
    expect(await closeOf()).toMatchObject({ rule: "local", outcome: "forwarded", bytes_up: 3, bytes_down: 14 });
  });
});

describe("egress drain (a stopping agent)", () => {
  test("stopAccepting: a new connection is refused; one in flight goes on and ends whole", async () => {
    const up = tickingUpstream(8);
    const port = proxyTo(up.port, { ...BOUNDS, idleTimeoutMs: 60_000 });
    const w = await startWorkload(port, "go\n");
    await waitUntil("the first line", () => (w.text().includes("tick 0") ? true : undefined));
    expect(listener!.inFlight()).toBe(1);
    listener!.stopAccepting();
    const late = await startWorkload(port, "late\n").catch((e: { code?: string }) => e.code);
    expect(late).toBe("ECONNREFUSED");
    const out = await w.done;
    expect(out.error).toBeNull();
    expect(out.text).toContain("tick 7\n");
    expect(await closeOf()).toMatchObject({ outcome: "forwarded", bytes_down: out.text.length });
    expect(listener!.inFlight()).toBe(0);
    expect(audit.of("conn_close")).toHaveLength(1); // the late one never reached the listener
  });

  test("endAll at the deadline: what is still open is reset both ways and recorded drain_timeout", async () => {
    const up = tickingUpstream(1000);
    const port = proxyTo(up.port, { ...BOUNDS, idleTimeoutMs: 60_000 });
    const w = await startWorkload(port, "go\n");
    await waitUntil("the first line", () => (w.text().includes("tick 0") ? true : undefined));
    listener!.stopAccepting();
    expect(listener!.endAll({ outcome: "terminated", reason: "drain_timeout", detail: "still open at the deadline" })).toBe(1);
    expect(listener!.inFlight()).toBe(0);
    expect((await w.done).error).toBe("ECONNRESET");
    const e = audit.of("conn_close");
    expect(e).toHaveLength(1);
    expect(e[0]).toMatchObject({ rule: "local", outcome: "terminated", reason: "drain_timeout", detail: "still open at the deadline", bytes_up: 3 });
    await waitUntil("the upstream's end reset", () => (up.seen.cut === 1 ? true : undefined));
    expect(listener!.endAll({ outcome: "terminated", reason: "drain_timeout" })).toBe(0);
  });
});
