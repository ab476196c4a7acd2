// An API that answers a request before its body has all arrived (an early 401 or 413, a handler
// that does not read the body) leaves the rest of that body owed on its connection: the next
// request on it would be read by the API as those body bytes, and what follows them as a request
// the policy never decided (another path, the injected credentials on it). Such a leg is not
// reused: the workload's next request goes on a new one. An upgrade request answered so (no
// switch) has the bytes after its body read as the next request, as after any other answer.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createHarness, rawApi, type Harness, type RawApi } from "./test-harness.ts";

let h: Harness;
let api: RawApi;
/** The connections to the API answered so far, by index. */
const answered = new Set<number>();

beforeAll(async () => {
  h = await createHarness();
  api = await rawApi(h, (s, _sent, i) => {
    // Answers each connection's first bytes at once, whatever they are, and keeps the connection.
    if (!answered.has(i)) {
      answered.add(i);
      s.write("HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\nno");
    }
  }, "    http: { paths: [/allowed] }\n    upgrade: [websocket]\n");
});

afterAll(() => {
  h?.stop();
  api?.close();
});

test("an answer before the request body ends: the leg is not reused for the next request", async () => {
  let got = "";
  const { promise: first, resolve: gotFirst } = Promise.withResolvers<void>();
  const { promise: closed, resolve: close } = Promise.withResolvers<void>();
  const s = await Bun.connect({
    hostname: "127.0.0.1",
    port: api.proxyPort,
    socket: {
      data(_s, c) {
        got += new TextDecoder().decode(c);
        if (got.includes("\r\n\r\nno")) gotFirst();
      },
      close: () => close(),
      end: () => close(),
    },
  });
  s.write("POST /allowed HTTP/1.1\r\nHost: api.test\r\nContent-Length: 10\r\n\r\nabc");
  await first;
  // The rest of the body, then a request whose head, read as the rest of the body, hides another.
  s.write("defghij" + "GET /allowed HTTP/1.1\r\nHost: api.test\r\nX: GET /admin HTTP/1.1\r\nConnection: close\r\n\r\n");
  await Promise.race([closed, Bun.sleep(2000)]);
  s.end();
  await Bun.sleep(50);
  // The first leg carried the first request alone; whatever came after its answer went elsewhere.
  expect(api.received.length).toBeGreaterThanOrEqual(1);
  expect(api.received[0]).toStartWith("POST /allowed HTTP/1.1\r\n");
  expect(api.received[0]).not.toContain("GET /allowed");
  expect(api.received[0]).not.toContain("defghij");
  // The next request went whole on a new leg, and was answered.
  expect(api.received[1]).toStartWith("GET /allowed HTTP/1.1\r\n");
  expect(got.split("HTTP/1.1 401").length - 1).toBe(2);
});

test("an upgrade request answered (without a switch) before its body ended: what follows its body is read as the next request", async () => {
  let got = "";
  const { promise: first, resolve: gotFirst } = Promise.withResolvers<void>();
  const { promise: second, resolve: gotSecond } = Promise.withResolvers<void>();
  const s = await Bun.connect({
    hostname: "127.0.0.1",
    port: api.proxyPort,
    socket: {
      data(_s, c) {
        got += new TextDecoder().decode(c);
        if (got.includes("\r\n\r\nno")) gotFirst();
        if (got.split("HTTP/1.1 401").length - 1 === 2 && got.endsWith("no")) gotSecond();
      },
    },
  });
  const before = api.received.length;
  s.write("POST /allowed HTTP/1.1\r\nHost: api.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\nab");
  await first;
  s.write("cde" + "GET /allowed HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n");
  await Promise.race([second, Bun.sleep(2000)]);
  s.end();
  expect(got.split("HTTP/1.1 401").length - 1).toBe(2);
  expect(api.received.slice(before).map((r) => r.split("\r\n")[0])).toEqual(["POST /allowed HTTP/1.1", "GET /allowed HTTP/1.1"]);
});
