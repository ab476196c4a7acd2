/**
 * The agent's interception CA (DESIGN.md section 5, `intercept`): the proxy terminates a
 * workload's TLS with a leaf minted here for the server name the workload asked for, and the
 * workloads `tidegate run` starts trust the CA through their bundle (trust-bundle.ts).
 *
 * Guarantees:
 * - the CA is P-256, "tidegate interception CA (<label>)", pathLen 0, valid CA_TTL_SECONDS, kept
 *   in `<state-dir>/agent/intercept/` across restarts (ca-files.ts); with less than
 *   CA_RENEW_BEFORE_MS left it is replaced, at open and before a leaf is minted, and every leaf of
 *   the old one is dropped (`generation` counts the CAs this instance has used);
 * - `leafFor(name)` gives a leaf with exactly one SAN: the DNS name (lowercase, without its
 *   trailing dot) or, for an IP literal (IPv4, IPv6 with or without brackets), the IP address;
 *   serverAuth only, a key of its own, valid LEAF_TTL_SECONDS (capped at the CA's end);
 * - a leaf is reused until half its life has passed, then minted again; the cache holds at most
 *   `maxLeaves` names, the least recently used dropped first; concurrent asks for one name share
 *   one mint.
 * Rejected (`intercept_bad_name`): a name that is neither a host name (../policy/host-name.ts: LDH
 * labels plus "_", at most 253 characters) nor an IP literal, and wildcards.
 */
import { ipToBytes, tryParseIp } from "../policy/address.ts";
import { normalizeServerName } from "../policy/host-name.ts";
import { quote } from "../errors.ts";
import { mintServerCertificate } from "../x509/mint.ts";
import { exportPkcs8Pem, generateKeyPair } from "../x509/keys.ts";
import { encodePem } from "../x509/pem.ts";
import { CaFiles, type CaMaterial, type CaOrigin, CA_RENEW_BEFORE_MS } from "./ca-files.ts";
import { InterceptError } from "./errors.ts";

export const LEAF_TTL_SECONDS = 3600;
export const DEFAULT_MAX_LEAVES = 1024;

export interface InterceptLeaf {
  /** The leaf alone (the CA is the workload's trust anchor). */
  readonly certPem: string;
  /** Its private key, PKCS#8 PEM. */
  readonly keyPem: string;
  readonly notAfter: Date;
}

export interface InterceptionCaOptions {
  /** The agent's state folder: the CA lives in `<stateDir>/agent/intercept/`. */
  readonly stateDir: string;
  /** The node's name or the instance, in the CA's common name. */
  readonly label: string;
  /** Milliseconds since the epoch (tests inject theirs). */
  readonly now?: () => number;
  readonly maxLeaves?: number;
  /** Called after the CA was renewed (the new one is in use and on disk). */
  readonly onRenewed?: (ca: InterceptionCa) => void;
}

/** What a leaf is for: one DNS name or one IP address, and the cache key. */
export type LeafSubject = { readonly key: string; readonly dnsName: string } | { readonly key: string; readonly ip: Uint8Array };

/** The leaf subject for a server name as a TLS client or an HTTP Host gives it. */
export function leafSubject(serverName: string): LeafSubject {
  let name: string | null;
  try {
    name = normalizeServerName(serverName);
  } catch (e) {
    throw new InterceptError("intercept_bad_name", `intercept: no certificate for ${quote(serverName)}: ${e instanceof Error ? e.message.replace(/^policy: /, "") : String(e)}`, { cause: e });
  }
  if (name !== null) return { key: `dns:${name}`, dnsName: name };
  const bare = serverName.replace(/\.$/, "").replace(/^\[(.*)\]$/, "$1");
  const ip = tryParseIp(bare);
  if (ip === null) throw new InterceptError("intercept_bad_name", `intercept: no certificate for ${quote(serverName)}: not an IP address`);
  return { key: `ip:${ip.text}`, ip: ipToBytes(ip) };
}

interface CacheEntry {
  readonly leaf: Promise<InterceptLeaf>;
  readonly generation: number;
  /** When it is minted again: half its life after it was minted (Infinity while minting). */
  refreshAt: number;
}

export class InterceptionCa {
  private readonly cache = new Map<string, CacheEntry>();
  private renewing: Promise<void> | null = null;
  private gen = 1;

  private constructor(
    private readonly files: CaFiles,
    private ca: CaMaterial,
    private made: CaOrigin,
    private readonly o: InterceptionCaOptions,
  ) {}

  /** Loads the CA kept on disk, or makes one (see ca-files.ts for when a kept one is replaced). */
  static async open(o: InterceptionCaOptions): Promise<InterceptionCa> {
    const files = new CaFiles(o.stateDir);
    const { ca, origin } = await files.loadOrCreate(o.label, (o.now ?? Date.now)());
    return new InterceptionCa(files, ca, origin, o);
  }

  get certPem(): string {
    return this.ca.certPem;
  }

  get certDer(): Uint8Array {
    return this.ca.der;
  }

  get notAfter(): Date {
    return new Date(this.ca.notAfter);
  }

  /** Lowercase hex serial of the CA in use. */
  get serial(): string {
    return this.ca.serial;
  }

  /** How the CA in use came to be: loaded, created, or replaced (and why; renewal included). */
  get origin(): CaOrigin {
    return this.made;
  }

  /** 1 for the CA opened, +1 at each renewal. */
  get generation(): number {
    return this.gen;
  }

  get keyPath(): string {
    return this.files.keyPath;
  }

  get certPath(): string {
    return this.files.certPath;
  }

  get cachedLeaves(): number {
    return this.cache.size;
  }

  private now(): number {
    return (this.o.now ?? Date.now)();
  }

  /** A leaf for `serverName` (see the module comment); throws `intercept_bad_name`. */
  async leafFor(serverName: string): Promise<InterceptLeaf> {
    const subject = leafSubject(serverName);
    if (this.now() >= this.ca.notAfter - CA_RENEW_BEFORE_MS) await this.renew();
    const hit = this.cache.get(subject.key);
    if (hit !== undefined && hit.generation === this.gen && this.now() < hit.refreshAt) {
      this.cache.delete(subject.key);
      this.cache.set(subject.key, hit);
      return hit.leaf;
    }
    this.cache.delete(subject.key);
    const mintedAt = this.now();
    const entry: CacheEntry = { leaf: this.mint(subject, mintedAt), generation: this.gen, refreshAt: Infinity };
    this.cache.set(subject.key, entry);
    for (const key of this.cache.keys()) {
      if (this.cache.size <= (this.o.maxLeaves ?? DEFAULT_MAX_LEAVES)) break;
      this.cache.delete(key);
    }
    try {
      const leaf = await entry.leaf;
      entry.refreshAt = mintedAt + (leaf.notAfter.getTime() - mintedAt) / 2;
      return leaf;
    } catch (e) {
      if (this.cache.get(subject.key) === entry) this.cache.delete(subject.key);
      throw e;
    }
  }

  private async mint(subject: LeafSubject, now: number): Promise<InterceptLeaf> {
    const key = await generateKeyPair({ extractable: true });
    const cert = await mintServerCertificate({
      publicKey: key.publicKey,
      signer: { certificate: this.ca.der, privateKey: this.ca.privateKey },
      ttlSeconds: LEAF_TTL_SECONDS,
      now: new Date(now),
      ...("dnsName" in subject ? { dnsNames: [subject.dnsName] } : { ipAddresses: [subject.ip] }),
    });
    return { certPem: encodePem("CERTIFICATE", cert.der), keyPem: await exportPkcs8Pem(key.privateKey), notAfter: cert.notAfter };
  }

  /** Replaces a CA near its end with a new one (written over the files); leaves of the old one go. */
  private renew(): Promise<void> {
    this.renewing ??= (async () => {
      try {
        const now = this.now();
        if (now < this.ca.notAfter - CA_RENEW_BEFORE_MS) return;
        const old = this.ca;
        this.ca = await this.files.create(this.o.label, now);
        this.made = { kind: "replaced", reason: `renewed: ca.pem expires at ${new Date(old.notAfter).toISOString()}` };
        this.gen++;
        this.cache.clear();
        this.o.onRenewed?.(this);
      } finally {
        this.renewing = null;
      }
    })();
    return this.renewing;
  }
}
