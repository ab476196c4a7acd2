// callServer against servers that answer and then do not stop: the first-contact bundle fetch is
// not verified (anyone on the path may answer it), so its body, like every other, must arrive
// whole within the call's timeout and within MAX_ANSWER_BYTES.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createTestCa } from "../../test/helpers/test-ca.ts";
import { encodePem, exportPkcs8Pem } from "../x509/index.ts";
import { callServer, MAX_ANSWER_BYTES } from "./server-client.ts";

let server: ReturnType<typeof Bun.serve>;
let origin: string;
let caPem: string;
const SERVER_ID = "spiffe://example.org/tidegate/server";

beforeAll(async () => {
  const ca = await createTestCa();
  const leaf = await (await ca.mintIntermediate()).mintLeaf(SERVER_ID);
  caPem = encodePem("CERTIFICATE", ca.root.der);
  server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    idleTimeout: 0,
    tls: { cert: leaf.chain.map((d) => encodePem("CERTIFICATE", d)).join(""), key: await exportPkcs8Pem(leaf.privateKey) },
    fetch(req) {
      const path = new URL(req.url).pathname;
      const headers = { "content-type": "application/json" };
      // the head and one byte, then nothing, ever
      if (path === "/never-ends") return new Response(new ReadableStream({ start: (c) => c.enqueue(new TextEncoder().encode("{")) }), { headers });
      // spaces (valid JSON padding) a MiB at a time, for as long as they are read
      if (path === "/endless") return new Response(new ReadableStream({ pull: (c) => c.enqueue(new Uint8Array(1 << 20).fill(0x20)) }), { headers });
      return Response.json({ ok: true });
    },
  });
  origin = `https://127.0.0.1:${server.port}`;
});
afterAll(() => server?.stop(true));

async function outcome(p: Promise<unknown>, waitMs: number): Promise<string> {
  return Promise.race([
    p.then(
      (v) => `answered ${JSON.stringify(v)}`,
      (e: { code?: string }) => `refused ${e.code}`,
    ),
    Bun.sleep(waitMs).then(() => `still waiting after ${waitMs} ms`),
  ]);
}

test.each([
  ["unverified (first contact)", null],
  ["verified", "verified"],
] as const)("%s: a body that never ends is given up at the call's timeout: server_unreachable", async (_name, mode) => {
  const trust = mode === null ? null : { caPem, serverId: SERVER_ID };
  const start = Date.now();
  expect(await outcome(callServer({ origin, method: "GET", path: "/never-ends", trust, timeoutMs: 500 }), 5000)).toBe("refused server_unreachable");
  expect(Date.now() - start).toBeLessThan(2500);
}, 10_000);

test("an answer that does not stop is refused once past MAX_ANSWER_BYTES, not buffered whole: server_bad_answer", async () => {
  const before = process.memoryUsage().rss;
  expect(await outcome(callServer({ origin, method: "GET", path: "/endless", trust: null, timeoutMs: 60_000 }), 20_000)).toBe("refused server_bad_answer");
  // what was held is about the cap, not what the peer could send in 20 s (gigabytes)
  expect(process.memoryUsage().rss - before).toBeLessThan(8 * MAX_ANSWER_BYTES);
}, 30_000);

test("control: a whole answer within both bounds is read", async () => {
  expect(await outcome(callServer({ origin, method: "GET", path: "/fine", trust: { caPem, serverId: SERVER_ID }, timeoutMs: 2000 }), 5000)).toBe('answered {"ok":true}');
});
