/**
 * The CA's state in memory, as an immutable value that every change replaces whole (so a failed
 * change leaves the old one in place), with the schedule rules of the rotation:
 *
 * - signing CA: rotated once `now` passes the middle of its validity (SPIRE's half life), unless
 *   the replacement could not outlive it (both capped by a root about to expire: no churn);
 * - root: rotated by itself once `now` is within root_rotate_before of the active root's end
 *   (never when that setting is 0); a new root is first `pending`: in the bundle, nothing signed
 *   under it, until `activateAt` = publication + refresh hint; then it becomes `active`, a new
 *   signing CA is issued under it and the old root is `retiring`: kept in the bundle until its
 *   notAfter, since chains issued under it stay valid till then;
 * - a retiring root is dropped once expired. An expired active root stays (the CA can then mint
 *   nothing: `ca_expired`) until a new root is activated.
 */
import type { Signer } from "../x509/mint.ts";
import { fingerprintSha256, readCertificate } from "../x509/cert.ts";
import type { CaSettings } from "./settings.ts";
import { CaError } from "./errors.ts";
import { certificatePem, checkCertificate, type PersistedCa, type RootState } from "./state.ts";
import type { StoredCa } from "./storage.ts";

export interface RootRecord {
  readonly serial: string;
  readonly der: Uint8Array;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly state: RootState;
  /** ms; pending roots only. */
  readonly activateAt?: number;
  /** Lowercase hex SHA-256 of the DER, no colons. */
  readonly sha256: string;
  /** Active and pending roots only. */
  readonly privateKey?: CryptoKey;
}

export interface SigningRecord {
  readonly serial: string;
  readonly root: string;
  readonly notBefore: number;
  readonly notAfter: number;
  /** The object handed to the minting code; kept stable so its parsed issuer stays cached. */
  readonly signer: Signer;
}

export interface CaModel {
  readonly trustDomain: string;
  readonly roots: readonly RootRecord[];
  readonly signing: SigningRecord;
  readonly bundleSequence: number;
}

export async function sha256Hex(der: Uint8Array): Promise<string> {
  return (await fingerprintSha256(der)).replaceAll(":", "");
}

export async function rootRecord(serial: string, der: Uint8Array, state: RootState, privateKey?: CryptoKey, activateAt?: number): Promise<RootRecord> {
  const info = readCertificate(der);
  return {
    serial,
    der,
    notBefore: info.notBefore,
    notAfter: info.notAfter,
    state,
    sha256: await sha256Hex(der),
    ...(activateAt !== undefined ? { activateAt } : {}),
    ...(privateKey !== undefined ? { privateKey } : {}),
  };
}

export function signingRecord(serial: string, root: string, certificate: Uint8Array, privateKey: CryptoKey): SigningRecord {
  const info = readCertificate(certificate);
  return { serial, root, notBefore: info.notBefore, notAfter: info.notAfter, signer: { certificate, privateKey } };
}

export function activeRoot(m: CaModel): RootRecord {
  return m.roots.find((r) => r.state === "active")!;
}

export function pendingRoot(m: CaModel): RootRecord | undefined {
  return m.roots.find((r) => r.state === "pending");
}

/** When the signing CA reaches half life. */
export function signingHalfLife(s: SigningRecord): number {
  return s.notBefore + Math.floor((s.notAfter - s.notBefore) / 2);
}

/** Half life passed and a replacement issued now would outlive the current signing CA. */
export function signingDue(m: CaModel, settings: CaSettings, now: number): boolean {
  const root = activeRoot(m);
  if (now < signingHalfLife(m.signing) || now > root.notAfter) return false;
  const replacementEnd = Math.min(Math.floor(now / 1000) * 1000 + settings.signingTtlSeconds * 1000, root.notAfter);
  return replacementEnd > m.signing.notAfter;
}

/** When the root rotates by itself, or undefined (never, or one is already pending). */
export function rootRotationAt(m: CaModel, settings: CaSettings): number | undefined {
  if (settings.rootRotateBeforeSeconds === 0 || pendingRoot(m) !== undefined) return undefined;
  return activeRoot(m).notAfter - settings.rootRotateBeforeSeconds * 1000;
}

/** Retiring roots that have expired at `now`. */
export function expiredRoots(m: CaModel, now: number): RootRecord[] {
  return m.roots.filter((r) => r.state === "retiring" && r.notAfter < now);
}

/**
 * The earliest time at or after `now` at which `tick` has something to do, or undefined when
 * nothing is scheduled (an expired root with root_rotate_before 0). A step that failed is due
 * again at once: the caller decides how soon to retry.
 */
export function nextDue(m: CaModel, settings: CaSettings, now: number): number | undefined {
  const times = expiredRoots(m, Infinity).map((r) => r.notAfter + 1);
  const half = signingHalfLife(m.signing);
  if (half > now || signingDue(m, settings, now)) times.push(half);
  const p = pendingRoot(m);
  if (p?.activateAt !== undefined) times.push(p.activateAt);
  const auto = rootRotationAt(m, settings);
  if (auto !== undefined) times.push(auto);
  return times.length === 0 ? undefined : Math.max(now, Math.min(...times));
}

/** The keys the model holds, by serial (for deleting the ones a change lets go). */
export function keySerialsOf(m: CaModel): Set<string> {
  return new Set([...m.roots.filter((r) => r.privateKey !== undefined).map((r) => r.serial), m.signing.serial]);
}

export function toPersisted(m: CaModel): PersistedCa {
  return {
    version: 1,
    trustDomain: m.trustDomain,
    bundleSequence: m.bundleSequence,
    roots: m.roots.map((r) => ({
      serial: r.serial,
      certificate: certificatePem(r.der),
      state: r.state,
      ...(r.activateAt !== undefined ? { activateAt: new Date(r.activateAt).toISOString() } : {}),
    })),
    signing: { serial: m.signing.serial, certificate: certificatePem(m.signing.signer.certificate), root: m.signing.root },
  };
}

/** `r` in a new state: only a pending root keeps activateAt, a retiring root loses its key. */
export function withState(r: RootRecord, state: RootState): RootRecord {
  const { activateAt, privateKey, ...rest } = r;
  return {
    ...rest,
    state,
    ...(state === "pending" && activateAt !== undefined ? { activateAt } : {}),
    ...(state !== "retiring" && privateKey !== undefined ? { privateKey } : {}),
  };
}

/** The model of a loaded CA; a key missing for the active or pending root or the signing CA is `ca_corrupt`. */
export async function modelOf(stored: StoredCa): Promise<CaModel> {
  const { state, keys } = stored;
  const missing = (serial: string) => new CaError("ca_corrupt", `ca: ${serial}.key: missing`);
  const roots: RootRecord[] = [];
  for (const r of state.roots) {
    const c = checkCertificate("ca.json", "root", r.serial, r.certificate);
    const key = r.state === "retiring" ? undefined : keys.get(r.serial);
    if (r.state !== "retiring" && key === undefined) throw missing(r.serial);
    roots.push(await rootRecord(c.serial, c.der, r.state, key, r.activateAt !== undefined ? Date.parse(r.activateAt) : undefined));
  }
  const s = checkCertificate("ca.json", "signing CA", state.signing.serial, state.signing.certificate);
  const key = keys.get(s.serial);
  if (key === undefined) throw missing(s.serial);
  return { trustDomain: state.trustDomain, roots, bundleSequence: state.bundleSequence, signing: signingRecord(s.serial, state.signing.root, s.der, key) };
}
