/**
 * How the agent gets its identity at start (docs/server-api.md, "Agent"):
 *
 * - State in `<state-dir>/agent/` with a node SVID still valid: used as is, no token needed (a
 *   token given anyway is left unused, as SPIRE does); --server, when given, must name the same
 *   server (`state_server_mismatch`).
 * - State whose node SVID expired: `node_svid_expired` unless a new join token is given.
 * - Otherwise a join: the server is trusted first (trust.ts: --server-fingerprint, --trust-bundle,
 *   or the bundle kept from an earlier join), the connection is verified against that trust with
 *   the server's SPIFFE ID checked, and only then the token goes out with a CSR for a key made here.
 *   A 503 answer (the server cannot issue for now: `not_ready`, its CA cannot sign;
 *   `audit_unavailable`, its audit log cannot be written) left the token unused: the join is
 *   tried again with backoff (`join_retry`, warn) until it is answered otherwise or the agent stops.
 */
import type { Bundle } from "../spiffe/index.ts";
import type { Logger } from "../runtime/log.ts";
import { TrustDomain, parseJwksBundle } from "../spiffe/index.ts";
import { AgentError, ServerError } from "./errors.ts";
import { Backoff } from "./backoff.ts";
import { sleep } from "../runtime/sleep.ts";
import { callServer, parseServerUrl } from "./server-client.ts";
import { trustByBundleFile, trustByFingerprint, tlsTrustOf } from "./trust.ts";
import { AttestAnswer, readAnswer } from "./wire.ts";
import { acceptNodeAnswer, freshKey, persistNode } from "./node-svid.ts";
import { chainFromPem, holdSvid, keyMatchesLeaf, type HeldSvid } from "./svid-cache.ts";
import type { AgentJson, StateFiles } from "./state-files.ts";

export interface AgentIdentity {
  config: AgentJson;
  bundle: Bundle;
  node: HeldSvid;
}

export interface BootstrapOptions {
  readonly files: StateFiles;
  readonly serverUrl?: string;
  readonly joinToken?: string;
  /** Hex SHA-256, already normalised by parseFingerprint. */
  readonly fingerprint?: string;
  readonly trustBundle?: { readonly text: string; readonly path: string };
  readonly now: () => number;
  readonly random?: () => number;
  readonly logger: Logger;
  readonly signal?: AbortSignal;
}

function unreadable(files: StateFiles, name: string, why: string): AgentError {
  return new AgentError("state_unreadable", `agent: ${JSON.stringify(files.path(name))} ${why} (remove ${JSON.stringify(files.dir)} and join again with a new token)`);
}

/** The identity kept in the state folder, or null when there is none (no agent.json). */
export async function loadIdentity(files: StateFiles, random?: () => number): Promise<AgentIdentity | null> {
  const config = files.readAgentJson();
  if (config === null) return null;
  const keyPem = files.read("node.key");
  const pem = files.read("node.pem");
  const bundleText = files.read("bundle.json");
  if (keyPem === null) throw unreadable(files, "node.key", "is missing");
  if (pem === null) throw unreadable(files, "node.pem", "is missing");
  if (bundleText === null) throw unreadable(files, "bundle.json", "is missing");
  let bundle: Bundle;
  let node: HeldSvid;
  try {
    bundle = await parseJwksBundle(TrustDomain.parse(config.trust_domain), bundleText);
  } catch (e) {
    throw unreadable(files, "bundle.json", `does not parse: ${(e as Error).message}`);
  }
  try {
    const chain = chainFromPem(pem);
    if (chain.length === 0) throw new Error("no certificate");
    node = holdSvid(chain, keyPem, random);
  } catch (e) {
    throw unreadable(files, "node.pem", `does not parse: ${(e as Error).message}`);
  }
  if (!(await keyMatchesLeaf(keyPem, node.chain[0]!))) throw unreadable(files, "node.key", "does not match node.pem");
  return { config, bundle, node };
}

export async function bootstrap(o: BootstrapOptions): Promise<AgentIdentity> {
  o.files.ensure();
  const saved = await loadIdentity(o.files, o.random);
  const wanted = o.serverUrl !== undefined ? parseServerUrl(o.serverUrl).origin : undefined;
  if (saved !== null) {
    if (wanted !== undefined && wanted !== saved.config.server) {
      throw new AgentError("state_server_mismatch", `agent: the state in ${JSON.stringify(o.files.dir)} belongs to ${saved.config.server}, not ${wanted}: remove it to join ${wanted}`);
    }
    if (saved.node.notAfter > o.now()) {
      o.logger.info("agent_resumed", { node: saved.config.node, spiffe_id: saved.config.spiffe_id, server: saved.config.server, node_svid_expires_at: new Date(saved.node.notAfter).toISOString(), join_token_unused: o.joinToken !== undefined });
      return saved;
    }
    if (o.joinToken === undefined) {
      throw new AgentError("node_svid_expired", `agent: the node SVID in ${JSON.stringify(o.files.path("node.pem"))} expired at ${new Date(saved.node.notAfter).toISOString()}: create a new join token and start with --join-token`);
    }
  }
  const server = wanted ?? saved?.config.server;
  if (server === undefined) throw new AgentError("server_required", "agent: no state yet: give --server https://host:port, a join token and --server-fingerprint or --trust-bundle");
  if (o.joinToken === undefined) throw new AgentError("join_token_required", `agent: no node identity in ${JSON.stringify(o.files.dir)}: give --join-token or --join-token-file`);
  let trust: Bundle;
  if (o.fingerprint !== undefined) trust = await trustByFingerprint(server, o.fingerprint, o.signal);
  else if (o.trustBundle !== undefined) trust = await trustByBundleFile(o.trustBundle.text, o.trustBundle.path);
  else if (saved !== null) trust = saved.bundle;
  else throw new AgentError("join_trust_required", "agent: to trust the server before sending the token, give --server-fingerprint SHA256 (from 'tidegate token create') or --trust-bundle FILE");
  return join(o, server, o.joinToken, trust);
}

/** The longest wait between two tries of a join the server answered 503. */
export const JOIN_RETRY_MAX_MS = 30_000;

async function join(o: BootstrapOptions, server: string, token: string, trust: Bundle): Promise<AgentIdentity> {
  const key = await freshKey();
  const what = "join-token attestation";
  const backoff = new Backoff({ maxMs: JOIN_RETRY_MAX_MS, ...(o.random ? { random: o.random } : {}) });
  const stopped = () => o.signal?.aborted === true;
  let body: unknown;
  for (;;) {
    try {
      body = await callServer({
        origin: server,
        method: "POST",
        path: "/v1/attest/join-token",
        body: { token, csr: key.csr },
        trust: tlsTrustOf(trust),
        ...(o.signal ? { signal: o.signal } : {}),
      });
      break;
    } catch (e) {
      if (!(e instanceof ServerError && e.status === 503) || stopped()) throw e;
      const ms = backoff.next();
      o.logger.warn("join_retry", { server, code: e.code, retry_in_ms: ms, failures: backoff.count });
      await sleep(ms, o.signal);
      if (stopped()) throw e;
    }
  }
  const answer = readAnswer(AttestAnswer, body, what);
  const r = await acceptNodeAnswer(answer, key, trust.trustDomain, o.now(), what, o.random);
  const config: AgentJson = { server, api_port: answer.api_port, trust_domain: trust.trustDomain.name, node: r.node, spiffe_id: r.spiffeId };
  await persistNode(o.files, r.svid, r.bundle);
  o.files.writeAgentJson(config);
  o.logger.info("node_attested", { node: r.node, spiffe_id: r.spiffeId, server, serial: r.svid.serial, expires_at: new Date(r.svid.notAfter).toISOString() });
  return { config, bundle: r.bundle, node: r.svid };
}
