// PeerVerifier: what it remembers, for how long, and when it forgets (the cache is what lets a
// busy mTLS pair skip signature checks, so every way it could accept too much is a test here).
import { beforeAll, describe, expect, test } from "bun:test";
import { createTestCa, type TestCa } from "../../test/helpers/test-ca.ts";
import type { TrustDomain } from "../spiffe/trust-domain.ts";
import type { X509BundleSource } from "../x509/verify.ts";
import { PeerVerifier } from "./peer-verifier.ts";
import type { TlsPeer } from "./peer-tls.ts";

let ca: TestCa;
let other: TestCa;
const NOW = Date.now();

/** ca's bundle, counting how often the verifier really ran (it asks for the authorities each time). */
function counting(of: () => TestCa): X509BundleSource & { calls: number } {
  const b = { calls: 0, x509Authorities: (td: TrustDomain) => (b.calls++, of().bundle.x509Authorities(td)) };
  return b;
}

beforeAll(async () => {
  ca = await createTestCa({ now: new Date(NOW - 60_000) });
  other = await createTestCa({ now: new Date(NOW - 60_000) });
});

describe("PeerVerifier", () => {
  test("a verified leaf is remembered for its generation: the second check does not verify again", async () => {
    const leaf = await ca.mintLeaf("/w");
    const v = new PeerVerifier({ now: () => NOW });
    const b = counting(() => ca);
    expect(await v.verify(leaf.chain, b, 1)).toMatchObject({ ok: true });
    expect(await v.verify(leaf.chain, b, 1)).toMatchObject({ ok: true });
    expect(b.calls).toBe(1);
  });

  test("failures are never remembered, and carry the verifier's code and the claimed ID", async () => {
    const rogue = await other.mintLeaf("/w");
    const v = new PeerVerifier({ now: () => NOW });
    const b = counting(() => ca);
    for (let i = 0; i < 2; i++) expect(await v.verify(rogue.chain, b, 1)).toEqual({ ok: false, code: "svid_untrusted", detail: expect.any(String), claimed: "spiffe://example.org/w" });
    expect(b.calls).toBe(2);
    expect(v.size).toBe(0);
  });

  test("a new generation forgets everything: a leaf of a removed root is refused", async () => {
    const leaf = await ca.mintLeaf("/w");
    const v = new PeerVerifier({ now: () => NOW });
    let current = ca;
    const b = counting(() => current);
    expect((await v.verify(leaf.chain, b, 1)).ok).toBe(true);
    current = other; // the bundle now trusts another root only
    expect(await v.verify(leaf.chain, b, 2)).toMatchObject({ ok: false, code: "svid_untrusted" });
  });

  test("a call for an older generation is verified on its own bundles and not remembered", async () => {
    const leaf = await ca.mintLeaf("/w");
    const v = new PeerVerifier({ now: () => NOW });
    const b = counting(() => ca);
    await v.verify(leaf.chain, b, 5);
    expect(await v.verify(leaf.chain, b, 4)).toMatchObject({ ok: true });
    expect(b.calls).toBe(2);
    expect(await v.verify(leaf.chain, b, 5)).toMatchObject({ ok: true });
    expect(b.calls).toBe(2); // generation 5's entry is still there
  });

  test("a remembered leaf expires with the first expiry on its path", async () => {
    const leaf = await ca.mintLeaf("/w", { ttlSeconds: 120 });
    let now = NOW;
    const v = new PeerVerifier({ now: () => now });
    const b = counting(() => ca);
    expect((await v.verify(leaf.chain, b, 1)).ok).toBe(true);
    now = NOW + 120_000; // past the leaf's notAfter (minted a minute before NOW, for 120 s)
    expect(await v.verify(leaf.chain, b, 1)).toMatchObject({ ok: false, code: "svid_expired" });
  });

  test("at most max leaves are kept, the oldest dropped first", async () => {
    const v = new PeerVerifier({ now: () => NOW, max: 2 });
    const b = counting(() => ca);
    const leaves = [await ca.mintLeaf("/a"), await ca.mintLeaf("/b"), await ca.mintLeaf("/c")];
    for (const l of leaves) await v.verify(l.chain, b, 1);
    expect(v.size).toBe(2);
    await v.verify(leaves[0]!.chain, b, 1);
    expect(b.calls).toBe(4); // /a was dropped and verified again
  });

  test("an empty chain is no_certificate", async () => {
    expect(await new PeerVerifier().verify([], counting(() => ca), 1)).toMatchObject({ ok: false, code: "no_certificate", claimed: null });
  });
});

/** A TLS peer presenting `chain`: counts how often the whole chain was read. `leaf: false`: a socket that cannot give the leaf alone. */
function peerOf(chain: readonly Uint8Array[], o: { leaf?: boolean } = {}): TlsPeer & { chainReads: number } {
  const linked = chain.reduceRight<{ raw: Uint8Array; issuerCertificate?: unknown } | undefined>((issuer, der) => ({ raw: der, ...(issuer !== undefined ? { issuerCertificate: issuer } : {}) }), undefined);
  const p = {
    chainReads: 0,
    getPeerCertificate: () => (p.chainReads++, linked ?? {}),
    ...(o.leaf === false ? {} : { getPeerX509Certificate: () => (chain[0] !== undefined ? { raw: chain[0] } : undefined) }),
    exportKeyingMaterial: () => undefined,
  };
  return p;
}

describe("PeerVerifier.verifyPeer (a TLS socket)", () => {
  test("a leaf not remembered: the chain is read and verified; once remembered, the leaf alone answers and the chain is not read", async () => {
    const leaf = await ca.mintLeaf("/w");
    const v = new PeerVerifier({ now: () => NOW });
    const b = counting(() => ca);
    const first = peerOf(leaf.chain);
    expect(await v.verifyPeer(first, b, 1)).toMatchObject({ ok: true });
    expect(first.chainReads).toBe(1);
    const again = peerOf(leaf.chain);
    expect(await v.verifyPeer(again, b, 1)).toMatchObject({ ok: true });
    expect(again.chainReads).toBe(0);
    expect(b.calls).toBe(1);
  });

  test("a rogue leaf is never answered from the cache: every time its chain is read and refused", async () => {
    const good = await ca.mintLeaf("/w");
    const rogue = await other.mintLeaf("/w");
    const v = new PeerVerifier({ now: () => NOW });
    const b = counting(() => ca);
    await v.verifyPeer(peerOf(good.chain), b, 1);
    for (let i = 0; i < 2; i++) {
      const p = peerOf(rogue.chain);
      expect(await v.verifyPeer(p, b, 1)).toMatchObject({ ok: false, code: "svid_untrusted" });
      expect(p.chainReads).toBe(1);
    }
  });

  test("a new bundle generation: the remembered leaf's chain is read and verified again", async () => {
    const leaf = await ca.mintLeaf("/w");
    const v = new PeerVerifier({ now: () => NOW });
    const b = counting(() => ca);
    await v.verifyPeer(peerOf(leaf.chain), b, 1);
    const p = peerOf(leaf.chain);
    expect(await v.verifyPeer(p, b, 2)).toMatchObject({ ok: true });
    expect(p.chainReads).toBe(1);
    expect(b.calls).toBe(2);
  });

  test("a remembered leaf past the first expiry on its path: read and verified again (and refused)", async () => {
    const leaf = await ca.mintLeaf("/w");
    let now = NOW;
    const v = new PeerVerifier({ now: () => now });
    const b = counting(() => ca);
    await v.verifyPeer(peerOf(leaf.chain), b, 1);
    now = NOW + 400 * 24 * 3600 * 1000;
    const p = peerOf(leaf.chain);
    expect(await v.verifyPeer(p, b, 1)).toMatchObject({ ok: false, code: "svid_expired" });
    expect(p.chainReads).toBe(1);
  });

  test("a socket that cannot give the leaf alone: the chain every time, the cache as before; none at all: no_certificate", async () => {
    const leaf = await ca.mintLeaf("/w");
    const v = new PeerVerifier({ now: () => NOW });
    const b = counting(() => ca);
    for (let i = 0; i < 2; i++) {
      const p = peerOf(leaf.chain, { leaf: false });
      expect(await v.verifyPeer(p, b, 1)).toMatchObject({ ok: true });
      expect(p.chainReads).toBe(1);
    }
    expect(b.calls).toBe(1);
    expect(await v.verifyPeer(peerOf([]), b, 1)).toMatchObject({ ok: false, code: "no_certificate" });
  });
});
