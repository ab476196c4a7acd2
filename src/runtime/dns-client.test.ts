import { afterEach, describe, expect, test } from "bun:test";
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { createServer, type Server } from "node:net";
import { parseIp } from "../policy/address.ts";
import { PolicyError } from "../policy/errors.ts";
import { createDnsLookup, type DnsServer } from "./dns-client.ts";
import { encodeResponse, type Question, type QueryType, type WireRecord } from "./dns-wire.ts";

/** The question in a query (uncompressed, as stub resolvers send it). */
function parseQuery(bytes: Uint8Array): Question {
  const labels: string[] = [];
  let at = 12;
  while (bytes[at]! > 0) {
    labels.push(String.fromCharCode(...bytes.subarray(at + 1, at + 1 + bytes[at]!)));
    at += 1 + bytes[at]!;
  }
  const type = ((bytes[at + 1]! << 8) | bytes[at + 2]!) === 28 ? "AAAA" : "A";
  return { id: (bytes[0]! << 8) | bytes[1]!, name: labels.join("."), type };
}

type Reply = Parameters<typeof encodeResponse>[1];
/** What a test server does with a query: a reply, or null to stay silent. */
type Handler = (q: Question, from: RemoteInfo, socket: Socket) => Reply | null | Promise<Reply | null>;

const open: { close(): void }[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

interface TestServer {
  readonly server: DnsServer;
  readonly queries: { q: Question; from: RemoteInfo }[];
}

async function udpServer(handler: Handler, host = "127.0.0.1", port = 0): Promise<TestServer> {
  const socket = createSocket(host.includes(":") ? "udp6" : "udp4");
  open.push(socket);
  const queries: TestServer["queries"] = [];
  socket.on("message", async (msg, from) => {
    const q = parseQuery(new Uint8Array(msg));
    queries.push({ q, from });
    const reply = await handler(q, from, socket);
    if (reply !== null) socket.send(encodeResponse(q, reply), from.port, from.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(port, host, () => {
      socket.off("error", reject);
      resolve();
    });
  });
  return { server: { host, port: socket.address().port }, queries };
}

/** Whether this host has an IPv6 loopback to test against. */
const hasV6 = await new Promise<boolean>((resolve) => {
  const s = createSocket("udp6");
  s.on("error", () => resolve(false));
  s.bind(0, "::1", () => s.close(() => resolve(true)));
});

/**
 * A UDP server and a TCP one on the same port of 127.0.0.1. The TCP listener takes a free port
 * first and the UDP socket binds the same number; when that is taken (another socket of this
 * machine), both are given up and the pair tried again, so no test depends on a port staying free.
 */
async function udpAndTcp(udp: Handler, tcp: (q: Question) => Reply): Promise<TestServer> {
  for (let attempt = 1; ; attempt++) {
    const t = await tcpServer(0, tcp);
    const port = (t.address() as { port: number }).port;
    try {
      return await udpServer(udp, "127.0.0.1", port);
    } catch (e) {
      t.close();
      if (attempt >= 20) throw e;
    }
  }
}

/** A TCP DNS server (2-byte length prefix) on `port` (0: a free one). */
async function tcpServer(port: number, handler: (q: Question) => Reply): Promise<Server> {
  const server = createServer((conn) => {
    let got: Buffer = Buffer.alloc(0);
    conn.on("data", (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.length < 2 || got.length < 2 + got.readUInt16BE(0)) return;
      const q = parseQuery(new Uint8Array(got.subarray(2)));
      const answer = encodeResponse(q, handler(q));
      conn.end(Buffer.concat([Buffer.from([answer.length >> 8, answer.length & 255]), answer]));
    });
  });
  open.push(server);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  return server;
}

const A = (q: Question, address: string, ttl = 300): WireRecord => ({ name: q.name, ttl, type: q.type as QueryType, address: parseIp(address) });
const fast = { timeoutMs: 150, attempts: 1 };
const texts = (r: { addresses: readonly { text: string }[] }) => r.addresses.map((a) => a.text);

async function failure(p: Promise<unknown>): Promise<PolicyError> {
  const e = await p.then(
    () => null,
    (e: unknown) => e,
  );
  if (!(e instanceof PolicyError)) throw new Error(`expected a PolicyError, got ${String(e)}`);
  return e;
}

describe("createDnsLookup over UDP", () => {
  test("resolves A and AAAA with the server's TTL", async () => {
    const { server } = await udpServer((q) => ({ answers: q.type === "A" ? [A(q, "192.0.2.1", 12345), A(q, "192.0.2.2", 12345)] : [A(q, "2001:db8::1", 77)] }));
    const lookup = createDnsLookup([server], fast);
    const a = await lookup("api.example.com", "A");
    expect([texts(a), a.ttl]).toEqual([["192.0.2.1", "192.0.2.2"], 12345]);
    const aaaa = await lookup("api.example.com", "AAAA");
    expect([texts(aaaa), aaaa.ttl, aaaa.addresses[0]!.family]).toEqual([["2001:db8::1"], 77, 6]);
  });

  test.skipIf(!hasV6)("an IPv6 server, named in any IPv6 text form", async () => {
    const t = await udpServer((q) => ({ answers: [A(q, "192.0.2.60")] }), "::1");
    const got = await createDnsLookup([{ host: "0:0::0:1", port: t.server.port }], fast)("example.com", "A");
    expect(texts(got)).toEqual(["192.0.2.60"]);
    expect(t.queries[0]!.from.family).toBe("IPv6");
  });

  test("each query has its own id and source port", async () => {
    const t = await udpServer((q) => ({ answers: [A(q, "192.0.2.1")] }));
    const lookup = createDnsLookup([t.server], fast);
    for (let i = 0; i < 6; i++) await lookup("example.com", "A");
    expect(new Set(t.queries.map((x) => x.q.id)).size).toBeGreaterThan(1);
    expect(new Set(t.queries.map((x) => x.from.port)).size).toBeGreaterThan(1);
  });

  test("a spoofed answer from another port, or with another id, is ignored and the real one wins", async () => {
    const spoofer = createSocket("udp4");
    open.push(spoofer);
    const { server } = await udpServer(async (q, from, socket) => {
      spoofer.send(encodeResponse(q, { answers: [A(q, "203.0.113.66", 86400)] }), from.port, from.address);
      socket.send(encodeResponse({ ...q, id: q.id ^ 1 }, { answers: [A(q, "203.0.113.67")] }), from.port, from.address);
      socket.send(encodeResponse({ ...q, name: "evil.example" }, { answers: [A({ ...q, name: "evil.example" }, "203.0.113.68")] }), from.port, from.address);
      await Bun.sleep(40);
      return { answers: [A(q, "192.0.2.10", 60)] };
    });
    const got = await createDnsLookup([server], fast)("example.com", "A");
    expect([texts(got), got.ttl]).toEqual([["192.0.2.10"], 60]);
  });

  test("a server that never answers times out and the next one answers", async () => {
    const silent = await udpServer(() => null);
    const good = await udpServer((q) => ({ answers: [A(q, "192.0.2.20")] }));
    const started = performance.now();
    const got = await createDnsLookup([silent.server, good.server], fast)("example.com", "A");
    expect(texts(got)).toEqual(["192.0.2.20"]);
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
    expect(silent.queries.length).toBe(1);
  });

  test("SERVFAIL and REFUSED move on to the next server", async () => {
    const servfail = await udpServer(() => ({ rcode: 2 }));
    const refused = await udpServer(() => ({ rcode: 5 }));
    const good = await udpServer((q) => ({ answers: [A(q, "192.0.2.30")] }));
    expect(texts(await createDnsLookup([servfail.server, refused.server, good.server], fast)("example.com", "A"))).toEqual(["192.0.2.30"]);
  });

  test("attempts are rounds over the servers", async () => {
    let calls = 0;
    const flaky = await udpServer((q) => (++calls === 1 ? null : { answers: [A(q, "192.0.2.40")] }));
    const got = await createDnsLookup([flaky.server], { timeoutMs: 100, attempts: 2 })("example.com", "A");
    expect([texts(got), calls]).toEqual([["192.0.2.40"], 2]);
  });

  test("NXDOMAIN and NODATA resolve with no address; ttl from the SOA, else 30 s", async () => {
    const { server } = await udpServer((q) =>
      q.name === "gone.example.com"
        ? { rcode: 3, authority: [{ name: "example.com", ttl: 3600, type: "SOA", minimum: 90 }] }
        : q.name === "v4only.example.com"
          ? { answers: [] }
          : { rcode: 3 },
    );
    const lookup = createDnsLookup([server], fast);
    expect(await lookup("gone.example.com", "A")).toEqual({ addresses: [], ttl: 90 });
    expect(await lookup("v4only.example.com", "AAAA")).toEqual({ addresses: [], ttl: 30 });
    expect(await lookup("other.example.com", "A")).toEqual({ addresses: [], ttl: 30 });
  });

  test("every server failing is policy_dns_failed naming each and why", async () => {
    const silent = await udpServer(() => null);
    const servfail = await udpServer(() => ({ rcode: 2 }));
    const e = await failure(createDnsLookup([silent.server, servfail.server], fast)("example.com", "A"));
    expect(e.code).toBe("policy_dns_failed");
    expect(e.message).toBe(`dns: "example.com": no answer from 127.0.0.1:${silent.server.port} (timeout), 127.0.0.1:${servfail.server.port} (servfail)`);
  });

  test("no servers, a bad name, a bad server", async () => {
    expect((await failure(createDnsLookup([])("example.com", "A"))).code).toBe("policy_dns_failed");
    expect((await failure(createDnsLookup([{ host: "127.0.0.1", port: 9 }])("bad..name", "A"))).code).toBe("policy_bad_host");
    expect(() => createDnsLookup([{ host: "dns.example.org", port: 53 }])).toThrow(expect.objectContaining({ code: "policy_bad_address" }));
    expect(() => createDnsLookup([{ host: "127.0.0.1", port: 0 }])).toThrow(expect.objectContaining({ code: "policy_bad_port" }));
  });

  test("an abort rejects with the signal's reason at once", async () => {
    const silent = await udpServer(() => null);
    const ac = new AbortController();
    const started = performance.now();
    setTimeout(() => ac.abort(new Error("stop")), 30);
    const e = await createDnsLookup([silent.server], { timeoutMs: 5000 })("example.com", "A", ac.signal).catch((e: unknown) => e);
    expect((e as Error).message).toBe("stop");
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

describe("createDnsLookup over TCP", () => {
  test("TC=1 asks the same server again over TCP", async () => {
    const udp = await udpAndTcp(() => ({ truncated: true }), (q) => ({ answers: Array.from({ length: 40 }, (_, i) => A(q, `198.51.100.${i + 1}`, 600)) }));
    const got = await createDnsLookup([udp.server], fast)("big.example.com", "A");
    expect(got.addresses.length).toBe(40);
    expect(got.ttl).toBe(600);
  });

  test("a truncated answer with no TCP listener fails that server and moves on", async () => {
    const udp = await udpServer(() => ({ truncated: true }));
    const good = await udpServer((q) => ({ answers: [A(q, "192.0.2.50")] }));
    const lookup = createDnsLookup([udp.server, good.server], fast);
    expect(texts(await lookup("example.com", "A"))).toEqual(["192.0.2.50"]);
    const e = await failure(createDnsLookup([udp.server], fast)("example.com", "A"));
    expect(e.message).toContain(`127.0.0.1:${udp.server.port} (tcp ECONNREFUSED)`);
  });

  test("a bad TCP answer fails the attempt", async () => {
    const udp = await udpAndTcp(() => ({ truncated: true }), (q) => ({ truncated: true, answers: [A(q, "192.0.2.1")] }));
    const e = await failure(createDnsLookup([udp.server], fast)("example.com", "A"));
    expect(e.message).toContain("(truncated over tcp)");
  });
});

test("no socket outlives a lookup: a process doing every kind of lookup exits by itself", async () => {
  const dir = import.meta.dir;
  const script = `
    import { createSocket } from "node:dgram";
    import { createDnsLookup } from "${dir}/dns-client.ts";
    import { encodeResponse } from "${dir}/dns-wire.ts";
    import { parseIp } from "${dir}/../policy/address.ts";
    const server = createSocket("udp4");
    server.on("message", (msg, from) => {
      const name = new TextDecoder().decode(msg.subarray(13, 13 + msg[12]));
      if (name === "silent") return;
      const q = { id: msg.readUInt16BE(0), name, type: "A" };
      const reply = name === "tc" ? { truncated: true } : { answers: [{ name, ttl: 5, type: "A", address: parseIp("192.0.2.1") }] };
      server.send(encodeResponse(q, reply), from.port, from.address);
    });
    await new Promise((r) => server.bind(0, "127.0.0.1", r));
    const lookup = createDnsLookup([{ host: "127.0.0.1", port: server.address().port }], { timeoutMs: 100, attempts: 1 });
    await lookup("ok", "A");
    await lookup("silent", "A").catch(() => {});
    await lookup("tc", "A").catch(() => {});
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 20);
    await lookup("silent", "A", ac.signal).catch(() => {});
    server.close();
    console.log("done");
  `;
  const child = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => child.kill(), 4000);
  const code = await child.exited;
  clearTimeout(timer);
  expect([code, (await new Response(child.stdout).text()).trim(), await new Response(child.stderr).text()]).toEqual([0, "done", ""]);
});
