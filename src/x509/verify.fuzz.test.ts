/**
 * Property tests of the certificate reader and the X.509-SVID verifier (../shared/STYLE.md point
 * 6), beside the random-byte ones of cert.test.ts. From a valid chain (leaf, two intermediates, a
 * root in the bundle) and decoys (another CA of the same trust domain, a leaf of the root):
 * - any chain of them verifies exactly when the leaf and the intermediates its path needs are
 *   there (in any order, repeated), giving that path; else an X509SvidError;
 * - a certificate of the chain with any bytes changed, or with an element of its DER replaced,
 *   removed or doubled (well-framed, so the edit reaches deep into the reader), never verifies,
 *   and gives an X509SvidError with a listed code; changing the bytes of the leaf's signature
 *   values is svid_bad_signature;
 * - `readCertificate` and `parseCertificate` on such edits give a CertInfo or x509_malformed whose
 *   cause, if any, is the DER reader's error: never a TypeError or RangeError passed off as
 *   "unreadable".
 */
import fc from "fast-check";
import { fuzzRuns } from "../../test/fuzz-runs.ts";
import { createTestCa } from "../../test/helpers/test-ca.ts";
import { assert, describe, test } from "../../test/shim.ts";
import { parseCertificate, readCertificate } from "./cert.ts";
import { children, DerError, readTlv } from "./der.ts";
import { editTree, fromTree, toTree, walkTree, type DerNode } from "./test-der-tree.ts";
import { bytesEqual } from "./encoding.ts";
import { SVID_ERROR_CODES, verifyX509Svid } from "./verify.ts";
import { X509Error, X509SvidError } from "./x509-errors.ts";

const RUNS = fuzzRuns(200);
const NOW = new Date("2026-03-01T12:00:00Z");

const ca = await createTestCa({ now: NOW });
const i1 = await ca.mintIntermediate();
const i2 = await i1.mintIntermediate();
const leaf = await i2.mintLeaf("/workload");
const rootLeaf = await ca.mintLeaf("/direct");
const other = await createTestCa({ now: NOW });
const otherInter = await other.mintIntermediate();
const otherLeaf = await otherInter.mintLeaf("/workload");
const CHAIN = [leaf.der, i2.der, i1.der];

type Outcome = { ok: true; path: Uint8Array[] } | { ok: false; code: string };

async function verify(chain: Uint8Array[]): Promise<Outcome> {
  try {
    return { ok: true, path: (await verifyX509Svid(chain, ca.bundle, { now: NOW })).chain };
  } catch (e) {
    if (!(e instanceof X509SvidError)) throw e;
    assert.ok((SVID_ERROR_CODES as readonly string[]).includes(e.code), e.code);
    assert.ok(e.message.startsWith("x509svid: "), e.message);
    return { ok: false, code: e.code };
  }
}

/** Reads `der` both ways: a value, or x509_malformed caused by nothing or by a DerError (checked). */
function readOrMalformed(der: Uint8Array): void {
  for (const read of [readCertificate, parseCertificate]) {
    try {
      read(der);
    } catch (e) {
      if (!(e instanceof X509Error)) throw e;
      assert.equal(e.code, "x509_malformed");
      if (read === readCertificate) assert.ok(e.cause === undefined || e.cause instanceof DerError, `${e.message}: ${String(e.cause)}`);
    }
  }
}

const sameChain = (a: readonly Uint8Array[], b: readonly Uint8Array[]) => a.length === b.length && a.every((d, i) => bytesEqual(d, b[i]!));

describe("verifyX509Svid on chains assembled from valid and foreign certificates", () => {
  const pool = [leaf.der, i2.der, i1.der, ca.root.der, rootLeaf.der, other.root.der, otherInter.der, otherLeaf.der];
  test("verifies exactly when the leaf's path is given, and returns that path", async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(pool.length - 1), fc.array(fc.nat(pool.length - 1), { maxLength: 9 }), async (first, rest) => {
        const chain = [pool[first]!, ...rest.map((i) => pool[i]!)];
        const got = await verify(chain);
        const has = (d: Uint8Array) => rest.some((i) => pool[i] === d);
        let want: Uint8Array[] | null = null;
        if (chain.length <= 8 && first === 0 && has(i2.der) && has(i1.der)) want = [leaf.der, i2.der, i1.der, ca.root.der];
        if (chain.length <= 8 && first === 4) want = [rootLeaf.der, ca.root.der];
        assert.equal(got.ok, want !== null, JSON.stringify({ first, rest, got: got.ok ? "ok" : got.code }));
        if (got.ok) assert.ok(sameChain(got.path, want!));
      }),
      { numRuns: RUNS },
    );
  });
});

describe("a certificate of the chain changed", () => {
  const which = fc.nat(CHAIN.length - 1);

  test("unchanged, the chain verifies (so what follows is not refused for another reason)", async () => {
    assert.ok(sameChain((await verifyX509Svid(CHAIN, ca.bundle, { now: NOW })).chain, [...CHAIN, ca.root.der]));
  });

  test("any bytes changed or cut: never verifies, an X509SvidError with a listed code", async () => {
    const edits = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 });
    await fc.assert(
      fc.asyncProperty(which, edits, fc.nat({ max: 4 }), async (k, changes, cut) => {
        const der = CHAIN[k]!.slice(0, CHAIN[k]!.length - cut);
        for (const [at, b] of changes) der[at % der.length] = b;
        fc.pre(!bytesEqual(der, CHAIN[k]!));
        readOrMalformed(der);
        const chain = CHAIN.map((d, i) => (i === k ? der : d));
        assert.equal((await verify(chain)).ok, false);
      }),
      { numRuns: RUNS },
    );
  });

  test("the leaf's signature values changed: svid_bad_signature", async () => {
    // The content octets of r and s in the leaf's ECDSA-Sig-Value (RFC 3279 section 2.2.3).
    const der = leaf.der;
    const [, , sigT] = children(der, readTlv(der, 0));
    const seq = readTlv(der, sigT!.valueStart + 1, sigT!.end);
    const spans = children(der, seq).map((t) => [t.valueStart, t.end] as const);
    const offset = fc.tuple(fc.nat(spans.length - 1), fc.nat()).map(([s, n]) => spans[s]![0] + (n % (spans[s]![1] - spans[s]![0])));
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(offset, fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 3 }), async (changes) => {
        const bad = der.slice();
        for (const [at, x] of changes) bad[at] = bad[at]! ^ x;
        fc.pre(!bytesEqual(bad, der));
        const got = await verify([bad, ...CHAIN.slice(1)]);
        assert.deepEqual(got, { ok: false, code: "svid_bad_signature" });
      }),
      { numRuns: RUNS },
    );
  });

  test("an element of its DER replaced, removed, doubled or moved (well-framed): never verifies, never a masked crash", async () => {
    const trees = CHAIN.map((d) => toTree(d));
    const TAGS = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0c, 0x13, 0x16, 0x17, 0x18, 0x1e, 0x30, 0x31, 0x80, 0x81, 0x82, 0x86, 0xa0, 0xa3];
    const element: fc.Arbitrary<DerNode> = fc.letrec<{ der: DerNode }>((tie) => ({
      der: fc.oneof(
        { depthSize: "small", withCrossShrink: true },
        fc.record({ tag: fc.constantFrom(...TAGS), bytes: fc.uint8Array({ maxLength: 40 }) }),
        fc.record({ tag: fc.constantFrom(0x30, 0x31, 0xa0, 0xa3), children: fc.array(tie("der"), { maxLength: 3 }) }),
      ),
    })).der;
    type Edit = { kind: "replace"; with: DerNode } | { kind: "remove" | "double" | "retag" | "flip" | "copy"; n: number };
    const edit: fc.Arbitrary<Edit> = fc.oneof(
      fc.record({ kind: fc.constant("replace" as const), with: element }),
      fc.record({ kind: fc.constantFrom("remove" as const, "double" as const, "retag" as const, "flip" as const, "copy" as const), n: fc.nat() }),
    );
    await fc.assert(
      fc.asyncProperty(which, fc.nat(), edit, async (k, pick, e) => {
        const nodes = walkTree(trees[k]!);
        const { path } = nodes[pick % nodes.length]!;
        const tree = editTree(trees[k]!, path, (old) => {
          switch (e.kind) {
            case "replace":
              return [e.with];
            case "remove":
              return [];
            case "double":
              return [old, old];
            case "retag":
              return [{ ...old, tag: TAGS[e.n % TAGS.length]! }];
            case "flip":
              if ("children" in old || old.bytes.length === 0) return [old, old];
              return [{ tag: old.tag, bytes: old.bytes.map((b, i) => (i === e.n % old.bytes.length ? b ^ 0x01 : b)) }];
            case "copy":
              return [nodes[e.n % nodes.length]!.element];
          }
        });
        const der = fromTree(tree);
        fc.pre(!bytesEqual(der, CHAIN[k]!));
        readOrMalformed(der);
        assert.equal((await verify(CHAIN.map((d, i) => (i === k ? der : d)))).ok, false);
      }),
      { numRuns: RUNS },
    );
  });
});

describe("test-der-tree, the fuzzer's own tool", () => {
  test("writes back exactly what it read", () => {
    for (const d of [...CHAIN, ca.root.der, otherLeaf.der]) assert.ok(bytesEqual(fromTree(toTree(d)), d));
  });
});
