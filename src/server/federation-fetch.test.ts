// One fetch of a bundle endpoint over real TLS on 127.0.0.1 (federation-fetch.ts): the two
// profiles' ways of authenticating the endpoint, and each refusal with its code.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createTestCa, type TestCa } from "../../test/helpers/test-ca.ts";
import { Bundle, formatJwksBundle, MAX_BUNDLE_BYTES, parseJwksBundle, SpiffeId, TrustDomain } from "../spiffe/index.ts";
import { encodePem, exportPkcs8Pem } from "../x509/index.ts";
import type { FederationSetting } from "./config.ts";
import { fetchBundle, type FetchTrust } from "./federation-fetch.ts";

const T = 20_000;
const PARTNER = TrustDomain.parse("partner.test");
const ENDPOINT_ID = "spiffe://partner.test/tidegate/server";

type Endpoint = { port: number; stop(): void };

let partner: TestCa; // partner.test's root: its endpoint presents an X.509-SVID below it
let stranger: TestCa; // another root of partner.test: a bundle that must not authenticate the endpoint
let web: TestCa; // a Web PKI-like CA: its endpoint presents a certificate for DNS localhost only
let otherWeb: TestCa;
let jwks: string;
let spiffeEndpoint: Endpoint;
let webEndpoint: Endpoint;
let closedPort: number;

/** A bundle endpoint on 127.0.0.1: the bundle at /bundle, and the answers fetchBundle refuses. */
function serve(cert: string, key: string): Endpoint {
  const big = "x".repeat(MAX_BUNDLE_BYTES + 1);
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    tls: { cert, key },
    fetch(req) {
      const path = new URL(req.url).pathname;
      if (path === "/bundle") return new Response(jwks, { headers: { "content-type": "application/json" } });
      if (path === "/moved") return new Response(null, { status: 302, headers: { location: "/bundle" } });
      if (path === "/big") return new Response(big, { headers: { "content-type": "application/json" } });
      if (path === "/endless") {
        // no content-length, and no end: only counting what arrives stops it
        const chunk = new Uint8Array(64 * 1024).fill(0x20);
        return new Response(new ReadableStream({ pull: (c) => c.enqueue(chunk) }), { headers: { "content-type": "application/json" } });
      }
      return new Response("not found", { status: 404 });
    },
  });
  return { port: server.port!, stop: () => server.stop(true) };
}

const pemOf = (ders: readonly Uint8Array[]) => ders.map((d) => encodePem("CERTIFICATE", d)).join("");

function spiffeSetting(url: string, endpointId = ENDPOINT_ID): FederationSetting {
  return { trustDomain: PARTNER, bundleEndpoint: url, profile: "https_spiffe", endpointId: SpiffeId.parse(endpointId), bundleFile: "/unused", caFile: null, maxAgeSeconds: 60, defaultRefreshSeconds: 10 };
}

function webSetting(url: string): FederationSetting {
  return { trustDomain: PARTNER, bundleEndpoint: url, profile: "https_web", endpointId: null, bundleFile: null, caFile: "/etc/partner-ca.pem", maxAgeSeconds: 60, defaultRefreshSeconds: 10 };
}

const heldOf = (ca: TestCa): FetchTrust => ({ held: Bundle.create(PARTNER, { x509Authorities: [ca.root.der] }), caPem: null });
const caOf = (ca: TestCa): FetchTrust => ({ held: null, caPem: encodePem("CERTIFICATE", ca.root.der) });
const never = new AbortController().signal;

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "none";
  } catch (e) {
    return (e as { code?: string }).code ?? `uncoded: ${(e as Error).message}`;
  }
}

beforeAll(async () => {
  [partner, stranger, web, otherWeb] = await Promise.all([
    createTestCa({ trustDomain: "partner.test" }),
    createTestCa({ trustDomain: "partner.test" }),
    createTestCa({ trustDomain: "web-ca.test" }),
    createTestCa({ trustDomain: "web-ca.test" }),
  ]);
  jwks = await formatJwksBundle(Bundle.create(PARTNER, { x509Authorities: [partner.root.der], sequence: 7, refreshHintSeconds: 60 }));
  // partner's endpoint: an X.509-SVID below an intermediate, as tidegate's server presents
  const signing = await partner.mintIntermediate();
  const svid = await signing.mintLeaf(ENDPOINT_ID);
  spiffeEndpoint = serve(pemOf(svid.chain), await exportPkcs8Pem(svid.privateKey));
  const webCert = await web.mintCustom({ uris: [], dnsNames: ["localhost"] });
  webEndpoint = serve(pemOf(webCert.chain), await exportPkcs8Pem(webCert.privateKey));
  const gone = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  closedPort = gone.port;
  gone.stop(true);
}, T);
afterAll(() => {
  spiffeEndpoint?.stop();
  webEndpoint?.stop();
});

describe("https_spiffe: the endpoint is authenticated by its SPIFFE ID and the held bundle", () => {
  const url = (path: string) => `https://127.0.0.1:${spiffeEndpoint.port}${path}`;

  test("accepted when the held bundle has the endpoint's root and endpoint_id matches", async () => {
    const text = await fetchBundle(spiffeSetting(url("/bundle")), heldOf(partner), never);
    const b = await parseJwksBundle(PARTNER, text);
    expect([b.sequence, b.refreshHintSeconds, b.hasX509Authority(partner.root.der)]).toEqual([7, 60, true]);
  }, T);

  test("another endpoint_id: federation_endpoint_id_mismatch, naming what the endpoint presents", async () => {
    const p = fetchBundle(spiffeSetting(url("/bundle"), "spiffe://partner.test/other"), heldOf(partner), never);
    expect(await codeOf(p)).toBe("federation_endpoint_id_mismatch");
    expect(await p.catch((e: Error) => e.message)).toContain(`presents ${ENDPOINT_ID}, not spiffe://partner.test/other`);
  }, T);

  test("a held bundle with another root: federation_endpoint_untrusted", async () => {
    expect(await codeOf(fetchBundle(spiffeSetting(url("/bundle")), heldOf(stranger), never))).toBe("federation_endpoint_untrusted");
  }, T);

  test("another root and another endpoint_id: the chain is refused first (untrusted, not a mismatch)", async () => {
    const p = fetchBundle(spiffeSetting(url("/bundle"), "spiffe://partner.test/other"), heldOf(stranger), never);
    expect(await codeOf(p)).toBe("federation_endpoint_untrusted");
  }, T);

  test("no bundle held at all: federation_endpoint_untrusted before any connection", async () => {
    expect(await codeOf(fetchBundle(spiffeSetting(url("/bundle")), { held: null, caPem: null }, never))).toBe("federation_endpoint_untrusted");
  }, T);

  test("the system's roots do not stand in for the held bundle (a Web PKI endpoint is refused)", async () => {
    const p = fetchBundle(spiffeSetting(`https://localhost:${webEndpoint.port}/bundle`), heldOf(partner), never);
    expect(await codeOf(p)).toBe("federation_endpoint_untrusted");
  }, T);
});

describe("https_web: the endpoint is authenticated by the ca file and its host name", () => {
  const url = (host: string, path: string) => `https://${host}:${webEndpoint.port}${path}`;

  test("accepted with the ca file the certificate chains to, by the name it carries", async () => {
    const text = await fetchBundle(webSetting(url("localhost", "/bundle")), caOf(web), never);
    expect((await parseJwksBundle(PARTNER, text)).sequence).toBe(7);
  }, T);

  test("another CA: federation_endpoint_untrusted, naming the ca file", async () => {
    const p = fetchBundle(webSetting(url("localhost", "/bundle")), caOf(otherWeb), never);
    expect(await codeOf(p)).toBe("federation_endpoint_untrusted");
    expect(await p.catch((e: Error) => e.message)).toContain("the CA file /etc/partner-ca.pem");
  }, T);

  test("without a ca file the system's roots are used: a private CA is refused", async () => {
    const p = fetchBundle(webSetting(url("localhost", "/bundle")), { held: null, caPem: null }, never);
    expect(await codeOf(p)).toBe("federation_endpoint_untrusted");
  }, T);

  test("a host name the certificate does not carry: federation_endpoint_untrusted", async () => {
    // The certificate names DNS localhost only. Bun's fetch checks the URL's host against the
    // SANs itself (an IP literal needs an IP SAN, as in node:tls): reached as 127.0.0.1 it fails
    // the handshake with ERR_TLS_CERT_ALTNAME_INVALID.
    const p = fetchBundle(webSetting(url("127.0.0.1", "/bundle")), caOf(web), never);
    expect(await codeOf(p)).toBe("federation_endpoint_untrusted");
    expect(await p.catch((e: Error) => e.message)).toContain("ERR_TLS_CERT_ALTNAME_INVALID");
  }, T);
});

describe("answers that are not a bundle", () => {
  const url = (path: string) => `https://127.0.0.1:${spiffeEndpoint.port}${path}`;

  test("nothing listening: federation_endpoint_unreachable", async () => {
    expect(await codeOf(fetchBundle(spiffeSetting(`https://127.0.0.1:${closedPort}/bundle`), heldOf(partner), never))).toBe("federation_endpoint_unreachable");
  }, T);

  test("a 404: federation_endpoint_refused", async () => {
    const p = fetchBundle(spiffeSetting(url("/nothing")), heldOf(partner), never);
    expect(await codeOf(p)).toBe("federation_endpoint_refused");
    expect(await p.catch((e: Error) => e.message)).toEndWith("answered 404");
  }, T);

  test("a 302 is not followed: federation_endpoint_refused", async () => {
    const p = fetchBundle(spiffeSetting(url("/moved")), heldOf(partner), never);
    expect(await codeOf(p)).toBe("federation_endpoint_refused");
    expect(await p.catch((e: Error) => e.message)).toEndWith("answered 302");
  }, T);

  test("a body declared over MAX_BUNDLE_BYTES: federation_bundle_too_large", async () => {
    expect(await codeOf(fetchBundle(spiffeSetting(url("/big")), heldOf(partner), never))).toBe("federation_bundle_too_large");
  }, T);

  test("an endless body without a length: federation_bundle_too_large once it passes the limit", async () => {
    const t0 = performance.now();
    expect(await codeOf(fetchBundle(spiffeSetting(url("/endless")), heldOf(partner), never))).toBe("federation_bundle_too_large");
    expect(performance.now() - t0).toBeLessThan(5000);
  }, T);

  test("an aborted signal ends the fetch", async () => {
    const ac = new AbortController();
    ac.abort();
    expect(await codeOf(fetchBundle(spiffeSetting(url("/bundle")), heldOf(partner), ac.signal))).toBe("federation_endpoint_unreachable");
  }, T);
});
