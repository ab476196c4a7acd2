/**
 * The node SVID: made from a key generated here (only the CSR leaves the node), obtained by
 * join-token attestation or renewed over mutual TLS (docs/server-api.md), checked before use and
 * kept in the state folder.
 *
 * An answer is accepted only when its leaf certifies the key this agent just made, the chain
 * verifies with tidegate's verifier against the bundle the same answer carries (itself received
 * over a connection verified against the trusted roots), and its SPIFFE ID is
 * `spiffe://TD/tidegate/agent/<node>` for the node the answer names. Otherwise `server_bad_answer`.
 */
import * as v from "valibot";
import { Bundle, BundleSet, SpiffeId, parseJwksBundle, formatJwksBundle, type TrustDomain } from "../spiffe/index.ts";
import { createCsr } from "../x509/csr.ts";
import { exportPkcs8Pem, exportSpki, generateKeyPair } from "../x509/keys.ts";
import { toBase64 } from "../x509/encoding.ts";
import { verifyX509Svid } from "../x509/verify.ts";
import { AgentError } from "./errors.ts";
import { decodeChain, type RenewAnswer } from "./wire.ts";
import { chainPem, holdSvid, leafHasKey, type HeldSvid } from "./svid-cache.ts";
import type { StateFiles } from "./state-files.ts";

export interface FreshKey {
  readonly keyPem: string;
  readonly spki: Uint8Array;
  /** Base64 DER of the CSR. */
  readonly csr: string;
}

/** A new P-256 key and a CSR for it (with `id` as its URI SAN when given). */
export async function freshKey(id?: SpiffeId): Promise<FreshKey> {
  const kp = await generateKeyPair({ extractable: true });
  const csr = await createCsr({ privateKey: kp.privateKey, publicKey: kp.publicKey, ...(id ? { id } : {}) });
  return { keyPem: await exportPkcs8Pem(kp.privateKey), spki: await exportSpki(kp.publicKey), csr: toBase64(csr) };
}

/** Reads a bundle the server sent (JWKS object) as the bundle of `td`; it must hold an X.509 root. */
export async function readServerBundle(td: TrustDomain, jwks: unknown, what: string): Promise<Bundle> {
  let b: Bundle;
  try {
    b = await parseJwksBundle(td, JSON.stringify(jwks));
  } catch (e) {
    throw new AgentError("server_bad_answer", `agent: the bundle in the answer to ${what} does not parse`, { cause: e });
  }
  if (b.x509Authorities.length === 0) throw new AgentError("server_bad_answer", `agent: the bundle in the answer to ${what} holds no X.509 root`);
  return b;
}

export interface NodeResult {
  readonly node: string;
  readonly spiffeId: string;
  readonly svid: HeldSvid;
  readonly bundle: Bundle;
}

export async function acceptNodeAnswer(
  answer: v.InferOutput<typeof RenewAnswer>,
  key: FreshKey,
  td: TrustDomain,
  now: number,
  what: string,
  random?: () => number,
): Promise<NodeResult> {
  const chain = decodeChain(answer.svid, what);
  const bundle = await readServerBundle(td, answer.bundle, what);
  if (!leafHasKey(chain[0]!, key.spki)) throw new AgentError("server_bad_answer", `agent: the node SVID in the answer to ${what} does not carry the key the agent sent`);
  let expected: SpiffeId;
  try {
    expected = SpiffeId.fromSegments(td, "tidegate", "agent", answer.node);
  } catch (e) {
    throw new AgentError("server_bad_answer", `agent: the answer to ${what} names node ${JSON.stringify(answer.node.slice(0, 64))}, not a valid node name`, { cause: e });
  }
  let verified: SpiffeId;
  try {
    verified = (await verifyX509Svid(chain, BundleSet.of(bundle), { now: new Date(now) })).id;
  } catch (e) {
    throw new AgentError("server_bad_answer", `agent: the node SVID in the answer to ${what} does not verify against the bundle it came with`, { cause: e });
  }
  if (verified.toString() !== expected.toString() || answer.spiffe_id !== expected.toString()) {
    throw new AgentError("server_bad_answer", `agent: the answer to ${what} gives ${verified.toString()}, not ${expected.toString()}`);
  }
  return { node: answer.node, spiffeId: expected.toString(), svid: holdSvid(chain, key.keyPem, random), bundle };
}

/** Writes the node key, then its chain, then the bundle (see state-files.ts for the order). */
export async function persistNode(files: StateFiles, svid: HeldSvid, bundle: Bundle): Promise<void> {
  files.writeKey("node.key", svid.keyPem);
  files.writePublic("node.pem", chainPem(svid.chain));
  await persistBundle(files, bundle);
}

export async function persistBundle(files: StateFiles, bundle: Bundle): Promise<void> {
  files.writePublic("bundle.json", (await formatJwksBundle(bundle, { indent: 2 })) + "\n");
}

