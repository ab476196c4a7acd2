// The proxies' trust view (proxy-identity.ts) with federated trust domains: each trust domain's
// roots kept to itself, and a new generation exactly when what is trusted changes.
import { beforeAll, describe, expect, test } from "bun:test";
import { createTestCa, type TestCa } from "../../test/helpers/test-ca.ts";
import { Bundle, TrustDomain } from "../spiffe/index.ts";
import { encodePem, verifyX509Svid } from "../x509/index.ts";
import type { FederatedHeld } from "./federated.ts";
import { proxyIdentity, type IdentityHolder } from "./proxy-identity.ts";
import type { HeldSvid } from "./svid-cache.ts";

const T0 = Date.now();
const OWN = TrustDomain.parse("example.org");
const PARTNER = TrustDomain.parse("partner.test");
const OTHER = TrustDomain.parse("other.test");

let ours: TestCa;
let partner: TestCa;
let partnerNext: TestCa;
let other: TestCa;

beforeAll(async () => {
  [ours, partner, partnerNext, other] = await Promise.all([
    createTestCa({ trustDomain: "example.org" }),
    createTestCa({ trustDomain: "partner.test" }),
    createTestCa({ trustDomain: "partner.test" }),
    createTestCa({ trustDomain: "other.test" }),
  ]);
});

const bundleOf = (td: TrustDomain, ...cas: TestCa[]) => Bundle.create(td, { x509Authorities: cas.map((c) => c.root.der) });
const held = (bundle: Bundle, expiresAt: number): FederatedHeld => ({ bundle, expiresAt });
const pem = (ca: TestCa) => encodePem("CERTIFICATE", ca.root.der);

/** A mutable holder, as AgentCore is: `federated` replaced whole at each change. */
function holder(federated?: Map<string, FederatedHeld>): IdentityHolder & { bundle: Bundle; federated?: Map<string, FederatedHeld> } {
  return { svids: new Map<string, HeldSvid>(), bundle: bundleOf(OWN, ours), ...(federated ? { federated } : {}) };
}

describe("federated trust domains in trust()", () => {
  test("a live federated bundle is trusted for its own trust domain only", async () => {
    const core = holder(new Map([["partner.test", held(bundleOf(PARTNER, partner), T0 + 60_000)]]));
    const trust = proxyIdentity(core, () => T0).trust();
    expect(trust.caPem(PARTNER)).toBe(pem(partner));
    expect(trust.caPem(OWN)).toBe(pem(ours));
    expect(trust.caPem(OTHER)).toBeNull();
    expect(trust.allCaPem).toBe(pem(ours) + pem(partner));
    expect(trust.bundles.x509Authorities(PARTNER)).toEqual([partner.root.der]);

    const peer = await partner.mintLeaf("/payments");
    expect((await verifyX509Svid(peer.chain, trust.bundles, { now: new Date() })).id.toString()).toBe("spiffe://partner.test/payments");
    // partner's root vouching for one of ours, or ours for partner: refused, the bundles are not merged
    const forged = await partner.mintCustom({ uris: ["spiffe://example.org/admin"] });
    await expect(verifyX509Svid(forged.chain, trust.bundles, { now: new Date() })).rejects.toThrow();
    const forged2 = await ours.mintCustom({ uris: ["spiffe://partner.test/payments"] });
    await expect(verifyX509Svid(forged2.chain, trust.bundles, { now: new Date() })).rejects.toThrow();
    // a trust domain nobody federated with
    await expect(verifyX509Svid((await other.mintLeaf("/x")).chain, trust.bundles, { now: new Date() })).rejects.toThrow();
  });

  test("without federation (no map) only our own trust domain", () => {
    const trust = proxyIdentity(holder(), () => T0).trust();
    expect(trust.caPem(PARTNER)).toBeNull();
    expect(trust.allCaPem).toBe(pem(ours));
  });
});

describe("generations", () => {
  test("the same generation (the same object) while nothing changed", () => {
    const core = holder(new Map([["partner.test", held(bundleOf(PARTNER, partner), T0 + 60_000)]]));
    let now = T0;
    const id = proxyIdentity(core, () => now);
    const first = id.trust();
    now += 30_000;
    expect(id.trust()).toBe(first);
  });

  test("a new generation when a bundle appears, changes, is dropped, or passes its expiry", () => {
    const core = holder(new Map());
    let now = T0;
    const id = proxyIdentity(core, () => now);
    const g = () => id.trust().generation;
    const g0 = g();

    core.federated = new Map([["partner.test", held(bundleOf(PARTNER, partner), T0 + 60_000)]]);
    const g1 = g();
    expect(g1).toBeGreaterThan(g0);
    expect(id.trust().caPem(PARTNER)).toBe(pem(partner));

    core.federated = new Map([["partner.test", held(bundleOf(PARTNER, partner, partnerNext), T0 + 60_000)]]);
    const g2 = g();
    expect(g2).toBeGreaterThan(g1);
    expect(id.trust().caPem(PARTNER)).toBe(pem(partner) + pem(partnerNext));

    core.federated = new Map([
      ["partner.test", held(bundleOf(PARTNER, partner, partnerNext), T0 + 60_000)],
      ["other.test", held(bundleOf(OTHER, other), T0 + 30_000)],
    ]);
    const g3 = g();
    expect(g3).toBeGreaterThan(g2);

    now = T0 + 30_000 - 1;
    expect(g()).toBe(g3);
    now = T0 + 30_000; // other.test passes its expiry
    const g4 = g();
    expect(g4).toBeGreaterThan(g3);
    expect(id.trust().caPem(OTHER)).toBeNull();
    expect(id.trust().caPem(PARTNER)).not.toBeNull();

    core.federated = new Map([["other.test", held(bundleOf(OTHER, other), T0 + 30_000)]]); // partner.test dropped
    const g5 = g();
    expect(g5).toBeGreaterThan(g4);
    expect(id.trust().caPem(PARTNER)).toBeNull();
    expect(id.trust().allCaPem).toBe(pem(ours));

    core.bundle = bundleOf(OWN, ours).withSequence(2); // our own bundle replaced
    expect(g()).toBeGreaterThan(g5);
  });

  test("the server refreshing a bundle unchanged (a later expiry, an equal bundle object) keeps the generation", () => {
    // Every sync after the server refetched moves the expiry: the trusted roots stay the same, so
    // the verification caches and mTLS legs of this generation stay good.
    const core = holder(new Map([["partner.test", held(bundleOf(PARTNER, partner), T0 + 60_000)]]));
    const id = proxyIdentity(core, () => T0);
    const first = id.trust();
    core.federated = new Map([["partner.test", held(bundleOf(PARTNER, partner), T0 + 90_000)]]);
    expect(id.trust().generation).toBe(first.generation);
    core.federated = new Map([["partner.test", held(bundleOf(PARTNER, partnerNext), T0 + 90_000)]]);
    expect(id.trust().generation).toBeGreaterThan(first.generation);
  });
});
