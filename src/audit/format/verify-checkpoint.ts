/**
 * The checks of one checkpoint line that need no count of the lines before it (docs/audit.md,
 * "Verification"): covers, signature, signer and certificate chain.
 *
 * Rejected, each an AuditError:
 * - `audit_checkpoint_covers`: covers is not {seq: its seq - 1, hash: its prev}.
 * - `audit_checkpoint_chain`: a chain entry that is not base64 DER of a certificate; a leaf whose
 *   one URI SAN is not the signer; with a bundle source, a chain that fails verifyX509Svid at
 *   the checkpoint's own time (cause: the X509SvidError).
 * - `audit_checkpoint_signature`: a leaf key that is not EC P-256, a sig that is not 64 bytes, or a
 *   signature over checkpointPayload that does not verify with the leaf's key.
 * Order: covers (checkCovers), then chain parse, signature, signer and bundle.
 */
import { subtle } from "../../x509/engine.ts";
import { fromBase64, fromBase64Url, toArrayBuffer } from "../../x509/encoding.ts";
import { readCertificate, type CertInfo } from "../../x509/cert.ts";
import { ECDSA_SHA256, importSpki } from "../../x509/keys.ts";
import { verifyX509Svid, type X509BundleSource } from "../../x509/verify.ts";
import { checkpointPayload } from "./checkpoint.ts";
import { auditError, quote } from "./errors.ts";
import type { ParsedLine } from "./line.ts";
import type { AuditEventOf } from "./schema.ts";

/** Leaf certificates already parsed, and their keys imported, by base64 text (one per verify run). */
export type LeafCache = Map<string, { info: CertInfo; key: CryptoKey | null }>;

async function leafOf(b64: string, cache: LeafCache): Promise<{ info: CertInfo; key: CryptoKey | null }> {
  const hit = cache.get(b64);
  if (hit !== undefined) return hit;
  const der = fromBase64(b64);
  if (der === null) throw auditError("audit_checkpoint_chain", "chain certificate 0 is not base64");
  let info: CertInfo;
  try {
    info = readCertificate(der);
  } catch (e) {
    throw auditError("audit_checkpoint_chain", "chain certificate 0 is not a certificate", e);
  }
  let key: CryptoKey | null = null;
  try {
    key = await importSpki(info.spki);
  } catch {
    key = null;
  }
  const entry = { info, key };
  cache.set(b64, entry);
  return entry;
}

/** Throws `audit_checkpoint_covers` unless covers repeats the checkpoint's seq - 1 and prev. */
export function checkCovers(line: ParsedLine, ev: AuditEventOf<"checkpoint">): void {
  if (ev.covers.seq !== line.seq - 1 || ev.covers.hash !== line.prev) {
    throw auditError("audit_checkpoint_covers", `checkpoint covers seq ${ev.covers.seq}, not the line before it (seq ${line.seq - 1}) and its hash`);
  }
}

/** The chain and signature checks, in the order of the header; throws the first failure. */
export async function checkSignedCheckpoint(
  line: ParsedLine,
  ev: AuditEventOf<"checkpoint">,
  opts: { bundles: X509BundleSource | null; cache: LeafCache },
): Promise<void> {
  const leaf = await leafOf(ev.chain[0]!, opts.cache);
  const chain: Uint8Array[] = [leaf.info.der];
  for (let i = 1; i < ev.chain.length; i++) {
    const der = fromBase64(ev.chain[i]!);
    if (der === null) throw auditError("audit_checkpoint_chain", `chain certificate ${i} is not base64`);
    chain.push(der);
  }
  if (leaf.key === null) throw auditError("audit_checkpoint_signature", "the leaf certificate's key is not EC P-256, as ES256 needs");
  const sig = fromBase64Url(ev.sig);
  if (sig === null || sig.length !== 64) throw auditError("audit_checkpoint_signature", "sig is not a 64-byte P1363 signature");
  const payload = checkpointPayload(line.seq, line.time, line.prev, ev.signer, ev.events);
  let good = false;
  try {
    good = await subtle.verify(ECDSA_SHA256, leaf.key, toArrayBuffer(sig), toArrayBuffer(payload));
  } catch {
    good = false;
  }
  if (!good) throw auditError("audit_checkpoint_signature", "signature does not verify with the leaf certificate's key");
  const sans = leaf.info.uriSans;
  if (sans.length !== 1 || sans[0] !== ev.signer) {
    throw auditError("audit_checkpoint_chain", `signer ${quote(ev.signer)} is not the leaf certificate's SPIFFE ID`);
  }
  if (opts.bundles === null) return;
  // verifyX509Svid takes the SPIFFE ID from the same URI SAN, which is the signer (checked above).
  try {
    await verifyX509Svid(chain, opts.bundles, { now: new Date(line.time) });
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw auditError("audit_checkpoint_chain", `chain does not verify against the trust bundle at ${line.time}: ${why}`, e);
  }
}
