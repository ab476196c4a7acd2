// The cap on open connections per source address (listen.max_connections_per_source), over real
// sockets at a real server: the connection past the cap is closed before its TLS handshake, a
// connection after one of the others closed is accepted, and other sources are not affected.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from "node:tls";
import { startTestServer, TEST_YAML, type TestServer } from "./test-server.ts";

const CAP = 3;
const T = 20_000;

type Opened = { socket: TLSSocket; admitted: boolean };

/** A TLS connection from `from` to `host:port`: admitted once its handshake finished, refused once closed without one. */
function open(host: string, port: number, from: string, ca: string): Promise<Opened> {
  // localAddress: a net.connect option that node:tls passes on (its types leave it out).
  const socket = tlsConnect({ host, port, localAddress: from, ca, checkServerIdentity: () => undefined } as ConnectionOptions);
  socket.on("error", () => undefined);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no handshake and no close within 5 s (${from} -> ${host}:${port})`)), 5000);
    socket.once("secureConnect", () => (clearTimeout(timer), resolve({ socket, admitted: true })));
    socket.once("close", () => (clearTimeout(timer), resolve({ socket, admitted: false })));
  });
}

/** Opens connections one after another until one is admitted (the server handles a close asynchronously); at most 5 s. */
async function openOnceAdmitted(host: string, port: number, from: string, ca: string): Promise<Opened> {
  const until = Date.now() + 5000;
  for (;;) {
    const o = await open(host, port, from, ca);
    if (o.admitted || Date.now() > until) return o;
    await Bun.sleep(50);
  }
}

async function status(t: TestServer) {
  return (await t.admin("GET", "/v1/status")).body as { connections: { max_per_source: number; public: { refused: number }; api: { refused: number } } };
}

describe("max_connections_per_source on 127.0.0.1 listeners", () => {
  let t: TestServer;
  const held: TLSSocket[] = [];
  beforeAll(async () => {
    t = await startTestServer({ yaml: `${TEST_YAML}listen: { max_connections_per_source: ${CAP} }\n` });
  }, T);
  afterAll(async () => {
    for (const s of held) s.destroy();
    await t?.close();
  });

  for (const listener of ["public", "api"] as const) {
    test(`${listener}: the connection past the cap is closed, one after a close is accepted, 127.0.0.2 is not affected`, async () => {
      const port = listener === "public" ? t.server.public.port : t.server.api.port;
      const ca = t.server.rootsPem();
      const mine: TLSSocket[] = [];
      for (let i = 0; i < CAP; i++) {
        const o = await open("127.0.0.1", port, "127.0.0.1", ca);
        expect(o.admitted).toBe(true);
        mine.push(o.socket);
      }
      const over = await open("127.0.0.1", port, "127.0.0.1", ca);
      expect(over.admitted).toBe(false);

      const other = await open("127.0.0.1", port, "127.0.0.2", ca);
      expect(other.admitted).toBe(true);
      held.push(other.socket);

      mine.shift()!.destroy();
      const again = await openOnceAdmitted("127.0.0.1", port, "127.0.0.1", ca);
      expect(again.admitted).toBe(true);
      mine.push(again.socket);
      for (const s of mine) s.destroy();
      expect((await status(t)).connections[listener].refused).toBeGreaterThanOrEqual(1);
    }, T);
  }

  test("the refused peer gets no ServerHello: the server closes it before the handshake (openssl s_client -msg)", async () => {
    const port = t.server.public.port;
    const ca = t.server.rootsPem();
    const mine: TLSSocket[] = [];
    for (let i = 0; i < CAP; i++) mine.push((await openOnceAdmitted("127.0.0.1", port, "127.0.0.1", ca)).socket);
    const p = Bun.spawn(["openssl", "s_client", "-connect", `127.0.0.1:${port}`, "-msg"], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const killer = setTimeout(() => p.kill(), 5000);
    // Only the record lines (">>> ... ClientHello", "<<< ... ServerHello"), not the hex dumps.
    const out = (await new Response(p.stdout).text()).split("\n").filter((l) => /^(<<<|>>>)/.test(l)).join("\n");
    await p.exited;
    clearTimeout(killer);
    for (const s of mine) s.destroy();
    expect(out).toContain("ClientHello");
    expect(out).not.toContain("ServerHello");
  }, T);

  test("status counts every refusal; the log says it at most once a minute per listener", async () => {
    const s = await status(t);
    expect(s.connections.max_per_source).toBe(CAP);
    expect(s.connections.public.refused).toBeGreaterThanOrEqual(2);
    const lines = t.logger.lines.filter((l) => l.event === "connection_refused");
    expect(lines.map((l) => l.listener).sort()).toEqual(["api", "public"]);
    expect(lines[0]).toMatchObject({ level: "warn", source: "127.0.0.1", reason: "max_connections_per_source", max: CAP, refused: 1 });
  }, T);
});

describe("max_connections_per_source on a dual-stack listener ([::])", () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ yaml: `${TEST_YAML}listen: { public: '[::]:0', api: '[::]:0', max_connections_per_source: 1 }\n` });
  }, T);
  afterAll(async () => t?.close());

  test("an IPv4 peer (seen as ::ffff:127.0.0.1) is counted and named as 127.0.0.1; ::1 is another source", async () => {
    const port = t.server.public.port;
    const ca = t.server.rootsPem();
    const first = await open("127.0.0.1", port, "127.0.0.1", ca);
    expect(first.admitted).toBe(true);
    expect((await open("::ffff:127.0.0.1", port, "::ffff:127.0.0.1", ca)).admitted).toBe(false);
    const six = await open("::1", port, "::1", ca);
    expect(six.admitted).toBe(true);
    first.socket.destroy();
    six.socket.destroy();
    expect(t.logger.lines.find((l) => l.event === "connection_refused")).toMatchObject({ listener: "public", source: "127.0.0.1" });
  }, T);
});
