// An upstream whose answer ends short (it closes inside a Content-Length body, or breaks HTTP/1.1
// mid-answer): the request was forwarded, its secrets injected, so its http_request line is
// written (outcome upstream_failed, the status that began), and the workload's connection is
// reset, so it cannot take the cut answer for a whole one.
import { afterAll, beforeAll, expect, test } from "bun:test";
import tls from "node:tls";
import { apiRule, createHarness, type Harness } from "./test-harness.ts";
import { startWorkload } from "../bounds-test-kit.ts";

let h: Harness;
let api: tls.Server;
let proxyPort: number;

beforeAll(async () => {
  h = await createHarness();
  api = tls.createServer({ cert: h.apiTls.cert, key: h.apiTls.key }, (s) => {
    let got = "";
    s.on("data", (d: Buffer) => {
      got += d.toString("latin1");
      if (!got.includes("\r\n\r\n")) return;
      if (got.startsWith("GET /short ")) s.end("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
      else s.end("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\npart\r\nzz\r\n");
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

for (const path of ["/short", "/badchunk"]) {
  test(`an answer cut short (${path}): the request's line is written, the workload's connection reset`, async () => {
    const before = h.lines.length;
    const w = await startWorkload(proxyPort, `GET ${path} HTTP/1.1\r\nHost: api.test\r\n\r\n`);
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
