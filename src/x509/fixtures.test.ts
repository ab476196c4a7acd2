import { test, describe, assert, readFixture } from "../../test/shim.ts";
import { decodePem } from "./pem.ts";
import { readCertificate, describeCertificate } from "./cert.ts";
import { verifyX509Svid, type X509BundleSource } from "./verify.ts";
import { X509SvidError } from "./x509-errors.ts";

async function pem(name: string): Promise<Uint8Array> {
  const [block] = decodePem(new TextDecoder().decode(await readFixture(`test/fixtures/x509/${name}.pem`)));
  return block!.der;
}

const root = await pem("root");
const bundle: X509BundleSource = { x509Authorities: (td) => (td.name === "example.org" ? [root] : undefined) };
const within = (der: Uint8Array) => new Date(readCertificate(der).notBefore + 60_000);

describe("openssl-made fixtures", () => {
  for (const [name, id] of [["leaf-good", "spiffe://example.org/workload"], ["leaf-rsa", "spiffe://example.org/rsa"]] as const) {
    test(`${name} verifies`, async () => {
      const leaf = await pem(name);
      const r = await verifyX509Svid([leaf], bundle, { now: within(leaf) });
      assert.equal(r.id.toString(), id);
      assert.equal(r.chain.length, 2);
    });
  }

  test("leaf-rsa is described as RSA 2048", async () => {
    assert.equal((await describeCertificate(await pem("leaf-rsa"))).keyType, "RSA 2048");
  });

  const rows: [string, string, string[], ((der: Uint8Array) => Date)?][] = [
    ["leaf-two-uris", "svid_uri_san_count", []],
    ["leaf-ca", "svid_leaf_is_ca", []],
    ["leaf-non-spiffe-uri", "svid_bad_spiffe_id", []],
    ["leaf-no-path", "svid_leaf_no_path", []],
    ["leaf-good", "svid_expired", [], (d) => new Date(readCertificate(d).notAfter + 1000)],
    ["leaf-good", "svid_not_yet_valid", [], (d) => new Date(readCertificate(d).notBefore - 1000)],
    ["leaf-deep", "svid_path_length_exceeded", ["inter2", "inter-pathlen0"]],
    ["leaf-deep", "svid_untrusted", ["inter2"]],
  ];
  for (const [name, code, inters, when] of rows) {
    test(`${name}${inters.length ? ` via ${inters.join(", ")}` : ""}: ${code}`, async () => {
      const leaf = await pem(name);
      const chain = [leaf, ...(await Promise.all(inters.map(pem)))];
      await assert.rejects(verifyX509Svid(chain, bundle, { now: (when ?? within)(leaf) }), (e: unknown) => {
        assert.ok(e instanceof X509SvidError);
        assert.equal(e.code, code, e.message);
        return true;
      });
    });
  }

  test("leaf-pss (RSASSA-PSS): svid_unsupported_algorithm", async () => {
    const leaf = await pem("leaf-pss");
    const rsaRoot = await pem("rsa-root");
    await assert.rejects(verifyX509Svid([leaf], { x509Authorities: () => [rsaRoot] }, { now: within(leaf) }), (e: unknown) => (e as X509SvidError).code === "svid_unsupported_algorithm");
  });
});
