/**
 * CSRs that `createCsr` never makes, for the server's rejection tests: extra SANs, a CA request,
 * other keys. Built with pkijs directly (the way src/x509/csr.test.ts does).
 */
import * as pkijs from "pkijs";
import { OID, generateKeyPair, subtle, toBase64 } from "../x509/index.ts";

export async function rawCsr(o: { keys?: CryptoKeyPair; uris?: string[]; dns?: string[]; ca?: boolean }): Promise<string> {
  const keys = o.keys ?? (await generateKeyPair());
  const req = new pkijs.CertificationRequest();
  await req.subjectPublicKeyInfo.importKey(keys.publicKey);
  const extensions: pkijs.Extension[] = [];
  if (o.uris?.length || o.dns?.length) {
    const names = [...(o.uris ?? []).map((u) => new pkijs.GeneralName({ type: 6, value: u })), ...(o.dns ?? []).map((d) => new pkijs.GeneralName({ type: 2, value: d }))];
    extensions.push(new pkijs.Extension({ extnID: OID.subjectAltName, critical: false, extnValue: new pkijs.AltName({ altNames: names }).toSchema().toBER(false) }));
  }
  if (o.ca) {
    extensions.push(new pkijs.Extension({ extnID: "2.5.29.19", critical: true, extnValue: new pkijs.BasicConstraints({ cA: true }).toSchema().toBER(false) }));
  }
  if (extensions.length > 0) {
    req.attributes = [new pkijs.Attribute({ type: "1.2.840.113549.1.9.14", values: [new pkijs.Extensions({ extensions }).toSchema()] })];
  }
  await req.sign(keys.privateKey, "SHA-256");
  return toBase64(new Uint8Array(req.toSchema(true).toBER(false)));
}

export async function rsaKeys(): Promise<CryptoKeyPair> {
  return (await subtle.generateKey({ name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" }, true, ["sign", "verify"])) as CryptoKeyPair;
}

export async function p384Keys(): Promise<CryptoKeyPair> {
  return (await subtle.generateKey({ name: "ECDSA", namedCurve: "P-384" }, true, ["sign", "verify"])) as CryptoKeyPair;
}
