/**
 * Verifies the chain a TLS peer presented with tidegate's X.509-SVID verifier (src/x509/verify.ts)
 * against the bundles in force, and remembers what verified: a leaf whose path once verified
 * against a bundle generation verifies again, for that generation, until the first expiry on its
 * path. So a busy pair of workloads costs two signature checks per SVID lifetime, not per
 * connection. Only successes are remembered, keyed by the leaf's exact DER (a signature covers
 * every byte of it, so no other certificate can stand in for a remembered one); a new bundle
 * generation (a root added or removed) starts afresh; a call for an older generation (a leg that
 * began before the change) is verified against its own bundles and not remembered. The cache holds at most `max` leaves,
 * dropping the oldest first.
 *
 * Refusals carry the verifier's code (`svid_untrusted`, `svid_expired`, ...), or `no_certificate`
 * for an empty chain, and the SPIFFE ID the leaf claims when it has one, for the log.
 */
import { readCertificate } from "../x509/cert.ts";
import { X509SvidError } from "../x509/x509-errors.ts";
import { verifyX509Svid, type X509BundleSource } from "../x509/verify.ts";
import type { SpiffeId } from "../spiffe/id.ts";
import { BoundedMap } from "./session-cache.ts";
import { peerChain, peerLeaf, type TlsPeer } from "./peer-tls.ts";

export type PeerCheck =
  /** `anchor`: the bundle authority the path ended at (DER), which `stillAnchored` looks for after a bundle change. */
  | { readonly ok: true; readonly id: SpiffeId; readonly anchor: Uint8Array }
  | { readonly ok: false; readonly code: string; readonly detail: string; readonly claimed: string | null };

interface Remembered {
  readonly id: SpiffeId;
  readonly anchor: Uint8Array;
  readonly until: number;
}

export class PeerVerifier {
  private readonly cache: BoundedMap<string, Remembered>;
  private generation = -1;

  constructor(private readonly o: { now?: () => number; max?: number } = {}) {
    this.cache = new BoundedMap(o.max ?? 10_000);
  }

  private now(): number {
    return this.o.now?.() ?? Date.now();
  }

  /**
   * A TLS peer's chain: its leaf is read alone first (peer-tls.ts `peerLeaf`, cheap), and the whole
   * chain only when that leaf is not remembered for `generation` (a miss: once per SVID). `leaf`:
   * the peer's leaf when the caller has read it already.
   */
  async verifyPeer(peer: TlsPeer, bundles: X509BundleSource, generation: number, leaf: Uint8Array | null = peerLeaf(peer)): Promise<PeerCheck> {
    if (leaf !== null) {
      const hit = this.remembered(keyOf(leaf), generation);
      if (hit !== null) return hit;
    }
    return this.verify(peerChain(peer), bundles, generation);
  }

  /** What is remembered of the leaf with `key` for `generation` and still within its path's validity, else null. */
  private remembered(key: string, generation: number): PeerCheck | null {
    if (generation > this.generation) {
      this.cache.clear();
      this.generation = generation;
    }
    if (generation !== this.generation) return null;
    const hit = this.cache.get(key);
    if (hit === undefined) return null;
    if (this.now() <= hit.until) return { ok: true, id: hit.id, anchor: hit.anchor };
    this.cache.delete(key);
    return null;
  }

  async verify(chain: readonly Uint8Array[], bundles: X509BundleSource, generation: number): Promise<PeerCheck> {
    if (chain.length === 0) return { ok: false, code: "no_certificate", detail: "the peer presented no certificate", claimed: null };
    const key = keyOf(chain[0]!);
    const hit = this.remembered(key, generation);
    if (hit !== null) return hit;
    const now = this.now();
    try {
      const v = await verifyX509Svid(chain, bundles, { now: new Date(now) });
      const until = Math.min(...v.chain.map((der) => readCertificate(der).notAfter));
      const anchor = v.chain[v.chain.length - 1]!;
      if (generation === this.generation) this.cache.set(key, { id: v.id, anchor, until });
      return { ok: true, id: v.id, anchor };
    } catch (e) {
      if (!(e instanceof X509SvidError)) throw e;
      return { ok: false, code: e.code, detail: e.message, claimed: claimedId(chain[0]!) };
    }
  }

  get size(): number {
    return this.cache.size;
  }
}

/**
 * Whether the bundles in force still hold `anchor`, the authority a peer's path ended at when it
 * was verified (`PeerCheck.anchor`), for the peer's trust domain: false once a bundle change
 * removed that authority (a CA rotated out, a federation dropped), so a connection it vouched
 * for is no longer vouched for. Expiry is not looked at: TLS checks a certificate at the handshake.
 */
export function stillAnchored(bundles: X509BundleSource, id: SpiffeId, anchor: Uint8Array): boolean {
  const held = bundles.x509Authorities(id.trustDomain);
  if (held === undefined) return false;
  const want = keyOf(anchor);
  return held.some((der) => der.length === anchor.length && keyOf(der) === want);
}

/** The leaf's exact bytes as a string (base64: one to one, and native). */
function keyOf(der: Uint8Array): string {
  return Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString("base64");
}

/** The URI SAN a leaf claims, whether or not it verifies (for the log only). */
export function claimedId(leaf: Uint8Array): string | null {
  try {
    return readCertificate(leaf).uriSans[0] ?? null;
  } catch {
    return null;
  }
}
