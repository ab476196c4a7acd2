// An upstream whose answer ends short (it closes inside a Content-Length body, or breaks HTTP/1.1
// mid-answer): the request was forwarded, its secrets injected, so its http_request line is
// written (outcome upstream_failed, the status that began), and the workload's connection is
// reset, so it cannot take the cut answer for a whole one. So is one cut because the workload
// sent too much ahead while it streamed: no 400 is written into it.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createHarness, rawApi, type Harness, type RawApi } from "./test-harness.ts";
import { startWorkload } from "../bounds-test-kit.ts";

let h: Harness;
let api: RawApi;

beforeAll(async () => {
  h = await createHarness();
  api = await rawApi(h, (s, got) => {
    if (!got.includes("\r\n\r\n")) return;
    if (got.startsWith("GET /trickle ")) return void (got.length < 100_000 && s.write("HTTP/1.1 200 OK\r\n\r\npart")); // close-delimited, never ends
    if (got.startsWith("GET /short ")) s.end("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
    else s.end("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\npart\r\nzz\r\n");
  });
});

afterAll(() => {
  h?.stop();
  api?.close();
});

for (const path of ["/short", "/badchunk"]) {
  test(`an answer cut short (${path}): the request's line is written, the workload's connection reset`, async () => {
    const before = h.lines.length;
    const w = await startWorkload(api.proxyPort, `GET ${path} HTTP/1.1\r\nHost: api.test\r\n\r\n`);
    const out = await w.done;
    // what was corked for the workload from that read may be lost with the reset
    if (path === "/short") expect(out.text).toStartWith("HTTP/1.1 200");
    expect(out.error).toBe("ECONNRESET");
    await Bun.sleep(20);
    const mine = h.lines.slice(before);
    expect(mine.filter((l) => l.type === "http_request")).toEqual([expect.objectContaining({ target: path, status: 200, outcome: "upstream_failed", rule: "api", injected: ["api_token"] })]);
    expect(mine.find((l) => l.type === "conn_close")).toMatchObject({ outcome: "upstream_failed", requests: 1 });
  });
}

test("too much sent ahead while an answer streams: the answer is cut (reset), not followed by a 400 the workload would read as part of it", async () => {
  const before = h.lines.length;
  let text = "";
  const { promise: done, resolve } = Promise.withResolvers<string | null>();
  let rest = new Uint8Array(0);
  const push = (s: { write(b: Uint8Array): number }) => void (rest = rest.subarray(Math.max(0, s.write(rest))));
  const s = await Bun.connect({
    hostname: "127.0.0.1",
    port: api.proxyPort,
    socket: {
      data: (_s, d) => void (text += new TextDecoder().decode(d)),
      drain: (sock) => push(sock),
      close: (_s, e) => resolve(e == null ? null : ((e as { code?: string }).code ?? e.message)),
      error: (_s, e) => resolve((e as { code?: string }).code ?? e.message),
    },
  });
  s.write("GET /trickle HTTP/1.1\r\nHost: api.test\r\n\r\n");
  for (let i = 0; i < 100 && !text.endsWith("part"); i++) await Bun.sleep(10);
  const big = 4 * 1024 * 1024 + 128 * 1024;
  rest = new TextEncoder().encode(`POST /p HTTP/1.1\r\nHost: api.test\r\nContent-Length: ${big}\r\n\r\n${"x".repeat(big)}`);
  push(s);
  const error = await Promise.race([done, Bun.sleep(3000).then(() => "timeout")]);
  expect(text).toBe("HTTP/1.1 200 OK\r\n\r\npart");
  expect(error).toBe("ECONNRESET");
  await Bun.sleep(20);
  const mine = h.lines.slice(before).filter((l) => l.type === "http_request");
  expect(mine).toEqual([expect.objectContaining({ target: "/trickle", status: 200, reason: "too_much_ahead", injected: ["api_token"] })]);
});
