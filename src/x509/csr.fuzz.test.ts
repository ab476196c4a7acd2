/**
 * Property tests of the CSR reader (../shared/STYLE.md point 6), beside the random-byte ones of
 * csr.test.ts and the server's own over HTTP (src/server/attest.fuzz.test.ts): a valid CSR with
 * bytes changed, or with an element of its DER replaced, removed, doubled or retagged (well-framed,
 * so the edit reaches past the framing), is never accepted: every change is refused with a CsrError
 * and a csr_* code, and csr_malformed never hides an unexpected exception as "unreadable".
 */
import fc from "fast-check";
import { fuzzRuns } from "../../test/fuzz-runs.ts";
import { assert, describe, test } from "../../test/shim.ts";
import { createCsr, parseCsr } from "./csr.ts";
import { editTree, fromTree, toTree, walkTree, type DerNode } from "./test-der-tree.ts";
import { bytesEqual } from "./encoding.ts";
import { generateKeyPair } from "./keys.ts";
import { CsrError } from "./x509-errors.ts";
import { SpiffeId } from "../spiffe/id.ts";

const RUNS = fuzzRuns(200);
const valid = await createCsr({ ...(await generateKeyPair()), id: SpiffeId.parse("spiffe://example.org/tidegate/agent/n1") });

async function refused(der: Uint8Array): Promise<void> {
  try {
    await parseCsr(der);
  } catch (e) {
    if (!(e instanceof CsrError)) throw e;
    assert.match(e.code, /^csr_/);
    assert.ok(!e.message.endsWith(": unreadable"), `${e.message}: ${String(e.cause)}`);
    return;
  }
  assert.fail("a changed CSR was accepted");
}

describe("parseCsr on a changed CSR", () => {
  test("unchanged, it is accepted (so what follows is not refused for another reason)", async () => {
    assert.deepEqual((await parseCsr(valid)).uriSans, ["spiffe://example.org/tidegate/agent/n1"]);
  });

  test("bytes changed or cut: refused", async () => {
    const edits = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 });
    await fc.assert(
      fc.asyncProperty(edits, fc.nat({ max: 4 }), async (changes, cut) => {
        const der = valid.slice(0, valid.length - cut);
        for (const [at, b] of changes) der[at % der.length] = b;
        fc.pre(!bytesEqual(der, valid));
        await refused(der);
      }),
      { numRuns: RUNS },
    );
  });

  test("a DER element replaced, removed, doubled or retagged (well-framed): refused", async () => {
    const tree = toTree(valid);
    const nodes = walkTree(tree);
    const TAGS = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0c, 0x13, 0x16, 0x30, 0x31, 0x80, 0x86, 0xa0];
    const replacement = fc.oneof(
      fc.record({ tag: fc.constantFrom(...TAGS), bytes: fc.uint8Array({ maxLength: 24 }) }).map((n): DerNode[] => [n]),
      fc.constant<DerNode[]>([]),
    );
    const edit = fc.oneof(
      replacement.map((r) => (_: DerNode) => r),
      fc.constant((old: DerNode) => [old, old]),
      fc.constantFrom(...TAGS).map((tag) => (old: DerNode) => [{ ...old, tag }]),
      fc.nat().map((n) => () => [nodes[n % nodes.length]!.element]),
    );
    await fc.assert(
      fc.asyncProperty(fc.nat(), edit, async (pick, replace) => {
        const der = fromTree(editTree(tree, nodes[pick % nodes.length]!.path, replace));
        fc.pre(!bytesEqual(der, valid));
        await refused(der);
      }),
      { numRuns: RUNS },
    );
  });
});
