// The Host the upstream gets is the host the request was decided for, else the upstream (a
// reverse proxy serving several names at that address) could route it to its default site, one
// the policy never judged, with the injected credentials on it. An HTTP/1.0 request in
// absolute-form names its host in the target alone (no Host header): it gets that Host, as its
// target goes upstream in origin-form. A Host written "API.Test." goes as "api.test".
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createHarness, exchange, rawApi, type Harness, type RawApi } from "./test-harness.ts";

let h: Harness;
let api: RawApi;

beforeAll(async () => {
  h = await createHarness();
  api = await rawApi(h, (s, sent) => {
    if (sent.includes("\r\n\r\n")) s.end("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
  });
});

afterAll(() => {
  h?.stop();
  api?.close();
});

test("HTTP/1.0 in absolute-form without Host: the upstream gets the Host the request was decided for", async () => {
  const out = await exchange(api.proxyPort, "GET http://api.test/v1/x?q=1 HTTP/1.0\r\n\r\n");
  expect(out).toStartWith("HTTP/1.1 200");
  expect(api.received.at(-1)).toStartWith("GET /v1/x?q=1 HTTP/1.0\r\n");
  expect(api.received.at(-1)!.toLowerCase()).toContain("\r\nhost: api.test\r\n");
});

test("a Host with a trailing dot or capitals goes upstream as the name decided, with its port", async () => {
  const out = await exchange(api.proxyPort, "GET /v1/y HTTP/1.1\r\nHost: API.Test.:80\r\nConnection: close\r\n\r\n");
  expect(out).toStartWith("HTTP/1.1 200");
  expect(api.received.at(-1)).toContain("\r\nHost: api.test:80\r\n");
});
