// The framing fields go upstream (and an answer's back to the workload) as tidegate read them, written one way: a Content-Length with
// leading zeros ("010", which a strtol-style reader takes for octal 8), a list of equal values or
// the field twice becomes one decimal Content-Length; "Transfer-Encoding: Chunked" (any case)
// becomes "chunked". An upstream that reads such a field otherwise would frame the body
// otherwise, and take the rest of it as a request the policy never decided.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createHarness, exchange, rawApi, type Harness, type RawApi } from "./test-harness.ts";

let h: Harness;
let api: RawApi;

beforeAll(async () => {
  h = await createHarness();
  api = await rawApi(h, (s, t) => {
    const head = t.indexOf("\r\n\r\n");
    if (head < 0) return;
    if (t.startsWith("GET /odd-length ")) return void s.end("HTTP/1.1 200 OK\r\nContent-Length: 002\r\nContent-Length: 2, 2\r\nConnection: close\r\n\r\nok");
    if (t.startsWith("GET /odd-chunked ")) return void s.end("HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\nConnection: close\r\n\r\n2\r\nok\r\n0\r\n\r\n");
    if (t.endsWith("\r\n0\r\n\r\n") || t.length - head - 4 >= 10) s.end("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
  });
});

afterAll(() => {
  h?.stop();
  api?.close();
});

const headOf = (t: string) => t.slice(0, t.indexOf("\r\n\r\n") + 2).toLowerCase();

for (const cl of ["Content-Length: 010", "Content-Length: 10, 10", "Content-Length: 10\r\nContent-Length: 10"]) {
  test(`${JSON.stringify(cl)} goes upstream as one Content-Length: 10`, async () => {
    const out = await exchange(api.proxyPort, `POST /v1 HTTP/1.1\r\nHost: api.test\r\n${cl}\r\nConnection: close\r\n\r\n0123456789`);
    expect(out).toStartWith("HTTP/1.1 200");
    const head = headOf(api.received.at(-1)!);
    expect(head.split("content-length").length - 1).toBe(1);
    expect(head).toContain("\r\ncontent-length: 10\r\n");
  });
}

test('"Transfer-Encoding: Chunked" goes upstream as "chunked"', async () => {
  const out = await exchange(api.proxyPort, "POST /v1 HTTP/1.1\r\nHost: api.test\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
  expect(out).toStartWith("HTTP/1.1 200");
  expect(api.received.at(-1)!).toContain("\r\nTransfer-Encoding: chunked\r\n");
});

test("an answer's framing fields reach the workload as they were read, written one way", async () => {
  const a = await exchange(api.proxyPort, "GET /odd-length HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n");
  expect(a).toBe("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
  const c = await exchange(api.proxyPort, "GET /odd-chunked HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n");
  expect(c).toBe("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\nok\r\n0\r\n\r\n");
});
