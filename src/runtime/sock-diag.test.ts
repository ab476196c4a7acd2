// sock_diag against real loopback connections (no privileges needed). The oracle is `ss -tne`,
// which prints each socket's cookie as `sk:HEX` (iproute2); without ss the oracle test is skipped
// with a reason, except under CI where it fails. src/bpf/capture.test.ts checks the same cookie
// against bpf_get_socket_cookie (the record connect4 stores).
import { afterAll, describe, expect, test } from "bun:test";
import type { Socket, TCPSocketListener } from "bun";
import { parseIp } from "../policy/address.ts";
import { SockDiag, SockDiagError, type Endpoint } from "./sock-diag.ts";
import { errorOf } from "../../test/shim.ts";

const ss = Bun.which("ss") ?? Bun.which("ss", { PATH: "/usr/sbin:/sbin:/usr/bin:/bin" });
const noOracle = ss === null && process.env.CI === undefined;
if (noOracle) console.error("sock-diag.test.ts: the ss oracle test is skipped: ss (iproute2) not found");

interface Conn {
  /** The client's end as the listener sees its peer, and the listener's end. */
  readonly self: Endpoint;
  readonly peer: Endpoint;
  readonly client: Socket<undefined>;
  readonly server: Socket<undefined>;
}

const listeners: TCPSocketListener<undefined>[] = [];
const sockets: Socket<undefined>[] = [];
const diag = SockDiag.open();

afterAll(() => {
  for (const s of sockets) s.terminate();
  for (const l of listeners) l.stop(true);
  diag.close();
});

/** A listener on `host` and one connection to it from `dial`, seen from the accepting side. */
async function connect(host: string, dial: string): Promise<Conn> {
  let accepted: (s: Socket<undefined>) => void = () => {};
  const server = new Promise<Socket<undefined>>((r) => (accepted = r));
  const l = Bun.listen<undefined>({ hostname: host, port: 0, socket: { open: (s) => accepted(s), data() {} } });
  listeners.push(l);
  const client = await Bun.connect<undefined>({ hostname: dial, port: l.port, socket: { data() {} } });
  const s = await server;
  sockets.push(client, s);
  return {
    self: { address: parseIp(s.remoteAddress), port: s.remotePort },
    peer: { address: parseIp(s.localAddress), port: s.localPort },
    client,
    server: s,
  };
}

/** The cookie `ss` prints for the socket whose local end is `self` (sk:HEX). */
function ssCookie(self: Endpoint, peer: Endpoint): bigint {
  const r = Bun.spawnSync([ss!, "-tneH", "state", "all", "sport", `= :${self.port}`, "dport", `= :${peer.port}`], { stdout: "pipe", stderr: "pipe" });
  const found = [...r.stdout.toString().matchAll(/\bsk:([0-9a-f]+)/g)].map((m) => BigInt(`0x${m[1]}`));
  if (found.length !== 1) throw new Error(`ss found ${found.length} sockets for :${self.port} -> :${peer.port}: ${r.stdout.toString()}${r.stderr.toString()}`);
  return found[0]!;
}

describe("sock_diag cookie lookups", () => {
  test("IPv4: found, the same twice, different for another connection", async () => {
    const a = await connect("127.0.0.1", "127.0.0.1");
    const b = await connect("127.0.0.1", "127.0.0.1");
    const ca = diag.cookie(a.self, a.peer);
    expect(typeof ca).toBe("bigint");
    expect(diag.cookie(a.self, a.peer)).toBe(ca);
    const cb = diag.cookie(b.self, b.peer);
    expect(typeof cb).toBe("bigint");
    expect(cb).not.toBe(ca);
    // The accepting socket is another socket, with its own cookie.
    expect(diag.cookie(a.peer, a.self)).not.toBe(ca);
  });

  test.skipIf(noOracle)("each cookie is the one the kernel reports through ss: IPv4, IPv6, v4-mapped both ways", async () => {
    const conns = [
      await connect("127.0.0.1", "127.0.0.1"),
      await connect("::1", "::1"),
      await connect("127.0.0.1", "::ffff:127.0.0.1"), // an IPv6 client socket, connected to an IPv4 address
      await connect("::", "127.0.0.1"), // a dual-stack listener: peer ::ffff:127.0.0.1
    ];
    expect(conns.map((c) => [c.self.address.text, c.peer.address.text])).toEqual([
      ["127.0.0.1", "127.0.0.1"],
      ["::1", "::1"],
      ["127.0.0.1", "127.0.0.1"],
      ["127.0.0.1", "127.0.0.1"],
    ]);
    for (const c of conns) expect({ self: c.self.port, cookie: diag.cookie(c.self, c.peer) }).toEqual({ self: c.self.port, cookie: ssCookie(c.self, c.peer) });
  });

  test("a client that closed first keeps its cookie in TIME_WAIT", async () => {
    const c = await connect("127.0.0.1", "127.0.0.1");
    const before = diag.cookie(c.self, c.peer);
    expect(typeof before).toBe("bigint");
    c.client.end();
    await Bun.sleep(50);
    c.server.end();
    await Bun.sleep(50);
    if (ss !== null) expect(Bun.spawnSync([ss, "-tanH", "state", "time-wait", "sport", `= :${c.self.port}`]).stdout.toString()).toContain(`:${c.self.port}`);
    expect(diag.cookie(c.self, c.peer)).toBe(before);
  });

  test("no such connection: null, also where the kernel would answer with a listener on that port", async () => {
    const c = await connect("127.0.0.1", "127.0.0.1");
    expect(diag.cookie({ address: parseIp("127.0.0.1"), port: c.self.port }, { address: parseIp("127.0.0.2"), port: c.peer.port })).toBeNull();
    expect(diag.cookie({ address: parseIp("::1"), port: 1 }, { address: parseIp("::1"), port: 2 })).toBeNull();
    // Own end = the listener's address and port: inet_diag falls back to the listening socket.
    expect(diag.cookie(c.peer, { address: parseIp("127.0.0.1"), port: 9 })).toBeNull();
  });

  test("cookieInto: the cookie as the little-endian u64 key a BPF map takes; false and the key untouched when there is none; IPv4 after IPv6 with the one buffer", async () => {
    const v6 = await connect("::1", "::1");
    const v4 = await connect("127.0.0.1", "::ffff:127.0.0.1");
    for (const c of [v6, v4, v6]) {
      const key = new Uint8Array(8);
      expect(diag.cookieInto(c.self, c.peer, key)).toBe(true);
      expect(new DataView(key.buffer).getBigUint64(0, true)).toBe(diag.cookie(c.self, c.peer)!);
    }
    const key = new Uint8Array(8).fill(7);
    expect(diag.cookieInto({ address: parseIp("127.0.0.1"), port: v4.self.port }, { address: parseIp("127.0.0.2"), port: v4.peer.port }, key)).toBe(false);
    expect([...key]).toEqual(Array(8).fill(7));
    expect(errorOf(() => diag.cookieInto(v4.self, v4.peer, new Uint8Array(4)), SockDiagError).code).toBe("sock_diag_bad_argument");
  });

  test("refused: ports out of range, an IPv4 end with an IPv6 one, a closed SockDiag", () => {
    const v4 = { address: parseIp("127.0.0.1"), port: 1 };
    const v6 = { address: parseIp("::1"), port: 1 };
    for (const [self, peer, text] of [
      [{ ...v4, port: 0 }, v4, "socket port 0"],
      [v4, { ...v4, port: 65536 }, "peer port 65536"],
      [v4, v6, "127.0.0.1:1 and [::1]:1 are not one connection"],
    ] as const) {
      const e = errorOf(() => diag.cookie(self, peer), SockDiagError);
      expect(e.code).toBe("sock_diag_bad_argument");
      expect(e.message).toStartWith("sock_diag: ");
      expect(e.message).toContain(text);
    }
    const closed = SockDiag.open();
    closed.close();
    closed.close();
    expect(errorOf(() => closed.cookie(v4, v4), SockDiagError).message).toContain("closed");
  });
});
