import * as pkijs from "pkijs";
import { test, describe, assert } from "../../test/shim.ts";
import { bundleOf, createTestCa, type TestCa } from "../../test/helpers/test-ca.ts";
import { SpiffeId } from "../spiffe/id.ts";
import { SpiffeIdError } from "../spiffe/errors.ts";
import { TrustDomain } from "../spiffe/trust-domain.ts";
import { generateKeyPair } from "./keys.ts";
import { MAX_CHAIN_LENGTH, SVID_ERROR_CODES, verifyX509Svid, type X509BundleSource } from "./verify.ts";
import { X509SvidError } from "./x509-errors.ts";

const NOW = new Date("2026-03-01T12:00:00Z");
const HOUR = 3600_000;
const at = (ms: number) => new Date(NOW.getTime() + ms);

let caPromise: Promise<TestCa> | undefined;
const testCa = () => (caPromise ??= createTestCa({ now: NOW }));

interface Row {
  name: string;
  code: (typeof SVID_ERROR_CODES)[number];
  make(ca: TestCa): Promise<{ chain: Uint8Array[]; bundle?: X509BundleSource; now?: Date }>;
}

const unknownCritical = () => new pkijs.Extension({ extnID: "1.2.3.4.5", critical: true, extnValue: new Uint8Array([5, 0]).buffer });

const ROWS: Row[] = [
  { name: "empty chain", code: "svid_empty_chain", make: async () => ({ chain: [] }) },
  {
    name: "chain longer than the cap",
    code: "svid_chain_too_long",
    make: async (ca) => ({ chain: Array(MAX_CHAIN_LENGTH + 1).fill((await ca.mintLeaf("/w")).der) }),
  },
  { name: "leaf is not DER", code: "svid_malformed", make: async () => ({ chain: [new Uint8Array([0x30, 0x03, 1, 2])] }) },
  {
    name: "intermediate is not DER",
    code: "svid_malformed",
    make: async (ca) => ({ chain: [(await ca.mintLeaf("/w")).der, new Uint8Array([1, 2, 3])] }),
  },
  { name: "no URI SAN", code: "svid_uri_san_count", make: async (ca) => ({ chain: (await ca.mintCustom({ uris: [], dnsNames: ["a.example"] })).chain }) },
  {
    name: "two URI SANs",
    code: "svid_uri_san_count",
    make: async (ca) => ({ chain: (await ca.mintCustom({ uris: ["spiffe://example.org/a", "spiffe://example.org/b"] })).chain }),
  },
  { name: "URI SAN not spiffe", code: "svid_bad_spiffe_id", make: async (ca) => ({ chain: (await ca.mintCustom({ uris: ["https://example.org/a"] })).chain }) },
  { name: "URI SAN bad SPIFFE ID", code: "svid_bad_spiffe_id", make: async (ca) => ({ chain: (await ca.mintCustom({ uris: ["spiffe://EXAMPLE.org/a"] })).chain }) },
  { name: "leaf ID without path", code: "svid_leaf_no_path", make: async (ca) => ({ chain: (await ca.mintCustom({ uris: ["spiffe://example.org"] })).chain }) },
  { name: "leaf with cA=true", code: "svid_leaf_is_ca", make: async (ca) => ({ chain: (await ca.mintCustom({ cA: true })).chain }) },
  { name: "leaf with keyCertSign", code: "svid_leaf_key_cert_sign", make: async (ca) => ({ chain: (await ca.mintCustom({ keyUsage: [0, 5] })).chain }) },
  { name: "leaf with cRLSign", code: "svid_leaf_crl_sign", make: async (ca) => ({ chain: (await ca.mintCustom({ keyUsage: [0, 6] })).chain }) },
  {
    name: "leaf without digitalSignature",
    code: "svid_leaf_no_digital_signature",
    make: async (ca) => ({ chain: (await ca.mintCustom({ keyUsage: [2] })).chain }),
  },
  { name: "leaf without keyUsage", code: "svid_leaf_no_digital_signature", make: async (ca) => ({ chain: (await ca.mintCustom({ keyUsage: null })).chain }) },
  {
    name: "leaf with an unknown critical extension",
    code: "svid_unhandled_critical_extension",
    make: async (ca) => ({ chain: (await ca.mintCustom({ extensions: [unknownCritical()] })).chain }),
  },
  {
    name: "intermediate with an unknown critical extension",
    code: "svid_unhandled_critical_extension",
    make: async (ca) => ({ chain: (await (await ca.mintCustomAuthority({ extensions: [unknownCritical()] })).mintLeaf("/w")).chain }),
  },
  { name: "leaf expired", code: "svid_expired", make: async (ca) => ({ chain: (await ca.mintLeaf("/w", { ttlSeconds: 60 })).chain, now: at(2 * 60_000) }) },
  { name: "leaf not yet valid", code: "svid_not_yet_valid", make: async (ca) => ({ chain: (await ca.mintLeaf("/w")).chain, now: at(-HOUR) }) },
  {
    name: "root expired, leaf still valid",
    code: "svid_expired",
    make: async (ca) => ({ chain: (await ca.mintCustom({ notAfter: at(48 * HOUR) })).chain, now: at(30 * HOUR) }),
  },
  {
    name: "intermediate expired",
    code: "svid_expired",
    make: async (ca) => {
      const inter = await ca.mintCustomAuthority({ notAfter: at(HOUR) });
      return { chain: (await inter.mintLeaf("/w", { ttlSeconds: 60 })).chain, now: at(2 * HOUR) };
    },
  },
  {
    name: "intermediate not yet valid",
    code: "svid_not_yet_valid",
    make: async (ca) => ({ chain: (await (await ca.mintCustomAuthority({ notBefore: at(HOUR), notAfter: at(2 * HOUR) })).mintLeaf("/w")).chain }),
  },
  { name: "no bundle for the leaf's trust domain", code: "svid_no_bundle", make: async (ca) => ({ chain: (await ca.mintLeaf("spiffe://other.org/w")).chain }) },
  {
    name: "empty bundle",
    code: "svid_no_bundle",
    make: async (ca) => ({ chain: (await ca.mintLeaf("/w")).chain, bundle: { x509Authorities: () => [] } }),
  },
  {
    name: "leaf signed by another key",
    code: "svid_bad_signature",
    make: async (ca) => ({ chain: (await ca.mintCustom({ signingKey: (await generateKeyPair()).privateKey })).chain }),
  },
  {
    name: "leaf signature bytes flipped",
    code: "svid_bad_signature",
    make: async (ca) => {
      const der = (await ca.mintLeaf("/w")).der.slice();
      der[der.length - 5]! ^= 0x01;
      return { chain: [der] };
    },
  },
  {
    name: "intermediate with cA=false",
    code: "svid_intermediate_not_ca",
    make: async (ca) => ({ chain: (await (await ca.mintCustomAuthority({ cA: false })).mintLeaf("/w")).chain }),
  },
  {
    name: "intermediate without basicConstraints",
    code: "svid_intermediate_not_ca",
    make: async (ca) => ({ chain: (await (await ca.mintCustomAuthority({ cA: null })).mintLeaf("/w")).chain }),
  },
  {
    name: "intermediate without keyCertSign",
    code: "svid_intermediate_no_key_cert_sign",
    make: async (ca) => ({ chain: (await (await ca.mintCustomAuthority({ keyUsage: [6] })).mintLeaf("/w")).chain }),
  },
  {
    name: "intermediate pathLen 0 above another intermediate",
    code: "svid_path_length_exceeded",
    make: async (ca) => ({ chain: (await (await (await ca.mintIntermediate({ pathLen: 0 })).mintIntermediate()).mintLeaf("/w")).chain }),
  },
  {
    name: "leaf of another root of the same trust domain",
    code: "svid_untrusted",
    make: async () => ({ chain: (await (await createTestCa({ now: NOW })).mintLeaf("/w")).chain }),
  },
  {
    name: "intermediate missing from the chain",
    code: "svid_untrusted",
    make: async (ca) => ({ chain: [(await (await ca.mintIntermediate()).mintLeaf("/w")).der] }),
  },
  { name: "unknown issuer name", code: "svid_untrusted", make: async (ca) => ({ chain: (await ca.mintCustom({ issuerCommonName: "nobody" })).chain }) },
  {
    name: "seven distinct intermediates that all issue one another (one key, one name)",
    code: "svid_path_search_exhausted",
    make: async (ca) => ({ chain: await mutualChain(ca, 7) }),
  },
  {
    // Given seven times, one such certificate counts once: the search ends at once, untrusted.
    name: "one self-issuing intermediate given seven times",
    code: "svid_untrusted",
    make: async (ca) => {
      const [leaf, inter] = await mutualChain(ca, 1);
      return { chain: [leaf!, ...Array<Uint8Array>(7).fill(inter!)] };
    },
  },
];

/**
 * A leaf and `n` distinct CA certificates that all have subject and issuer "X" and one key K, so
 * each "issues" every other: the shape that makes a path search without a cap walk thousands of
 * paths. Nothing in it reaches the root.
 */
async function mutualChain(ca: TestCa, n: number): Promise<Uint8Array[]> {
  const k = await generateKeyPair({ extractable: true });
  const x = { subjectCommonName: "X", issuerCommonName: "X", keyPair: k, signingKey: k.privateKey };
  const inters: Uint8Array[] = [];
  for (let i = 0; i < n; i++) inters.push((await ca.mintCustom({ ...x, cA: true, keyUsage: [0, 5] })).der);
  const leaf = await ca.mintCustom({ uris: ["spiffe://example.org/w"], issuerCommonName: "X", signingKey: k.privateKey });
  return [leaf.der, ...inters];
}

describe("verifyX509Svid rejects", () => {
  for (const row of ROWS) {
    test(`${row.name}: ${row.code}`, async () => {
      const ca = await testCa();
      const { chain, bundle, now } = await row.make(ca);
      await assert.rejects(verifyX509Svid(chain, bundle ?? ca.bundle, { now: now ?? NOW }), (e: unknown) => {
        assert.ok(e instanceof X509SvidError, String(e));
        assert.equal(e.code, row.code, e.message);
        assert.match(e.message, /^x509svid: /);
        return true;
      });
    });
  }

  test("every documented code has a row", () => {
    const covered = new Set(ROWS.map((r) => r.code));
    const missing = SVID_ERROR_CODES.filter((c) => !covered.has(c) && c !== "svid_unsupported_algorithm");
    assert.deepEqual(missing, []);
  });

  test("svid_bad_spiffe_id carries the SpiffeIdError as cause", async () => {
    const ca = await testCa();
    const { chain } = await ca.mintCustom({ uris: ["spiffe://example.org/a/../b"] });
    await assert.rejects(verifyX509Svid(chain, ca.bundle, { now: NOW }), (e: unknown) => e instanceof X509SvidError && e.cause instanceof SpiffeIdError);
  });
});

describe("verifyX509Svid accepts", () => {
  test("a leaf signed by the root", async () => {
    const ca = await testCa();
    const leaf = await ca.mintLeaf("/agent/claude", { dnsNames: ["agent.example.org"] });
    const r = await verifyX509Svid(leaf.chain, ca.bundle, { now: NOW });
    assert.equal(r.id.toString(), "spiffe://example.org/agent/claude");
    assert.deepEqual(r.chain, [leaf.der, ca.root.der]);
  });

  test("a leaf under two intermediates, given in any order", async () => {
    const ca = await testCa();
    const i1 = await ca.mintIntermediate({ pathLen: 1 });
    const i2 = await i1.mintIntermediate();
    const leaf = await i2.mintLeaf("/w");
    const r = await verifyX509Svid([leaf.der, i1.der, i2.der], ca.bundle, { now: NOW });
    assert.deepEqual(r.chain, [leaf.der, i2.der, i1.der, ca.root.der]);
  });

  test("at the first and last instant of validity (bounds inclusive)", async () => {
    const ca = await testCa();
    const leaf = await ca.mintLeaf("/w", { ttlSeconds: 60 });
    await verifyX509Svid(leaf.chain, ca.bundle, { now: at(-10_000) });
    await verifyX509Svid(leaf.chain, ca.bundle, { now: at(60_000) });
    await assert.rejects(verifyX509Svid(leaf.chain, ca.bundle, { now: at(60_001) }), (e: unknown) => (e as X509SvidError).code === "svid_expired");
  });

  test("a bundle with a rotated root (old and new) accepts leaves of both", async () => {
    const ca = await testCa();
    const next = await createTestCa({ now: NOW });
    const both = bundleOf(ca, next);
    for (const c of [ca, next]) await verifyX509Svid((await c.mintLeaf("/w")).chain, both, { now: NOW });
  });

  test("trust domains stay apart: another domain's root does not vouch for example.org", async () => {
    const ca = await testCa();
    const other = await createTestCa({ trustDomain: "other.org", now: NOW });
    const leaf = await other.mintLeaf(SpiffeId.fromPath(TrustDomain.parse("example.org"), "/w"));
    const bundle = bundleOf(ca, other);
    await assert.rejects(verifyX509Svid(leaf.chain, bundle, { now: NOW }), (e: unknown) => (e as X509SvidError).code === "svid_untrusted");
  });

  test("a root returned as a fresh array each call is still used (no stale cache)", async () => {
    const ca = await testCa();
    const leaf = await ca.mintLeaf("/w");
    const fresh: X509BundleSource = { x509Authorities: () => [ca.root.der.slice()] };
    for (let i = 0; i < 3; i++) await verifyX509Svid(leaf.chain, fresh, { now: NOW });
  });
});
