// Issue 7 end to end (root; CI runs it): two agents on this host (instances e2e-mtls-a, the client
// side, and e2e-mtls-b, the server side) and the built server. A workload started with `tidegate
// run` on A calls B's listener address with plain HTTP and raw TCP; A carries it over mutual TLS
// with the workload's SVID, B verifies it and forwards it to a backend in this process with a PROXY
// v2 header that names the caller; both agents log the same connection id, which is the header's
// unique id. Each refusal is logged with its rule and reason, and refused inbound connections reach
// no backend. stunnel stands in for either side (interop). Stand: mtls-setup.ts, backend and PROXY
// v2 decoder: mtls-backend.ts.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { tidegate } from "../helpers/binary.ts";
import { waitFor } from "../helpers/processes.ts";
import { probeHost } from "../../src/runtime/host.ts";
import { tlsProbe, type BackendConn, type ProxyHeader } from "./mtls-backend.ts";
import { ADDR, ID, setUp, tearDown, type Stand } from "./mtls-setup.ts";
import { srcOf, type AuditLine } from "../helpers/audit-files.ts";
import { rewriteConfig } from "../helpers/e2e-kit.ts";
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const T = 60_000;
const can = process.getuid?.() === 0 && probeHost().cgroup2 !== null;
if (!can && !process.env.CI) console.warn("e2e mtls: skipped (needs root and cgroup v2)");

/** Workloads run as nobody: a PATH of system folders only. */
const WORKLOAD_ENV = { PATH: "/usr/local/bin:/usr/bin:/bin" };
const CONN_ID = /^[0-9a-f]{32}$/;

/**
 * Holds one connection open across reloads: sends a line and reads two back (the caller line and
 * the echo), then says so (a file "ready" in the folder argv[3]); then for each round i = 1, 2,
 * ... waits for a file "go-i" there, sends a line and reads its echo, and prints "round i: echoed"
 * or, once the connection is gone, "round i: cut (WHY)" and stops.
 */
const PY_HELD = `
import os, socket, sys, time
where = sys.argv[3]
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.sendall(b'first\\n')
buf = b''
while buf.count(b'\\n') < 2:
    d = s.recv(4096)
    if not d: break
    buf += d
open(os.path.join(where, 'ready'), 'w').close()
for i in range(1, 10):
    deadline = time.time() + 30
    while not os.path.exists(os.path.join(where, 'go-%d' % i)) and time.time() < deadline:
        time.sleep(0.05)
    try:
        s.sendall(b'round %d\\n' % i)
        d = s.recv(4096)
        why = 'echoed' if d == b'round %d\\n' % i else 'cut (%r)' % d
    except OSError as e:
        why = 'cut (%s)' % type(e).__name__
    print('round %d: %s' % (i, why), flush=True)
    if why != 'echoed': break
`;

/** Sends one line, reads two back (the caller line and the echo), then closes. */
const PY_RAW = `
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
    s.sendall(sys.argv[3].encode() + b'\\n')
    buf = b''
    while buf.count(b'\\n') < 2:
        d = s.recv(4096)
        if not d: break
        buf += d
    s.close()
    sys.stdout.write(buf.decode())
except OSError as e:
    print(type(e).__name__)
`;

let s: Stand;

/** ARGV in the workload `client` on A, as nobody; its pid is the one A's egress line names. */
async function workload(argv: string[]): Promise<{ pid: number; out: string; code: number }> {
  const r = await tidegate(["run", ...s.flagsA, "--workload", "client", "--user", "nobody", "--", "sh", "-c", 'echo pid=$$; exec "$@"', "sh", ...argv], { env: WORKLOAD_ENV });
  const m = /^pid=(\d+)\n/.exec(r.stdout);
  if (m === null) throw new Error(`tidegate run exited ${r.code}: ${r.stdout}${r.stderr}`);
  return { pid: Number(m[1]), out: r.stdout.slice(m[0].length), code: r.code };
}

const curl = (url: string, ...extra: string[]) => workload(["curl", "-sS", "--max-time", "5", ...extra, url]);
const raw = (host: string, port: number, text: string) => workload(["python3", "-c", PY_RAW, host, String(port), text]);

/**
 * A workload holding one raw TCP connection to B's listener open (PY_HELD): `go(i)` lets round i
 * run, `done` is its output once it ends.
 */
async function held(): Promise<{ go(i: number): void; done: Promise<{ pid: number; out: string }> }> {
  const where = mkdtempSync(join(tmpdir(), "tidegate-test-held-"));
  chmodSync(where, 0o777); // the workload runs as nobody
  const done = workload(["python3", "-c", PY_HELD, ADDR.listener, String(s.ports.listen), where]).finally(() => rmSync(where, { recursive: true, force: true }));
  await waitFor("the workload's connection to be open", () => existsSync(join(where, "ready")) || undefined, 15_000);
  return { go: (i) => writeFileSync(join(where, `go-${i}`), ""), done };
}

/** A's conn_close for the connection of workload process `pid`, from A's audit log. */
const egressLine = (pid: number) => waitFor(`A's conn_close for pid ${pid}`, () => s.auditA().find((l) => l.type === "conn_close" && srcOf(l).pid === pid));
/** B's conn_close (side inbound) that `match` picks, from B's audit log. */
const inboundLine = (what: string, match: (l: AuditLine) => boolean) => waitFor(`B's inbound conn_close for ${what}`, () => s.auditB().find((l) => l.type === "conn_close" && l.side === "inbound" && match(l)));
const byConnId = (id: unknown) => inboundLine(`conn_id ${String(id)}`, (l) => l.conn_id === id);
const byClientPort = (port: number) => inboundLine(`client port ${port}`, (l) => String(srcOf(l).peer).endsWith(`:${port}`));

/** A plaintext exchange with HOST:PORT from this process: one line out, two lines back. */
function tcpExchange(host: string, port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = "";
    const timer = setTimeout(() => resolve(got), 5000);
    Bun.connect({
      hostname: host,
      port,
      socket: {
        open: (sock) => void sock.write(`${text}\n`),
        data(sock, d) {
          got += d.toString();
          if (got.split("\n").length > 2) sock.end();
        },
        close() {
          clearTimeout(timer);
          resolve(got);
        },
        error: (_s, e) => reject(e),
      },
    }).catch(reject);
  });
}

/** The one connection the backend took since `before`. */
function onlyConnSince(conns: BackendConn[], before: number): BackendConn {
  expect(conns.length).toBe(before + 1);
  return conns[before]!;
}

/** What B's PROXY v2 header must say for a verified caller (docs: issue 7 contract). */
function expectHeader(h: ProxyHeader | null, caller: string): ProxyHeader {
  expect(h).not.toBeNull();
  const header = h!;
  expect(header.verCmd).toBe(0x21);
  expect(header.family).toBe(0x11);
  expect(header.dst).toEqual({ address: ADDR.listener, port: s.ports.listen });
  expect(header.src.address).toMatch(/^127\.\d+\.\d+\.\d+$/);
  expect(header.tlvs.map((t) => t.type)).toEqual([0x05, 0x20, 0xe0]);
  expect(header.tlvs[0]!.value.length).toBe(16);
  expect(header.uniqueId).toMatch(CONN_ID);
  expect(header.ssl && { client: header.ssl.client, verify: header.ssl.verify, subs: header.ssl.subs.map((t) => [t.type, new TextDecoder().decode(t.value)]) }).toEqual({
    client: 0x07,
    verify: 0,
    subs: [[0x21, "TLSv1.3"]],
  });
  expect(header.spiffeId).toBe(caller);
  return header;
}

/** A's egress line, B's inbound line and the backend's header carry one connection id. */
async function expectOneHop(eg: AuditLine, conn: BackendConn, caller: string): Promise<void> {
  const h = expectHeader(conn.header, caller);
  expect(eg.conn_id).toMatch(CONN_ID);
  expect(eg.conn_id).toBe(h.uniqueId!);
  const ib = await byConnId(eg.conn_id);
  expect(ib).toMatchObject({
    rule: "backend",
    dst: { addr: ADDR.listener, port: s.ports.listen },
    src: { peer: `${h.src.address}:${h.src.port}`, spiffe_id: caller },
    decision: "allow",
    outcome: "forwarded",
    forward: `127.0.0.1:${s.backend.port}`,
    proxy_protocol: true,
    bytes_up: conn.payloadBytes,
    bytes_down: conn.written,
  });
  expect(eg).toMatchObject({ bytes_up: conn.payloadBytes, bytes_down: conn.written });
}

describe.skipIf(!can && !process.env.CI)("mutual TLS between two agents: egress proxy and inbound listener", () => {
  beforeAll(async () => {
    s = await setUp();
  }, 2 * T);

  afterAll(async () => {
    await tearDown();
  }, T);

  test("HTTP from a workload reaches the backend over mTLS; the backend learns the caller; both ends log one conn_id", async () => {
    const before = s.backend.conns.length;
    const r = await curl("http://backend.test.internal/", "--resolve", `backend.test.internal:80:${ADDR.listener}`);
    expect(r.out).toMatch(new RegExp(`^caller=${ID.client} conn=[0-9a-f]{32}$`));
    const conn = onlyConnSince(s.backend.conns, before);
    expect(conn.payload).toStartWith("GET / HTTP/1.1\r\n");
    expect(conn.payload.toLowerCase()).toContain("host: backend.test.internal\r\n");
    const eg = await egressLine(r.pid);
    expect(eg).toMatchObject({
      src: { workload: "client", spiffe_id: ID.client },
      dst: { addr: ADDR.listener, port: 80, name: "backend.test.internal" },
      decision: "allow",
      rule: "backend-http",
      action: "mtls",
      outcome: "forwarded",
      peer_id: ID.backend,
      upstream: `${ADDR.listener}:${s.ports.listen}`,
    });
    expect(typeof eg.resumed).toBe("boolean");
    expect(r.out).toBe(`caller=${ID.client} conn=${String(eg.conn_id)}`);
    await expectOneHop(eg, conn, ID.client);
  }, T);

  test("raw TCP from a workload to the listener's own address is carried over mTLS the same way", async () => {
    const before = s.backend.conns.length;
    const r = await raw(ADDR.listener, s.ports.listen, "hello over raw tcp");
    const conn = onlyConnSince(s.backend.conns, before);
    const eg = await egressLine(r.pid);
    expect(r.out).toBe(`caller=${ID.client} conn=${String(eg.conn_id)}\nhello over raw tcp\n`);
    expect(conn.payload).toBe("hello over raw tcp\n");
    expect(eg).toMatchObject({
      src: { spiffe_id: ID.client },
      dst: { addr: ADDR.listener, port: s.ports.listen, name: null },
      rule: "backend-raw",
      action: "mtls",
      outcome: "forwarded",
      peer_id: ID.backend,
      upstream: `${ADDR.listener}:${s.ports.listen}`,
    });
    await expectOneHop(eg, conn, ID.client);
  }, T);

  test("a later connection to the same upstream resumes the TLS session; B still names the caller", async () => {
    const first = await raw(ADDR.listener, s.ports.listen, "one");
    const before = s.backend.conns.length;
    const second = await raw(ADDR.listener, s.ports.listen, "two");
    const conn = onlyConnSince(s.backend.conns, before);
    const [a, b] = [await egressLine(first.pid), await egressLine(second.pid)];
    expect(b).toMatchObject({ outcome: "forwarded", peer_id: ID.backend, resumed: true });
    expect(b.conn_id).not.toBe(a.conn_id);
    expect(second.out).toBe(`caller=${ID.client} conn=${String(b.conn_id)}\ntwo\n`);
    await expectOneHop(b, conn, ID.client);
  }, T);

  test("refused, with its reason: a destination no rule names", async () => {
    const r = await curl(`http://${ADDR.unnamed}:80/`, "-H", "Host: nowhere.test.internal", "-w", "%{http_code}");
    expect(r.out).toBe("tidegate: no_rule\n403"); // plain HTTP refused before anything was forwarded is answered
    expect(await egressLine(r.pid)).toMatchObject({ dst: { addr: ADDR.unnamed, port: 80, name: "nowhere.test.internal" }, decision: "deny", rule: null, outcome: "refused", reason: "no_rule" });
  }, T);

  test("refused: a Host whose resolution does not contain the original address", async () => {
    const before = s.backend.conns.length;
    const r = await curl("http://backend.test.internal/", "--resolve", `backend.test.internal:80:${ADDR.elsewhere}`, "-w", "%{http_code}");
    expect(r.out).toBe("tidegate: address_not_resolved\n403");
    expect(await egressLine(r.pid)).toMatchObject({ dst: { addr: ADDR.elsewhere, port: 80, name: "backend.test.internal" }, rule: "backend-http", decision: "deny", outcome: "refused", reason: "address_not_resolved", detail: `backend.test.internal resolves to ${ADDR.listener}, not to ${ADDR.elsewhere}` });
    expect(s.backend.conns.length).toBe(before);
  }, T);

  test("refused: an mTLS upstream presenting another SPIFFE ID than server_id; no byte of the workload's reaches it", async () => {
    const before = s.backend.conns.length;
    const r = await curl("http://other.test.internal/", "--resolve", `other.test.internal:80:${ADDR.listener}`);
    expect(r.code).not.toBe(0);
    const eg = await egressLine(r.pid);
    expect(eg).toMatchObject({ dst: { name: "other.test.internal" }, rule: "wrong-id", action: "mtls", outcome: "refused", reason: "peer_id_mismatch", peer_id: ID.backend });
    expect(String(eg.detail)).toContain(ID.other);
    await Bun.sleep(300);
    expect(s.backend.conns.slice(before).filter((c) => c.payloadBytes > 0)).toEqual([]);
  }, T);

  test("refused: an upstream whose chain is from an untrusted root (same trust-domain name); it receives nothing", async () => {
    const r = await raw(ADDR.untrusted, s.ports.untrusted, "secret");
    expect(r.out).not.toContain("secret");
    const eg = await egressLine(r.pid);
    expect(eg).toMatchObject({ dst: { addr: ADDR.untrusted }, rule: "untrusted", action: "mtls", outcome: "refused", reason: "peer_untrusted", detail: "svid_untrusted" });
    expect(eg.peer_id).toBeUndefined(); // an ID nothing verified is not the peer's
    expect(eg.claimed_id).toBe(ID.backend); // what the unverified leaf claimed, named as such
    expect(s.untrusted.conns).toBeGreaterThan(0); // the proxy did reach it: the refusal is the verifier's
    expect(s.untrusted.bytes).toBe(0);
  }, T);

  test("inbound refused: a client without a certificate; the backend gets nothing", async () => {
    const before = s.backend.conns.length;
    const p = await tlsProbe(ADDR.listener, s.ports.listen);
    expect(p.received).toBe("");
    expect(await byClientPort(p.localPort)).toMatchObject({ rule: "backend", dst: { addr: ADDR.listener, port: s.ports.listen }, src: { spiffe_id: null }, decision: "deny", outcome: "refused", reason: "client_no_certificate" });
    await Bun.sleep(200);
    expect(s.backend.conns.length).toBe(before);
  }, T);

  test("inbound refused: a client certificate from an untrusted root; the backend gets nothing", async () => {
    const before = s.backend.conns.length;
    const p = await tlsProbe(ADDR.listener, s.ports.listen, s.untrustedClient);
    expect(p.received).toBe("");
    const ib = await byClientPort(p.localPort);
    expect(ib).toMatchObject({ rule: "backend", src: { spiffe_id: null }, outcome: "refused", reason: "client_untrusted" });
    expect(ib.detail).toMatch(/^(svid_[a-z_]+|[A-Z0-9_]+)$/); // the verifier's code, or the TLS stack's
    await Bun.sleep(200);
    expect(s.backend.conns.length).toBe(before);
  }, T);

  test("inbound refused: an SVID of our trust domain that allow does not name; the backend gets nothing", async () => {
    const before = s.backend.conns.length;
    const p = await tlsProbe(ADDR.listener, s.ports.listen, s.svid("a", ID.intruder));
    expect(p.received).toBe("");
    expect(await byClientPort(p.localPort)).toMatchObject({ rule: "backend", src: { spiffe_id: ID.intruder }, outcome: "refused", reason: "client_not_allowed" });
    await Bun.sleep(200);
    expect(s.backend.conns.length).toBe(before);
  }, T);

  test("interop: stunnel as the server side verifies tidegate's client SVID", async () => {
    const before = s.plain.conns.length;
    const r = await curl(`http://${ADDR.stunnelServer}:${s.ports.stunnelServer}/`);
    expect(r.out).toBe("caller=none conn=none");
    expect(onlyConnSince(s.plain.conns, before).payload).toStartWith("GET / HTTP/1.1\r\n");
    const eg = await egressLine(r.pid);
    expect(eg).toMatchObject({ rule: "stunnel-server", action: "mtls", outcome: "forwarded", peer_id: ID.stunnelServer, upstream: `${ADDR.stunnelServer}:${s.ports.stunnelServer}` });
    expect(eg.conn_id).toMatch(CONN_ID);
    expect(s.stunnelOutput("server")).toContain("Certificate accepted at depth=0");
    // and stunnel does demand a certificate: without one, nothing reaches its backend
    const p = await tlsProbe(ADDR.stunnelServer, s.ports.stunnelServer);
    expect(p.received).toBe("");
    await Bun.sleep(200);
    expect(s.plain.conns.length).toBe(before + 1);
  }, T);

  test("interop: stunnel as the client side presents an SVID to tidegate's inbound listener", async () => {
    const before = s.backend.conns.length;
    const out = await tcpExchange(ADDR.stunnelClient, s.ports.stunnelClient, "hello from stunnel");
    const conn = onlyConnSince(s.backend.conns, before);
    const h = expectHeader(conn.header, ID.stunnelClient);
    expect(out).toBe(`caller=${ID.stunnelClient} conn=${h.uniqueId}\nhello from stunnel\n`);
    expect(await byConnId(h.uniqueId)).toMatchObject({ rule: "backend", src: { peer: `${h.src.address}:${h.src.port}`, spiffe_id: ID.stunnelClient }, outcome: "forwarded", proxy_protocol: true });
  }, T);
  describe("a reload or a registration change reaches a raw TCP connection already open (bytes spliced, nothing parsed)", () => {
    const rewrite = (n: "a" | "b", edit: (yaml: string) => string) => rewriteConfig(join(s.dir, `${n}.yaml`), n === "a" ? s.logA : s.logB, edit);
    /** The terminated conn_close `reason` names in agent `n`'s audit log. */
    const terminated = (n: "a" | "b", reason: string) => waitFor(`agent ${n}'s conn_close ${reason}`, () => (n === "a" ? s.auditA() : s.auditB()).find((l) => l.type === "conn_close" && l.outcome === "terminated" && l.reason === reason), 15_000);

    test("A: a reload that keeps its terms leaves it; one that removes its rule ends it, policy_changed, and the workload sees it cut", async () => {
      const w = await held();
      const restoreA: (() => Promise<void>)[] = [];
      try {
        // tidegate status counts it open at both ends
        const open = async (flags: string[]) => ((JSON.parse((await tidegate(["status", "--json", ...flags])).stdout) as { capture: { open_connections: { egress: number; inbound: number } } }).capture.open_connections);
        expect((await open(s.flagsA)).egress).toBeGreaterThanOrEqual(1);
        expect((await open(s.flagsB)).inbound).toBeGreaterThanOrEqual(1);
        restoreA.push(await rewrite("a", (y) => y.replace("dns:\n", `  - { name: unrelated, from: ${ID.client}, to: { cidr: ${ADDR.unnamed}/32, port: 9 }, action: deny }\ndns:\n`)));
        w.go(1);
        await restoreA.pop()!();
        restoreA.push(await rewrite("a", (y) => y.replace(/  - name: backend-raw\n(    .*\n)+?(?=  - name)/, "")));
        const line = await terminated("a", "policy_changed");
        w.go(2);
        const { pid, out } = await w.done;
        expect(out).toMatch(/^round 1: echoed\nround 2: cut \(.*\)\n$/);
        expect(line).toMatchObject({ src: { pid, spiffe_id: ID.client }, rule: "backend-raw", action: "mtls", peer_id: ID.backend, outcome: "terminated", reason: "policy_changed" });
        expect(String(line.detail)).toBe("a policy reload: the policy in force now refuses it (no_rule: deny: no rule matches)");
        expect(s.logA().some((l) => l.event === "connections_ended" && l.cause === "policy_loaded" && l.ended === 1)).toBe(true);
      } finally {
        for (const r of restoreA.reverse()) await r();
      }
    }, 2 * T);

    test("B: a reload whose rule no longer allows the caller ends it at B, client_not_allowed", async () => {
      const w = await held();
      const restoreB = await rewrite("b", (y) => y.replace(`allow: [${ID.client}, ${ID.stunnelClient}]`, `allow: [${ID.stunnelClient}]`));
      try {
        const line = await terminated("b", "client_not_allowed");
        w.go(1);
        const { out } = await w.done;
        expect(out).toMatch(/^round 1: cut \(.*\)\n$/);
        expect(line).toMatchObject({ side: "inbound", rule: "backend", src: { spiffe_id: ID.client }, outcome: "terminated", reason: "client_not_allowed", detail: `inbound rule backend no longer allows ${ID.client} (a policy reload)` });
      } finally {
        await restoreB();
      }
    }, 2 * T);
    test("A: the workload's registration entry deleted ends it at the agent's next look at its entries, identity_revoked", async () => {
      const w = await held();
      const restore = await s.unregisterClient();
      try {
        const line = await terminated("a", "identity_revoked");
        w.go(1);
        const { pid, out } = await w.done;
        expect(out).toMatch(/^round 1: cut \(.*\)\n$/);
        expect(line).toMatchObject({ src: { pid, spiffe_id: ID.client, workload: "client" }, rule: "backend-raw", outcome: "terminated", reason: "identity_revoked", detail: `workload client no longer has identity ${ID.client} (its registration changed)` });
        expect(s.logA().some((l) => l.event === "connections_ended" && l.cause === "entries_changed")).toBe(true);
      } finally {
        await restore();
      }
    }, 2 * T);
  });
});
