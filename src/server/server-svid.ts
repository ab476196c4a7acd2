/**
 * The server's own X.509-SVID, spiffe://TD/tidegate/server with the settings' DNS names, presented
 * by both listeners. Its key is made in memory for every SVID and never written anywhere. It is
 * replaced at half life, and as soon as the CA's signing CA changes (a rotation), so the chain it
 * presents is always under the CA's current signing CA.
 */
import type { TrustDomain } from "../spiffe/index.ts";
import { encodePem, exportPkcs8Pem, generateKeyPair } from "../x509/index.ts";
import type { CaManager } from "../ca/manager.ts";
import { serverId } from "./ids.ts";
import type { TlsMaterial } from "./tls-listener.ts";

interface Fields {
  readonly chain: readonly Uint8Array[];
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** PEM: the SVID then the signing CA. */
  readonly certPem: string;
  /** PEM PKCS#8; memory only. */
  readonly keyPem: string;
  /** The serial of the signing CA that issued it. */
  readonly signingSerial: string;
}

export class ServerSvid {
  readonly fields: Fields;

  private constructor(fields: Fields) {
    this.fields = fields;
  }

  get serial(): string {
    return this.fields.serial;
  }

  get notAfter(): Date {
    return this.fields.notAfter;
  }

  static async mint(ca: CaManager, td: TrustDomain, dnsNames: readonly string[], ttlSeconds: number, now: Date): Promise<ServerSvid> {
    const keys = await generateKeyPair({ extractable: true });
    const signingSerial = ca.status().signing.serial;
    const svid = await ca.mintForKey({ id: serverId(td), publicKey: keys.publicKey, ttlSeconds, now, dnsNames });
    return new ServerSvid({
      chain: svid.chain,
      serial: svid.serial,
      notBefore: svid.notBefore,
      notAfter: svid.notAfter,
      certPem: svid.chain.map((d) => encodePem("CERTIFICATE", d)).join(""),
      keyPem: await exportPkcs8Pem(keys.privateKey),
      signingSerial,
    });
  }

  /** Half way through its validity. */
  get renewAt(): Date {
    return new Date((this.fields.notBefore.getTime() + this.fields.notAfter.getTime()) / 2);
  }

  /** True once it should be replaced: half life passed, or issued by a signing CA no longer current. */
  stale(now: Date, currentSigningSerial: string): boolean {
    return now.getTime() >= this.renewAt.getTime() || currentSigningSerial !== this.fields.signingSerial;
  }

  material(rootsPem: string): TlsMaterial {
    return { certPem: this.fields.certPem, keyPem: this.fields.keyPem, caPem: rootsPem };
  }
}
