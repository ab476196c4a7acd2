// Peers that connect and then take their time: every connection to either listener must have each
// answer within the per-answer deadline (tls-listener.ts), or it is closed. Under Bun, node:tls's
// handshakeTimeout and node:http's header, request and keep-alive timeouts close none of these.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { startTestServer, type TestServer } from "./test-server.ts";

const DEADLINE_MS = 1500;
const T = 20_000;
let t: TestServer;

beforeAll(async () => {
  t = await startTestServer({ answerTimeoutMs: DEADLINE_MS });
}, T);
afterAll(async () => t?.close());

/** When (ms after opening) the server closed the connection, or null if it had not within `waitMs`; and all it sent. */
function watch(socket: Socket, waitMs: number): Promise<{ closedAfter: number | null; data: string }> {
  const start = Date.now();
  let data = "";
  socket.on("data", (d) => (data += d.toString()));
  socket.on("error", () => undefined);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ closedAfter: null, data });
    }, waitMs);
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ closedAfter: Date.now() - start, data });
    });
  });
}

function tlsTo(url: string, first: string | null): Socket {
  const u = new URL(url);
  const s = tlsConnect({ host: u.hostname, port: Number(u.port), ca: t.server.rootsPem(), checkServerIdentity: () => undefined });
  s.on("secureConnect", () => first !== null && s.write(first));
  return s;
}

const HEAD = "POST /v1/attest/join-token HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n";

test.each([
  ["public: nothing after the handshake", "public", null],
  ["public: half a request head", "public", HEAD],
  ["public: a body shorter than its content-length", "public", `${HEAD}content-length: 100\r\n\r\n{"tok`],
  ["public: a chunked body that never ends", "public", `${HEAD}transfer-encoding: chunked\r\n\r\n5\r\n{"tok\r\n`],
  ["api: nothing after the handshake (no client certificate)", "api", null],
  ["api: half a request head", "api", "POST /v1/svid HTTP/1.1\r\nhost: x\r\n"],
] as const)("%s: closed at the deadline", async (_name, listener, first) => {
  const r = await watch(tlsTo(listener === "public" ? t.server.publicUrl : t.server.apiUrl, first), DEADLINE_MS + 3000);
  expect(r.closedAfter).not.toBeNull();
  expect(r.closedAfter!).toBeGreaterThanOrEqual(DEADLINE_MS - 200);
}, T);

test("a TCP connection that never starts TLS is closed at the deadline, on both listeners", async () => {
  for (const url of [t.server.publicUrl, t.server.apiUrl]) {
    const u = new URL(url);
    const r = await watch(netConnect(Number(u.port), u.hostname), DEADLINE_MS + 3000);
    expect(r.closedAfter).not.toBeNull();
  }
}, T);

test("a kept-alive connection gets a new deadline after each answer, and is closed one deadline after the last", async () => {
  const s = tlsTo(t.server.publicUrl, null);
  const seen = watch(s, 4 * DEADLINE_MS + 3000);
  await new Promise((resolve) => s.once("secureConnect", resolve));
  const get = "GET /.well-known/spiffe-bundle HTTP/1.1\r\nhost: x\r\n\r\n";
  s.write(get);
  // Each request comes 0.7 deadline after the previous one: three of them outlast one deadline.
  for (let i = 0; i < 2; i++) {
    await Bun.sleep(DEADLINE_MS * 0.7);
    s.write(get);
  }
  const r = await seen;
  expect(r.data.match(/HTTP\/1\.1 200/g)?.length).toBe(3);
  expect(r.closedAfter).not.toBeNull();
  expect(r.closedAfter!).toBeGreaterThanOrEqual(2.4 * DEADLINE_MS - 200);
}, T);

test("stop() closes connections that never finished their TLS handshake instead of waiting for them", async () => {
  const s = await startTestServer();
  const open: Socket[] = [];
  for (const url of [s.server.publicUrl, s.server.apiUrl]) {
    const u = new URL(url);
    const raw = netConnect(Number(u.port), u.hostname);
    raw.on("error", () => undefined);
    await new Promise((resolve) => raw.once("connect", resolve));
    open.push(raw);
  }
  await Bun.sleep(100);
  const start = Date.now();
  const stopped = await Promise.race([s.close().then(() => true), Bun.sleep(5000).then(() => false)]);
  for (const raw of open) raw.destroy();
  expect(stopped).toBe(true);
  expect(Date.now() - start).toBeLessThan(5000);
}, T);
