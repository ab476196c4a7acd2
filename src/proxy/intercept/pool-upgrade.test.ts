// Upstream legs pooled across connections, the retry of a request whose pooled leg the upstream had
// closed, and WebSocket upgrades a rule allows: over real sockets (test-harness.ts), against real
// TLS servers of the test.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Server, Socket, TCPSocketListener } from "bun";
import { parseIp } from "../../policy/address.ts";
import { legKey } from "./exchange.ts";
import { LegPool } from "./leg-pool.ts";
import { apiRule, createHarness, exchange, type Harness } from "./test-harness.ts";
import { catchHellos, type HelloCatcher } from "../hello-catcher.ts";
import { GROUP, offeredGroups, sharedGroups } from "../peek/hello-bytes.ts";

const SECRET = "pool-test-secret-value";
const secrets = { api_token: SECRET };
let h: Harness;
let api: Server<undefined>;
let flaky: TCPSocketListener<{ n: number; buf: string }>;
let pool: LegPool;
let proxyPort: number;
/** The policy the proxy started with (tests reload variants of it, then put it back). */
let policyText: string;
/** Whether workload "w" still has its identity (asked at each request, and by a recheck). */
let identified = true;
/** Per request to `api`: the client port it came from (one per upstream leg), path, Authorization. */
const seen: { port: number; path: string; auth: string | null }[] = [];
/** Per request head the flaky server read: its connection number and the path. */
const flakySeen: { conn: number; path: string; answered: boolean }[] = [];
let flakyConns = 0;
let hellos: HelloCatcher;

const complete = (got: string) => /\r\n\r\n/.test(got) && got.length >= got.indexOf("\r\n\r\n") + 4 + Number(/content-length: (\d+)/i.exec(got)?.[1] ?? 0);

beforeAll(async () => {
  h = await createHarness();
  api = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    tls: h.apiTls,
    fetch(req, server) {
      const u = new URL(req.url);
      seen.push({ port: server.requestIP(req)?.port ?? -1, path: u.pathname, auth: req.headers.get("authorization") });
      if (u.pathname === "/ws" && server.upgrade(req)) return undefined;
      return new Response("ok");
    },
    websocket: {
      message(ws, m) {
        ws.send(`echo:${String(m)}`);
      },
    },
  });
  // Answers the first request of each connection; at the second it closes without answering, as
  // a server does whose keep-alive timer fired just as the request came.
  flaky = Bun.listen<{ n: number; buf: string }>({
    hostname: "127.0.0.1",
    port: 0,
    tls: h.apiTls,
    socket: {
      open: (s) => void (s.data = { n: ++flakyConns, buf: "" }),
      data(s, chunk) {
        s.data.buf += new TextDecoder().decode(chunk);
        const end = s.data.buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const path = s.data.buf.split(" ")[1] ?? "";
        s.data.buf = "";
        const first = !flakySeen.some((x) => x.conn === s.data.n);
        flakySeen.push({ conn: s.data.n, path, answered: first });
        if (first) s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        else s.end();
      },
    },
  });
  hellos = catchHellos(); // the classical rule's upstream: takes each ClientHello and closes
  pool = new LegPool({ idleMs: 10_000 });
  const kx = `  - name: classical
    from: spiffe://example.org/w
    to: { host: api.test, port: 80 }
    action: intercept
    ca: ${h.apiCaFile}
    upstream: { port: ${hellos.port}, key_exchange: classical }
    http: { paths: [/kx/**] }
`;
  policyText = `trust_domain: example.org
egress:
${apiRule("flaky", 80, h, flaky.port, "    http: { paths: [/f/**] }\n")}${kx}${apiRule("api", 80, h, api.port!, "    upgrade: [websocket]\n")}`;
  proxyPort = h.start(policyText, { secrets, pool, identified: () => identified });
});

afterAll(() => {
  h?.stop();
  api?.stop(true);
  flaky?.stop(true);
  hellos?.stop();
});

/** One keep-alive request on its own client connection, closed once the response is complete. */
const oneRequest = (text: string) => exchange(proxyPort, text, complete);
/** Polls `ok` until it holds, failing after 5 s. */
async function until(ok: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await Bun.sleep(5);
  }
}
const httpLines = () => h.lines.filter((l) => l.type === "http_request");

describe("interception: upstream legs pooled per (caller, rule, upstream)", () => {
  test("two connections one after the other share one upstream leg", async () => {
    const before = seen.length;
    expect(await oneRequest("GET /one HTTP/1.1\r\nHost: api.test\r\n\r\n")).toContain("200 OK");
    await until(() => pool.idle > 0);
    expect(await oneRequest("GET /two HTTP/1.1\r\nHost: api.test\r\n\r\n")).toContain("200 OK");
    const got = seen.slice(before);
    expect(got.map((x) => [x.path, x.auth])).toEqual([
      ["/one", `Bearer ${SECRET}`],
      ["/two", `Bearer ${SECRET}`],
    ]);
    expect(got[0]!.port).toBe(got[1]!.port);
    const [a, b] = httpLines().slice(-2);
    expect(a!.upstream_conn_id).toBe(b!.upstream_conn_id);
    expect(a!.conn_id).not.toBe(b!.conn_id);
  });

  test("a request with Connection: close leaves no leg behind", async () => {
    await oneRequest("GET /warm HTTP/1.1\r\nHost: api.test\r\n\r\n");
    await until(() => pool.idle > 0);
    const idle = pool.idle;
    await oneRequest("GET /last HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n");
    await until(() => pool.idle === idle - 1);
  });

  test("the key holds the caller, the rule and what the leg's TLS vouched for", () => {
    const address = parseIp("127.0.0.1");
    const tls = { kind: "tls" as const, serverName: "api.test", ca: null };
    const k = legKey("spiffe://example.org/w", "api", address, 443, tls);
    expect(legKey("spiffe://example.org/w", "api", address, 443, tls)).toBe(k);
    for (const other of [
      legKey("spiffe://example.org/other", "api", address, 443, tls),
      legKey("spiffe://example.org/w", "api2", address, 443, tls),
      legKey("spiffe://example.org/w", "api", parseIp("127.0.0.2"), 443, tls),
      legKey("spiffe://example.org/w", "api", address, 444, tls),
      legKey("spiffe://example.org/w", "api", address, 443, { ...tls, serverName: "b.test" }),
      legKey("spiffe://example.org/w", "api", address, 443, { ...tls, ca: { id: "ca-hash", pem: "" } as never }),
    ]) {
      expect(other).not.toBe(k);
    }
  });

  test("a GET whose pooled leg the upstream closed is sent once more on a new leg", async () => {
    const before = flakySeen.length;
    const conns = flakyConns;
    expect(await oneRequest("GET /f/1 HTTP/1.1\r\nHost: api.test\r\n\r\n")).toContain("200 OK");
    const out = await oneRequest("GET /f/2 HTTP/1.1\r\nHost: api.test\r\n\r\n");
    expect(out).toContain("200 OK");
    expect(flakySeen.slice(before)).toEqual([
      { conn: conns + 1, path: "/f/1", answered: true },
      { conn: conns + 1, path: "/f/2", answered: false },
      { conn: conns + 2, path: "/f/2", answered: true },
    ]);
  });

  test("a POST with a body is not sent again: the workload gets 502", async () => {
    const before = flakySeen.length;
    expect(await oneRequest("GET /f/p1 HTTP/1.1\r\nHost: api.test\r\n\r\n")).toContain("200 OK");
    const out = await oneRequest("POST /f/p2 HTTP/1.1\r\nHost: api.test\r\nContent-Length: 3\r\n\r\nabc");
    expect(out).toStartWith("HTTP/1.1 502");
    // /f/p1 may itself have met a leg the upstream closed (and been sent again); /f/p2 never is.
    expect(flakySeen.slice(before).filter((x) => x.path === "/f/p2")).toEqual([{ conn: expect.any(Number), path: "/f/p2", answered: false }]);
    // its line, and its connection's, count the body sent before the leg failed
    const line = httpLines().at(-1)!;
    expect(line).toMatchObject({ target: "/f/p2", outcome: "upstream_failed", rule: "flaky", bytes_up: 3, bytes_down: 0 });
    await until(() => h.lines.some((l) => l.type === "conn_close" && l.conn_id === line.conn_id));
    expect(h.lines.find((l) => l.type === "conn_close" && l.conn_id === line.conn_id)).toMatchObject({ outcome: "upstream_failed", reason: "upstream_failed", requests: 1, bytes_up: 3, bytes_down: 0 });
  });
});

/** A masked client text frame (RFC 6455 section 5.2), payload under 126 bytes. */
function clientFrame(text: string): Uint8Array {
  const payload = new TextEncoder().encode(text);
  const mask = crypto.getRandomValues(new Uint8Array(4));
  const out = new Uint8Array(6 + payload.length);
  out.set([0x81, 0x80 | payload.length, ...mask]);
  payload.forEach((b, i) => (out[6 + i] = b ^ mask[i % 4]!));
  return out;
}

/**
 * A WebSocket through the proxy at `port` (default the harness's) to api.test's /ws: the 101's
 * head, `echo` (a frame out, the server's echo back), its conn_id (from the upgrade's
 * http_request), and how the socket closed (its error code, or "closed").
 */
async function openTunnel(port = proxyPort): Promise<{ socket: Socket<undefined>; head: string; echo(text: string): Promise<string>; connId(): unknown; closed: Promise<string> }> {
  let got = new Uint8Array(0);
  let headLength = -1;
  let waiter: ((text: string) => void) | null = null;
  const { promise: switched, resolve: onSwitch } = Promise.withResolvers<string>();
  const { promise: closed, resolve: onClosed } = Promise.withResolvers<string>();
  const before = httpLines().length;
  const socket: Socket<undefined> = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(_s, c) {
        const joined = new Uint8Array(got.length + c.length);
        joined.set(got);
        joined.set(c, got.length);
        got = joined;
        if (headLength < 0) {
          const text = new TextDecoder().decode(got);
          const end = text.indexOf("\r\n\r\n");
          if (end < 0) return;
          headLength = Buffer.byteLength(text.slice(0, end + 4));
          onSwitch(text.slice(0, end + 4));
          got = got.subarray(headLength);
        }
        if (got.length >= 2 && got.length >= 2 + got[1]! && waiter !== null) {
          const frame = new TextDecoder().decode(got.subarray(2, 2 + got[1]!));
          got = got.subarray(2 + got[1]!);
          const w = waiter;
          waiter = null;
          w(frame);
        }
      },
      close: (_s, e) => onClosed((e as { code?: string } | undefined)?.code ?? "closed"),
      error: (_s, e) => onClosed((e as { code?: string }).code ?? e.message),
    },
  });
  const key = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64");
  socket.write(`GET /ws HTTP/1.1\r\nHost: api.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`);
  const head = await switched;
  return {
    socket,
    head,
    echo(text: string) {
      const { promise, resolve } = Promise.withResolvers<string>();
      waiter = resolve;
      socket.write(clientFrame(text));
      return promise;
    },
    connId: () => httpLines().slice(before).find((l) => l.outcome === "upgraded")?.conn_id,
    closed,
  };
}

describe("interception: WebSocket upgrades a rule allows (upgrade: [websocket])", () => {
  test("the handshake gets the injected header, then frames pass both ways", async () => {
    const before = seen.length;
    const ws = await openTunnel();
    expect(ws.head).toStartWith("HTTP/1.1 101");
    expect(await ws.echo("hello")).toBe("echo:hello");
    ws.socket.end();
    expect(seen.slice(before).map((x) => [x.path, x.auth])).toEqual([["/ws", `Bearer ${SECRET}`]]);
    expect(httpLines().at(-1)).toMatchObject({ target: "/ws", status: 101, outcome: "upgraded", rule: "api" });
    await until(() => h.lines.some((l) => l.type === "conn_close" && typeof l.tunnel_bytes_up === "number"));
    const conn = h.lines.find((l) => l.type === "conn_close" && typeof l.tunnel_bytes_up === "number");
    expect(conn).toMatchObject({ requests: 1, tunnel_bytes_up: 11, tunnel_bytes_down: 12 });
    // the handshake had no body either way: the connection's bytes are the tunnel's
    expect(conn).toMatchObject({ bytes_up: 11, bytes_down: 12 });
    expect(JSON.stringify(h.lines)).not.toContain(SECRET);
  });

  test("a reload: a tunnel whose rule still allows its upgrade goes on; one the new policy refuses is ended, policy_changed", async () => {
    const ws = await openTunnel();
    expect(await ws.echo("one")).toBe("echo:one");
    const closes = () => h.lines.filter((l) => l.type === "conn_close" && l.conn_id === ws.connId());
    try {
      // The same terms under a new policy object (a reload of an unchanged file): nothing ended.
      h.reload(policyText);
      expect(await h.inFlight.recheck()).toEqual({ cut: 0, failed: 0, error: null });
      expect(await ws.echo("two")).toBe("echo:two");
      expect(closes()).toEqual([]);
      // The api rule no longer names websocket: the request that switched would now be refused.
      h.reload(policyText.replace("    upgrade: [websocket]\n", ""));
      expect(await h.inFlight.recheck()).toEqual({ cut: 1, failed: 0, error: null });
      expect(await ws.closed).toBe("ECONNRESET");
      const [close] = closes();
      expect(close).toMatchObject({ outcome: "terminated", reason: "policy_changed", requests: 1, tunnel_bytes_up: 18 });
      expect(String(close!.detail)).toContain("now refuses the request that switched protocols (upgrade_refused");
    } finally {
      h.reload(policyText);
      ws.socket.end();
    }
  });

  test("a tunnel whose caller lost its identity is ended at the next recheck, identity_revoked", async () => {
    const ws = await openTunnel();
    expect(await ws.echo("one")).toBe("echo:one");
    identified = false;
    try {
      expect(await h.inFlight.recheck()).toEqual({ cut: 1, failed: 0, error: null });
      expect(await ws.closed).toBe("ECONNRESET");
      expect(h.lines.find((l) => l.type === "conn_close" && l.conn_id === ws.connId())).toMatchObject({ outcome: "terminated", reason: "identity_revoked" });
    } finally {
      identified = true;
    }
  });

  test("an upgrade to another protocol is refused, naming the rule", async () => {
    const out = await exchange(proxyPort, "GET /x HTTP/1.1\r\nHost: api.test\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n");
    expect(out).toStartWith("HTTP/1.1 403");
    expect(httpLines().at(-1)).toMatchObject({ outcome: "refused", reason: "upgrade_refused", rule: "api" });
  });

  test("an upgrade the server declines is an ordinary response; the next request is read as one", async () => {
    const before = seen.length;
    const out = await exchange(
      proxyPort,
      "GET /nows HTTP/1.1\r\nHost: api.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nGET /after HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n",
    );
    expect(out.split("HTTP/1.1 200").length - 1).toBe(2);
    expect(seen.slice(before).map((x) => x.path)).toEqual(["/nows", "/after"]);
  });
});

describe("interception: a rule's upstream.key_exchange reaches the legs it opens", () => {
  test("classical: the leg's ClientHello offers X25519, P-256 and P-384 and no hybrid group", async () => {
    const out = await oneRequest("GET /kx/1 HTTP/1.1\r\nHost: api.test\r\n\r\n");
    expect(out).toStartWith("HTTP/1.1 502"); // the stand-in upstream never answers the hello
    expect(hellos.hellos).toHaveLength(1);
    expect(offeredGroups(hellos.hellos[0]!)).toEqual([GROUP.X25519, GROUP.P256, GROUP.P384]);
    expect(sharedGroups(hellos.hellos[0]!)).toEqual([GROUP.X25519]);
  });
});
