// The CA bundle variables of a `tidegate run` child: set exactly once to the bundle, over any
// value the caller gave (duplicates included), everything else kept byte for byte, in order.
import { describe, expect, test } from "bun:test";
import { CA_BUNDLE_VARIABLES, withCaBundle } from "./ca-environment.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (e: Uint8Array[]) => e.map((x) => new TextDecoder().decode(x));

describe("withCaBundle", () => {
  test("the four are added, last, when the caller had none", () => {
    expect(dec(withCaBundle([enc("PATH=/bin"), enc("A=1")], "/run/t/b.pem"))).toEqual([
      "PATH=/bin",
      "A=1",
      "SSL_CERT_FILE=/run/t/b.pem",
      "NODE_EXTRA_CA_CERTS=/run/t/b.pem",
      "REQUESTS_CA_BUNDLE=/run/t/b.pem",
      "CURL_CA_BUNDLE=/run/t/b.pem",
    ]);
  });

  test("the caller's values for them are dropped, duplicates and empty ones included; near names are kept", () => {
    const given = ["SSL_CERT_FILE=/mine", "X=\xff", "CURL_CA_BUNDLE=", "SSL_CERT_FILE=/again", "SSL_CERT_DIR=/d", "NODE_EXTRA_CA_CERTS_X=1", "XSSL_CERT_FILE=1", "REQUESTS_CA_BUNDLE"];
    const out = dec(withCaBundle(given.map(enc), "/b"));
    expect(out.slice(0, 5)).toEqual(["X=\xff", "SSL_CERT_DIR=/d", "NODE_EXTRA_CA_CERTS_X=1", "XSSL_CERT_FILE=1", "REQUESTS_CA_BUNDLE"]);
    for (const name of CA_BUNDLE_VARIABLES) expect(out.filter((e) => e.startsWith(`${name}=`))).toEqual([`${name}=/b`]);
    expect(out.length).toBe(9);
  });
});
