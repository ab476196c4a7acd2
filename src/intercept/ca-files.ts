/**
 * The interception CA on disk (DESIGN.md section 5, `intercept`), kept across restarts:
 *
 *   <state-dir>/agent/intercept/   0700
 *     ca.key                       0600  the CA's private key, PKCS#8 PEM (P-256)
 *     ca.pem                       0644  its self-signed certificate
 *
 * The key is written before its certificate (each whole, writeAtomic), so a crash between the two
 * leaves a pair whose mismatch the next load detects. A kept pair is used only when both files
 * parse, the certificate is a CA allowed to sign certificates, the key is the certificate's (a
 * challenge signed with it verifies with the certificate's key), it is already valid and has more
 * than CA_RENEW_BEFORE_MS left; otherwise a new CA replaces it, and why is returned for the log.
 * Files that cannot be read for another reason than being absent (EACCES, EIO...) throw
 * `intercept_ca_io`: nothing is replaced then.
 */
import { chmodSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createTlsRootCa } from "../x509/mint.ts";
import { exportPkcs8Pem, generateKeyPair, importPkcs8, importSpki, ECDSA_SHA256 } from "../x509/keys.ts";
import { decodePem, encodePem } from "../x509/pem.ts";
import { KEY_USAGE, readCertificate, serialHex } from "../x509/cert.ts";
import { subtle, webcrypto } from "../x509/engine.ts";
import { InterceptError } from "./errors.ts";
import { writeAtomic } from "../runtime/atomic-write.ts";

export const CA_TTL_SECONDS = 365 * 86_400;
/** A CA with less than this left is replaced, at load and before a leaf is minted. */
export const CA_RENEW_BEFORE_MS = 30 * 86_400_000;
/** RFC 5280 ub-common-name. */
const MAX_COMMON_NAME = 64;

export interface CaMaterial {
  readonly certPem: string;
  readonly der: Uint8Array;
  readonly privateKey: CryptoKey;
  readonly notBefore: number;
  readonly notAfter: number;
  /** Lowercase hex. */
  readonly serial: string;
}

export type CaOrigin = { readonly kind: "loaded" } | { readonly kind: "created" } | { readonly kind: "replaced"; readonly reason: string };

/** "tidegate interception CA (LABEL)", LABEL cut so that the CN fits in 64 characters. */
export function caCommonName(label: string): string {
  const head = "tidegate interception CA (";
  return `${head}${label.slice(0, MAX_COMMON_NAME - head.length - 1)})`;
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class CaFiles {
  readonly dir: string;
  readonly keyPath: string;
  readonly certPath: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, "agent", "intercept");
    this.keyPath = join(this.dir, "ca.key");
    this.certPath = join(this.dir, "ca.pem");
  }

  /** The CA kept on disk when it is usable at `now` (see the module comment), else a new one. */
  async loadOrCreate(label: string, now: number): Promise<{ ca: CaMaterial; origin: CaOrigin }> {
    const keyPem = this.read(this.keyPath);
    const certPem = this.read(this.certPath);
    if (keyPem === null && certPem === null) return { ca: await this.create(label, now), origin: { kind: "created" } };
    const why = keyPem === null ? "ca.key is missing" : certPem === null ? "ca.pem is missing" : null;
    let kept: CaMaterial | string;
    try {
      kept = why ?? (await usable(keyPem!, certPem!, now));
    } catch (e) {
      kept = `unreadable: ${describe(e)}`;
    }
    if (typeof kept !== "string") return { ca: kept, origin: { kind: "loaded" } };
    return { ca: await this.create(label, now), origin: { kind: "replaced", reason: kept } };
  }

  /** A new CA valid from `now` for CA_TTL_SECONDS, written over the files. */
  async create(label: string, now: number): Promise<CaMaterial> {
    const root = await createTlsRootCa({ commonName: caCommonName(label), ttlSeconds: CA_TTL_SECONDS, now: new Date(now), pathLen: 0, keyPair: await generateKeyPair({ extractable: true }) });
    const certPem = encodePem("CERTIFICATE", root.der);
    const keyPem = await exportPkcs8Pem(root.privateKey);
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      chmodSync(this.dir, 0o700);
      writeAtomic(this.keyPath, keyPem, 0o600);
      writeAtomic(this.certPath, certPem, 0o644);
    } catch (e) {
      throw new InterceptError("intercept_ca_io", `intercept: cannot write the interception CA in ${JSON.stringify(this.dir)}: ${describe(e)}`, { cause: e });
    }
    // Kept in memory non-extractable, as a loaded key is.
    const privateKey = await importPkcs8(keyPem);
    return { certPem, der: root.der, privateKey, notBefore: root.notBefore.getTime(), notAfter: root.notAfter.getTime(), serial: root.serial };
  }

  private read(path: string): string | null {
    try {
      return readFileSync(path, "utf8");
    } catch (e) {
      if ((e as { code?: string }).code === "ENOENT") return null;
      throw new InterceptError("intercept_ca_io", `intercept: cannot read ${JSON.stringify(path)}: ${(e as { code?: string }).code ?? String(e)}`, { cause: e });
    }
  }
}

/** The pair as CaMaterial when usable at `now`, else why not. Throws on unparseable input. */
async function usable(keyPem: string, certPem: string, now: number): Promise<CaMaterial | string> {
  const block = decodePem(certPem).find((b) => b.label === "CERTIFICATE");
  if (block === undefined) return "ca.pem holds no certificate";
  const info = readCertificate(block.der);
  if (info.basicConstraints?.cA !== true || ((info.keyUsage ?? 0) & KEY_USAGE.keyCertSign) === 0) return "ca.pem is not a CA certificate";
  const privateKey = await importPkcs8(keyPem);
  const challenge = webcrypto.getRandomValues(new Uint8Array(32));
  const signature = await subtle.sign(ECDSA_SHA256, privateKey, challenge);
  if (!(await subtle.verify(ECDSA_SHA256, await importSpki(info.spki), signature, challenge))) return "ca.key is not the key of ca.pem";
  if (now < info.notBefore) return `ca.pem is not valid before ${new Date(info.notBefore).toISOString()}`;
  if (now >= info.notAfter - CA_RENEW_BEFORE_MS) return `ca.pem expires at ${new Date(info.notAfter).toISOString()}`;
  return { certPem: encodePem("CERTIFICATE", block.der), der: block.der, privateKey, notBefore: info.notBefore, notAfter: info.notAfter, serial: serialHex(info) };
}
