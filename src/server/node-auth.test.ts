// Who is calling the API listener (authenticateNode), without TLS: what a chain a peer presents
// costs the server before it is refused.
import { expect, test } from "bun:test";
import { createTestCa } from "../../test/helpers/test-ca.ts";
import { Bundle, BundleSet, type X509AuthoritySource } from "../spiffe/index.ts";
import { generateKeyPair } from "../x509/index.ts";
import { ApiError } from "./errors.ts";
import { authenticateNode, MAX_NODE_CHAIN } from "./node-auth.ts";

test("a chain longer than a node SVID's is refused before the path search: client_cert_invalid, no authority looked up", async () => {
  const ca = await createTestCa();
  // Seven CA certificates that all "issue" one another (one name, one key), under a node ID: the
  // shape that makes the verifier walk paths until its cap of signature checks (some 20 ms of the
  // server's event loop per handshake, for a chain replayed at no cost by the peer).
  const k = await generateKeyPair({ extractable: true });
  const x = { subjectCommonName: "X", issuerCommonName: "X", keyPair: k, signingKey: k.privateKey };
  const inters: Uint8Array[] = [];
  for (let i = 0; i < 7; i++) inters.push((await ca.mintCustom({ ...x, cA: true, keyUsage: [0, 5] })).der);
  const leaf = await ca.mintCustom({ uris: ["spiffe://example.org/tidegate/agent/n1"], issuerCommonName: "X", signingKey: k.privateKey });
  const bundle = BundleSet.of(Bundle.create(ca.trustDomain, { x509Authorities: [ca.root.der] }));
  let lookups = 0;
  const counting: X509AuthoritySource = { x509Authorities: (td) => (lookups++, bundle.x509Authorities(td)) };
  const verdict = await authenticateNode([leaf.der, ...inters], ca.trustDomain, counting, new Date());
  expect(verdict).toBeInstanceOf(ApiError);
  expect((verdict as ApiError).code).toBe("client_cert_invalid");
  expect((verdict as ApiError).message).toContain("svid_chain_too_long");
  expect(lookups).toBe(0);

  // control: a node SVID as node:tls hands it over (leaf, signing CA, root) is a node
  const signing = await ca.mintIntermediate();
  const node = await signing.mintLeaf("spiffe://example.org/tidegate/agent/n1");
  const chain = [...node.chain, ca.root.der];
  expect(chain.length).toBe(MAX_NODE_CHAIN);
  expect(await authenticateNode(chain, ca.trustDomain, counting, new Date())).toMatchObject({ node: "n1" });
});
