// The interception CA: kept on disk across instances of the class with the promised modes,
// replaced when unusable, renewed near its end; leaves with exactly the one name asked for,
// cached until half their life, and trusted by real openssl through the workload bundle.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readCertificate } from "../x509/cert.ts";
import { decodePem } from "../x509/pem.ts";
import { nameToText } from "../x509/name.ts";
import { importPkcs8 } from "../x509/keys.ts";
import { InterceptionCa, leafSubject, LEAF_TTL_SECONDS } from "./ca.ts";
import { CA_RENEW_BEFORE_MS, CA_TTL_SECONDS, caCommonName } from "./ca-files.ts";
import { InterceptError } from "./errors.ts";
import { WorkloadTrustBundle } from "./trust-bundle.ts";

const top = mkdtempSync(join(tmpdir(), "tidegate-test-intercept-ca-"));
afterAll(() => rmSync(top, { recursive: true, force: true }));
let n = 0;
const fresh = () => {
  const d = join(top, `s${n++}`);
  mkdirSync(d);
  return d;
};
const T0 = Date.UTC(2026, 2, 1, 12, 0, 0);
const der = (pem: string) => decodePem(pem)[0]!.der;
const clock = (start = T0) => {
  const c = { t: start, now: () => c.t };
  return c;
};

/** Runs openssl; returns its exit code and output. */
function openssl(args: string[]): { code: number; out: string } {
  const r = Bun.spawnSync(["openssl", ...args], { stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode, out: r.stdout.toString() + r.stderr.toString() };
}

describe("the CA on disk", () => {
  test("created on first use: ca.key 0600, ca.pem 0644, in a 0700 folder; P-256, named, valid a year", async () => {
    const dir = fresh();
    const ca = await InterceptionCa.open({ stateDir: dir, label: "node-1", now: clock().now });
    expect(ca.origin).toEqual({ kind: "created" });
    expect(ca.keyPath).toBe(join(dir, "agent", "intercept", "ca.key"));
    expect(ca.certPath).toBe(join(dir, "agent", "intercept", "ca.pem"));
    expect(statSync(ca.keyPath).mode & 0o777).toBe(0o600);
    expect(statSync(ca.certPath).mode & 0o777).toBe(0o644);
    expect(statSync(join(dir, "agent", "intercept")).mode & 0o777).toBe(0o700);
    expect(readFileSync(ca.certPath, "utf8")).toBe(ca.certPem);
    const c = readCertificate(ca.certDer);
    expect(nameToText(c.subject)).toBe(`O=tidegate, CN=tidegate interception CA (node-1), serialNumber=${ca.serial}`);
    expect(c.basicConstraints).toEqual({ cA: true, pathLen: 0, critical: true });
    expect(c.notAfter).toBe(T0 + CA_TTL_SECONDS * 1000);
    expect(openssl(["pkey", "-in", ca.keyPath, "-noout", "-text"]).out).toContain("NIST CURVE: P-256");
  });

  test("the mode stays 0600/0644 under a umask that would narrow or widen it", async () => {
    const old = process.umask(0o077);
    try {
      const ca = await InterceptionCa.open({ stateDir: fresh(), label: "umask" });
      expect([statSync(ca.keyPath).mode & 0o777, statSync(ca.certPath).mode & 0o777]).toEqual([0o600, 0o644]);
    } finally {
      process.umask(old);
    }
  });

  test("kept across instances of the class: the second loads the first's CA, and signs with its key", async () => {
    const dir = fresh();
    const c = clock();
    const first = await InterceptionCa.open({ stateDir: dir, label: "node-1", now: c.now });
    c.t += 86_400_000;
    const second = await InterceptionCa.open({ stateDir: dir, label: "renamed", now: c.now });
    expect(second.origin).toEqual({ kind: "loaded" });
    expect(second.certPem).toBe(first.certPem);
    expect(second.serial).toBe(first.serial);
    const leaf = await second.leafFor("api.example.com");
    const info = readCertificate(der(leaf.certPem));
    expect(info.issuer).toEqual(readCertificate(first.certDer).subject);
    expect(info.authorityKeyId).toEqual(readCertificate(first.certDer).subjectKeyId);
  });

  test("the CN is cut to 64 characters", () => {
    expect(caCommonName("x".repeat(100)).length).toBe(64);
    expect(caCommonName("n")).toBe("tidegate interception CA (n)");
  });

  const broken: [string, (dir: string) => void, string][] = [
    ["ca.pem missing", (d) => rmSync(join(d, "agent/intercept/ca.pem")), "ca.pem is missing"],
    ["ca.key missing", (d) => rmSync(join(d, "agent/intercept/ca.key")), "ca.key is missing"],
    ["ca.pem not PEM", (d) => writeFileSync(join(d, "agent/intercept/ca.pem"), "garbage"), "unreadable: pem: no PEM block found"],
    ["ca.pem a PEM without certificate", (d) => writeFileSync(join(d, "agent/intercept/ca.pem"), "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), "ca.pem holds no certificate"],
    ["ca.key garbage", (d) => writeFileSync(join(d, "agent/intercept/ca.key"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), "unreadable: "],
  ];
  for (const [name, breakIt, reason] of broken) {
    test(`replaced when ${name}, with why`, async () => {
      const dir = fresh();
      const before = await InterceptionCa.open({ stateDir: dir, label: "n" });
      breakIt(dir);
      const after = await InterceptionCa.open({ stateDir: dir, label: "n" });
      expect(after.origin.kind).toBe("replaced");
      expect(after.origin.kind === "replaced" && after.origin.reason).toStartWith(reason);
      expect(after.serial).not.toBe(before.serial);
      expect((await InterceptionCa.open({ stateDir: dir, label: "n" })).origin).toEqual({ kind: "loaded" });
    });
  }

  test("replaced when ca.pem is not a CA (a leaf of it)", async () => {
    const dir = fresh();
    const ca = await InterceptionCa.open({ stateDir: dir, label: "n" });
    writeFileSync(ca.certPath, (await ca.leafFor("a.example.com")).certPem);
    expect((await InterceptionCa.open({ stateDir: dir, label: "n" })).origin).toEqual({ kind: "replaced", reason: "ca.pem is not a CA certificate" });
  });

  test("replaced when ca.key is another CA's key", async () => {
    const a = fresh();
    const b = fresh();
    await InterceptionCa.open({ stateDir: a, label: "a" });
    await InterceptionCa.open({ stateDir: b, label: "b" });
    writeFileSync(join(a, "agent/intercept/ca.key"), readFileSync(join(b, "agent/intercept/ca.key")));
    const again = await InterceptionCa.open({ stateDir: a, label: "a" });
    expect(again.origin).toEqual({ kind: "replaced", reason: "ca.key is not the key of ca.pem" });
  });

  test("replaced at open when less than the renewal margin is left, or when not yet valid", async () => {
    const dir = fresh();
    const c = clock();
    const first = await InterceptionCa.open({ stateDir: dir, label: "n", now: c.now });
    c.t = first.notAfter.getTime() - CA_RENEW_BEFORE_MS;
    const late = await InterceptionCa.open({ stateDir: dir, label: "n", now: c.now });
    expect(late.origin).toEqual({ kind: "replaced", reason: `ca.pem expires at ${first.notAfter.toISOString()}` });
    c.t = T0;
    const early = await InterceptionCa.open({ stateDir: dir, label: "n", now: c.now });
    expect(early.origin.kind === "replaced" && early.origin.reason).toStartWith("ca.pem is not valid before ");
  });

  test("a file that cannot be read (not absent, not a CA) is intercept_ca_io, and nothing is replaced", async () => {
    const dir = fresh();
    await InterceptionCa.open({ stateDir: dir, label: "n" });
    const key = join(dir, "agent/intercept/ca.key");
    const kept = readFileSync(key);
    rmSync(key);
    mkdirSync(key); // EISDIR on read
    const e = await InterceptionCa.open({ stateDir: dir, label: "n" }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(InterceptError);
    expect((e as InterceptError).code).toBe("intercept_ca_io");
    rmSync(key, { recursive: true });
    writeFileSync(key, kept, { mode: 0o600 });
    expect((await InterceptionCa.open({ stateDir: dir, label: "n" })).origin).toEqual({ kind: "loaded" });
  });
});

describe("leaves", () => {
  test("a DNS name gives exactly that one DNS SAN (lowercase, no trailing dot), serverAuth, an hour", async () => {
    const c = clock();
    const ca = await InterceptionCa.open({ stateDir: fresh(), label: "n", now: c.now });
    const leaf = await ca.leafFor("API.Example.COM.");
    const info = readCertificate(der(leaf.certPem));
    expect(info.dnsSans).toEqual(["api.example.com"]);
    expect([info.uriSans, info.otherSanCount]).toEqual([[], 0]);
    expect(info.extKeyUsage).toEqual(["1.3.6.1.5.5.7.3.1"]);
    expect(info.notAfter).toBe(T0 + LEAF_TTL_SECONDS * 1000);
    expect(leaf.notAfter.getTime()).toBe(T0 + LEAF_TTL_SECONDS * 1000);
    await importPkcs8(leaf.keyPem); // a P-256 PKCS#8 key
    const file = join(fresh(), "leaf.pem");
    writeFileSync(file, leaf.certPem);
    const san = openssl(["x509", "-in", file, "-noout", "-ext", "subjectAltName"]);
    expect(san.out.trim().split("\n").map((l) => l.trim())).toEqual(["X509v3 Subject Alternative Name: critical", "DNS:api.example.com"]);
  });

  test("an IP literal gives one IP SAN and no DNS SAN (IPv4, IPv6 with and without brackets)", async () => {
    const ca = await InterceptionCa.open({ stateDir: fresh(), label: "n" });
    const dir = fresh();
    for (const [name, text] of [["10.1.2.3", "IP Address:10.1.2.3"], ["[2001:db8::1]", "IP Address:2001:DB8:0:0:0:0:0:1"], ["2001:db8::1", "IP Address:2001:DB8:0:0:0:0:0:1"]] as const) {
      const leaf = await ca.leafFor(name);
      const info = readCertificate(der(leaf.certPem));
      expect([info.dnsSans, info.uriSans, info.otherSanCount]).toEqual([[], [], 1]);
      writeFileSync(join(dir, "leaf.pem"), leaf.certPem);
      const san = openssl(["x509", "-in", join(dir, "leaf.pem"), "-noout", "-ext", "subjectAltName"]);
      expect(san.out.trim().split("\n").map((l) => l.trim())).toEqual(["X509v3 Subject Alternative Name: critical", text]);
    }
    expect(ca.cachedLeaves).toBe(2); // the bracketed and bare IPv6 forms are one address
  });

  test.each(["*.example.com", "a b.example", "", "exa mple", "bad..name", "[10.0.0.1]", "é.example"])("%p is intercept_bad_name", async (name) => {
    const ca = await InterceptionCa.open({ stateDir: fresh(), label: "n" });
    const e = await ca.leafFor(name).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(InterceptError);
    expect((e as InterceptError).code).toBe("intercept_bad_name");
    expect(() => leafSubject(name)).toThrow(InterceptError);
  });

  test("a cache hit returns the same leaf; concurrent asks share one mint; names are cached apart", async () => {
    const ca = await InterceptionCa.open({ stateDir: fresh(), label: "n", now: clock().now });
    const [a, b] = await Promise.all([ca.leafFor("a.example.com"), ca.leafFor("a.example.com")]);
    expect(b).toBe(a);
    expect(await ca.leafFor("A.example.com")).toBe(a);
    const other = await ca.leafFor("b.example.com");
    expect(other.certPem).not.toBe(a.certPem);
    expect(other.keyPem).not.toBe(a.keyPem);
    expect(ca.cachedLeaves).toBe(2);
  });

  test("minted again once half its life has passed (injected clock)", async () => {
    const c = clock();
    const ca = await InterceptionCa.open({ stateDir: fresh(), label: "n", now: c.now });
    const first = await ca.leafFor("a.example.com");
    c.t = T0 + (LEAF_TTL_SECONDS * 1000) / 2 - 1;
    expect(await ca.leafFor("a.example.com")).toBe(first);
    c.t = T0 + (LEAF_TTL_SECONDS * 1000) / 2;
    const second = await ca.leafFor("a.example.com");
    expect(second).not.toBe(first);
    expect(second.notAfter.getTime()).toBe(c.t + LEAF_TTL_SECONDS * 1000);
    expect(await ca.leafFor("a.example.com")).toBe(second);
  });

  test("the cache is bounded, least recently used dropped first", async () => {
    const ca = await InterceptionCa.open({ stateDir: fresh(), label: "n", now: clock().now, maxLeaves: 2 });
    const a = await ca.leafFor("a.example.com");
    const b = await ca.leafFor("b.example.com");
    expect(await ca.leafFor("a.example.com")).toBe(a); // a is now the most recent
    await ca.leafFor("c.example.com");
    expect(ca.cachedLeaves).toBe(2);
    expect(await ca.leafFor("a.example.com")).toBe(a);
    expect(await ca.leafFor("b.example.com")).not.toBe(b);
  });

  test("near its end the CA is renewed before a leaf is minted: new files, leaves of the old one dropped", async () => {
    const dir = fresh();
    const c = clock();
    const renewed: string[] = [];
    const ca = await InterceptionCa.open({ stateDir: dir, label: "n", now: c.now, onRenewed: (x) => void renewed.push(x.serial) });
    const old = { serial: ca.serial, pem: ca.certPem };
    c.t = ca.notAfter.getTime() - CA_RENEW_BEFORE_MS - 1;
    const before = await ca.leafFor("a.example.com");
    expect([ca.serial, ca.generation]).toEqual([old.serial, 1]);
    c.t += 1;
    const after = await ca.leafFor("a.example.com");
    expect(after).not.toBe(before);
    expect(ca.serial).not.toBe(old.serial);
    expect([ca.generation, renewed]).toEqual([2, [ca.serial]]);
    expect(ca.origin).toEqual({ kind: "replaced", reason: `renewed: ca.pem expires at ${new Date(T0 + CA_TTL_SECONDS * 1000).toISOString()}` });
    expect(readCertificate(der(after.certPem)).issuer).toEqual(readCertificate(ca.certDer).subject);
    expect(readFileSync(ca.certPath, "utf8")).toBe(ca.certPem);
    expect((await InterceptionCa.open({ stateDir: dir, label: "n", now: c.now })).serial).toBe(ca.serial);
  });
});

describe("openssl trusts the leaves through the workload bundle", () => {
  test("verify -purpose sslserver passes for the name, fails for another name and without the CA", async () => {
    const dir = fresh();
    const ca = await InterceptionCa.open({ stateDir: dir, label: "node-1" });
    const bundle = new WorkloadTrustBundle(join(dir, "bundle.pem")).refresh(ca.certPem);
    const leaf = join(dir, "leaf.pem");
    writeFileSync(leaf, (await ca.leafFor("api.example.com")).certPem);
    const ok = openssl(["verify", "-CAfile", bundle, "-purpose", "sslserver", "-verify_hostname", "api.example.com", leaf]);
    expect([ok.code, ok.out.trim()]).toEqual([0, `${leaf}: OK`]);
    const otherName = openssl(["verify", "-CAfile", bundle, "-purpose", "sslserver", "-verify_hostname", "other.example.com", leaf]);
    expect(otherName.code).not.toBe(0);
    expect(otherName.out).toContain("hostname mismatch");
    const systemOnly = openssl(["verify", "-CAfile", "/etc/ssl/certs/ca-certificates.crt", "-purpose", "sslserver", leaf]);
    expect(systemOnly.code).not.toBe(0);
    writeFileSync(leaf, (await ca.leafFor("10.1.2.3")).certPem);
    const ip = openssl(["verify", "-CAfile", bundle, "-purpose", "sslserver", "-verify_ip", "10.1.2.3", leaf]);
    expect([ip.code, ip.out.trim()]).toEqual([0, `${leaf}: OK`]);
    expect(openssl(["verify", "-CAfile", bundle, "-purpose", "sslserver", "-verify_ip", "10.1.2.4", leaf]).code).not.toBe(0);
  });
});
