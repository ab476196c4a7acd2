/**
 * A stand-in identity server for the agent's unit tests (never shipped): the wire protocol of
 * docs/server-api.md over real TLS on 127.0.0.1, with a test CA, an injectable clock and switches
 * for faults (a wrong SPIFFE ID, another root, error answers, going down). The agent's
 * integration test (agent.integration.test.ts) uses the real server instead.
 */
import tls from "node:tls";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { createTestCa, type TestAuthority, type TestCa } from "../../test/helpers/test-ca.ts";
import { Bundle, BundleSet, SpiffeId, TrustDomain, formatJwksBundle } from "../spiffe/index.ts";
import { encodePem, exportPkcs8Pem, fromBase64, signCsr, toBase64, verifyX509Svid } from "../x509/index.ts";
import { sha256Hex } from "./trust.ts";
import type { Entry } from "./wire.ts";

export interface Fault {
  status: number;
  code: string;
  retryAfter?: number;
}

export interface StandIn {
  readonly td: TrustDomain;
  readonly publicUrl: string;
  readonly apiPort: number;
  readonly fingerprint: string;
  ca: TestCa;
  signing: TestAuthority;
  readonly clock: { now: number };
  readonly tokens: Map<string, string>;
  readonly nodes: Set<string>;
  readonly entries: Map<string, Entry>;
  /** "METHOD /path" of every request that reached a handler. */
  readonly requests: string[];
  readonly bodies: unknown[];
  roots: Uint8Array[];
  sequence: number;
  nodeTtl: number;
  svidTtl: number;
  /** The sync answer's `federated` list; null: the member is left out (a server without federation). */
  federated: unknown[] | null;
  /** Answer the next request to this path with this fault. */
  readonly faults: Map<string, Fault>;
  addEntry(id: string, path: string, node?: string): Entry;
  /** Presents a new server SVID (e.g. from another CA, or with another ID). */
  present(authority: TestAuthority, id?: string): Promise<void>;
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

type Handler = (body: any, peer: string | null) => Promise<[number, unknown]>;

function fail(status: number, code: string): [number, unknown] {
  return [status, { error: { code, message: `stand-in: ${code}` } }];
}

const pem = (ders: readonly Uint8Array[]) => ders.map((d) => encodePem("CERTIFICATE", d)).join("");

export async function startStandIn(opts: { td?: string; serverId?: string } = {}): Promise<StandIn> {
  const ca = await createTestCa({ trustDomain: opts.td ?? "example.org" });
  const td = ca.trustDomain;
  const signing = await ca.mintIntermediate();
  const leaf = await signing.mintLeaf(opts.serverId ?? `spiffe://${td.name}/tidegate/server`);
  let secure = { key: await exportPkcs8Pem(leaf.privateKey), cert: pem(leaf.chain) };
  const s = {} as StandIn;
  const jwks = async () => JSON.parse(await formatJwksBundle(Bundle.create(td, { x509Authorities: s.roots, sequence: s.sequence })));
  const sign = async (csrB64: string, id: SpiffeId, ttl: number, dnsNames?: string[]) => {
    const m = await signCsr({ csr: fromBase64(csrB64)!, id, signer: s.signing.signer, ttlSeconds: ttl, now: new Date(s.clock.now), ...(dnsNames ? { dnsNames } : {}) });
    return [m.der, ...s.signing.intermediates].map(toBase64);
  };
  const nodeId = (n: string) => SpiffeId.fromSegments(td, "tidegate", "agent", n);

  const publicRoutes: Record<string, Handler> = {
    "GET /.well-known/spiffe-bundle": async () => [200, await jwks()],
    "POST /v1/attest/join-token": async (b) => {
      const node = s.tokens.get(b.token);
      if (node === undefined) return fail(401, "token_unknown");
      s.tokens.delete(b.token);
      s.nodes.add(node);
      return [200, { node, spiffe_id: nodeId(node).toString(), svid: await sign(b.csr, nodeId(node), s.nodeTtl), bundle: await jwks(), api_port: s.apiPort }];
    },
  };
  const apiRoutes: Record<string, Handler> = {
    "POST /v1/node/renew": async (b, node) => {
      s.nodes.add(node!);
      return [200, { node, spiffe_id: nodeId(node!).toString(), svid: await sign(b.csr, nodeId(node!), s.nodeTtl), bundle: await jwks() }];
    },
    "GET /v1/sync": async (_b, node) => {
      if (!s.nodes.has(node!)) return fail(404, "node_unknown");
      const entries = [...s.entries.values()].filter((e) => e.parent_id === nodeId(node!).toString());
      return [200, { node, entries, bundle: await jwks(), bundle_sequence: s.sequence, ...(s.federated !== null ? { federated: s.federated } : {}) }];
    },
    "POST /v1/svid": async (b, node) => {
      const e = s.entries.get(b.entry_id);
      if (e === undefined) return fail(404, "entry_unknown");
      if (e.parent_id !== nodeId(node!).toString()) return fail(403, "entry_not_for_node");
      const svid = await sign(b.csr, SpiffeId.parse(e.spiffe_id), e.ttl_seconds ?? s.svidTtl, e.dns_names ?? undefined);
      return [200, { entry_id: e.id, spiffe_id: e.spiffe_id, svid, expires_at: new Date(s.clock.now + (e.ttl_seconds ?? s.svidTtl) * 1000).toISOString() }];
    },
  };

  const listener = (routes: Record<string, Handler>, mtls: boolean) => {
    const app = http.createServer(async (req, res) => {
      let raw = "";
      for await (const chunk of req) raw += chunk;
      const key = `${req.method} ${req.url}`;
      s.requests.push(key);
      let out: [number, unknown];
      let retryAfter: number | undefined;
      const fault = s.faults.get(req.url ?? "");
      s.faults.delete(req.url ?? "");
      let peer: string | null = null;
      if (mtls) {
        try {
          const certs = (req.socket as tls.TLSSocket & { __chain?: Uint8Array[] }).__chain ?? [];
          const id = (await verifyX509Svid(certs, BundleSet.of(Bundle.create(td, { x509Authorities: s.roots })), { now: new Date(s.clock.now) })).id;
          peer = id.path.replace(/^\/tidegate\/agent\//, "");
        } catch {
          peer = null;
        }
      }
      if (fault) {
        out = fail(fault.status, fault.code);
        retryAfter = fault.retryAfter;
      } else if (mtls && peer === null) {
        out = fail(401, "client_cert_invalid");
      } else {
        const h = routes[key];
        const body = raw === "" ? {} : JSON.parse(raw);
        s.bodies.push(body);
        out = h ? await h(body, peer) : fail(404, "not_found");
      }
      res.writeHead(out[0], { "content-type": "application/json", ...(retryAfter !== undefined ? { "retry-after": String(retryAfter) } : {}) });
      res.end(JSON.stringify(out[1]));
    });
    const server = tls.createServer({ ...secure, ...(mtls ? { requestCert: true, rejectUnauthorized: false } : {}) }, (sock) => {
      if (mtls) {
        const chain: Uint8Array[] = [];
        for (let c = sock.getPeerCertificate(true) as tls.DetailedPeerCertificate | undefined; c?.raw && chain.length < 8; c = c.issuerCertificate === c ? undefined : c.issuerCertificate) chain.push(new Uint8Array(c.raw));
        (sock as tls.TLSSocket & { __chain?: Uint8Array[] }).__chain = chain;
      }
      app.emit("connection", sock);
    });
    return server;
  };
  let pub = listener(publicRoutes, false);
  let api = listener(apiRoutes, true);
  const listen = (srv: tls.Server, port: number) => new Promise<number>((r) => srv.listen(port, "127.0.0.1", () => r((srv.address() as AddressInfo).port)));
  const pubPort = await listen(pub, 0);
  const apiPort = await listen(api, 0);
  const close = (srv: tls.Server) => new Promise<void>((r) => srv.close(() => r()));
  Object.assign(s, {
    td,
    publicUrl: `https://127.0.0.1:${pubPort}`,
    apiPort,
    fingerprint: await sha256Hex(ca.root.der),
    ca,
    signing,
    clock: { now: Date.now() },
    tokens: new Map(),
    nodes: new Set(),
    entries: new Map(),
    requests: [],
    bodies: [],
    roots: [ca.root.der],
    sequence: 1,
    nodeTtl: 3600,
    svidTtl: 600,
    federated: null,
    faults: new Map(),
    addEntry(id: string, path: string, node = "node-1") {
      const e: Entry = { id, spiffe_id: `spiffe://${td.name}${path}`, parent_id: nodeId(node).toString(), selectors: ["unix:uid:1000"], ttl_seconds: null, dns_names: [], revision: 1 };
      s.entries.set(id, e);
      return e;
    },
    async present(authority: TestAuthority, id?: string) {
      const l = await authority.mintLeaf(id ?? `spiffe://${td.name}/tidegate/server`);
      secure = { key: await exportPkcs8Pem(l.privateKey), cert: pem(l.chain) };
      pub.setSecureContext(secure);
      api.setSecureContext({ ...secure });
    },
    async down() {
      await Promise.all([close(pub), close(api)]);
    },
    async up() {
      pub = listener(publicRoutes, false);
      api = listener(apiRoutes, true);
      await listen(pub, pubPort);
      await listen(api, apiPort);
    },
    async close() {
      await Promise.all([close(pub), close(api)]).catch(() => {});
    },
  });
  return s;
}
