// The two ends of an mTLS hop in one process, over real loopback sockets and real TLS: the
// egress side's upstream leg (upstream.ts, `mtls`) and an inbound listener (inbound-listener.ts),
// with SVIDs from a test CA. What the backend receives, what each end logs, and every refusal.
import { memoryAudit } from "../audit/sink/memory-audit.ts";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import nodeTls from "node:tls";
import { createTestCa, type TestCa } from "../../test/helpers/test-ca.ts";
import { exportPkcs8Pem } from "../x509/keys.ts";
import { chainPem, encodePem } from "../x509/pem.ts";
import { SpiffeId, TrustDomain } from "../spiffe/index.ts";
import { parsePattern } from "../spiffe/match.ts";
import { parseIp } from "../policy/address.ts";
import type { InboundRule } from "../policy/model.ts";
import { createLogger } from "../runtime/log.ts";
import type { Credential, IdentitySource, TrustNow } from "./identity-source.ts";
import { InboundListener } from "./inbound-listener.ts";
import { PeerVerifier, stillAnchored } from "./peer-verifier.ts";
import { Bundle, BundleSet } from "../spiffe/index.ts";
import { SessionCache } from "./session-cache.ts";
import { openUpstream, type UpstreamPlan } from "./upstream.ts";
import { hex, peerChain, peerLeaf } from "./peer-tls.ts";
import { decodeProxyV2 } from "./proxy-v2.ts";
import { credentialOf, trustOf } from "./test-identity.ts";
import { cuttingServer, endWatcher, releasableBacklog } from "./bounds-test-kit.ts";

const TD = TrustDomain.parse("example.org");
let ca: TestCa;
let evil: TestCa;
const creds = new Map<string, Credential>();
let trust: TrustNow;
const audit = memoryAudit();
const lines = audit.events;
const logger = createLogger({ write: () => {} });
/** What the backend received per connection: the PROXY header and the bytes after it. */
const received: { header: ReturnType<typeof decodeProxyV2>; body: string }[] = [];
let backend: { port: number; stop(force?: boolean): void };
let inbound: InboundListener;
const LISTEN_PORT = 0;


const identity: IdentitySource = { svid: (id) => creds.get(id) ?? null, trust: () => trust };

function rule(over: Partial<InboundRule> = {}): InboundRule {
  return {
    index: 0,
    name: "backend-in",
    line: 1,
    id: SpiffeId.parse("spiffe://example.org/backend"),
    listen: { host: "127.0.0.1", port: LISTEN_PORT },
    forward: { kind: "tcp", host: "127.0.0.1", port: backend.port },
    allow: ["spiffe://example.org/client"].map((text) => ({ text, matcher: parsePattern(text) })),
    proxyProtocol: true,
    forwardClientCert: false,
    tools: null,
    mcp: null,
    bounds: null,
    ...over,
  } as InboundRule;
}

beforeAll(async () => {
  ca = await createTestCa();
  evil = await createTestCa(); // same trust domain name, another root
  const inter = await ca.mintIntermediate();
  for (const path of ["/client", "/backend", "/intruder"]) creds.set(`spiffe://example.org${path}`, await credentialOf(await inter.mintLeaf(path)));
  trust = trustOf(ca, 1);
  backend = Bun.listen<{ buf: Uint8Array }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open: (s) => void (s.data = { buf: new Uint8Array(0) }),
      data(s, chunk) {
        const all = new Uint8Array(s.data.buf.length + chunk.length);
        all.set(s.data.buf);
        all.set(chunk, s.data.buf.length);
        s.data.buf = all;
        const h = decodeProxyV2(all);
        if (h === "need_more") return;
        const body = new TextDecoder().decode(all.subarray(h.length));
        if (!body.endsWith("\n")) return;
        received.push({ header: h, body });
        s.write(`caller=${h.header.spiffeId} conn=${hex(h.header.uniqueId!)}\n`);
        s.end();
      },
    },
  });
  inbound = new InboundListener(rule(), creds.get("spiffe://example.org/backend")!, { identity, verifier: new PeerVerifier(), logger, audit });
});

afterAll(() => {
  inbound?.stop();
  backend?.stop(true);
});

function listenPort(): number {
  return (inbound as unknown as { listener: { port: number } }).listener.port;
}

const deps = { sessions: new SessionCache(), verifier: new PeerVerifier() };

function plan(serverId: string, client = "spiffe://example.org/client", port = listenPort(), t: TrustNow = trust): UpstreamPlan {
  return {
    address: parseIp("127.0.0.1"),
    port,
    tls: { kind: "mtls", serverName: null, serverId: SpiffeId.parse(serverId), credential: creds.get(client)!, trust: t, caPem: t.caPem(TD)! },
  };
}

/** Sends a line over an opened upstream leg and returns what came back. */
async function roundTrip(up: Socket<{ sp: unknown; early: Uint8Array[] }>, line: string): Promise<string> {
  let got = "";
  const { promise, resolve } = Promise.withResolvers<string>();
  const sink = { data: (c: Uint8Array) => void (got += new TextDecoder().decode(c)), drain() {}, ended: () => resolve(got) };
  up.data.sp = { down: sink, up: sink, upstreamClosed: () => resolve(got), clientClosed() {}, bytesUp: () => 0, bytesDown: () => 0 };
  for (const c of up.data.early) sink.data(c);
  up.resume();
  up.write(line);
  const answer = await promise;
  up.end();
  return answer;
}

const inboundLines = () => audit.of("conn_close").filter((l) => l.side === "inbound");
const srcOf = (l: Record<string, unknown>) => l.src as { spiffe_id: string | null; peer: string };

describe("an mTLS hop between the egress upstream leg and an inbound listener", () => {
  test("bytes reach the backend behind a PROXY v2 header naming the caller; both ends share the connection id", async () => {
    const up = await openUpstream(plan("spiffe://example.org/backend"), deps);
    if (!up.ok) throw new Error(`not ok: ${up.reason} ${up.detail}`);
    expect(up.peerId).toBe("spiffe://example.org/backend");
    expect(up.resumed).toBe(false);
    const answer = await roundTrip(up.socket as never, "hello\n");
    expect(answer).toBe(`caller=spiffe://example.org/client conn=${hex(up.connId)}\n`);
    const r = received.at(-1)!;
    expect(r.body).toBe("hello\n");
    if (r.header === "need_more") throw new Error("no header");
    expect(r.header.header.command).toBe("proxy");
    expect(r.header.header.ssl?.version).toBe("TLSv1.3");
    const line = await waitForLine(() => inboundLines().find((l) => l.conn_id === hex(up.connId) && l.outcome === "forwarded"));
    expect(line).toMatchObject({ rule: "backend-in", src: { spiffe_id: "spiffe://example.org/client" }, decision: "allow", proxy_protocol: true, bytes_up: 6 });
    expect(audit.of("conn_open").find((l) => l.conn_id === hex(up.connId))).toMatchObject({ side: "inbound", rule: "backend-in", decision: "allow" });
    if (r.header.header.command === "proxy") expect(srcOf(line).peer).toBe(`127.0.0.1:${r.header.header.source.port}`);
  });

  test("a second leg resumes the session and still verifies the peer", async () => {
    const up = await openUpstream(plan("spiffe://example.org/backend"), deps);
    if (!up.ok) throw new Error(`not ok: ${up.reason} ${up.detail}`);
    expect(up.resumed).toBe(true);
    expect(up.peerId).toBe("spiffe://example.org/backend");
    // the leaf read alone (what the verifier's cache is asked with) is the chain's first, resumed too
    const leaf = peerLeaf(up.socket as never);
    expect(leaf).not.toBeNull();
    expect(Buffer.from(leaf!).equals(Buffer.from(peerChain(up.socket as never)[0]!))).toBe(true);
    expect(await roundTrip(up.socket as never, "again\n")).toContain("caller=spiffe://example.org/client");
  });

  test("an upstream presenting another SPIFFE ID than server_id is refused", async () => {
    const up = await openUpstream(plan("spiffe://example.org/other"), { sessions: new SessionCache(), verifier: deps.verifier });
    expect(up).toMatchObject({ ok: false, outcome: "refused", reason: "peer_id_mismatch", peerId: "spiffe://example.org/backend" });
  });

  test("an upstream whose chain does not verify against the bundle is refused", async () => {
    const rogue = new InboundListener(rule(), await credentialOf(await evil.mintLeaf("/backend")), { identity: { svid: () => null, trust: () => trust }, verifier: new PeerVerifier(), logger, audit });
    try {
      const port = (rogue as unknown as { listener: { port: number } }).listener.port;
      const up = await openUpstream(plan("spiffe://example.org/backend", undefined, port), { sessions: new SessionCache(), verifier: new PeerVerifier() });
      expect(up).toMatchObject({ ok: false, outcome: "refused", reason: "peer_untrusted", detail: "svid_untrusted", peerId: null, claimedId: "spiffe://example.org/backend" });
    } finally {
      rogue.stop();
    }
  });

  test("a client whose SPIFFE ID no allow pattern matches is refused and the backend gets nothing", async () => {
    const before = received.length;
    const up = await openUpstream(plan("spiffe://example.org/backend", "spiffe://example.org/intruder"), { sessions: new SessionCache(), verifier: deps.verifier });
    if (up.ok) await roundTrip(up.socket as never, "let me in\n").catch(() => "");
    const line = await waitForLine(() => inboundLines().find((l) => srcOf(l).spiffe_id === "spiffe://example.org/intruder"));
    expect(line).toMatchObject({ outcome: "refused", reason: "client_not_allowed", decision: "deny" });
    expect(received.length).toBe(before);
  });

  test("a client without a certificate, or with one from another root, is refused", async () => {
    const before = received.length;
    const bare = await connectRaw({});
    expect(bare).toBe("");
    await waitForLine(() => inboundLines().find((l) => l.reason === "client_no_certificate"));
    const leaf = await evil.mintLeaf("/client");
    const forged = await connectRaw({ cert: leaf.chain.map((d) => encodePem("CERTIFICATE", d)).join(""), key: await exportPkcs8Pem(leaf.privateKey) });
    expect(forged).toBe("");
    const line = await waitForLine(() => inboundLines().find((l) => l.reason === "client_untrusted"));
    expect(srcOf(line).spiffe_id).toBeNull();
    // Refused by the TLS stack's error before tidegate's verifier ran (Bun reports authorized=true
    // here; the listener must look at the error): the detail is a TLS code, not an svid_ one.
    expect(String(line.detail)).not.toMatch(/^svid_/);
    expect(received.length).toBe(before);
  });

  test("a rotated SVID is served to new connections without a restart", async () => {
    const old = creds.get("spiffe://example.org/backend")!;
    const inter2 = await ca.mintIntermediate();
    const fresh = await credentialOf(await inter2.mintLeaf("/backend"));
    creds.set("spiffe://example.org/backend", fresh);
    try {
      const up = await openUpstream(plan("spiffe://example.org/backend"), { sessions: new SessionCache(), verifier: new PeerVerifier() });
      if (!up.ok) throw new Error(`not ok: ${up.reason} ${up.detail}`);
      const served = (up.socket as unknown as { getPeerCertificate(a: boolean): { serialNumber: string } }).getPeerCertificate(true).serialNumber;
      expect(served.toLowerCase().replace(/^0+/, "")).toBe(fresh.serial.toLowerCase().replace(/^0+/, ""));
      expect(await roundTrip(up.socket as never, "rotated\n")).toContain("caller=spiffe://example.org/client");
    } finally {
      creds.set("spiffe://example.org/backend", old);
    }
  });
});

/** A plain HTTP backend answering 200 "ok" to each request head (no bodies), pipelined ones too; what it read. */
function headBackend(answer = (_n: number) => "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"): { port: number; raw(): string; stop(force: boolean): void } {
  let raw = "";
  const l = Bun.listen<{ n: number }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open: (s) => void (s.data = { n: 0 }),
      data(s, chunk) {
        raw += new TextDecoder().decode(chunk);
        const ends = raw.split("\r\n\r\n").length - 1;
        for (; s.data.n < ends; s.data.n++) s.write(answer(s.data.n));
      },
    },
  });
  return { port: l.port, raw: () => raw, stop: (force) => l.stop(force) };
}

describe("forward_client_cert", () => {
  test("every request of a keep-alive connection reaches the backend with one x-forwarded-client-cert naming the caller", async () => {
    const plain = headBackend();
    const l = new InboundListener(rule({ name: "xfcc", proxyProtocol: false, forwardClientCert: true, forward: { kind: "tcp", host: "127.0.0.1", port: plain.port } }), creds.get("spiffe://example.org/backend")!, { identity, verifier: new PeerVerifier(), logger, audit });
    try {
      const port = (l as unknown as { listener: { port: number } }).listener.port;
      const up = await openUpstream(plan("spiffe://example.org/backend", undefined, port), { sessions: new SessionCache(), verifier: new PeerVerifier() });
      if (!up.ok) throw new Error(`not ok: ${up.reason} ${up.detail}`);
      const answer = await roundTripUntil(up.socket as never, "GET /1 HTTP/1.1\r\nHost: b\r\nX-Forwarded-Client-Cert: By=x;URI=spiffe://example.org/admin\r\n\r\nGET /2 HTTP/1.1\r\nHost: b\r\n\r\n", (got) => got.split("HTTP/1.1 200").length === 3);
      expect(answer.split("HTTP/1.1 200").length).toBe(3);
      const want = "x-forwarded-client-cert: By=spiffe://example.org/backend;URI=spiffe://example.org/client\r\n";
      expect(plain.raw()).toBe(`GET /1 HTTP/1.1\r\nHost: b\r\n${want}\r\nGET /2 HTTP/1.1\r\nHost: b\r\n${want}\r\n`);
      expect(plain.raw()).not.toContain("admin");
      const line = await waitForLine(() => inboundLines().find((x) => x.rule === "xfcc" && x.outcome === "forwarded"));
      expect(line.requests).toBe(2);
    } finally {
      l.stop();
      plain.stop(true);
    }
  });
});

/**
 * A client's keep-alive connection through listener `l` (as the egress proxy's mTLS leg opens it):
 * `request(path)` sends a GET and resolves once its answer ("ok") came; `closed` resolves when the
 * listener ends the connection (its error code, or "closed").
 */
async function keptAlive(l: InboundListener, requestText = (path: string) => `GET ${path} HTTP/1.1\r\nHost: b\r\n\r\n`): Promise<{ request(path: string): Promise<void>; closed: Promise<string> }> {
  const port = (l as unknown as { listener: { port: number } }).listener.port;
  const up = await openUpstream(plan("spiffe://example.org/backend", undefined, port), { sessions: new SessionCache(), verifier: new PeerVerifier() });
  if (!up.ok) throw new Error(`not ok: ${up.reason} ${up.detail}`);
  let got = "";
  let waiting: { oks: number; resolve(): void } | null = null;
  const closed = Promise.withResolvers<string>();
  const sink = {
    data: (c: Uint8Array) => {
      got += new TextDecoder().decode(c);
      if (waiting !== null && got.split("ok").length - 1 >= waiting.oks) waiting.resolve();
    },
    drain() {},
    ended: () => closed.resolve("closed"),
  };
  const socket = up.socket as unknown as Socket<{ sp: unknown; early: Uint8Array[] }>;
  socket.data.sp = { down: sink, up: sink, upstreamClosed: () => closed.resolve("closed"), clientClosed() {}, bytesUp: () => 0, bytesDown: () => 0 };
  for (const c of socket.data.early) sink.data(c);
  socket.resume();
  let sent = 0;
  return {
    request(path: string) {
      const answered = Promise.withResolvers<void>();
      waiting = { oks: ++sent, resolve: answered.resolve };
      socket.write(requestText(path));
      return answered.promise;
    },
    closed: closed.promise,
  };
}

/** A tools/call to `path`, as one HTTP request of an MCP client. */
const toolCall = (path: string) => {
  const body = JSON.stringify({ jsonrpc: "2.0", id: Number(path.slice(1)), method: "tools/call", params: { name: "echo", arguments: {} } });
  return `POST ${path} HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
};

describe("while the audit log cannot be written (on_failure refuse)", () => {
  /** A JSON-RPC answer to the tools/call of id n + 1 (the nth request), holding "ok". */
  const toolAnswer = (n: number) => {
    const body = JSON.stringify({ jsonrpc: "2.0", id: n + 1, result: { content: [{ type: "text", text: "ok" }] } });
    return `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`;
  };
  const cases: [string, Partial<InboundRule>, ((path: string) => string) | undefined, ((n: number) => string) | undefined][] = [
    ["forward_client_cert", { forwardClientCert: true }, undefined, undefined],
    ["mcp:", { mcp: { tools: null, resources: null, prompts: null } } as Partial<InboundRule>, toolCall, toolAnswer],
  ];
  for (const [what, over, requestText, answer] of cases) {
    test(`${what}: a keep-alive connection opened before carries no request past it; it closes, recorded audit_unavailable`, async () => {
      const plain = headBackend(answer);
      const name = `audit-down-${what.replace(/[^a-z]/g, "")}`;
      let healthy = true;
      const l = new InboundListener(rule({ name, proxyProtocol: false, ...over, forward: { kind: "tcp", host: "127.0.0.1", port: plain.port } }), creds.get("spiffe://example.org/backend")!, { identity, verifier: new PeerVerifier(), logger, audit, accepting: () => healthy });
      try {
        const c = await keptAlive(l, requestText);
        await c.request("/1");
        healthy = false;
        void c.request("/2");
        await c.closed;
        expect(plain.raw()).toContain(" /1 HTTP/1.1");
        expect(plain.raw()).not.toContain(" /2 HTTP/1.1");
        const line = await waitForLine(() => inboundLines().find((x) => x.rule === name));
        expect({ outcome: line.outcome, reason: line.reason }).toEqual({ outcome: "refused", reason: "audit_unavailable" });
      } finally {
        l.stop();
        plain.stop(true);
      }
    });
  }
});

/** Reload changes of an inbound listener's rule: the client dropped from `allow`, and the rule removed. */
const RULE_CHANGES: [string, (l: InboundListener) => void, string][] = [
  ["the client dropped from allow", (l) => void (l.rule = { ...l.rule, allow: ["spiffe://example.org/someone-else"].map((text) => ({ text, matcher: parsePattern(text) })) }), "client_not_allowed"],
  ["the rule removed", (l) => l.remove(), "rule_removed"],
];

describe("a reload under forward_client_cert", () => {
  for (const [what, change, reason] of RULE_CHANGES) {
    test(`${what}: the next request of a keep-alive connection is not forwarded; the connection closes, recorded ${reason}`, async () => {
      const plain = headBackend();
      const name = `xfcc-${reason}`;
      const l = new InboundListener(rule({ name, proxyProtocol: false, forwardClientCert: true, forward: { kind: "tcp", host: "127.0.0.1", port: plain.port } }), creds.get("spiffe://example.org/backend")!, { identity, verifier: new PeerVerifier(), logger, audit });
      try {
        const c = await keptAlive(l);
        await c.request("/1");
        change(l);
        void c.request("/2");
        await c.closed;
        expect(plain.raw()).toContain("GET /1 ");
        expect(plain.raw()).not.toContain("GET /2 ");
        const line = await waitForLine(() => inboundLines().find((x) => x.rule === name));
        expect({ outcome: line.outcome, reason: line.reason, requests: line.requests }).toEqual({ outcome: "refused", reason, requests: 1 });
      } finally {
        l.stop();
        plain.stop(true);
      }
    });
  }
});

describe("a reload under a plain forward (bytes unparsed)", () => {
  for (const [what, change, reason] of RULE_CHANGES) {
    test(`${what}: a rule swapped in that still allows the client leaves it; then the connection is ended at the recheck, recorded ${reason}`, async () => {
      const plain = headBackend();
      const name = `plain-${reason}`;
      const l = new InboundListener(rule({ name, proxyProtocol: false, forward: { kind: "tcp", host: "127.0.0.1", port: plain.port } }), creds.get("spiffe://example.org/backend")!, { identity, verifier: new PeerVerifier(), logger, audit });
      try {
        const c = await keptAlive(l);
        await c.request("/1");
        l.rule = { ...l.rule, forward: { ...l.rule.forward } }; // a reload of the same terms
        expect(await l.recheck()).toEqual({ cut: 0, failed: 0, error: null });
        await c.request("/2");
        change(l);
        expect(await l.recheck()).toEqual({ cut: 1, failed: 0, error: null });
        await c.closed;
        expect(l.connections).toBe(0);
        const line = await waitForLine(() => inboundLines().find((x) => x.rule === name));
        expect(line).toMatchObject({ outcome: "terminated", reason, src: { spiffe_id: "spiffe://example.org/client" } });
        expect(String(line.detail)).toEndWith("(a policy reload)");
      } finally {
        l.stop();
        plain.stop(true);
      }
    });
  }
});

/** Reloads with the same listen and id that carry a connection otherwise: its bytes would now be parsed, gated or sent elsewhere. */
const TREATMENT_CHANGES: [string, Partial<InboundRule>, Partial<InboundRule>][] = [
  ["a plain forward, then forward_client_cert", {}, { forwardClientCert: true }],
  ["a plain forward, then mcp:", {}, { mcp: { tools: null, resources: null, prompts: null } }],
  ["forward_client_cert, then mcp:", { forwardClientCert: true }, { forwardClientCert: true, mcp: { tools: null, resources: null, prompts: null } }],
  ["a plain forward, then another backend", {}, { forward: { kind: "tcp", host: "127.0.0.2", port: 9 } }],
];

describe("a reload that carries an open connection otherwise", () => {
  for (const [what, before, after] of TREATMENT_CHANGES) {
    test(`${what}: the connection is ended at the recheck (policy_changed), not left to pass bytes unparsed or ungated`, async () => {
      const plain = headBackend();
      const name = `treatment-${TREATMENT_CHANGES.findIndex(([w]) => w === what)}`;
      const l = new InboundListener(rule({ name, proxyProtocol: false, ...before, forward: { kind: "tcp", host: "127.0.0.1", port: plain.port } }), creds.get("spiffe://example.org/backend")!, { identity, verifier: new PeerVerifier(), logger, audit });
      try {
        const c = await keptAlive(l);
        await c.request("/1");
        l.rule = { ...l.rule, ...after };
        expect(await l.recheck()).toEqual({ cut: 1, failed: 0, error: null });
        await c.closed;
        const line = await waitForLine(() => inboundLines().find((x) => x.rule === name));
        expect(line).toMatchObject({ outcome: "terminated", reason: "policy_changed", src: { spiffe_id: "spiffe://example.org/client" } });
      } finally {
        l.stop();
        plain.stop(true);
      }
    });
  }
});

describe("a reload while the backend is being connected", () => {
  const changes: [string, (l: InboundListener) => void, string][] = [
    ["the client dropped from allow", (l) => void (l.rule = { ...l.rule, allow: ["spiffe://example.org/someone-else"].map((text) => ({ text, matcher: parsePattern(text) })) }), "client_not_allowed"],
    ["the rule now forwards elsewhere", (l) => void (l.rule = { ...l.rule, forward: { kind: "tcp", host: "127.0.0.1", port: 9 } }), "policy_changed"],
  ];
  for (const [what, change, reason] of changes) {
    test(`${what}: what the client sent meanwhile never reaches the backend; the connection ends, ${reason}`, async () => {
      const slow = await releasableBacklog();
      const name = `connecting-${reason}`;
      const l = new InboundListener(rule({ name, proxyProtocol: false, forward: { kind: "tcp", host: "127.0.0.1", port: slow.port } }), creds.get("spiffe://example.org/backend")!, { identity, verifier: new PeerVerifier(), logger, audit });
      const port = (l as unknown as { listener: { port: number } }).listener.port;
      const c = creds.get("spiffe://example.org/client")!;
      const sock = nodeTls.connect({ host: "127.0.0.1", port, ca: trust.allCaPem, checkServerIdentity: () => undefined, cert: chainPem(c.chain), key: c.keyPem });
      sock.on("error", () => {});
      try {
        await new Promise((r) => sock.once("secureConnect", r));
        sock.write("sent while the backend is being connected\n");
        await Bun.sleep(200); // verified, the backend's connect waiting on its full accept queue
        change(l);
        await l.recheck();
        const got = await slow.release(2500);
        expect(got.join("")).not.toContain("sent while");
        const line = await waitForLine(() => inboundLines().find((x) => x.rule === name));
        expect(line).toMatchObject({ outcome: "terminated", reason, src: { spiffe_id: "spiffe://example.org/client" } });
      } finally {
        sock.destroy();
        l.stop();
        slow.stop();
      }
    }, 15_000);
  }
});

describe("session resumption at an inbound listener", () => {
  test("a client resuming its TLS session (no certificate sent) is still checked against the rule in force: dropped from allow, it is refused", async () => {
    const plain = headBackend();
    const l = new InboundListener(rule({ name: "resume", proxyProtocol: false, forward: { kind: "tcp", host: "127.0.0.1", port: plain.port } }), creds.get("spiffe://example.org/backend")!, { identity, verifier: new PeerVerifier(), logger, audit });
    const port = (l as unknown as { listener: { port: number } }).listener.port;
    const c = creds.get("spiffe://example.org/client")!;
    let session: Buffer | undefined;
    const once = async (opts: nodeTls.ConnectionOptions): Promise<{ reused: boolean; answer: string }> => {
      const sock = nodeTls.connect({ host: "127.0.0.1", port, ca: trust.allCaPem, checkServerIdentity: () => undefined, ...opts });
      sock.on("session", (s: Buffer) => void (session = s));
      let answer = "";
      sock.on("data", (d: Buffer) => void (answer += d.toString()));
      const done = new Promise<void>((resolve) => sock.once("close", () => resolve()));
      sock.on("error", () => {});
      await new Promise((r) => sock.once("secureConnect", r));
      const reused = sock.isSessionReused();
      sock.write("GET / HTTP/1.1\r\nHost: b\r\n\r\n");
      await Promise.race([done, waitForLine(() => (answer.includes("ok") ? true : undefined), 1000).catch(() => {})]);
      sock.destroy();
      return { reused, answer };
    };
    try {
      expect(await once({ cert: chainPem(c.chain), key: c.keyPem })).toEqual({ reused: false, answer: expect.stringContaining("ok") });
      expect(session).toBeDefined();
      const resumed = await once({ session });
      expect(resumed).toEqual({ reused: true, answer: expect.stringContaining("ok") });
      l.rule = { ...l.rule, allow: ["spiffe://example.org/someone-else"].map((text) => ({ text, matcher: parsePattern(text) })) };
      expect(await once({ session })).toEqual({ reused: true, answer: "" });
      const line = await waitForLine(() => inboundLines().find((x) => x.rule === "resume" && x.outcome === "refused"));
      expect(line).toMatchObject({ reason: "client_not_allowed", src: { spiffe_id: "spiffe://example.org/client" } });
    } finally {
      l.stop();
      plain.stop(true);
    }
  });
});

describe("deadlines and protocol versions", () => {
  test("while the audit log cannot be written (on_failure refuse) a new connection is closed at once, unrecorded and unserved", async () => {
    const closed = new InboundListener(rule({ name: "closed-door" }), creds.get("spiffe://example.org/backend")!, { identity, verifier: new PeerVerifier(), logger, audit, accepting: () => false });
    try {
      const port = (closed as unknown as { listener: { port: number } }).listener.port;
      const before = { events: audit.events.length, received: received.length };
      const up = await openUpstream(plan("spiffe://example.org/backend", undefined, port), { sessions: new SessionCache(), verifier: new PeerVerifier() });
      expect(up.ok).toBe(false);
      await Bun.sleep(50);
      expect(audit.events.slice(before.events).filter((e) => e.rule === "closed-door")).toEqual([]);
      expect(received.length).toBe(before.received);
    } finally {
      closed.stop();
    }
  });

  test("a client that never starts its handshake is cut off at the deadline and logged", async () => {
    const quick = new InboundListener(rule({ name: "quick" }), creds.get("spiffe://example.org/backend")!, { identity, verifier: new PeerVerifier(), logger, audit, handshakeTimeoutMs: 200 });
    try {
      const port = (quick as unknown as { listener: { port: number } }).listener.port;
      const { promise, resolve } = Promise.withResolvers<string>();
      await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {}, close: () => resolve("closed"), end: () => resolve("ended") } });
      expect(await promise).toMatch(/closed|ended/);
      const line = await waitForLine(() => inboundLines().find((l) => l.rule === "quick"));
      expect(line).toMatchObject({ outcome: "refused", reason: "handshake_timeout", src: { spiffe_id: null } });
    } finally {
      quick.stop();
    }
  });

  test("an upstream that accepts and never answers the handshake is given up at the deadline", async () => {
    const mute = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const up = await openUpstream(plan("spiffe://example.org/backend", undefined, mute.port), { sessions: new SessionCache(), verifier: new PeerVerifier(), timeoutMs: 200 });
      expect(up).toMatchObject({ ok: false, outcome: "upstream_failed", reason: "upstream_connect_timeout" });
    } finally {
      mute.stop(true);
    }
  });

  test("the listener refuses TLS 1.2 (openssl s_client -tls1_2 with a good client SVID)", async () => {
    const dir = `${process.env.TMPDIR ?? "/tmp"}/tidegate-test-tls12-${process.pid}`;
    await Bun.$`mkdir -p ${dir}`.quiet();
    const c = creds.get("spiffe://example.org/client")!;
    await Bun.write(`${dir}/c.pem`, c.chain.map((d) => encodePem("CERTIFICATE", d)).join(""));
    await Bun.write(`${dir}/c.key`, c.keyPem);
    await Bun.write(`${dir}/ca.pem`, trust.allCaPem);
    try {
      const before = received.length;
      const p = Bun.spawn(["openssl", "s_client", "-tls1_2", "-connect", `127.0.0.1:${listenPort()}`, "-cert", `${dir}/c.pem`, "-key", `${dir}/c.key`, "-CAfile", `${dir}/ca.pem`], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
      p.stdin.write("hello\n");
      p.stdin.end();
      const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
      expect(out + err).toMatch(/protocol version|alert/i);
      expect(received.length).toBe(before);
    } finally {
      await Bun.$`rm -rf ${dir}`.quiet();
    }
  });
});

/** Like roundTrip, but resolves once `done(got)` holds, then closes. */
async function roundTripUntil(up: Socket<{ sp: unknown; early: Uint8Array[] }>, text: string, done: (got: string) => boolean): Promise<string> {
  let got = "";
  const { promise, resolve } = Promise.withResolvers<string>();
  const sink = {
    data: (c: Uint8Array) => {
      got += new TextDecoder().decode(c);
      if (done(got)) resolve(got);
    },
    drain() {},
    ended: () => resolve(got),
  };
  up.data.sp = { down: sink, up: sink, upstreamClosed: () => resolve(got), clientClosed() {}, bytesUp: () => 0, bytesDown: () => 0 };
  for (const c of up.data.early) sink.data(c);
  up.resume();
  up.write(text);
  const answer = await promise;
  up.end();
  return answer;
}

async function connectRaw(tlsExtra: { cert?: string; key?: string }): Promise<string> {
  const { promise, resolve } = Promise.withResolvers<string>();
  let got = "";
  await Bun.connect({
    hostname: "127.0.0.1",
    port: listenPort(),
    tls: { ca: trust.allCaPem, rejectUnauthorized: false, ...tlsExtra },
    socket: {
      handshake: (s) => void s.write("hello\n"),
      data: (_s, c) => void (got += new TextDecoder().decode(c)),
      close: () => resolve(got),
      end: () => resolve(got),
      error: () => resolve(got),
      connectError: () => resolve(got),
    },
  });
  return promise;
}

async function waitForLine<T>(probe: () => T | undefined, ms = 3000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`no such log line; have: ${JSON.stringify(lines.slice(-5))}`);
    await Bun.sleep(10);
  }
}

describe("a bundle change: a connection whose peer's authority the bundles no longer hold", () => {
  test("the inbound listener ends its client's connection (client_untrusted); a bundle that still holds the root, with another added, keeps it", async () => {
    const plain = headBackend();
    const name = "plain-bundle";
    const l = new InboundListener(rule({ name, proxyProtocol: false, forward: { kind: "tcp", host: "127.0.0.1", port: plain.port } }), creds.get("spiffe://example.org/backend")!, { identity, verifier: new PeerVerifier(), logger, audit });
    const before = trust;
    try {
      const c = await keptAlive(l);
      await c.request("/1");
      // A rotation that adds a root: the one that vouched for the client is still there.
      trust = { ...before, generation: before.generation + 1, bundles: BundleSet.of(Bundle.create(TD, { x509Authorities: [ca.root.der, evil.root.der] })) };
      expect(await l.recheck()).toEqual({ cut: 0, failed: 0, error: null });
      await c.request("/2");
      // Then the old root taken out (another root of the same trust-domain name only).
      trust = trustOf(evil, before.generation + 2);
      expect(await l.recheck()).toEqual({ cut: 1, failed: 0, error: null });
      await c.closed;
      const line = await waitForLine(() => inboundLines().find((x) => x.rule === name));
      expect(line).toMatchObject({ outcome: "terminated", reason: "client_untrusted", detail: "the bundles in force no longer hold the authority that vouched for spiffe://example.org/client (a bundle change)" });
    } finally {
      trust = before;
      l.stop();
      plain.stop(true);
    }
  });

  test("the egress leg knows the authority its peer's path ended at: held while a bundle keeps it, not once it is gone", async () => {
    const up = await openUpstream(plan("spiffe://example.org/backend"), deps);
    if (!up.ok) throw new Error(`not ok: ${up.reason} ${up.detail}`);
    up.socket.end();
    expect(up.peer?.id.toString()).toBe("spiffe://example.org/backend");
    const anchor = up.peer!.anchor;
    expect(Buffer.from(anchor).equals(Buffer.from(ca.root.der))).toBe(true);
    expect(stillAnchored(trustOf(ca, 9).bundles, up.peer!.id, anchor)).toBe(true);
    expect(stillAnchored(BundleSet.of(Bundle.create(TD, { x509Authorities: [evil.root.der, ca.root.der] })), up.peer!.id, anchor)).toBe(true);
    expect(stillAnchored(trustOf(evil, 9).bundles, up.peer!.id, anchor)).toBe(false);
    expect(stillAnchored(trustOf(ca, 9, TrustDomain.parse("other.org")).bundles, up.peer!.id, anchor)).toBe(false); // no bundle for its trust domain
  });
});

describe("a reset passes through an inbound splice as a reset, never as an orderly end", () => {
  /** A listener forwarding to `backendPort` (no PROXY header) and a client leg to it, the line written; `fn` then runs. */
  async function through<T>(backendPort: number, fn: (up: Socket<{ sp: unknown; early: Uint8Array[] }>, l: InboundListener) => Promise<T>): Promise<T> {
    const l = new InboundListener(rule({ name: "reset-in", forward: { kind: "tcp", host: "127.0.0.1", port: backendPort }, proxyProtocol: false }), creds.get("spiffe://example.org/backend")!, { identity, verifier: new PeerVerifier(), logger, audit });
    try {
      const up = await openUpstream(plan("spiffe://example.org/backend", undefined, (l as unknown as { listener: { port: number } }).listener.port), { sessions: new SessionCache(), verifier: new PeerVerifier() });
      if (!up.ok) throw new Error(`not ok: ${up.reason} ${up.detail}`);
      return await fn(up.socket as never, l);
    } finally {
      l.stop();
    }
  }

  /** Sends `line`; what came back, and whether the leg then saw a reset (true) or an orderly end (false). */
  async function answerOf(up: Socket<{ sp: unknown; early: Uint8Array[] }>, line: string): Promise<{ got: string; reset: boolean }> {
    let got = "";
    const done = Promise.withResolvers<boolean>();
    const sink = { data: (c: Uint8Array) => void (got += new TextDecoder().decode(c)), drain() {}, ended: () => done.resolve(false) };
    up.data.sp = { down: sink, up: sink, upstreamClosed: (reset = false) => done.resolve(reset), clientClosed() {}, bytesUp: () => 0, bytesDown: () => 0 };
    for (const c of up.data.early) sink.data(c);
    up.resume();
    up.write(line);
    const reset = await done.promise;
    return { got, reset };
  }

  test("the backend resets mid-answer: the client gets what came, then a reset; recorded backend_failed", async () => {
    const b = cuttingServer("the first half of a close-delimited answer", false);
    try {
      const before = inboundLines().length;
      const out = await through(b.port, (up) => answerOf(up, "GET / HTTP/1.0\r\n\r\n"));
      expect(out).toEqual({ got: "the first half of a close-delimited answer", reset: true });
      const line = await waitForLine(() => inboundLines().slice(before).find((l) => l.rule === "reset-in"));
      expect(line).toMatchObject({ outcome: "backend_failed", detail: "the backend reset its connection" });
    } finally {
      b.stop(true);
    }
  });

  test("an orderly end stays one", async () => {
    const b = cuttingServer("a whole answer", true);
    try {
      expect(await through(b.port, (up) => answerOf(up, "GET / HTTP/1.0\r\n\r\n"))).toEqual({ got: "a whole answer", reset: false });
    } finally {
      b.stop(true);
    }
  });

  test("the client resets mid-upload: the backend gets a reset, not a FIN that would end the upload as if whole", async () => {
    const b = endWatcher();
    try {
      await through(b.port, async (up) => {
        up.data.sp = { down: { data() {}, drain() {}, ended() {} }, up: { data() {}, drain() {}, ended() {} }, upstreamClosed() {}, clientClosed() {}, bytesUp: () => 0, bytesDown: () => 0 };
        up.resume();
        up.write("PUT /file HTTP/1.0\r\n\r\nhalf of the up");
        await Bun.sleep(100);
        up.terminate();
        await waitForLine(() => (b.seen() !== "none" ? true : undefined));
      });
      expect(b.seen()).toBe("ECONNRESET");
    } finally {
      b.stop(true);
    }
  });
});
