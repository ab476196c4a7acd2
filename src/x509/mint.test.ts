import { test, describe, assert } from "../../test/shim.ts";
import { SpiffeId } from "../spiffe/id.ts";
import { TrustDomain } from "../spiffe/trust-domain.ts";
import { KEY_USAGE, describeCertificate, readCertificate } from "./cert.ts";
import { OID } from "./cert-ext.ts";
import { nameToText } from "./name.ts";
import { exportSpki, generateKeyPair } from "./keys.ts";
import { BACKDATE_SECONDS, createIntermediateCa, createRootCa, keyIdentifier, mintX509Svid, randomSerial } from "./mint.ts";
import { leafExtensions, pkijsCertificate } from "./mint-pkijs.ts";
import { encodeLeafTbs } from "./leaf-der.ts";
import { verifyX509Svid } from "./verify.ts";
import { X509Error } from "./x509-errors.ts";

const NOW = new Date("2026-03-01T12:00:00.750Z");
const SEC = Math.floor(NOW.getTime() / 1000) * 1000;
const td = TrustDomain.parse("example.org");
const id = SpiffeId.parse("spiffe://example.org/agent/a");

async function setup() {
  const root = await createRootCa({ trustDomain: td, ttlSeconds: 86_400, now: NOW });
  return { root, signer: { certificate: root.der, privateKey: root.privateKey } };
}

describe("mintX509Svid", () => {
  test("a leaf has the SPIFFE X509-SVID shape (sections 2, 4.1, 4.3, 4.4)", async () => {
    const { root, signer } = await setup();
    const key = await generateKeyPair();
    const leaf = await mintX509Svid({ id, publicKey: key.publicKey, signer, ttlSeconds: 3600, now: NOW, dnsNames: ["a.example.org"] });
    const c = readCertificate(leaf.der);
    assert.deepEqual(c.uriSans, [id.toString()]);
    assert.deepEqual(c.dnsSans, ["a.example.org"]);
    assert.deepEqual(c.basicConstraints, { cA: false, pathLen: undefined, critical: true });
    assert.equal(c.keyUsage, KEY_USAGE.digitalSignature);
    assert.equal(c.keyUsageCritical, true);
    assert.deepEqual(c.extKeyUsage, [OID.serverAuth, OID.clientAuth]);
    assert.equal(c.subjectIsEmpty, true);
    assert.equal(c.sanCritical, true);
    assert.deepEqual(c.unhandledCritical, []);
    assert.deepEqual(c.subjectKeyId, await keyIdentifier(await exportSpki(key.publicKey)));
    assert.deepEqual(c.authorityKeyId, readCertificate(root.der).subjectKeyId);
    assert.deepEqual(c.issuer, readCertificate(root.der).subject);
    assert.equal(c.notBefore, SEC - BACKDATE_SECONDS * 1000);
    assert.equal(c.notAfter, SEC + 3600_000);
    assert.equal(c.serial.length, 16);
    assert.equal(c.serial[0]! & 0xc0, 0x40);
    assert.equal(leaf.serial.length, 32);
    assert.equal((await verifyX509Svid([leaf.der], { x509Authorities: () => [root.der] }, { now: NOW })).id.toString(), id.toString());
  });

  test("notAfter is capped at the signer's notAfter", async () => {
    const { root, signer } = await setup();
    const leaf = await mintX509Svid({ id, publicKey: (await generateKeyPair()).publicKey, signer, ttlSeconds: 10 * 86_400, now: NOW });
    assert.equal(readCertificate(leaf.der).notAfter, readCertificate(root.der).notAfter);
    assert.equal(leaf.notAfter.getTime(), readCertificate(root.der).notAfter);
  });

  test("the fast leaf encoder writes exactly what pkijs writes for the same fields", async () => {
    const { root } = await setup();
    const spki = await exportSpki((await generateKeyPair()).publicKey);
    for (const [dnsNames, notAfter] of [[[], SEC + 3600_000], [["a.example", "b.example"], Date.UTC(2051, 0, 2, 3, 4, 5)]] as const) {
      const f = {
        serial: randomSerial(),
        issuerName: readCertificate(root.der).subject,
        notBefore: SEC,
        notAfter,
        spki,
        subjectKeyId: await keyIdentifier(spki),
        authorityKeyId: readCertificate(root.der).subjectKeyId!,
        uri: id.toString(),
        dnsNames,
      };
      const ref = pkijsCertificate({ ...f, subject: [], extensions: leafExtensions(f.uri, dnsNames) });
      assert.deepEqual(encodeLeafTbs(f), new Uint8Array(ref.encodeTBS().toBER(false)));
    }
  });

  const rejects: [string, string, () => Promise<unknown>][] = [
    ["an ID without path", "x509_leaf_id_no_path", async () => mintX509Svid({ id: td.id(), publicKey: (await generateKeyPair()).publicKey, signer: (await setup()).signer, ttlSeconds: 60, now: NOW })],
    ["a zero ttl", "x509_bad_ttl", async () => mintX509Svid({ id, publicKey: (await generateKeyPair()).publicKey, signer: (await setup()).signer, ttlSeconds: 0, now: NOW })],
    ["a fractional ttl", "x509_bad_ttl", async () => createRootCa({ trustDomain: td, ttlSeconds: 1.5, now: NOW })],
    ["a bad DNS name", "x509_bad_dns_name", async () => mintX509Svid({ id, publicKey: (await generateKeyPair()).publicKey, signer: (await setup()).signer, ttlSeconds: 60, now: NOW, dnsNames: ["a b"] })],
    ["a non-ASCII DNS name", "x509_bad_dns_name", async () => mintX509Svid({ id, publicKey: (await generateKeyPair()).publicKey, signer: (await setup()).signer, ttlSeconds: 60, now: NOW, dnsNames: ["é.example"] })],
    ["a signer that is not a certificate", "x509_malformed", async () => mintX509Svid({ id, publicKey: (await generateKeyPair()).publicKey, signer: { certificate: new Uint8Array(3), privateKey: (await generateKeyPair()).privateKey }, ttlSeconds: 60, now: NOW })],
  ];
  for (const [name, code, f] of rejects) {
    test(`rejects ${name}: ${code}`, async () => {
      await assert.rejects(f(), (e: unknown) => e instanceof X509Error && e.code === code);
    });
  }
});

describe("CA certificates", () => {
  test("a root is a self-signed CA with the trust domain's ID (section 3.2, 4.1, 4.3)", async () => {
    const { root } = await setup();
    const c = readCertificate(root.der);
    assert.deepEqual(c.basicConstraints, { cA: true, pathLen: undefined, critical: true });
    assert.equal(c.keyUsage, KEY_USAGE.keyCertSign | KEY_USAGE.cRLSign);
    assert.equal(c.keyUsageCritical, true);
    assert.deepEqual(c.uriSans, ["spiffe://example.org"]);
    assert.deepEqual(c.issuer, c.subject);
    assert.deepEqual(c.authorityKeyId, c.subjectKeyId);
    assert.equal(nameToText(c.subject), `O=example.org, CN=tidegate root CA, serialNumber=${root.serial}`);
    assert.equal(c.notBefore, SEC - BACKDATE_SECONDS * 1000);
    const d = await describeCertificate(root.der);
    assert.equal(d.isCa, true);
    assert.equal(d.spiffeId, "spiffe://example.org");
  });

  test("an intermediate carries pathLen, the root's AKI, and is capped at the root's notAfter", async () => {
    const { root, signer } = await setup();
    const key = await generateKeyPair();
    const inter = await createIntermediateCa({ trustDomain: td, publicKey: key.publicKey, signer, ttlSeconds: 30 * 86_400, now: NOW, pathLen: 0 });
    const c = readCertificate(inter.der);
    assert.deepEqual(c.basicConstraints, { cA: true, pathLen: 0, critical: true });
    assert.deepEqual(c.authorityKeyId, readCertificate(root.der).subjectKeyId);
    assert.equal(c.notAfter, readCertificate(root.der).notAfter);
    const leaf = await mintX509Svid({ id, publicKey: (await generateKeyPair()).publicKey, signer: { certificate: inter.der, privateKey: key.privateKey }, ttlSeconds: 60, now: NOW });
    const r = await verifyX509Svid([leaf.der, inter.der], { x509Authorities: () => [root.der] }, { now: NOW });
    assert.equal(r.chain.length, 3);
  });

  test("a given key pair and subject are used", async () => {
    const kp = await generateKeyPair();
    const root = await createRootCa({ trustDomain: td, ttlSeconds: 60, now: NOW, keyPair: kp, subject: { commonName: "Acme", organization: "Acme Inc" } });
    assert.equal(root.publicKey, kp.publicKey);
    assert.match(nameToText(readCertificate(root.der).subject), /^O=Acme Inc, CN=Acme, serialNumber=/);
  });
});
