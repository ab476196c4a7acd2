// A bundle change reaches an intercepted connection's mTLS leg (exchange.ts `legUntrusted`):
// through the real egress listener, a workload's plain HTTP intercepted and re-originated over mTLS
// to a Bun upstream whose SVID a test CA signed. A request in progress on a leg whose peer's
// authority the bundles no longer hold is cut (peer_untrusted); a kept-alive leg between requests
// is closed instead, and the next request takes a new one; a rotation that keeps the root cuts
// nothing.
import type { TCPSocketListener } from "bun";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createTestCa, type TestCa } from "../../../test/helpers/test-ca.ts";
import { memoryAudit } from "../../audit/sink/memory-audit.ts";
import { InterceptionCa } from "../../intercept/ca.ts";
import { parseIp } from "../../policy/address.ts";
import { PolicyEngine } from "../../policy/engine.ts";
import { loadPolicy } from "../../policy/load.ts";
import { createLogger } from "../../runtime/log.ts";
import { Bundle, BundleSet, SpiffeId, TrustDomain } from "../../spiffe/index.ts";
import { chainPem } from "../../x509/pem.ts";
import type { EgressListener } from "../egress-listener.ts";
import { startEgressOnFreePort } from "../bounds-test-kit.ts";
import type { IdentitySource, TrustNow } from "../identity-source.ts";
import { credentialOf, trustOf } from "../test-identity.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const TD = TrustDomain.parse("example.org");
const W = SpiffeId.parse("spiffe://example.org/w");
const BACKEND = "spiffe://example.org/backend";
const DIAL = 8080;

let dir = "";
let ca: TestCa;
let other: TestCa;
let trust: TrustNow;
let listener: EgressListener;
let upstream: TCPSocketListener<{ buf: string }>;
const audit = memoryAudit();
/** Connections the upstream accepted, and of those, closed. */
let accepted = 0;
let upstreamClosed = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tidegate-test-leg-bundle-"));
  const agentCa = await InterceptionCa.open({ stateDir: join(dir, "agent"), label: "agent" });
  ca = await createTestCa();
  other = await createTestCa();
  const client = await credentialOf(await ca.mintLeaf("/w"));
  const backend = await credentialOf(await ca.mintLeaf("/backend"));
  trust = trustOf(ca);
  const identity: IdentitySource = { svid: (id) => (id === W.toString() ? client : null), trust: () => trust };
  // GET /slow: the head and a first chunk, then nothing until the client goes; any other: whole.
  upstream = Bun.listen<{ buf: string }>({
    hostname: "127.0.0.1",
    port: 0,
    tls: { cert: chainPem(backend.chain), key: backend.keyPem, requestCert: true, rejectUnauthorized: false },
    socket: {
      open: (s) => {
        accepted++;
        s.data = { buf: "" };
      },
      close: () => void upstreamClosed++,
      data(s, chunk) {
        s.data.buf += chunk.toString();
        const end = s.data.buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const slow = s.data.buf.startsWith("GET /slow ");
        s.data.buf = s.data.buf.slice(end + 4);
        s.write(slow ? "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n" : "HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\ndone");
      },
    },
  });
  const engine = new PolicyEngine(loadPolicy(`trust_domain: example.org\negress:\n  - { name: api, from: ${W.toString()}, to: { host: api.test, port: ${DIAL} }, action: intercept, mtls: { server_id: "${BACKEND}" }, upstream: { port: ${upstream.port} } }\n`, "leg-bundle.yaml"));
  const deps = {
    lookupRecord: () => ({ address: parseIp("127.0.0.1"), port: DIAL, proto: "tcp" as const, pid: 42, tgid: 42, uid: 1000, gid: 1000, cgroupId: 7n }),
    identify: async () => ({ ok: true as const, id: W, workload: "w" }),
    engine: () => engine,
    names: () => ({ resolve: async (n: string) => (n === "api.test" ? [parseIp("127.0.0.1")] : []) }),
    identity,
    intercept: { leafFor: (name: string) => agentCa.leafFor(name), secret: () => null },
    logger: createLogger({ write: () => {} }),
    audit,
  };
  listener = startEgressOnFreePort(deps);
});

afterAll(() => {
  listener?.stop();
  upstream?.stop(true);
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

/** A plain connection to the listener, as workload w dialling api.test: what came back so far, and how it ended. */
async function workload(): Promise<{ send(text: string): void; got(): string; until(text: string): Promise<void>; ended: Promise<string>; close(): void }> {
  let got = "";
  const { promise: ended, resolve } = Promise.withResolvers<string>();
  const s = await Bun.connect({
    hostname: "127.0.0.1",
    port: listener.port,
    socket: { data: (_s, d) => void (got += d.toString()), close: () => resolve("closed"), end: () => resolve("ended"), error: (_s, e) => resolve((e as { code?: string }).code ?? "error") },
  });
  return {
    send: (t) => void s.write(t),
    got: () => got,
    until: async (text) => {
      const deadline = Date.now() + 5000;
      while (!got.includes(text) && Date.now() < deadline) await Bun.sleep(10);
      if (!got.includes(text)) throw new Error(`no ${JSON.stringify(text)} within 5 s; got ${JSON.stringify(got)}`);
    },
    ended,
    close: () => s.terminate(),
  };
}

const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: api.test\r\n\r\n`;
const closes = (from: number) => audit.events.slice(from).filter((e) => e.type === "conn_close");
/** Bundles of `cas`, one generation on from those in force. */
const bundlesOf = (...cas: TestCa[]): TrustNow => ({ ...trust, generation: trust.generation + 1, bundles: BundleSet.of(Bundle.create(TD, { x509Authorities: cas.map((c) => c.root.der) })) });

describe("a bundle change and an intercepted connection's mTLS leg", () => {
  test("a rotation that adds a root keeps a request in progress; once the leg's root is gone, the request is cut: peer_untrusted, naming the peer", async () => {
    const from = audit.events.length;
    const w = await workload();
    const before = trust;
    try {
      w.send(get("/slow"));
      await w.until("first");
      trust = bundlesOf(ca, other);
      expect(await listener.recheck()).toEqual({ cut: 0, failed: 0, error: null });
      trust = bundlesOf(other);
      expect(await listener.recheck()).toEqual({ cut: 1, failed: 0, error: null });
      await w.ended;
      const [close] = closes(from);
      expect(close).toMatchObject({ rule: "api", outcome: "terminated", reason: "peer_untrusted", detail: `the bundles in force no longer hold the authority that vouched for ${BACKEND} (a bundle change)` });
    } finally {
      trust = before;
      w.close();
    }
  });

  test("between requests the kept-alive leg is closed instead, not pooled; the connection's next request takes a new leg, refused while the root is gone", async () => {
    const from = audit.events.length;
    const w = await workload();
    const before = trust;
    try {
      w.send(get("/a"));
      await w.until("done");
      const [opened, shut] = [accepted, upstreamClosed];
      trust = bundlesOf(other);
      expect(await listener.recheck()).toEqual({ cut: 0, failed: 0, error: null });
      const deadline = Date.now() + 5000;
      while (upstreamClosed === shut && Date.now() < deadline) await Bun.sleep(10);
      expect(upstreamClosed).toBe(shut + 1);
      expect(closes(from)).toEqual([]);
      w.send(get("/b"));
      await w.until("tidegate: peer_untrusted");
      expect(w.got()).toContain("HTTP/1.1 502 Bad Gateway\r\n");
      expect(accepted).toBe(opened + 1);
      await w.ended;
      expect(closes(from)).toMatchObject([{ rule: "api", outcome: "refused", reason: "peer_untrusted", requests: 2 }]);
    } finally {
      trust = before;
      w.close();
    }
  });
});
