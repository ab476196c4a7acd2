/**
 * What the CA persists (ca.json): certificates as PEM and metadata, never a key. Keys are stored
 * beside it, one per certificate serial, by the CaStorage (./storage.ts).
 *
 * `parsePersistedCa` guarantees, else `ca_corrupt` naming `file`:
 * - version 1, a trust domain that parses, a non-negative safe integer bundle sequence;
 * - every certificate is one PEM CERTIFICATE block holding one DER X.509 certificate whose
 *   serial is the `serial` recorded beside it (lowercase hex, also the key's file name);
 * - exactly one active root, at most one pending root (with its activation time), and retiring
 *   roots (no key: nothing is signed under them any more);
 * - the signing CA is issued by the active root (issuer name = the root's subject).
 */
import { TrustDomain } from "../spiffe/trust-domain.ts";
import { readCertificate, serialHex, type CertInfo } from "../x509/cert.ts";
import { bytesEqual } from "../x509/encoding.ts";
import { decodePem, encodePem } from "../x509/pem.ts";
import { CaError } from "./errors.ts";

export type RootState = "active" | "pending" | "retiring";

export interface PersistedRoot {
  readonly serial: string;
  /** PEM CERTIFICATE. */
  readonly certificate: string;
  readonly state: RootState;
  /** ISO 8601; pending roots only: when the first signing CA may be issued under it. */
  readonly activateAt?: string;
}

export interface PersistedSigning {
  readonly serial: string;
  readonly certificate: string;
  /** Serial of the issuing root (always the active root). */
  readonly root: string;
}

export interface PersistedCa {
  readonly version: 1;
  readonly trustDomain: string;
  readonly bundleSequence: number;
  readonly roots: readonly PersistedRoot[];
  readonly signing: PersistedSigning;
}

/** A checked certificate of the persisted state. */
export interface CheckedCert {
  readonly serial: string;
  readonly der: Uint8Array;
  readonly info: CertInfo;
}

export const SERIAL_PATTERN = /^[0-9a-f]{2,40}$/;

/** The serials whose private keys must be stored: the active and pending roots and the signing CA. */
export function keySerials(state: PersistedCa): string[] {
  return [...state.roots.filter((r) => r.state !== "retiring").map((r) => r.serial), state.signing.serial];
}

export function certificatePem(der: Uint8Array): string {
  return encodePem("CERTIFICATE", der);
}

function corrupt(file: string, what: string, cause?: unknown): CaError {
  return new CaError("ca_corrupt", `ca: ${file}: ${what}`, cause === undefined ? undefined : { cause });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Reads one certificate entry; `where` names it in messages ("root 2", "signing"). */
export function checkCertificate(file: string, where: string, serial: unknown, pem: unknown): CheckedCert {
  if (typeof serial !== "string" || !SERIAL_PATTERN.test(serial)) throw corrupt(file, `${where} has no valid serial`);
  if (typeof pem !== "string") throw corrupt(file, `${where} (${serial}) has no certificate`);
  let der: Uint8Array;
  let info: CertInfo;
  try {
    const blocks = decodePem(pem);
    if (blocks.length !== 1 || blocks[0]!.label !== "CERTIFICATE") throw new Error("not exactly one CERTIFICATE block");
    der = blocks[0]!.der;
    info = readCertificate(der);
  } catch (e) {
    throw corrupt(file, `${where} (${serial}) is not a PEM certificate`, e);
  }
  if (serialHex(info) !== serial) throw corrupt(file, `${where} certificate has serial ${serialHex(info)}, not ${serial}`);
  return { serial, der, info };
}

const ROOT_STATES: readonly string[] = ["active", "pending", "retiring"];

/** Parses and checks ca.json text (see the module comment). */
export function parsePersistedCa(text: string, file: string): PersistedCa {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw corrupt(file, "not JSON", e);
  }
  if (!isObject(v) || v.version !== 1) throw corrupt(file, "not a version 1 CA state");
  if (typeof v.trustDomain !== "string") throw corrupt(file, "no trust domain");
  try {
    TrustDomain.parse(v.trustDomain);
  } catch (e) {
    throw corrupt(file, "bad trust domain", e);
  }
  const seq = v.bundleSequence;
  if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 0) throw corrupt(file, "bad bundle sequence");
  if (!Array.isArray(v.roots)) throw corrupt(file, "no roots");
  const roots: PersistedRoot[] = [];
  const subjects = new Map<string, Uint8Array>();
  for (const [i, r] of v.roots.entries()) {
    if (!isObject(r)) throw corrupt(file, `root ${i} is not an object`);
    const c = checkCertificate(file, `root ${i}`, r.serial, r.certificate);
    if (typeof r.state !== "string" || !ROOT_STATES.includes(r.state)) throw corrupt(file, `root ${c.serial} has a bad state`);
    const state = r.state as RootState;
    if (subjects.has(c.serial)) throw corrupt(file, `root ${c.serial} appears twice`);
    subjects.set(c.serial, c.info.subject);
    if (state === "pending") {
      if (typeof r.activateAt !== "string" || Number.isNaN(Date.parse(r.activateAt))) {
        throw corrupt(file, `pending root ${c.serial} has no activation time`);
      }
      roots.push({ serial: c.serial, certificate: r.certificate as string, state, activateAt: r.activateAt });
    } else {
      roots.push({ serial: c.serial, certificate: r.certificate as string, state });
    }
  }
  const active = roots.filter((r) => r.state === "active");
  if (active.length !== 1) throw corrupt(file, `${active.length} active roots, exactly one expected`);
  if (roots.filter((r) => r.state === "pending").length > 1) throw corrupt(file, "more than one pending root");
  const s = v.signing;
  if (!isObject(s)) throw corrupt(file, "no signing CA");
  const sc = checkCertificate(file, "signing CA", s.serial, s.certificate);
  if (s.root !== active[0]!.serial) throw corrupt(file, `signing CA ${sc.serial} is not recorded under the active root`);
  if (!bytesEqual(sc.info.issuer, subjects.get(active[0]!.serial)!)) {
    throw corrupt(file, `signing CA ${sc.serial} is not issued by the active root ${active[0]!.serial}`);
  }
  return {
    version: 1,
    trustDomain: v.trustDomain,
    bundleSequence: seq,
    roots,
    signing: { serial: sc.serial, certificate: s.certificate as string, root: s.root },
  };
}

export function serializePersistedCa(state: PersistedCa): string {
  return JSON.stringify(state, null, 2) + "\n";
}
