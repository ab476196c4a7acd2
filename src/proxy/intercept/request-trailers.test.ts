// A chunked request's trailer section goes upstream after its last chunk. A field there under a
// name the rule injects is the workload's own value for it, which the head drops: it is dropped
// from the trailers too, so an upstream that reads trailer fields never gets both.
import { afterAll, beforeAll, expect, test } from "bun:test";
import tls from "node:tls";
import { apiRule, createHarness, exchange, type Harness } from "./test-harness.ts";

let h: Harness;
let api: tls.Server;
let proxyPort: number;
/** The bytes each connection to the API received. */
const received: string[] = [];

beforeAll(async () => {
  h = await createHarness();
  api = tls.createServer({ cert: h.apiTls.cert, key: h.apiTls.key }, (s) => {
    const i = received.push("") - 1;
    s.on("data", (d: Buffer) => {
      received[i] += d.toString("latin1");
      if (received[i]!.includes("\r\n0\r\n") && received[i]!.endsWith("\r\n\r\n")) s.end("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    });
    s.on("error", () => {});
  });
  await new Promise<void>((r) => api.listen(0, "127.0.0.1", r));
  proxyPort = h.start(`trust_domain: example.org\negress:\n${apiRule("api", 80, h, (api.address() as { port: number }).port)}`, { secrets: { api_token: "t0ken-value" } });
});

afterAll(() => {
  h?.stop();
  api?.close();
});

test("a trailer field under an injected name is dropped; other trailers go on", async () => {
  const out = await exchange(proxyPort, "POST /v1 HTTP/1.1\r\nHost: api.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\nauthorization: Bearer mine\r\nX-Checksum: abc\r\n\r\n");
  expect(out).toStartWith("HTTP/1.1 200");
  const got = received.at(-1)!;
  expect(got).toContain("Authorization: Bearer t0ken-value\r\n");
  expect(got).not.toContain("Bearer mine");
  expect(got).toEndWith("\r\n0\r\nX-Checksum: abc\r\n\r\n");
});
