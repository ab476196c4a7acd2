/**
 * Who is calling the API listener: the client's certificate chain, as the TLS handshake received
 * it, verified with tidegate's own X.509-SVID verifier against the server's current bundle (TLS
 * itself checks nothing: `rejectUnauthorized` is off so that the refusal is an HTTP answer with a
 * code, not a bare handshake failure). Its SPIFFE ID must be spiffe://TD/tidegate/agent/NODE.
 *
 * Each connection is checked once, right after its handshake, at that moment's time and bundle;
 * the verdict is kept for the connection's lifetime (keep-alive requests reuse it). Rejected:
 * no certificate (client_cert_required), a chain that does not verify, from another trust domain
 * included (client_cert_invalid, the svid_* code in the message; a chain of more than
 * MAX_NODE_CHAIN certificates is svid_chain_too_long before any is checked), an SVID that is not a
 * node's (not_a_node).
 */
import type { TLSSocket } from "node:tls";
import type { TrustDomain, X509AuthoritySource } from "../spiffe/index.ts";
import { readCertificate, verifyX509Svid, X509SvidError } from "../x509/index.ts";
import { ApiError } from "./errors.ts";
import { nodeOf } from "./ids.ts";

/**
 * The most certificates a node's chain has as node:tls hands it over: the node SVID, the signing
 * CA that issued it, and the root node:tls may add from the listener's CA list (src/ca: a leaf is
 * always issued by a signing CA directly under a root). A longer chain is refused before the
 * verifier's path search: anyone may connect, and a chain of eight certificates that all "issue"
 * one another makes that search run to its cap of signature checks, some 20 ms of the server's
 * event loop per handshake (against under 1 ms for a node's), for bytes the peer replays at no cost.
 */
export const MAX_NODE_CHAIN = 3;

export interface NodeIdentity {
  readonly node: string;
  readonly spiffeId: string;
  /** The leaf's notAfter (ms): a keep-alive connection is refused from then on. */
  readonly notAfter: number;
}

export type Verdict = NodeIdentity | ApiError;

interface PeerCert {
  raw?: Uint8Array;
  issuerCertificate?: PeerCert;
}

/** The DER chain the client presented, leaf first (as node:tls assembled it, root included or not). */
export function peerChain(socket: TLSSocket): Uint8Array[] {
  const chain: Uint8Array[] = [];
  let cert = socket.getPeerCertificate(true) as PeerCert | null;
  while (cert?.raw !== undefined && cert.raw.length > 0 && chain.length < 8) {
    chain.push(new Uint8Array(cert.raw));
    if (cert.issuerCertificate === undefined || cert.issuerCertificate === cert) break;
    cert = cert.issuerCertificate;
  }
  return chain;
}

export async function authenticateNode(chain: readonly Uint8Array[], td: TrustDomain, source: X509AuthoritySource, now: Date): Promise<Verdict> {
  if (chain.length === 0) return new ApiError("client_cert_required", "server: this listener needs a client certificate (a node SVID)");
  if (chain.length > MAX_NODE_CHAIN) {
    return new ApiError("client_cert_invalid", `server: the client certificate does not verify: a node's chain has at most ${MAX_NODE_CHAIN} certificates, not ${chain.length} (svid_chain_too_long)`);
  }
  let id;
  try {
    ({ id } = await verifyX509Svid(chain, source, { now }));
  } catch (e) {
    if (e instanceof X509SvidError) return new ApiError("client_cert_invalid", `server: the client certificate does not verify: ${e.message} (${e.code})`, { cause: e });
    throw e;
  }
  const node = nodeOf(td, id);
  if (node === null) return new ApiError("not_a_node", `server: ${id.toString()} is not a node SVID of ${td.name} (spiffe://${td.name}/tidegate/agent/NODE)`);
  return { node, spiffeId: id.toString(), notAfter: readCertificate(chain[0]!).notAfter };
}

/** Verdicts per connection, set in `secureConnection`, read by the app. */
export class ConnectionVerdicts {
  readonly #verdicts = new WeakMap<object, Promise<Verdict>>();

  set(socket: object, verdict: Promise<Verdict>): void {
    // A rejected promise must not go unhandled before the first request reads it.
    verdict.catch(() => undefined);
    this.#verdicts.set(socket, verdict);
  }

  async get(socket: object): Promise<Verdict> {
    const v = this.#verdicts.get(socket);
    if (v === undefined) return new ApiError("client_cert_required", "server: this listener needs a client certificate (a node SVID)");
    return v;
  }
}
