// No interception leaf for a connection the proxy does not intercept (docs/security-review.md,
// "Leaves"): through the real egress listener and real upstreams on loopback, connections that
// pass through (plain and the workload's own TLS), are wrapped in TLS or mTLS, or are refused at
// any step never reach the interception CA: its `leafFor` is never called and its leaf cache stays
// empty. Each refused TLS client trusts the interception CA, so a leaf served by mistake would let
// its handshake succeed. The last tests are the controls: an intercepted TLS connection does get
// one, for its SNI, or without one for the address it dialled.
import type { Socket, TCPSocketListener } from "bun";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestCa } from "../../test/helpers/test-ca.ts";
import { memoryAudit } from "../audit/sink/memory-audit.ts";
import { InterceptionCa } from "../intercept/ca.ts";
import { parseIp } from "../policy/address.ts";
import { PolicyEngine } from "../policy/engine.ts";
import { loadPolicy } from "../policy/load.ts";
import { createLogger } from "../runtime/log.ts";
import { SpiffeId, TrustDomain } from "../spiffe/index.ts";
import { chainPem } from "../x509/pem.ts";
import type { CaptureRecord, EgressListener, Identified } from "./egress-listener.ts";
import { startEgressOnFreePort } from "./bounds-test-kit.ts";
import type { IdentitySource } from "./identity-source.ts";
import { ascii, minimalHello, serverNameExt } from "./peek/hello-bytes.ts";
import { credentialOf, trustOf } from "./test-identity.ts";

const TD = TrustDomain.parse("example.org");
const W = SpiffeId.parse("spiffe://example.org/w");
const BACKEND = "spiffe://example.org/backend";
const REQUEST = "GET / HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n";
/** The ports the workload "dialled" (the kernel's record); each names one rule below. */
const DIAL = { passPlain: 8001, passTls: 8002, tls: 8003, mtls: 8004, deny: 8005, intercept: 8006, noRule: 8007, interceptByAddress: 8008 } as const;

let dir = "";
let agentCa: InterceptionCa;
let agentCaPem = "";
let apiCaPem = "";
/** Every server name the listener asked the interception CA for. */
const leafCalls: string[] = [];
const audit = memoryAudit();
let listener: EgressListener;
const upstreams: TCPSocketListener<unknown>[] = [];
/** Connections each upstream accepted, by name. */
const accepted = { plain: 0, tls: 0, mtls: 0 };
/** What the next connection's kernel record says, and whether the caller has an identity. */
let record: CaptureRecord | null = null;
let identified: Identified = { ok: true, id: W, workload: "w" };

const ANSWER = "HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\nupstream";

/** An HTTP/1.1 upstream on 127.0.0.1 (TLS with `tls`): answers once a request head is in. */
function upstream(which: keyof typeof accepted, tls?: { cert: string; key: string }): number {
  const l = Bun.listen<{ buf: string }>({
    hostname: "127.0.0.1",
    port: 0,
    ...(tls !== undefined ? { tls } : {}),
    socket: {
      open: (s) => {
        accepted[which]++;
        s.data = { buf: "" };
      },
      data(s, chunk) {
        s.data.buf += chunk.toString();
        if (s.data.buf.includes("\r\n\r\n")) {
          s.write(ANSWER);
          s.end();
        }
      },
    },
  });
  upstreams.push(l as TCPSocketListener<unknown>);
  return l.port;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tidegate-test-leaf-scope-"));
  agentCa = await InterceptionCa.open({ stateDir: join(dir, "agent"), label: "agent" });
  agentCaPem = agentCa.certPem;
  // The third party's own CA (another interception CA instance: any CA that mints for a name will do).
  const apiCa = await InterceptionCa.open({ stateDir: join(dir, "api"), label: "api" });
  apiCaPem = apiCa.certPem;
  const apiCaFile = join(dir, "api-ca.pem");
  writeFileSync(apiCaFile, apiCaPem);
  const apiLeaf = await apiCa.leafFor("api.test");

  const spiffeCa = await createTestCa();
  const client = await credentialOf(await spiffeCa.mintLeaf("/w"));
  const backend = await credentialOf(await spiffeCa.mintLeaf("/backend"));
  const trust = trustOf(spiffeCa);
  const identity: IdentitySource = { svid: (id) => (id === W.toString() ? client : null), trust: () => trust };

  const plainPort = upstream("plain");
  const tlsPort = upstream("tls", { cert: apiLeaf.certPem, key: apiLeaf.keyPem });
  const mtlsPort = upstream("mtls", { cert: chainPem(backend.chain), key: backend.keyPem });
  const rule = (name: string, port: number, action: string, extra: string, to = "host: api.test") => `  - { name: ${name}, from: ${W.toString()}, to: { ${to}, port: ${port} }, action: ${action}${extra} }\n`;
  const engine = new PolicyEngine(
    loadPolicy(
      `trust_domain: example.org\negress:\n${[
        rule("pass-plain", DIAL.passPlain, "passthrough", `, upstream: { port: ${plainPort} }`),
        rule("pass-tls", DIAL.passTls, "passthrough", `, upstream: { port: ${tlsPort} }`),
        rule("tls", DIAL.tls, "tls", `, ca: ${apiCaFile}, upstream: { port: ${tlsPort} }`),
        rule("mtls", DIAL.mtls, "mtls", `, mtls: { server_id: "${BACKEND}" }, upstream: { port: ${mtlsPort} }`),
        rule("deny", DIAL.deny, "deny", ""),
        rule("intercept", DIAL.intercept, "intercept", `, ca: ${apiCaFile}, upstream: { port: ${tlsPort} }`),
        // decides without a name: for connections that give none
        rule("intercept-by-address", DIAL.interceptByAddress, "intercept", `, ca: ${apiCaFile}, upstream: { port: ${tlsPort} }`, "cidr: 127.0.0.1/32"),
      ].join("")}`,
      "leaf-scope.yaml",
    ),
  );
  const deps = {
    lookupRecord: () => record,
    identify: async () => identified,
    engine: () => engine,
    names: () => ({ resolve: async (n: string) => (n === "api.test" ? [parseIp("127.0.0.1")] : []) }),
    identity,
    intercept: {
      leafFor: (name: string) => {
        leafCalls.push(name);
        return agentCa.leafFor(name);
      },
      secret: () => null,
    },
    logger: createLogger({ write: () => {} }),
    audit,
  };
  listener = startEgressOnFreePort(deps);
});

afterAll(() => {
  listener?.stop();
  for (const u of upstreams) u.stop(true);
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

/** The next connection comes from workload w's process 42, to 127.0.0.1:`port`. */
function dialled(port: number): void {
  record = { address: parseIp("127.0.0.1"), port, proto: "tcp", pid: 42, tgid: 42, uid: 1000, gid: 1000, cgroupId: 7n };
  identified = { ok: true, id: W, workload: "w" };
}

/** Writes `send` and resolves with what came back once the listener closed. */
function plain(send: string | Uint8Array): Promise<string> {
  const { promise, resolve } = Promise.withResolvers<string>();
  let got = "";
  void Bun.connect({
    hostname: "127.0.0.1",
    port: listener.port,
    socket: {
      open: (s) => void s.write(send),
      data: (_s, d) => void (got += d.toString()),
      close: () => resolve(got),
      end: () => resolve(got),
      error: () => resolve(got),
      connectError: () => resolve(got),
    },
  });
  return promise;
}

interface TlsOutcome {
  /** The handshake completed and the chain verified against `ca` for api.test. */
  readonly verified: boolean;
  readonly got: string;
}

/** A real TLS client for api.test trusting only `ca`: sends a request once verified, reads until closed. */
function tlsClient(ca: string, serverName: string | null = "api.test"): Promise<TlsOutcome> {
  const { promise, resolve } = Promise.withResolvers<TlsOutcome>();
  let got = "";
  let verified = false;
  const done = () => resolve({ verified, got });
  void Bun.connect({
    hostname: "127.0.0.1",
    port: listener.port,
    tls: { ca, rejectUnauthorized: false, ...(serverName !== null ? { serverName } : {}) },
    socket: {
      handshake(s: Socket<undefined>, authorized) {
        verified = authorized;
        if (authorized) s.write(REQUEST);
        else s.end();
      },
      data: (_s, d) => void (got += d.toString()),
      close: done,
      end: done,
      error: done,
      connectError: done,
    },
  }).catch(done);
  return promise;
}

/** The one conn_close written since `before` events, once it is there. */
async function closeSince(before: number): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const closes = audit.events.slice(before).filter((e) => e.type === "conn_close");
    if (closes.length > 0) {
      await Bun.sleep(20); // nothing else of this connection may follow
      expect(audit.events.slice(before).filter((e) => e.type === "conn_close")).toHaveLength(1);
      return closes[0]!;
    }
    await Bun.sleep(10);
  }
  throw new Error("no conn_close within 10 s");
}

function expectNoLeaf(): void {
  expect(leafCalls).toEqual([]);
  expect(agentCa.cachedLeaves).toBe(0);
}

describe("no interception leaf for a connection the proxy does not intercept", () => {
  test("passthrough of plain HTTP: forwarded to the upstream, no leaf", async () => {
    dialled(DIAL.passPlain);
    const before = audit.events.length;
    const opened = accepted.plain;
    expect(await plain(REQUEST)).toEndWith("upstream");
    expect(await closeSince(before)).toMatchObject({ rule: "pass-plain", action: "passthrough", outcome: "forwarded" });
    expect(accepted.plain).toBe(opened + 1);
    expectNoLeaf();
  });

  test("passthrough of the workload's own TLS: it verifies the upstream's own certificate end to end, no leaf", async () => {
    dialled(DIAL.passTls);
    const before = audit.events.length;
    const r = await tlsClient(apiCaPem);
    expect(r).toEqual({ verified: true, got: expect.stringMatching(/upstream$/) as unknown as string });
    expect(await closeSince(before)).toMatchObject({ rule: "pass-tls", action: "passthrough", outcome: "forwarded", dst: { name: "api.test" } });
    expectNoLeaf();
  });

  test("tls: the workload's plaintext wrapped in TLS verified against the rule's ca, no leaf", async () => {
    dialled(DIAL.tls);
    const before = audit.events.length;
    expect(await plain(REQUEST)).toEndWith("upstream");
    expect(await closeSince(before)).toMatchObject({ rule: "tls", action: "tls", outcome: "forwarded" });
    expectNoLeaf();
  });

  test("mtls: the workload's plaintext over mTLS with its SVID to server_id, no leaf", async () => {
    dialled(DIAL.mtls);
    const before = audit.events.length;
    const opened = accepted.mtls;
    expect(await plain(REQUEST)).toEndWith("upstream");
    expect(await closeSince(before)).toMatchObject({ rule: "mtls", action: "mtls", outcome: "forwarded", peer_id: BACKEND });
    expect(accepted.mtls).toBe(opened + 1);
    expectNoLeaf();
  });

  // Refusals: a TLS client that trusts the interception CA itself; a leaf served by mistake would
  // complete its handshake.
  const refusals: [string, () => void, Record<string, unknown>][] = [
    ["TLS to a tls rule (tls_in_tls)", () => dialled(DIAL.tls), { rule: "tls", outcome: "refused", reason: "tls_in_tls" }],
    ["TLS to a deny rule", () => dialled(DIAL.deny), { rule: "deny", decision: "deny", outcome: "refused" }],
    ["TLS where no rule matches (default deny)", () => dialled(DIAL.noRule), { rule: null, decision: "deny", outcome: "refused" }],
    ["TLS without a kernel record (no_record)", () => void (record = null), { outcome: "refused", reason: "no_record" }],
    [
      "TLS from a process that is not its cgroup's workload",
      () => {
        dialled(DIAL.intercept);
        identified = { ok: false, workload: "w", reason: "identity_mismatch", detail: "test" };
      },
      { outcome: "refused", reason: "identity_mismatch" },
    ],
  ];
  for (const [what, setUp, expected] of refusals) {
    test(`${what}: refused, the handshake never completes, no leaf`, async () => {
      setUp();
      const before = audit.events.length;
      const r = await tlsClient(agentCaPem);
      expect(r).toEqual({ verified: false, got: "" });
      expect(await closeSince(before)).toMatchObject(expected);
      expectNoLeaf();
    });
  }

  test("a ClientHello with a forbidden SNI byte to an intercept rule: refused while peeking, no leaf", async () => {
    dialled(DIAL.intercept);
    const before = audit.events.length;
    expect(await plain(minimalHello(serverNameExt([...ascii("api"), 1, ...ascii(".test")])))).toBe("");
    expect(await closeSince(before)).toMatchObject({ outcome: "refused", reason: "peek_tls_bad_sni" });
    expectNoLeaf();
  });

  test("bytes neither TLS nor HTTP to an intercept rule: refused (not_http), no leaf", async () => {
    dialled(DIAL.interceptByAddress);
    const before = audit.events.length;
    expect(await plain("\x00\x01\x02 not a protocol\r\n\r\n")).toBe("");
    expect(await closeSince(before)).toMatchObject({ rule: "intercept-by-address", outcome: "refused", reason: "not_http" });
    expectNoLeaf();
  });

  test("plain HTTP to an intercept rule is intercepted without a leaf: there is no TLS to terminate", async () => {
    dialled(DIAL.intercept);
    const before = audit.events.length;
    expect(await plain(REQUEST)).toEndWith("upstream");
    expect(await closeSince(before)).toMatchObject({ rule: "intercept", action: "intercept", tls_terminated: false });
    expectNoLeaf();
  });

  // Last: it fills the cache the tests above saw empty.
  test("control: TLS with SNI to an intercept rule gets a leaf for its name, once", async () => {
    dialled(DIAL.intercept);
    const before = audit.events.length;
    const r = await tlsClient(agentCaPem);
    expect(r.verified).toBe(true);
    expect(r.got).toEndWith("upstream");
    expect(await closeSince(before)).toMatchObject({ rule: "intercept", action: "intercept", tls_terminated: true });
    expect(leafCalls).toEqual(["api.test"]);
    expect(agentCa.cachedLeaves).toBe(1);
  });

  test("TLS without SNI (a client of https://127.0.0.1) to an intercept rule by address: the leaf names the dialled address", async () => {
    dialled(DIAL.interceptByAddress);
    const before = audit.events.length;
    const r = await tlsClient(agentCaPem, null); // Bun sends the IP as SNI, which counts as none
    expect(r.verified).toBe(true); // verified for 127.0.0.1: the leaf's one SAN is that IP
    expect(await closeSince(before)).toMatchObject({ rule: "intercept-by-address", action: "intercept", tls_terminated: true });
    expect(leafCalls).toEqual(["api.test", "127.0.0.1"]);
    expect(agentCa.cachedLeaves).toBe(2);
  });
});
