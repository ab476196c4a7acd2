/**
 * Test support for the server's tests (not shipped in any code path): a server in a temporary
 * state directory on 127.0.0.1 port 0, an HTTPS client that presents a client certificate and
 * checks the server's SPIFFE ID, and a node joined with a token.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { connect as tlsConnect } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { memoryLogger } from "../runtime/log.ts";
import { placesFor, type Places } from "../runtime/instance.ts";
import { callUnix } from "../runtime/unix-http.ts";
import { createCsr, encodePem, exportPkcs8Pem, fromBase64, generateKeyPair, toBase64 } from "../x509/index.ts";
import { parseServerConfig, type ServerSettings } from "./config.ts";
import { initServer } from "./init.ts";
import { startServer, type RunningServer } from "./server.ts";

export const TEST_TD = "example.org";

/** Short TTLs; generous rate limits unless a test sets its own. */
export const TEST_YAML = `
ca: { root_ttl: 1h, signing_ttl: 10m, root_rotate_before: 0s }
bundle: { refresh_hint: 2s }
svid: { default_ttl: 60s, node_ttl: 60s, server_ttl: 60s }
join_token: { default_ttl: 30s }
rate_limit: { svid_per_node: 10000/s, attest_per_source: 1000/s }
`;

export interface TestServer {
  readonly server: RunningServer;
  readonly places: Places;
  readonly settings: ServerSettings;
  readonly logger: ReturnType<typeof memoryLogger>;
  readonly clock: { offsetMs: number };
  admin(method: string, url: string, body?: unknown): Promise<{ status: number; body: any }>;
  /** Stops the server and removes the temporary directory. */
  close(): Promise<void>;
}

export function tempPlaces(): { dir: string; places: Places } {
  const dir = mkdtempSync(join(tmpdir(), "tidegate-server-test-"));
  const places = placesFor("test", { stateDir: join(dir, "state"), runDir: join(dir, "run"), serverConfig: join(dir, "server.yaml"), auditDir: join(dir, "audit") });
  return { dir, places };
}

/** `trustDomain` defaults to TEST_TD (the helpers below that name the server's SPIFFE ID assume it). */
export async function startTestServer(opts: { yaml?: string; trustDomain?: string; answerTimeoutMs?: number; beforeStart?: (places: Places) => void } = {}): Promise<TestServer> {
  const { dir, places } = tempPlaces();
  const settings = parseServerConfig(opts.yaml ?? TEST_YAML, "test.yaml", places);
  const clock = { offsetMs: 0 };
  const now = () => new Date(Date.now() + clock.offsetMs);
  const logger = memoryLogger();
  try {
    await initServer({ places, settings, trustDomain: opts.trustDomain ?? TEST_TD });
    opts.beforeStart?.(places);
    const server = await startServer({ places, settings, logger, now, tickIntervalMs: 200, ...(opts.answerTimeoutMs !== undefined ? { answerTimeoutMs: opts.answerTimeoutMs } : {}) });
    return {
      server,
      places,
      settings,
      logger,
      clock,
      admin: (method, url, body) => callUnix(server.socketPath, "the server", method, url, body) as Promise<{ status: number; body: any }>,
      close: async () => {
        await server.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

/** checkServerIdentity for Bun fetch / node:tls: the server must present exactly `expected` as its URI SAN. */
export function expectSpiffeId(expected: string) {
  return (_host: string, cert: { subjectaltname?: string }): Error | undefined => {
    const uris = (cert.subjectaltname ?? "").split(", ").filter((s) => s.startsWith("URI:"));
    return uris.length === 1 && uris[0] === `URI:${expected}` ? undefined : new Error(`server presented ${uris.join(" ") || "no URI SAN"}, expected ${expected}`);
  };
}

export interface ClientIdentity {
  /** PEM chain, leaf first. */
  readonly certPem: string;
  readonly keyPem: string;
}

/** One HTTPS request with Bun fetch: server verified against `caPem` and its SPIFFE ID checked. */
/**
 * Writes `request` as is on a fresh TLS connection to `url` (mutual TLS with `client`): all the
 * server sent, and whether it closed the connection within 2 s. For what fetch cannot send.
 */
export async function rawTlsRequest(url: string, ca: string, request: string, client?: ClientIdentity): Promise<{ data: string; closed: boolean }> {
  const u = new URL(url);
  const socket = tlsConnect({ host: u.hostname, port: Number(u.port), ca, ...(client ? { cert: client.certPem, key: client.keyPem } : {}), checkServerIdentity: () => undefined });
  let data = "";
  socket.on("data", (d) => (data += d.toString()));
  const closed = new Promise<boolean>((resolve) => {
    socket.on("close", () => resolve(true));
    setTimeout(() => resolve(false), 2000);
  });
  await new Promise<void>((resolve, reject) => socket.once("secureConnect", resolve).once("error", reject));
  socket.write(request);
  const wasClosed = await closed;
  socket.destroy();
  return { data, closed: wasClosed };
}

export async function tlsFetch(
  url: string,
  opts: { caPem: string; client?: ClientIdentity; method?: string; body?: unknown; serverId?: string },
): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(url, {
    method: opts.method ?? (opts.body === undefined ? "GET" : "POST"),
    headers: opts.body === undefined ? {} : { "content-type": "application/json" },
    ...(opts.body === undefined ? {} : { body: JSON.stringify(opts.body) }),
    tls: {
      ca: opts.caPem,
      ...(opts.client ? { cert: opts.client.certPem, key: opts.client.keyPem } : {}),
      checkServerIdentity: expectSpiffeId(opts.serverId ?? `spiffe://${TEST_TD}/tidegate/server`),
    },
  } as RequestInit);
  const text = await res.text();
  let body: unknown = text;
  try {
    body = text === "" ? null : JSON.parse(text);
  } catch {
    // keep the text
  }
  return { status: res.status, body, headers: res.headers };
}

export const pemChain = (b64: readonly string[]): string => b64.map((c) => encodePem("CERTIFICATE", fromBase64(c)!)).join("");

/** A fresh key pair and a base64 CSR for it (optionally naming `id`). */
export async function newCsr(id?: import("../spiffe/index.ts").SpiffeId): Promise<{ keys: CryptoKeyPair; csr: string; keyPem: string }> {
  const keys = await generateKeyPair({ extractable: true });
  const der = await createCsr({ privateKey: keys.privateKey, publicKey: keys.publicKey, ...(id ? { id } : {}) });
  return { keys, csr: toBase64(der), keyPem: await exportPkcs8Pem(keys.privateKey) };
}

/** Creates a token for `node` and attests with it; returns the node's client identity and the answer. */
export async function joinNode(t: TestServer, node: string): Promise<{ client: ClientIdentity; answer: any }> {
  const tok = await t.admin("POST", "/v1/tokens", { node });
  if (tok.status !== 201) throw new Error(`token create: ${JSON.stringify(tok.body)}`);
  const { csr, keyPem } = await newCsr();
  const res = await tlsFetch(`${t.server.publicUrl}/v1/attest/join-token`, { caPem: t.server.rootsPem(), body: { token: tok.body.token, csr } });
  if (res.status !== 200) throw new Error(`attest: ${JSON.stringify(res.body)}`);
  return { client: { certPem: pemChain(res.body.svid), keyPem }, answer: res.body };
}
