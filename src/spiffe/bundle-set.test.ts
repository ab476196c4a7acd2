import { isTidegateError } from "../errors.ts";
import { assert, describe, test } from "../../test/shim.ts";
import { createTestCa } from "../../test/helpers/test-ca.ts";
import { verifyX509Svid } from "../x509/verify.ts";
import { Bundle } from "./bundle.ts";
import { BundleSet, sourceOf, type X509AuthoritySource } from "./bundle-set.ts";
import { formatJwksBundle, parseJwksBundle } from "./jwks.ts";
import { TrustDomain } from "./trust-domain.ts";

const tdA = TrustDomain.parse("a.example");
const tdB = TrustDomain.parse("b.example");
const tdC = TrustDomain.parse("c.example");
const caA = await createTestCa({ trustDomain: tdA.name });
const caB = await createTestCa({ trustDomain: tdB.name });
const rootA = caA.root.der;
const rootB = caB.root.der;
const bundleA = Bundle.create(tdA, { x509Authorities: [rootA] });
const bundleB = Bundle.create(tdB, { x509Authorities: [rootB], sequence: 1 });

describe("BundleSet", () => {
  const set = BundleSet.of(bundleB, bundleA);

  test("answers each trust domain with its own authorities only, never merged", () => {
    assert.deepEqual(set.x509Authorities(tdA), [rootA]);
    assert.deepEqual(set.x509Authorities(TrustDomain.parse("spiffe://b.example")), [rootB]);
    assert.equal(set.x509Authorities(tdC), undefined);
    assert.equal(set.jwtAuthorities(tdA)?.size, 0);
    assert.equal(set.jwtAuthorities(tdC), undefined);
  });

  test("get, has, size and bundles sorted by trust domain", () => {
    assert.equal(set.size, 2);
    assert.ok(set.has(tdA) && !set.has(tdC));
    assert.equal(set.get(tdB), bundleB);
    assert.deepEqual(set.bundles().map((b) => b.trustDomain.name), ["a.example", "b.example"]);
  });

  test("refuses two bundles for one trust domain", () => {
    let code: string | undefined;
    try {
      BundleSet.of(bundleA, Bundle.create(tdA));
    } catch (e) {
      if (isTidegateError(e)) code = e.code;
    }
    assert.equal(code, "bundle_set_duplicate");
  });

  test("with replaces the bundle of its trust domain, without removes it; the set itself does not change", () => {
    const emptied = set.with(Bundle.create(tdA));
    assert.deepEqual(emptied.x509Authorities(tdA), []);
    assert.equal(emptied.size, 2);
    const added = set.with(Bundle.create(tdC));
    assert.equal(added.size, 3);
    const removed = set.without(tdB);
    assert.equal(removed.x509Authorities(tdB), undefined);
    assert.deepEqual(set.x509Authorities(tdA), [rootA]);
    assert.equal(set.size, 2);
  });

  test("equals compares the bundles of each trust domain", () => {
    assert.ok(set.equals(BundleSet.of(bundleA, bundleB)));
    assert.ok(!set.equals(BundleSet.of(bundleA)));
    assert.ok(!set.equals(set.with(bundleB.withSequence(2))));
    assert.ok(BundleSet.of().equals(BundleSet.of()));
  });
});

describe("sourceOf", () => {
  test("gives one bundle's authorities for its own trust domain and nothing for others", () => {
    // The shape the X.509-SVID verifier declares (src/x509/verify.ts).
    const source: { x509Authorities(td: TrustDomain): readonly Uint8Array[] | undefined } = sourceOf(bundleA);
    const typed: X509AuthoritySource = source;
    assert.deepEqual(typed.x509Authorities(tdA), [rootA]);
    assert.equal(typed.x509Authorities(tdB), undefined);
  });
});

describe("BundleSet with the X.509-SVID verifier", () => {
  test("a JWKS bundle from the wire, parsed into a set, verifies SVIDs of its own trust domain only", async () => {
    const now = new Date();
    const wire = await formatJwksBundle(Bundle.create(tdA, { x509Authorities: [rootA], sequence: 1 }));
    const set = BundleSet.of(await parseJwksBundle(tdA, wire), bundleB);
    const leafA = await caA.mintLeaf("/agent", { now });
    const leafB = await caB.mintLeaf("/server", { now });
    assert.equal((await verifyX509Svid(leafA.chain, set, { now })).id.toString(), "spiffe://a.example/agent");
    assert.equal((await verifyX509Svid(leafB.chain, set, { now })).id.toString(), "spiffe://b.example/server");
    // A's root filed under B's trust domain does not make A's SVIDs valid, nor B's root A's.
    const crossed = BundleSet.of(Bundle.create(tdB, { x509Authorities: [rootA] }), Bundle.create(tdA, { x509Authorities: [rootB] }));
    for (const leaf of [leafA, leafB]) {
      const ok = await verifyX509Svid(leaf.chain, crossed, { now }).then(() => true, (e: unknown) => !isTidegateError(e));
      assert.equal(ok, false);
    }
  });
});
