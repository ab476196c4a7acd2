/**
 * The identity server's CA: a long-lived root and a shorter-lived signing (intermediate) CA under
 * it, rotated as ./model.ts describes so that no chain it issued stops verifying before its own
 * notAfter. Time is always the caller's `now`; nothing here reads a clock or starts a timer: the
 * server calls `tick(now)` periodically (`nextTickAt(now)` says when there is work next).
 *
 * Every change (a rotation, an activation, a drop) is built as a new model, self-checked, its new
 * keys stored, then the state saved; only then does it replace the old one. Any failure leaves
 * the old CA active. Changes run one at a time; minting never waits for them.
 */
import { Bundle } from "../spiffe/bundle.ts";
import type { SpiffeId } from "../spiffe/id.ts";
import { TrustDomain } from "../spiffe/trust-domain.ts";
import { signCsr } from "../x509/csr.ts";
import { mintX509Svid, type MintedCertificate } from "../x509/mint.ts";
import { newRoot, newSigning, selfCheck, timeWithin, type CaTestHooks, type NewAuthority } from "./authority.ts";
import { CaError } from "./errors.ts";
import * as M from "./model.ts";
import { checkCaSettings, type CaSettings } from "./settings.ts";
import type { CaStorage } from "./storage.ts";

export interface IssuedSvid {
  readonly der: Uint8Array;
  /** [leaf, signing CA], DER; what the holder presents. Treat as read-only. */
  readonly chain: readonly Uint8Array[];
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export type CaEvent =
  | { type: "ca_rotated"; serial: string; root: string; notAfter: Date; reason: "half_life" | "manual" | "root_activated" }
  | { type: "root_published"; serial: string; activateAt: Date; notAfter: Date; reason: "auto" | "manual" }
  | { type: "root_activated"; serial: string; previous: string }
  | { type: "bundle_updated"; sequence: number }
  | { type: "ca_expired_dropped"; serial: string; notAfter: Date }
  | { type: "ca_rotation_failed"; what: "signing" | "root" | "root_activation"; code: string; message: string };

export interface CaStatus {
  readonly roots: { serial: string; sha256: string; notBefore: Date; notAfter: Date; state: "active" | "pending" | "retiring"; activateAt?: Date }[];
  readonly signing: { serial: string; root: string; notBefore: Date; notAfter: Date };
  readonly bundleSequence: number;
}

interface Common {
  settings: CaSettings;
  storage: CaStorage;
  now: Date;
  /** Tests only (./authority.ts). */
  hooks?: CaTestHooks;
}

export class CaManager {
  readonly trustDomain: TrustDomain;
  private readonly settings: CaSettings;
  private readonly storage: CaStorage;
  private readonly hooks: CaTestHooks | undefined;
  private model: M.CaModel;
  private cachedBundle: Bundle | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(td: TrustDomain, opts: Common, model: M.CaModel) {
    this.trustDomain = td;
    this.settings = opts.settings;
    this.storage = opts.storage;
    this.hooks = opts.hooks;
    this.model = model;
  }

  /** Creates and stores a new CA; refuses storage that holds one already (`ca_exists`). */
  static async init(opts: Common & { trustDomain: TrustDomain }): Promise<CaManager> {
    const settings = checkCaSettings(opts.settings);
    if ((await opts.storage.load()) !== null) throw new CaError("ca_exists", "ca: a CA already exists here; it is never overwritten");
    const td = opts.trustDomain;
    const root = await newRoot(td, settings.rootTtlSeconds, opts.now, opts.hooks);
    const signing = await newSigning(td, { certificate: root.certificate, privateKey: root.privateKey }, settings.signingTtlSeconds, opts.now, opts.hooks);
    const model: M.CaModel = {
      trustDomain: td.name,
      roots: [await M.rootRecord(root.serial, root.certificate, "active", root.privateKey)],
      signing: M.signingRecord(signing.serial, root.serial, signing.certificate, signing.privateKey),
      bundleSequence: 1,
    };
    const ca = new CaManager(td, { ...opts, settings }, model);
    await ca.store(model, [root, signing]);
    return ca;
  }

  /** Loads the stored CA (`ca_missing`, `ca_corrupt`, `ca_key_permissions`); never initialises one. */
  static async load(opts: Common): Promise<CaManager> {
    const settings = checkCaSettings(opts.settings);
    const stored = await opts.storage.load();
    if (stored === null) throw new CaError("ca_missing", "ca: no CA here; run `tidegate server init` first");
    const model = await M.modelOf(stored);
    const td = TrustDomain.parse(model.trustDomain);
    for (const r of model.roots) {
      if (r.privateKey === undefined) continue;
      const signer = { certificate: r.der, privateKey: r.privateKey };
      await selfCheck(td, signer, r.der, timeWithin(r.der, opts.now), `stored ${r.state} root CA ${r.serial}`);
    }
    const s = model.signing;
    await selfCheck(td, s.signer, M.activeRoot(model).der, timeWithin(s.signer.certificate, opts.now), `stored signing CA ${s.serial}`);
    return new CaManager(td, { ...opts, settings }, model);
  }

  /** A leaf from a CSR under the active signing CA (./x509 signCsr rules; csr_* errors). */
  async mintFromCsr(opts: { csr: Uint8Array; id: SpiffeId; ttlSeconds: number; now: Date; dnsNames?: readonly string[] }): Promise<IssuedSvid> {
    const s = this.signerFor(opts.id, opts.now);
    return issued(await signCsr({ ...opts, signer: s.signer }), s);
  }

  /** The same for a public key the server holds itself (its own SVID). */
  async mintForKey(opts: { id: SpiffeId; publicKey: CryptoKey; ttlSeconds: number; now: Date; dnsNames?: readonly string[] }): Promise<IssuedSvid> {
    const s = this.signerFor(opts.id, opts.now);
    return issued(await mintX509Svid({ ...opts, signer: s.signer }), s);
  }

  /** Every root kept (active, pending, retiring), with the sequence and the refresh hint. */
  bundle(): Bundle {
    this.cachedBundle ??= Bundle.create(this.trustDomain, {
      x509Authorities: this.model.roots.map((r) => r.der),
      sequence: this.model.bundleSequence,
      refreshHintSeconds: this.settings.refreshHintSeconds,
    });
    return this.cachedBundle;
  }

  /** Incremented (and persisted) on every change of the set of roots. */
  bundleSequence(): number {
    return this.model.bundleSequence;
  }

  /** Lowercase hex SHA-256 of the active root's DER, no colons (`token create`). */
  activeRootFingerprint(): string {
    return M.activeRoot(this.model).sha256;
  }

  status(): CaStatus {
    const s = this.model.signing;
    return {
      roots: this.model.roots.map((r) => ({
        serial: r.serial,
        sha256: r.sha256,
        notBefore: new Date(r.notBefore),
        notAfter: new Date(r.notAfter),
        state: r.state,
        ...(r.activateAt !== undefined ? { activateAt: new Date(r.activateAt) } : {}),
      })),
      signing: { serial: s.serial, root: s.root, notBefore: new Date(s.notBefore), notAfter: new Date(s.notAfter) },
      bundleSequence: this.model.bundleSequence,
    };
  }

  /** The earliest time at or after `now` at which `tick` has work to do; null when none is scheduled. */
  nextTickAt(now: Date): Date | null {
    const t = M.nextDue(this.model, this.settings, now.getTime());
    return t === undefined ? null : new Date(t);
  }

  /**
   * Due work at `now`, in this order: activate a pending root whose time has come; publish a new
   * root within root_rotate_before of the active root's end; rotate the signing CA at half life;
   * drop expired retiring roots. A failed step is reported as `ca_rotation_failed` (the old CA
   * stays) and retried at the next tick.
   */
  tick(now: Date): Promise<CaEvent[]> {
    return this.exclusive(async () => {
      const events: CaEvent[] = [];
      const t = now.getTime();
      const attempt = async (what: "signing" | "root" | "root_activation", step: () => Promise<CaEvent[]>) => {
        try {
          events.push(...(await step()));
        } catch (e) {
          if (!(e instanceof CaError)) throw e;
          events.push({ type: "ca_rotation_failed", what, code: e.code, message: e.message });
        }
      };
      const p = M.pendingRoot(this.model);
      if (p?.activateAt !== undefined && t >= p.activateAt) await attempt("root_activation", () => this.activate(p, now));
      const auto = M.rootRotationAt(this.model, this.settings);
      if (auto !== undefined && t >= auto) await attempt("root", () => this.publishRoot(now, "auto"));
      if (M.signingDue(this.model, this.settings, t)) await attempt("signing", () => this.replaceSigning(now, "half_life"));
      events.push(...(await this.dropExpired(t)));
      return events;
    });
  }

  /** `rotate-ca`: a new signing CA under the active root now (self-checked; the old one stays on failure). */
  rotateSigning(now: Date): Promise<CaEvent[]> {
    return this.exclusive(() => this.replaceSigning(now, "manual"));
  }

  /** `rotate-ca --root`: publishes a new root now; `tick` activates it one refresh hint later. */
  rotateRoot(now: Date): Promise<CaEvent[]> {
    return this.exclusive(() => this.publishRoot(now, "manual"));
  }

  private signerFor(id: SpiffeId, now: Date): M.SigningRecord {
    if (!id.memberOf(this.trustDomain)) {
      throw new CaError("ca_foreign_id", `ca: ${id.toString()} is not in trust domain ${this.trustDomain.name}`);
    }
    const s = this.model.signing;
    if (now.getTime() > s.notAfter) {
      throw new CaError("ca_expired", `ca: signing CA ${s.serial} expired at ${new Date(s.notAfter).toISOString()}`);
    }
    return s;
  }

  private async replaceSigning(now: Date, reason: "half_life" | "manual"): Promise<CaEvent[]> {
    const root = M.activeRoot(this.model);
    if (now.getTime() > root.notAfter) {
      throw new CaError("ca_expired", `ca: active root ${root.serial} expired at ${new Date(root.notAfter).toISOString()}`);
    }
    const n = await newSigning(this.trustDomain, { certificate: root.der, privateKey: root.privateKey! }, this.settings.signingTtlSeconds, now, this.hooks);
    const signing = M.signingRecord(n.serial, root.serial, n.certificate, n.privateKey);
    await this.store({ ...this.model, signing }, [n]);
    return [{ type: "ca_rotated", serial: n.serial, root: root.serial, notAfter: new Date(signing.notAfter), reason }];
  }

  private async publishRoot(now: Date, reason: "auto" | "manual"): Promise<CaEvent[]> {
    const p = M.pendingRoot(this.model);
    if (p !== undefined) {
      throw new CaError("ca_root_pending", `ca: root ${p.serial} is already published and activates at ${new Date(p.activateAt!).toISOString()}`);
    }
    const n = await newRoot(this.trustDomain, this.settings.rootTtlSeconds, now, this.hooks);
    const activateAt = now.getTime() + this.settings.refreshHintSeconds * 1000;
    const root = await M.rootRecord(n.serial, n.certificate, "pending", n.privateKey, activateAt);
    const bundleSequence = this.model.bundleSequence + 1;
    await this.store({ ...this.model, roots: [...this.model.roots, root], bundleSequence }, [n]);
    return [
      { type: "root_published", serial: n.serial, activateAt: new Date(activateAt), notAfter: new Date(root.notAfter), reason },
      { type: "bundle_updated", sequence: bundleSequence },
    ];
  }

  private async activate(pending: M.RootRecord, now: Date): Promise<CaEvent[]> {
    const old = M.activeRoot(this.model);
    const n = await newSigning(this.trustDomain, { certificate: pending.der, privateKey: pending.privateKey! }, this.settings.signingTtlSeconds, now, this.hooks);
    const roots = this.model.roots.map((r) => (r === pending ? M.withState(r, "active") : r === old ? M.withState(r, "retiring") : r));
    const signing = M.signingRecord(n.serial, pending.serial, n.certificate, n.privateKey);
    await this.store({ ...this.model, roots, signing }, [n]);
    return [
      { type: "root_activated", serial: pending.serial, previous: old.serial },
      { type: "ca_rotated", serial: n.serial, root: pending.serial, notAfter: new Date(signing.notAfter), reason: "root_activated" },
    ];
  }

  private async dropExpired(t: number): Promise<CaEvent[]> {
    const gone = M.expiredRoots(this.model, t);
    if (gone.length === 0) return [];
    const bundleSequence = this.model.bundleSequence + 1;
    await this.store({ ...this.model, roots: this.model.roots.filter((r) => !gone.includes(r)), bundleSequence }, []);
    return [
      ...gone.map((r): CaEvent => ({ type: "ca_expired_dropped", serial: r.serial, notAfter: new Date(r.notAfter) })),
      { type: "bundle_updated", sequence: bundleSequence },
    ];
  }

  /** New keys first, then the state; only then the model in memory; then unused keys go. */
  private async store(next: M.CaModel, newKeys: readonly NewAuthority[]): Promise<void> {
    for (const k of newKeys) await this.storage.saveKey(k.serial, k.pkcs8Pem);
    await this.storage.save(M.toPersisted(next));
    const before = M.keySerialsOf(this.model);
    const after = M.keySerialsOf(next);
    this.model = next;
    this.cachedBundle = undefined;
    for (const serial of before) {
      if (!after.has(serial)) await this.storage.deleteKey(serial).catch(() => undefined); // an unreferenced key file is harmless
    }
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

function issued(c: MintedCertificate, s: M.SigningRecord): IssuedSvid {
  return { der: c.der, chain: [c.der, s.signer.certificate], serial: c.serial, notBefore: c.notBefore, notAfter: c.notAfter };
}
