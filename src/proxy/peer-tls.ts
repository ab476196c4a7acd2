/**
 * What a Bun TLS socket tells about its peer, in the form the verifier takes (PLATFORM-NOTES,
 * "TLS in Bun"; checked on Bun 1.4.5):
 * - the certificate chain: the native `getPeerCertificate(false)` (false: not abbreviated; node:tls
 *   passes `!detailed`) gives the leaf with `issuerCertificate` links up to the root as the TLS
 *   stack built the path, each with its DER in `raw`, on both ends and on resumed sessions; it
 *   parses every field of every certificate into objects, so the leaf alone is read first with
 *   `getPeerX509Certificate` (`peerLeaf`), and the chain only when the verifier needs it;
 * - a connection id both ends compute alike without touching the byte stream (DESIGN.md section
 *   8): the TLS exporter (RFC 8446 section 7.5) with label EXPORTER-tidegate-connection-id, no
 *   context, 16 bytes, in hex.
 * What the TLS stack itself concluded (`authorized`) is not used here: on the client side Bun
 * adds a host name check that SPIFFE IDs never pass, and with `rejectUnauthorized: false` it was
 * seen reporting `authorized: true` beside a verification error. tidegate's verifier decides.
 */
export const CONNECTION_ID_LABEL = "EXPORTER-tidegate-connection-id";
export const CONNECTION_ID_BYTES = 16;
/** More certificates than the verifier takes (MAX_CHAIN_LENGTH 8) are not read. */
const MAX_CHAIN = 10;

interface PeerCert {
  raw?: Uint8Array;
  issuerCertificate?: PeerCert;
}

export interface TlsPeer {
  getPeerCertificate(abbreviated?: boolean): unknown;
  /** The leaf alone (node:crypto's X509Certificate, parsed lazily): a few µs, where getPeerCertificate builds objects of every field of the whole chain (about 70 µs). */
  getPeerX509Certificate?(): { readonly raw: Uint8Array } | undefined;
  exportKeyingMaterial(length: number, label: string, context?: Uint8Array): Uint8Array | undefined;
}

/** The peer's chain, leaf first, DER; empty when the peer sent no certificate. */
export function peerChain(socket: TlsPeer): Uint8Array[] {
  const out: Uint8Array[] = [];
  let c = socket.getPeerCertificate(false) as PeerCert | null | undefined;
  while (c?.raw !== undefined && c.raw.length > 0 && out.length < MAX_CHAIN) {
    out.push(new Uint8Array(c.raw));
    const next = c.issuerCertificate;
    if (next === undefined || next === c) break;
    c = next;
  }
  return out;
}

/** The peer's leaf certificate, DER, read without the rest of the chain; null when it sent none (or the socket cannot say). */
export function peerLeaf(socket: TlsPeer): Uint8Array | null {
  try {
    const raw = socket.getPeerX509Certificate?.()?.raw;
    return raw !== undefined && raw.length > 0 ? new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength) : null;
  } catch {
    return null;
  }
}

/** Lowercase hex of `bytes`, by Uint8Array.prototype.toHex (native in Bun's JavaScriptCore). */
export function hex(bytes: Uint8Array): string {
  return (bytes as Uint8Array & { toHex(): string }).toHex();
}

/** The TLS connection id, or null when the socket cannot export one (not TLS, not established). */
export function tlsConnectionId(socket: TlsPeer): Uint8Array | null {
  try {
    const k = socket.exportKeyingMaterial(CONNECTION_ID_BYTES, CONNECTION_ID_LABEL);
    return k !== undefined && k.length === CONNECTION_ID_BYTES ? new Uint8Array(k) : null;
  } catch {
    return null;
  }
}

/** A connection id for a leg without TLS: random, so it still tells connections apart in the log. */
export function randomConnectionId(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(CONNECTION_ID_BYTES));
}
