// For the interception tests: a stand-in for the egress listener that peeks at each connection's
// first bytes, as the listener does, and hands it to serveIntercept, over real sockets. The
// "third-party API" is the test's own TLS server with a leaf for api.test from its own CA (given
// to rules as `ca`); the workload's connections are raw sockets, so requests can be written byte
// for byte.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Socket } from "bun";
import tls from "node:tls";
import { InterceptionCa } from "../../intercept/ca.ts";
import { loadPolicy } from "../../policy/load.ts";
import { PolicyEngine } from "../../policy/engine.ts";
import { NameCache } from "../../policy/name-cache.ts";
import { parseIp } from "../../policy/address.ts";
import { SpiffeId } from "../../spiffe/id.ts";
import { SessionLists } from "../../mcp/index.ts";
import { createLogger } from "../../runtime/log.ts";
import { peek, PeekError, type PeekResult } from "../peek/peek.ts";
import { PeerVerifier } from "../peer-verifier.ts";
import { SessionCache } from "../session-cache.ts";
import type { Splice } from "../splice.ts";
import { legTlsOf } from "../egress-listener.ts";
import type { LegPool } from "./leg-pool.ts";
import { serveIntercept } from "./serve.ts";
import { memoryAudit } from "../../audit/sink/memory-audit.ts";
import { connAudit } from "../conn-audit.ts";
import { InFlight, type Tracked } from "../in-flight.ts";
import type { ProxySettings } from "../../policy/model.ts";

export const CALLER = SpiffeId.parse("spiffe://example.org/w");

interface TestConn {
  tracked: Tracked;
  buf: Uint8Array[];
  sp: Splice | null;
  ended: boolean;
  closed: boolean;
  started: boolean;
}

export interface Harness {
  readonly dir: string;
  /** PEM file of the API's CA (for rules' `ca`) and of the agent's interception CA (for clients). */
  readonly apiCaFile: string;
  readonly agentCaFile: string;
  /** Leaf and key for api.test, chain included, for the test's API server. */
  readonly apiTls: { cert: string; key: string };
  /** The audit events (`{ type, ...fields }`), each checked against the event schema. */
  readonly lines: Record<string, unknown>[];
  /** Starts the proxy with this policy; the workload "dialled" port 443 for TLS, else 80. */
  start(policy: string, opts: StartOptions): number;
  /** Puts this policy in force, as an agent's reload does (connections already open go on; `inFlight.recheck` asks them). */
  reload(policy: string): void;
  /** The connections served, as the egress listener tracks them (drain, cut). */
  readonly inFlight: InFlight;
  stop(): void;
}

interface StartOptions {
  secrets: Record<string, string>;
  pool?: LegPool;
  accepting?: () => boolean;
  /** Whether workload "w" still has CALLER's identity (asked at each request); absent: not asked, and no workload named. */
  identified?: () => boolean;
  /** `proxy:` bounds (tests shorten them). */
  timeouts?: ProxySettings;
}

export async function createHarness(): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), "tidegate-test-intercept-"));
  const audit = memoryAudit();
  const lines = audit.events;
  const logger = createLogger({ write: () => {} });
  const apiCa = await InterceptionCa.open({ stateDir: join(dir, "api-ca"), label: "api" });
  const agentCa = await InterceptionCa.open({ stateDir: join(dir, "agent-ca"), label: "agent" });
  const leaf = await apiCa.leafFor("api.test");
  const apiCaFile = join(dir, "api-ca.pem");
  const agentCaFile = join(dir, "agent-ca.pem");
  writeFileSync(apiCaFile, apiCa.certPem);
  writeFileSync(agentCaFile, agentCa.certPem);
  let proxy: { stop(force?: boolean): void } | null = null;
  let pool: LegPool | undefined;
  const inFlight = new InFlight();
  let engine: PolicyEngine | null = null;

  const start = (policyText: string, opts: StartOptions): number => {
    pool = opts.pool;
    engine = new PolicyEngine(loadPolicy(policyText, "t.yaml"));
    const names = new NameCache({ hosts: new Map([["api.test", [parseIp("127.0.0.1")]]]), lookup: async () => ({ addresses: [], ttl: 30 }) });
    const t = opts.timeouts;
    const upstream = { sessions: new SessionCache(), verifier: new PeerVerifier(), ...(t !== undefined ? { timeoutMs: t.connectTimeoutMs } : {}) };
    const intercept = { leafFor: (n: string) => agentCa.leafFor(n), secret: (n: string) => opts.secrets[n] ?? null, sessions: new SessionLists(), ...(opts.pool !== undefined ? { legs: opts.pool } : {}) };
    const deps = { engine: () => engine, names: () => names, intercept, logger, audit, ...(opts.accepting !== undefined ? { accepting: opts.accepting } : {}), ...(t !== undefined ? { timeouts: () => t } : {}), ...(opts.identified !== undefined ? { stillIdentified: opts.identified } : {}) };
    const listener = Bun.listen<TestConn>({
      hostname: "127.0.0.1",
      port: 0,
      allowHalfOpen: true,
      socket: {
        open: (s) => void (s.data = { tracked: inFlight.open(connAudit(audit, "egress"), () => s.terminate()), buf: [], sp: null, ended: false, closed: false, started: false }),
        data(s, chunk) {
          const c = s.data;
          if (c.sp !== null) return c.sp.up.data(chunk);
          c.buf.push(new Uint8Array(chunk));
          if (c.started) return;
          const early = Buffer.concat(c.buf);
          let first: PeekResult;
          try {
            first = peek(new Uint8Array(early));
          } catch (e) {
            // The listener refuses (and logs) a first request that breaks HTTP/1.1 while peeking.
            if (e instanceof PeekError) return void (c.tracked.events.close({ outcome: "refused", reason: e.code }), s.end());
            throw e;
          }
          if (first.kind === "need_more") return;
          c.started = true;
          const port = first.kind === "tls" ? 443 : 80;
          void serveIntercept({
            socket: s as Socket<unknown>,
            conn: c,
            early: new Uint8Array(early),
            first,
            caller: { record: { address: parseIp("127.0.0.1"), port }, id: CALLER },
            fields: { spiffe_id: CALLER.toString(), pid: 1, ...(opts.identified !== undefined ? { workload: "w" } : {}) },
            deps,
            upstream,
            events: c.tracked.events,
            legTls: (spec) => legTlsOf(spec, CALLER, { lookupRecord: () => null, identify: async () => ({ ok: false, workload: null, reason: "", detail: "" }), engine: () => engine, names: () => names, logger, audit }),
          });
        },
        drain: (s) => s.data.sp?.down.drain(),
        end(s) {
          if (s.data.sp !== null) return s.data.sp.up.ended();
          s.data.ended = true;
        },
        close(s) {
          s.data.closed = true;
          s.data.sp?.clientClosed();
        },
      },
    });
    proxy = listener;
    return listener.port;
  };

  return {
    dir,
    apiCaFile,
    agentCaFile,
    apiTls: { cert: leaf.certPem + apiCa.certPem, key: leaf.keyPem },
    lines,
    start,
    reload: (policyText) => void (engine = new PolicyEngine(loadPolicy(policyText, "t.yaml"))),
    inFlight,
    stop() {
      proxy?.stop(true);
      pool?.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Writes `text` to `port` and reads until the server closes or `until` matches. */
export async function exchange(port: number, text: string, until?: (got: string) => boolean): Promise<string> {
  let got = "";
  const { promise, resolve } = Promise.withResolvers<string>();
  let rest = new TextEncoder().encode(text);
  const push = (sock: { write(b: Uint8Array): number }) => {
    if (rest.length > 0) rest = rest.subarray(Math.max(0, sock.write(rest)));
  };
  const s = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(_s, c) {
        got += new TextDecoder().decode(c);
        if (until?.(got)) resolve(got);
      },
      drain: (sock) => push(sock),
      close: () => resolve(got),
      end: () => resolve(got),
    },
  });
  push(s);
  const out = await promise;
  s.end();
  return out;
}

/** An intercept rule for api.test on `port` that injects `Authorization: Bearer ${secret:api_token}`. */
export function apiRule(name: string, port: number, h: Harness, apiPort: number, extra = ""): string {
  return `  - name: ${name}
    from: spiffe://example.org/w
    to: { host: api.test, port: ${port} }
    action: intercept
    ca: ${h.apiCaFile}
    upstream: { port: ${apiPort} }
    inject: { headers: { Authorization: "Bearer \${secret:api_token}" } }
${extra}`;
}

/** A stand-in API that speaks raw HTTP/1.1 (rawApi), with the proxy started toward it. */
export interface RawApi {
  /** The port the workload's connections go to (the proxy's). */
  readonly proxyPort: number;
  /** The bytes each connection to the API sent so far, in order of connection. */
  readonly received: string[];
  close(): void;
}

/**
 * For tests of the bytes a leg carries: a TLS server with `h`'s api.test leaf that records what
 * each connection sends and calls `onData(socket, all it sent so far, its index)` on each read, to
 * answer by hand; and the proxy started on one rule `api` toward it (apiRule, `extra` its further
 * lines), the secret api_token in the store.
 */
export async function rawApi(h: Harness, onData: (s: tls.TLSSocket, sent: string, i: number) => void, extra = ""): Promise<RawApi> {
  const received: string[] = [];
  const api = tls.createServer({ cert: h.apiTls.cert, key: h.apiTls.key }, (s) => {
    const i = received.push("") - 1;
    s.on("data", (d: Buffer) => {
      received[i] += d.toString("latin1");
      onData(s, received[i]!, i);
    });
    s.on("error", () => {});
  });
  await new Promise<void>((r) => api.listen(0, "127.0.0.1", r));
  const proxyPort = h.start(`trust_domain: example.org\negress:\n${apiRule("api", 80, h, (api.address() as { port: number }).port, extra)}`, { secrets: { api_token: "t0ken-value" } });
  return { proxyPort, received, close: () => void api.close() };
}

