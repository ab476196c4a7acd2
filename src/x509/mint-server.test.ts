// Plain-TLS minting (mint.ts): the interception CA's root and its server leaves. Field by field
// through readCertificate, and the IP SANs (which readCertificate only counts) through pkijs.
import * as pkijs from "pkijs";
import { test, describe, assert } from "../../test/shim.ts";
import { KEY_USAGE, readCertificate } from "./cert.ts";
import { OID } from "./cert-ext.ts";
import { toArrayBuffer } from "./encoding.ts";
import { nameToText } from "./name.ts";
import { exportSpki, generateKeyPair } from "./keys.ts";
import { BACKDATE_SECONDS, createTlsRootCa, keyIdentifier, mintServerCertificate } from "./mint.ts";
import { X509Error } from "./x509-errors.ts";

const NOW = new Date("2026-03-01T12:00:00.750Z");
const SEC = Math.floor(NOW.getTime() / 1000) * 1000;

async function setup() {
  const root = await createTlsRootCa({ commonName: "tidegate interception CA (node-1)", ttlSeconds: 86_400, now: NOW, pathLen: 0 });
  return { root, signer: { certificate: root.der, privateKey: root.privateKey } };
}

/** The SAN entries as [GeneralName type, value]: 2 dNSName text, 7 iPAddress bytes. */
function sans(der: Uint8Array): [number, string | Uint8Array][] {
  const cert = pkijs.Certificate.fromBER(toArrayBuffer(der));
  const ext = cert.extensions?.find((e) => e.extnID === OID.subjectAltName);
  if (ext === undefined) return [];
  const alt = ext.parsedValue as pkijs.AltName;
  return alt.altNames.map((n) => [n.type, n.type === 7 ? new Uint8Array((n.value as { valueBlock: { valueHexView: Uint8Array } }).valueBlock.valueHexView) : (n.value as string)]);
}

describe("createTlsRootCa", () => {
  test("a self-signed CA with no SPIFFE ID: no SAN at all, O, CN and serial in the subject", async () => {
    const { root } = await setup();
    const c = readCertificate(root.der);
    assert.deepEqual(c.basicConstraints, { cA: true, pathLen: 0, critical: true });
    assert.equal(c.keyUsage, KEY_USAGE.keyCertSign | KEY_USAGE.cRLSign);
    assert.equal(c.keyUsageCritical, true);
    assert.equal(c.extensionOids.includes(OID.subjectAltName), false);
    assert.deepEqual(c.uriSans, []);
    assert.deepEqual(c.issuer, c.subject);
    assert.deepEqual(c.authorityKeyId, c.subjectKeyId);
    assert.equal(nameToText(c.subject), `O=tidegate, CN=tidegate interception CA (node-1), serialNumber=${root.serial}`);
    assert.equal(c.notBefore, SEC - BACKDATE_SECONDS * 1000);
    assert.equal(c.notAfter, SEC + 86_400_000);
    assert.deepEqual(c.unhandledCritical, []);
  });
});

describe("mintServerCertificate", () => {
  test("a leaf with exactly the DNS and IP SANs given, serverAuth only, an empty subject", async () => {
    const { root, signer } = await setup();
    const key = await generateKeyPair();
    const v6 = new Uint8Array(16);
    v6[15] = 1;
    const leaf = await mintServerCertificate({ publicKey: key.publicKey, signer, ttlSeconds: 3600, now: NOW, dnsNames: ["api.example.com"], ipAddresses: [Uint8Array.of(10, 1, 2, 3), v6] });
    const c = readCertificate(leaf.der);
    assert.deepEqual(sans(leaf.der), [[2, "api.example.com"], [7, Uint8Array.of(10, 1, 2, 3)], [7, v6]]);
    assert.deepEqual(c.dnsSans, ["api.example.com"]);
    assert.deepEqual(c.uriSans, []);
    assert.equal(c.otherSanCount, 2);
    assert.equal(c.sanCritical, true);
    assert.equal(c.subjectIsEmpty, true);
    assert.deepEqual(c.basicConstraints, { cA: false, pathLen: undefined, critical: true });
    assert.equal(c.keyUsage, KEY_USAGE.digitalSignature);
    assert.equal(c.keyUsageCritical, true);
    assert.deepEqual(c.extKeyUsage, [OID.serverAuth]);
    assert.deepEqual(c.unhandledCritical, []);
    assert.deepEqual(c.subjectKeyId, await keyIdentifier(await exportSpki(key.publicKey)));
    assert.deepEqual(c.authorityKeyId, readCertificate(root.der).subjectKeyId);
    assert.deepEqual(c.issuer, readCertificate(root.der).subject);
    assert.equal(c.notBefore, SEC - BACKDATE_SECONDS * 1000);
    assert.equal(c.notAfter, SEC + 3600_000);
    assert.equal(leaf.notAfter.getTime(), SEC + 3600_000);
    assert.equal(c.serial[0]! & 0xc0, 0x40);
  });

  test("one IP address alone; a wildcard and underscores in DNS names; notAfter capped at the CA's", async () => {
    const { root, signer } = await setup();
    const spki = await exportSpki((await generateKeyPair()).publicKey);
    const ip = await mintServerCertificate({ publicKey: spki, signer, ttlSeconds: 60, now: NOW, ipAddresses: [Uint8Array.of(127, 0, 0, 1)] });
    assert.deepEqual(sans(ip.der), [[7, Uint8Array.of(127, 0, 0, 1)]]);
    const names = await mintServerCertificate({ publicKey: spki, signer, ttlSeconds: 10 * 86_400, now: NOW, dnsNames: ["*.example.com", "a_b.example.com"] });
    assert.deepEqual(readCertificate(names.der).dnsSans, ["*.example.com", "a_b.example.com"]);
    assert.equal(names.notAfter.getTime(), readCertificate(root.der).notAfter);
  });

  const rejects: [string, string, (s: Awaited<ReturnType<typeof setup>>["signer"], k: CryptoKey) => Promise<unknown>][] = [
    ["no names at all", "x509_no_names", (signer, k) => mintServerCertificate({ publicKey: k, signer, ttlSeconds: 60, now: NOW })],
    ["empty name lists", "x509_no_names", (signer, k) => mintServerCertificate({ publicKey: k, signer, ttlSeconds: 60, now: NOW, dnsNames: [], ipAddresses: [] })],
    ["a DNS name with a space", "x509_bad_dns_name", (signer, k) => mintServerCertificate({ publicKey: k, signer, ttlSeconds: 60, now: NOW, dnsNames: ["a b.example"] })],
    ["a DNS name with an empty label", "x509_bad_dns_name", (signer, k) => mintServerCertificate({ publicKey: k, signer, ttlSeconds: 60, now: NOW, dnsNames: ["a..example"] })],
    ["a label ending in -", "x509_bad_dns_name", (signer, k) => mintServerCertificate({ publicKey: k, signer, ttlSeconds: 60, now: NOW, dnsNames: ["a-.example"] })],
    ["a DNS name over 253 characters", "x509_bad_dns_name", (signer, k) => mintServerCertificate({ publicKey: k, signer, ttlSeconds: 60, now: NOW, dnsNames: [`${"a.".repeat(127)}a`] })],
    ["an IP address of 5 octets", "x509_bad_ip_address", (signer, k) => mintServerCertificate({ publicKey: k, signer, ttlSeconds: 60, now: NOW, ipAddresses: [new Uint8Array(5)] })],
    ["a zero ttl", "x509_bad_ttl", (signer, k) => mintServerCertificate({ publicKey: k, signer, ttlSeconds: 0, now: NOW, dnsNames: ["a.example"] })],
  ];
  for (const [name, code, f] of rejects) {
    test(`rejects ${name}: ${code}`, async () => {
      const { signer } = await setup();
      await assert.rejects(f(signer, (await generateKeyPair()).publicKey), (e: unknown) => e instanceof X509Error && e.code === code);
    });
  }
});
