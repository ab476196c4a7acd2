/**
 * X.509-SVID interop with real openssl (DESIGN.md section 4): what tidegate mints passes
 * `openssl verify`, and certificates openssl makes at test time (SPIRE-shaped) verify in tidegate,
 * while the malformed ones are rejected with the right codes.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestCa, type TestCa } from "../helpers/test-ca.ts";
import { SpiffeId } from "../../src/spiffe/id.ts";
import { createCsr, signCsr } from "../../src/x509/csr.ts";
import { generateKeyPair } from "../../src/x509/keys.ts";
import { decodePem, encodePem } from "../../src/x509/pem.ts";
import { verifyX509Svid, type X509BundleSource } from "../../src/x509/verify.ts";
import { X509SvidError } from "../../src/x509/x509-errors.ts";

let dir = "";
let ca: TestCa;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tidegate-x509-"));
  ca = await createTestCa();
  writePem("root.pem", ca.root.der);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function writePem(name: string, ...ders: Uint8Array[]): string {
  const path = join(dir, name);
  writeFileSync(path, ders.map((d) => encodePem("CERTIFICATE", d)).join(""));
  return path;
}

function openssl(...args: string[]): { code: number; out: string } {
  const r = Bun.spawnSync(["openssl", ...args], { cwd: dir, stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode, out: r.stdout.toString() + r.stderr.toString() };
}

function must(...args: string[]): string {
  const r = openssl(...args);
  if (r.code !== 0) throw new Error(`openssl ${args.join(" ")} failed:\n${r.out}`);
  return r.out;
}

const readPem = (name: string) => decodePem(readFileSync(join(dir, name), "utf8"))[0]!.der;

describe("openssl verify accepts what tidegate mints", () => {
  test("a leaf signed by the root", async () => {
    const leaf = await ca.mintLeaf("/agent/claude");
    expect(must("verify", "-CAfile", "root.pem", writePem("leaf.pem", leaf.der))).toContain(": OK");
  });

  test("a leaf under an intermediate (-untrusted)", async () => {
    const inter = await ca.mintIntermediate();
    const leaf = await inter.mintLeaf("/agent/x");
    writePem("inter.pem", inter.der);
    expect(must("verify", "-CAfile", "root.pem", "-untrusted", "inter.pem", writePem("leaf-i.pem", leaf.der))).toContain(": OK");
  });

  test("a leaf minted from a CSR, for TLS client and server purposes", async () => {
    const keys = await generateKeyPair();
    const leafId = SpiffeId.fromPath(ca.trustDomain, "/csr");
    const csr = await createCsr({ ...keys, id: leafId });
    const leaf = await signCsr({ csr, id: leafId, signer: ca.signer, ttlSeconds: 600, now: new Date() });
    const path = writePem("leaf-csr.pem", leaf.der);
    for (const purpose of ["sslclient", "sslserver"]) expect(must("verify", "-purpose", purpose, "-CAfile", "root.pem", path)).toContain(": OK");
    writeFileSync(join(dir, "req.der"), csr);
    expect(must("req", "-in", "req.der", "-inform", "DER", "-noout", "-verify")).toMatch(/verify OK|Certificate request self-signature verify OK/);
  });

  test("openssl x509 -text shows the X509-SVID extensions", async () => {
    const leaf = await ca.mintLeaf("/agent/t", { dnsNames: ["t.example.org"] });
    const text = must("x509", "-in", writePem("leaf-t.pem", leaf.der), "-noout", "-text");
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature\n/);
    expect(text).toMatch(/X509v3 Extended Key Usage: \s*\n\s+TLS Web Server Authentication, TLS Web Client Authentication/);
    expect(text).toMatch(/X509v3 Subject Alternative Name: critical\s+URI:spiffe:\/\/example\.org\/agent\/t, DNS:t\.example\.org/);
    expect(text).toContain("X509v3 Subject Key Identifier");
    expect(text).toContain("X509v3 Authority Key Identifier");
    expect(text).toContain("Signature Algorithm: ecdsa-with-SHA256");
    const root = must("x509", "-in", "root.pem", "-noout", "-text");
    expect(root).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE/);
    expect(root).toMatch(/X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign/);
    expect(root).toContain("URI:spiffe://example.org\n");
  });
});

describe("tidegate verifies what openssl makes", () => {
  let bundle: X509BundleSource;
  const good = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment,keyAgreement\nextendedKeyUsage=serverAuth,clientAuth";

  function opensslLeaf(name: string, exts: string, days = "1"): Uint8Array {
    writeFileSync(join(dir, `${name}.cnf`), `[v3]\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n${exts}\n`);
    must("req", "-new", "-key", "o-leaf.key", "-subj", "/C=US/O=SPIRE", "-out", `${name}.csr`);
    must("x509", "-req", "-in", `${name}.csr`, "-CA", "o-root.pem", "-CAkey", "o-root.key", "-CAcreateserial", "-days", days, "-sha256", "-extfile", `${name}.cnf`, "-extensions", "v3", "-out", `${name}.pem`);
    return readPem(`${name}.pem`);
  }

  beforeAll(() => {
    must("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "o-root.key");
    must("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "o-leaf.key");
    must("req", "-x509", "-new", "-key", "o-root.key", "-sha256", "-days", "2", "-subj", "/C=US/O=SPIFFE", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-addext", "subjectAltName=URI:spiffe://example.org", "-out", "o-root.pem");
    const root = readPem("o-root.pem");
    bundle = { x509Authorities: (td) => (td.name === "example.org" ? [root] : undefined) };
  });

  test("a SPIRE-shaped leaf verifies", async () => {
    const leaf = opensslLeaf("o-good", `${good}\nsubjectAltName=URI:spiffe://example.org/workload`);
    const r = await verifyX509Svid([leaf], bundle, { now: new Date() });
    expect(r.id.toString()).toBe("spiffe://example.org/workload");
    expect(r.chain.length).toBe(2);
  });

  const bad: [string, string, string, number][] = [
    ["two URI SANs", `${good}\nsubjectAltName=URI:spiffe://example.org/a,URI:spiffe://example.org/b`, "svid_uri_san_count", 0],
    ["a CA leaf", "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,digitalSignature,keyCertSign\nsubjectAltName=URI:spiffe://example.org/w", "svid_leaf_is_ca", 0],
    ["an expired leaf", `${good}\nsubjectAltName=URI:spiffe://example.org/w`, "svid_expired", 3 * 86_400_000],
  ];
  for (const [name, exts, code, later] of bad) {
    test(`${name} is rejected: ${code}`, async () => {
      const leaf = opensslLeaf(`o-${code}`, exts);
      const err = await verifyX509Svid([leaf], bundle, { now: new Date(Date.now() + later) }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(X509SvidError);
      expect((err as X509SvidError).code).toBe(code);
    });
  }
});
