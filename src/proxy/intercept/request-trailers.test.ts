// A chunked request's trailer section goes upstream after its last chunk. A field there under a
// name the rule injects is the workload's own value for it, which the head drops: it is dropped
// from the trailers too, so an upstream that reads trailer fields never gets both.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createHarness, exchange, rawApi, type Harness, type RawApi } from "./test-harness.ts";

let h: Harness;
let api: RawApi;

beforeAll(async () => {
  h = await createHarness();
  api = await rawApi(h, (s, sent) => {
    if (sent.includes("\r\n0\r\n") && sent.endsWith("\r\n\r\n")) s.end("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
  });
});

afterAll(() => {
  h?.stop();
  api?.close();
});

test("a trailer field under an injected name is dropped; other trailers go on", async () => {
  const out = await exchange(api.proxyPort, "POST /v1 HTTP/1.1\r\nHost: api.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\nauthorization: Bearer mine\r\nX-Checksum: abc\r\n\r\n");
  expect(out).toStartWith("HTTP/1.1 200");
  const got = api.received.at(-1)!;
  expect(got).toContain("Authorization: Bearer t0ken-value\r\n");
  expect(got).not.toContain("Bearer mine");
  expect(got).toEndWith("\r\n0\r\nX-Checksum: abc\r\n\r\n");
});
