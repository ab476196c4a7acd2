import { test, describe, assert } from "../../test/shim.ts";
import { subtle } from "./engine.ts";
import { describeSpki, exportPkcs8, exportPkcs8Pem, exportSpki, exportSpkiPem, generateKeyPair, importPkcs8, importSpki } from "./keys.ts";
import { X509Error } from "./x509-errors.ts";

const gen = async (alg: EcKeyGenParams | RsaHashedKeyGenParams | Algorithm) =>
  (await subtle.generateKey(alg as EcKeyGenParams, true, ["sign", "verify"])) as CryptoKeyPair;

describe("keys", () => {
  test("P-256 round trip through PKCS#8 and SPKI, DER and PEM", async () => {
    const kp = await generateKeyPair({ extractable: true });
    const priv = await importPkcs8(await exportPkcs8(kp.privateKey));
    const privPem = await importPkcs8(await exportPkcs8Pem(kp.privateKey));
    const pub = await importSpki(await exportSpkiPem(kp.publicKey));
    const data = new Uint8Array([1, 2, 3]);
    for (const k of [priv, privPem]) {
      const sig = await subtle.sign({ name: "ECDSA", hash: "SHA-256" }, k, data);
      assert.ok(await subtle.verify({ name: "ECDSA", hash: "SHA-256" }, pub, sig, data));
    }
    assert.equal(priv.extractable, false);
  });

  test("generated private keys are not extractable unless asked", async () => {
    const kp = await generateKeyPair();
    assert.equal(kp.privateKey.extractable, false);
    await assert.rejects(exportPkcs8(kp.privateKey));
  });

  test("describeSpki names foreign keys", async () => {
    const rows: [Algorithm | EcKeyGenParams | RsaHashedKeyGenParams, string][] = [
      [{ name: "ECDSA", namedCurve: "P-256" } as EcKeyGenParams, "EC P-256"],
      [{ name: "ECDSA", namedCurve: "P-384" } as EcKeyGenParams, "EC P-384"],
      [{ name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" } as RsaHashedKeyGenParams, "RSA 2048"],
      [{ name: "Ed25519" }, "Ed25519"],
    ];
    for (const [alg, text] of rows) {
      const kp = await gen(alg);
      assert.equal(describeSpki(await exportSpki(kp.publicKey)).text, text);
    }
  });

  const rejects: [string, string, () => Promise<unknown>][] = [
    ["PKCS#8 garbage", "key_malformed", () => importPkcs8(new Uint8Array([0x30, 0x03, 2, 1, 0]))],
    ["a PEM without PRIVATE KEY block", "key_malformed", () => importPkcs8("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")],
    ["a P-384 private key", "key_unsupported", async () => importPkcs8(await exportPkcs8((await gen({ name: "ECDSA", namedCurve: "P-384" } as EcKeyGenParams)).privateKey))],
    ["an Ed25519 public key", "key_unsupported", async () => importSpki(await exportSpki((await gen({ name: "Ed25519" })).publicKey))],
    ["SPKI garbage", "key_malformed", () => importSpki(new Uint8Array([1, 2, 3]))],
  ];
  for (const [name, code, f] of rejects) {
    test(`rejects ${name}: ${code}`, async () => {
      await assert.rejects(f(), (e: unknown) => e instanceof X509Error && e.code === code);
    });
  }
});
