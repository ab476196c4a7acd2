import * as pkijs from "pkijs";
import fc from "fast-check";
import { fuzzRuns } from "../../test/fuzz-runs.ts";
import { test, describe, assert } from "../../test/shim.ts";
import { isTidegateError } from "../errors.ts";
import { SpiffeId } from "../spiffe/id.ts";
import { TrustDomain } from "../spiffe/trust-domain.ts";
import { subtle } from "./engine.ts";
import { readCertificate } from "./cert.ts";
import { OID } from "./cert-ext.ts";
import { exportSpki, generateKeyPair } from "./keys.ts";
import { createRootCa } from "./mint.ts";
import { keyUsageBits } from "./mint-pkijs.ts";
import { createCsr, parseCsr, signCsr } from "./csr.ts";
import { editTree, fromTree, toTree } from "./test-der-tree.ts";
import { CsrError } from "./x509-errors.ts";

const NOW = new Date("2026-03-01T12:00:00Z");
const td = TrustDomain.parse("example.org");
const id = SpiffeId.parse("spiffe://example.org/agent/a");

let signerPromise: Promise<{ certificate: Uint8Array; privateKey: CryptoKey }> | undefined;
const signer = () =>
  (signerPromise ??= createRootCa({ trustDomain: td, ttlSeconds: 86_400, now: NOW }).then((r) => ({ certificate: r.der, privateKey: r.privateKey })));

/** A CSR built directly with pkijs, for requests createCsr never makes. */
async function rawCsr(o: { keys?: CryptoKeyPair; extensions?: pkijs.Extension[]; signWith?: CryptoKey }): Promise<Uint8Array> {
  const keys = o.keys ?? (await generateKeyPair());
  const req = new pkijs.CertificationRequest();
  await req.subjectPublicKeyInfo.importKey(keys.publicKey);
  if (o.extensions !== undefined) {
    req.attributes = [new pkijs.Attribute({ type: "1.2.840.113549.1.9.14", values: [new pkijs.Extensions({ extensions: o.extensions }).toSchema()] })];
  }
  await req.sign(o.signWith ?? keys.privateKey, "SHA-256");
  return new Uint8Array(req.toSchema(true).toBER(false));
}

const sanExt = (uris: string[], dns: string[] = []) =>
  new pkijs.Extension({
    extnID: OID.subjectAltName,
    critical: false,
    extnValue: new pkijs.AltName({ altNames: [...uris.map((u) => new pkijs.GeneralName({ type: 6, value: u })), ...dns.map((d) => new pkijs.GeneralName({ type: 2, value: d }))] }).toSchema().toBER(false),
  });

describe("createCsr / parseCsr", () => {
  test("round trip: key, URI SAN, signature checked", async () => {
    const keys = await generateKeyPair();
    const der = await createCsr({ privateKey: keys.privateKey, publicKey: keys.publicKey, id });
    const csr = await parseCsr(der);
    assert.deepEqual(csr.spki, await exportSpki(keys.publicKey));
    assert.deepEqual(csr.uriSans, [id.toString()]);
    assert.deepEqual(csr.dnsSans, []);
    assert.equal(csr.requestsCa, false);
    assert.deepEqual(await exportSpki(csr.publicKey), csr.spki);
  });

  test("without an id: no extension request", async () => {
    const keys = await generateKeyPair();
    const csr = await parseCsr(await createCsr(keys));
    assert.deepEqual(csr.uriSans, []);
  });
});

describe("parseCsr rejects", () => {
  const rows: [string, string, () => Promise<Uint8Array>][] = [
    ["random bytes", "csr_malformed", async () => new Uint8Array([1, 2, 3])],
    ["trailing bytes", "csr_malformed", async () => {
      const k = await generateKeyPair();
      return new Uint8Array([...(await createCsr(k)), 0]);
    }],
    ["a P-384 key", "csr_unsupported_key", async () => {
      const keys = (await subtle.generateKey({ name: "ECDSA", namedCurve: "P-384" }, true, ["sign", "verify"])) as CryptoKeyPair;
      return rawCsr({ keys });
    }],
    ["an RSA 2048 key", "csr_unsupported_key", async () => {
      const keys = (await subtle.generateKey({ name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" }, true, ["sign", "verify"])) as CryptoKeyPair;
      return rawCsr({ keys });
    }],
    ["a signature by another key", "csr_bad_signature", async () => rawCsr({ signWith: (await generateKeyPair()).privateKey })],
    ["a flipped signature byte", "csr_bad_signature", async () => {
      const k = await generateKeyPair();
      const d = (await createCsr(k)).slice();
      d[d.length - 3]! ^= 1;
      return d;
    }],
    // Found by src/server/attest.fuzz.test.ts: the signature algorithm's parameters were not read,
    // so SEQUENCE { ecdsa-with-SHA256, NULL } (or any second element) was signed.
    ["an ECDSA signature algorithm with parameters", "csr_malformed", async () => {
      const tree = toTree(await createCsr(await generateKeyPair()));
      return fromTree(editTree(tree, [0, 1, 0], (oid) => [oid, { tag: 0x05, bytes: new Uint8Array() }]));
    }],
  ];
  for (const [name, code, make] of rows) {
    test(`${name}: ${code}`, async () => {
      const der = await make();
      await assert.rejects(parseCsr(der), (e: unknown) => e instanceof CsrError && e.code === code);
    });
  }
});

describe("signCsr", () => {
  test("mints a verifiable leaf for the id with the CSR's key", async () => {
    const keys = await generateKeyPair();
    const leaf = await signCsr({ csr: await createCsr({ ...keys, id }), id, signer: await signer(), ttlSeconds: 600, now: NOW, dnsNames: ["a.example"] });
    const c = readCertificate(leaf.der);
    assert.deepEqual(c.uriSans, [id.toString()]);
    assert.deepEqual(c.dnsSans, ["a.example"]);
    assert.deepEqual(c.spki, await exportSpki(keys.publicKey));
  });

  test("accepts a CSR with no URI SAN (the CA decides the id)", async () => {
    const leaf = await signCsr({ csr: await createCsr(await generateKeyPair()), id, signer: await signer(), ttlSeconds: 600, now: NOW });
    assert.deepEqual(readCertificate(leaf.der).uriSans, [id.toString()]);
  });

  const rows: [string, string, () => Promise<Uint8Array>][] = [
    ["another SPIFFE ID", "csr_id_mismatch", async () => createCsr({ ...(await generateKeyPair()), id: SpiffeId.parse("spiffe://example.org/other") })],
    ["two URI SANs", "csr_extra_san", async () => rawCsr({ extensions: [sanExt([id.toString(), "spiffe://example.org/b"])] })],
    ["a DNS SAN not allowed", "csr_extra_san", async () => rawCsr({ extensions: [sanExt([id.toString()], ["evil.example"])] })],
    ["an email SAN", "csr_extra_san", async () => rawCsr({ extensions: [new pkijs.Extension({ extnID: OID.subjectAltName, critical: false, extnValue: new pkijs.AltName({ altNames: [new pkijs.GeneralName({ type: 1, value: "a@b.c" })] }).toSchema().toBER(false) })] })],
    ["cA=true", "csr_requests_ca", async () => rawCsr({ extensions: [new pkijs.Extension({ extnID: OID.basicConstraints, critical: true, extnValue: new pkijs.BasicConstraints({ cA: true }).toSchema().toBER(false) })] })],
    ["keyCertSign", "csr_requests_ca", async () => rawCsr({ extensions: [new pkijs.Extension({ extnID: OID.keyUsage, critical: true, extnValue: keyUsageBits([0, 5]).toBER(false) })] })],
  ];
  for (const [name, code, make] of rows) {
    test(`rejects ${name}: ${code}`, async () => {
      const csr = await make();
      await assert.rejects(signCsr({ csr, id, signer: await signer(), ttlSeconds: 60, now: NOW }), (e: unknown) => e instanceof CsrError && e.code === code);
    });
  }
});

describe("parseCsr fuzz", () => {
  test("random bytes: returns or throws a TidegateError", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 400 }), async (bytes) => {
        try {
          await parseCsr(bytes);
        } catch (e) {
          if (!isTidegateError(e)) throw e;
        }
      }),
      { numRuns: fuzzRuns(300) },
    );
  });

  test("mutated valid CSR: returns or throws a TidegateError", async () => {
    const valid = await createCsr({ ...(await generateKeyPair()), id });
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat({ max: valid.length - 1 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.nat({ max: 8 }), async (edits, cut) => {
        const d = valid.slice(0, valid.length - cut);
        for (const [i, b] of edits) if (i < d.length) d[i] = b;
        try {
          await parseCsr(d);
        } catch (e) {
          if (!isTidegateError(e)) throw e;
        }
      }),
      { numRuns: fuzzRuns(300) },
    );
  });
});
