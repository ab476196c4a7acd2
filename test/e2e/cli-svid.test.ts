// `tidegate svid inspect` and `svid verify` on the built binary, with PKI made in memory by the
// test CA helper and written to files as an operator would have them.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tidegate } from "../helpers/binary.ts";
import { createTestCa, type TestCa } from "../helpers/test-ca.ts";
import { encodePem } from "../../src/x509/pem.ts";
import { exportPkcs8Pem } from "../../src/x509/keys.ts";
import { Bundle } from "../../src/spiffe/bundle.ts";
import { formatJwksBundle } from "../../src/spiffe/jwks.ts";

const T = 20_000;
const dir = mkdtempSync(join(tmpdir(), "tidegate-svid-"));
const f = (name: string) => join(dir, name);
const pem = (...ders: Uint8Array[]) => ders.map((d) => encodePem("CERTIFICATE", d)).join("");
let ca: TestCa;
let leafKeyPem: string;

beforeAll(async () => {
  ca = await createTestCa({ trustDomain: "example.org" });
  const leaf = await ca.mintLeaf("/agent/claude", { dnsNames: ["agent.local"] });
  const inter = await ca.mintIntermediate();
  const viaInter = await inter.mintLeaf("/mcp/github");
  const other = await createTestCa({ trustDomain: "example.org" });
  const foreign = await other.mintLeaf("/agent/claude");
  const expired = await ca.mintCustom({ uris: ["spiffe://example.org/agent/old"], notBefore: new Date(Date.now() - 7200_000), notAfter: new Date(Date.now() - 3600_000) });
  const caLeaf = await ca.mintCustom({ uris: ["spiffe://example.org/agent/ca"], cA: true, keyUsage: [0, 5] });
  const noSanRoot = await createTestCa({ trustDomain: "example.org" });
  leafKeyPem = await exportPkcs8Pem(leaf.privateKey);
  writeFileSync(f("root.pem"), pem(ca.root.der));
  writeFileSync(f("leaf.pem"), pem(leaf.der));
  writeFileSync(f("leaf.der"), leaf.der);
  writeFileSync(f("leaf-and-key.pem"), pem(leaf.der) + leafKeyPem);
  writeFileSync(f("via-inter.pem"), pem(...viaInter.chain));
  writeFileSync(f("via-inter-leaf-only.pem"), pem(viaInter.der));
  writeFileSync(f("foreign.pem"), pem(foreign.der));
  writeFileSync(f("expired.pem"), pem(expired.der));
  writeFileSync(f("ca-leaf.pem"), pem(caLeaf.der));
  writeFileSync(f("bundle.jwks"), await formatJwksBundle(Bundle.create(ca.trustDomain, { x509Authorities: [ca.root.der], sequence: 3 })));
  writeFileSync(f("two-domains.pem"), pem(ca.root.der, (await createTestCa({ trustDomain: "partner.test" })).root.der));
  writeFileSync(f("other-root.pem"), pem(noSanRoot.root.der));
  writeFileSync(f("garbage.pem"), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("svid inspect", () => {
  test("shows the SPIFFE ID, role, key, validity and DNS SANs of a PEM leaf", async () => {
    const r = await tidegate(["svid", "inspect", f("leaf.pem")]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/SPIFFE ID\s+spiffe:\/\/example\.org\/agent\/claude/);
    expect(r.stdout).toMatch(/trust domain\s+example\.org/);
    expect(r.stdout).toMatch(/role\s+leaf/);
    expect(r.stdout).toMatch(/key\s+EC P-256/);
    expect(r.stdout).toMatch(/DNS SANs\s+agent\.local/);
    expect(r.stdout).toMatch(/not after\s+\S+ \(expires in /);
  }, T);

  test("reads DER and prints JSON", async () => {
    const r = await tidegate(["svid", "inspect", "--json", f("leaf.der")]);
    expect(r.code).toBe(0);
    const [d] = JSON.parse(r.stdout);
    expect(d.spiffeId).toBe("spiffe://example.org/agent/claude");
    expect(d.isCa).toBe(false);
    expect(d.keyType).toBe("EC P-256");
  }, T);

  test("lists the whole chain, leaf first", async () => {
    const r = await tidegate(["svid", "inspect", "--json", f("via-inter.pem")]);
    const chain = JSON.parse(r.stdout);
    expect(chain.map((c: { spiffeId: string; isCa: boolean }) => [c.spiffeId, c.isCa])).toEqual([
      ["spiffe://example.org/mcp/github", false],
      ["spiffe://example.org", true],
    ]);
  }, T);

  test("skips a private key kept beside the certificate and never prints it", async () => {
    const r = await tidegate(["svid", "inspect", f("leaf-and-key.pem")]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("skipped 1 non-certificate block(s): PRIVATE KEY");
    const body = leafKeyPem.split("\n")[1]!;
    expect(r.stdout + r.stderr).not.toContain(body);
  }, T);

  test("a malformed certificate fails with its code", async () => {
    const r = await tidegate(["svid", "inspect", f("garbage.pem")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\[x509_malformed\]/);
  }, T);
});

describe("svid verify", () => {
  const ok: [string, string[], string][] = [
    ["a leaf against PEM roots, trust domain from the root's URI SAN", ["--bundle", "root.pem", "leaf.pem"], "spiffe://example.org/agent/claude"],
    ["a DER leaf", ["--bundle", "root.pem", "leaf.der"], "spiffe://example.org/agent/claude"],
    ["a leaf through an intermediate", ["--bundle", "root.pem", "via-inter.pem"], "spiffe://example.org/mcp/github"],
    ["a SPIFFE JWKS bundle", ["--bundle", "bundle.jwks", "leaf.pem"], "spiffe://example.org/agent/claude"],
    ["an explicit trust domain", ["--bundle", "root.pem", "--trust-domain", "example.org", "leaf.pem"], "spiffe://example.org/agent/claude"],
  ];
  for (const [name, args, id] of ok) {
    test(`accepts ${name}`, async () => {
      const r = await tidegate(["svid", "verify", ...args.map((a) => (a.includes(".") && !a.startsWith("example") ? f(a) : a))]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(`${id}\n`);
    }, T);
  }

  const bad: [string, string[], string][] = [
    ["a leaf from another CA of the same trust domain", ["--bundle", "root.pem", "foreign.pem"], "svid_untrusted"],
    ["an expired leaf", ["--bundle", "root.pem", "expired.pem"], "svid_expired"],
    ["a CA certificate as a leaf", ["--bundle", "root.pem", "ca-leaf.pem"], "svid_leaf_is_ca"],
    ["a leaf whose intermediate is missing", ["--bundle", "root.pem", "via-inter-leaf-only.pem"], "svid_untrusted"],
    ["a bundle for another trust domain", ["--bundle", "root.pem", "--trust-domain", "partner.test", "leaf.pem"], "svid_no_bundle"],
    ["a time before the leaf is valid", ["--bundle", "root.pem", "--at", "2001-01-01T00:00:00Z", "leaf.pem"], "svid_not_yet_valid"],
  ];
  for (const [name, args, code] of bad) {
    test(`rejects ${name} with ${code}`, async () => {
      const r = await tidegate(["svid", "verify", ...args.map((a) => (a.endsWith(".pem") ? f(a) : a))]);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe("");
      expect(r.stderr).toMatch(new RegExp(`^tidegate svid verify: .+ \\[${code}\\]\\n$`));
    }, T);
  }

  test("roots naming two trust domains need --trust-domain (usage, exit 2)", async () => {
    const r = await tidegate(["svid", "verify", "--bundle", f("two-domains.pem"), f("leaf.pem")]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("example.org, partner.test");
    expect(r.stderr).toContain("--trust-domain");
  }, T);

  test("a leaf checked against another root of its trust domain is untrusted", async () => {
    const r = await tidegate(["svid", "verify", "--bundle", f("other-root.pem"), f("leaf.pem")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("[svid_untrusted]");
  }, T);
});
