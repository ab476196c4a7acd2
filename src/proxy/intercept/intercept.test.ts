// Interception in one process over real sockets (test-harness.ts): a stand-in for the egress
// listener, a Bun HTTPS server as the "third-party API" with its own CA. Clients are raw sockets
// (so pipelining and smuggling shapes can be written byte for byte) and curl over TLS.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { apiRule, CALLER, createHarness, exchange as exchangeOn, type Harness } from "./test-harness.ts";

const SECRET = "s3cr3t-value-for-the-api";
const secrets: Record<string, string> = { api_token: SECRET, other_token: "other-secret-value" };
let api: ReturnType<typeof Bun.serve>;
let h: Harness;
let lines: Record<string, unknown>[];
let proxyPort: number;
/** What the harness's `accepting` answers: false as while the audit log cannot be written. */
let accepting = true;
/** What the harness's identity check answers: false once workload w's registration no longer gives it CALLER. */
let identified = true;
const seen: { path: string; auth: string | null; apiKey: string | null; requestId: string | null; body: string }[] = [];

beforeAll(async () => {
  h = await createHarness();
  lines = h.lines;
  api = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    tls: h.apiTls,
    async fetch(req) {
      const u = new URL(req.url);
      if (u.pathname === "/slow") await Bun.sleep(1500); // an answer that is still pending while the workload pipelines
      seen.push({ path: u.pathname + u.search, auth: req.headers.get("authorization"), apiKey: req.headers.get("x-api-key"), requestId: req.headers.get("x-request-id"), body: await req.text() });
      return new Response(`path=${u.pathname} auth=${req.headers.get("authorization") === `Bearer ${SECRET}` ? "injected" : "other"}`);
    },
  });
  proxyPort = h.start(`trust_domain: example.org\negress:\n${apiRule("api", 80, h, api.port!)}${apiRule("api-tls", 443, h, api.port!)}`, { secrets, accepting: () => accepting, identified: () => identified });
});

afterAll(() => {
  h?.stop();
  api?.stop(true);
});

const exchange = (text: string, until?: (got: string) => boolean) => exchangeOn(proxyPort, text, until);
const count = (s: string, what: string) => s.split(what).length - 1;
const httpLines = () => lines.filter((l) => l.type === "http_request");
/** The line of `type` for connection `connId`, once written (the exchange ends as the client sees its close). */
async function lineOf(type: string, connId: unknown): Promise<Record<string, unknown>> {
  for (let i = 0; i < 100; i++) {
    const l = lines.find((x) => x.type === type && x.conn_id === connId);
    if (l !== undefined) return l;
    await Bun.sleep(20);
  }
  throw new Error(`no ${type} line for connection ${String(connId)}`);
}

describe("intercept: plain HTTP from the workload, TLS to the API", () => {
  test("the API gets the injected Authorization; the workload's own value is dropped; the secret is in no log line", async () => {
    const before = seen.length;
    const out = await exchange("GET /v1/a?q=1 HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer mine\r\nConnection: close\r\n\r\n");
    expect(out).toStartWith("HTTP/1.1 200");
    expect(out).toContain("path=/v1/a auth=injected");
    expect(seen.slice(before)).toEqual([{ path: "/v1/a?q=1", auth: `Bearer ${SECRET}`, apiKey: null, requestId: null, body: "" }]);
    const line = httpLines().at(-1)!;
    expect(line).toMatchObject({ method: "GET", host: "api.test", target: "/v1/a", rule: "api", status: 200, outcome: "forwarded", injected: ["api_token"] });
    expect(JSON.stringify(lines)).not.toContain(SECRET);
  });

  test("keep-alive and pipelining: every request is decided and injected, answers come back in order", async () => {
    const before = seen.length;
    const reqs = ["/p1", "/p2", "/p3"].map((p, i) => `POST ${p} HTTP/1.1\r\nHost: api.test\r\nContent-Length: 5\r\n${i === 2 ? "Connection: close\r\n" : ""}\r\nhello`).join("");
    const out = await exchange(reqs);
    expect(count(out, "HTTP/1.1 200")).toBe(3);
    expect(out.indexOf("path=/p1")).toBeLessThan(out.indexOf("path=/p2"));
    expect(out.indexOf("path=/p2")).toBeLessThan(out.indexOf("path=/p3"));
    expect(seen.slice(before).map((x) => [x.path, x.auth, x.body])).toEqual(["/p1", "/p2", "/p3"].map((p) => [p, `Bearer ${SECRET}`, "hello"]));
    // The connection's line counts the body bytes its requests' lines count, each way.
    const mine = httpLines().slice(-3);
    expect(mine.map((l) => [l.target, l.bytes_up, l.bytes_down])).toEqual(["/p1", "/p2", "/p3"].map((p) => [p, 5, `path=${p} auth=injected`.length]));
    const close = await lineOf("conn_close", mine[0]!.conn_id);
    expect(close).toMatchObject({ outcome: "closed", requests: 3, bytes_up: 15, bytes_down: 3 * "path=/p1 auth=injected".length });
  });

  test("kept alive, a repeated answer head and then a different one each reach the workload as the API sent them", async () => {
    const reqs = ["/a", "/a", "/bbbb"].map((p, i) => `GET ${p} HTTP/1.1\r\nHost: api.test\r\n${i === 2 ? "Connection: close\r\n" : ""}\r\n`).join("");
    const out = await exchange(reqs);
    const answers = out.split(/(?=HTTP\/1\.1 )/);
    const bodies = ["path=/a auth=injected", "path=/a auth=injected", "path=/bbbb auth=injected"];
    expect(answers.map((a) => a.slice(a.indexOf("\r\n\r\n") + 4))).toEqual(bodies);
    expect(answers.map((a) => Number(/content-length: (\d+)/i.exec(a)?.[1]))).toEqual(bodies.map((b) => b.length));
  });

  test("a secret changed between two identical requests of one kept-alive connection: the second carries the new value", async () => {
    const before = seen.length;
    // the same bytes twice: the parser gives the same head, and only the secret changes
    const got = await faultMidConnection((on) => void (secrets.api_token = on ? "rotated-value" : SECRET), (g) => g.split("HTTP/1.1 200").length > 2 && /auth=(injected|other)$/.test(g), ["/same", "/same"]);
    expect(got.split("HTTP/1.1 200").length - 1).toBe(2);
    expect(seen.slice(before).map((x) => [x.path, x.auth])).toEqual([["/same", `Bearer ${SECRET}`], ["/same", "Bearer rotated-value"]]);
  });

  test("a chunked request body streams through and arrives whole", async () => {
    const before = seen.length;
    const out = await exchange("POST /c HTTP/1.1\r\nHost: api.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    expect(out).toStartWith("HTTP/1.1 200");
    expect(seen.slice(before).map((x) => x.body)).toEqual(["hello world"]);
  });

  test("a placeholder is swapped toward the rule that injects its secret, and refused for any other secret", async () => {
    const before = seen.length;
    const ok = await exchange("GET /ph HTTP/1.1\r\nHost: api.test\r\nX-Api-Key: tidegate-placeholder:api_token\r\nConnection: close\r\n\r\n");
    expect(ok).toStartWith("HTTP/1.1 200");
    expect(seen.at(-1)?.apiKey).toBe(SECRET);
    const bad = await exchange("GET /ph2 HTTP/1.1\r\nHost: api.test\r\nX-Api-Key: tidegate-placeholder:other_token\r\nConnection: close\r\n\r\n");
    expect(bad).toStartWith("HTTP/1.1 403");
    expect(bad).toContain("placeholder_not_allowed");
    expect(seen.length).toBe(before + 1);
    expect(httpLines().at(-1)).toMatchObject({ outcome: "refused", reason: "placeholder_not_allowed", rule: "api" });
    expect(JSON.stringify(lines)).not.toContain("other-secret-value");
  });

  test("a placeholder in a header off the rule's placeholder_headers (X-Request-Id, which APIs echo) is refused, kept alive or not; the API never gets it", async () => {
    const before = seen.length;
    const alone = await exchange("GET /echo HTTP/1.1\r\nHost: api.test\r\nX-Request-Id: tidegate-placeholder:api_token\r\nConnection: close\r\n\r\n");
    expect(alone).toBe("HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 41\r\nconnection: close\r\n\r\ntidegate: placeholder_header_not_allowed\n");
    expect(seen.length).toBe(before);
    expect(httpLines().at(-1)).toMatchObject({ target: "/echo", outcome: "refused", status: 403, reason: "placeholder_header_not_allowed", rule: "api" });
    // behind a good request on a kept-alive connection (pipelined): the first goes, the second is refused, nothing after it is read
    const piped = await exchange(
      "GET /first HTTP/1.1\r\nHost: api.test\r\n\r\n" +
        "GET /echo2 HTTP/1.1\r\nHost: api.test\r\nX-Request-Id: Bearer tidegate-placeholder:api_token\r\n\r\n" +
        "GET /after HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n",
    );
    expect(piped).toStartWith("HTTP/1.1 200");
    expect(piped).toContain("HTTP/1.1 403 Forbidden");
    expect(piped).toEndWith("tidegate: placeholder_header_not_allowed\n");
    expect(seen.slice(before).map((x) => [x.path, x.requestId])).toEqual([["/first", null]]);
    expect(httpLines().at(-1)).toMatchObject({ target: "/echo2", outcome: "refused", reason: "placeholder_header_not_allowed" });
    expect(JSON.stringify(lines)).not.toContain(SECRET);
  });

  const SMUGGLING: [string, string][] = [
    ["Content-Length with Transfer-Encoding", "POST / HTTP/1.1\r\nHost: api.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"],
    ["two differing Content-Length", "POST / HTTP/1.1\r\nHost: api.test\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"],
    ["a CR inside a header value", "GET / HTTP/1.1\r\nHost: api.test\r\nX-A: a\rb\r\n\r\n"],
    ["a duplicate Host", "GET / HTTP/1.1\r\nHost: api.test\r\nHost: evil.test\r\n\r\n"],
    ["obsolete line folding", "GET / HTTP/1.1\r\nHost: api.test\r\nX-A: a\r\n b\r\n\r\n"],
    ["an invalid chunk size", "POST / HTTP/1.1\r\nHost: api.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"],
  ];
  for (const [name, text] of SMUGGLING) {
    test(`smuggling behind a good request is answered 400 and closes; nothing of it reaches the API: ${name}`, async () => {
      const before = seen.length;
      const out = await exchange(`GET /first HTTP/1.1\r\nHost: api.test\r\n\r\n${text}`);
      expect(out).toStartWith("HTTP/1.1 200");
      expect(out).toMatch(/HTTP\/1\.1 400 Bad Request[^]*tidegate: http1_/);
      expect(seen.slice(before).map((x) => x.path)).toEqual(["/first"]);
      expect(httpLines().at(-1)).toMatchObject({ outcome: "refused", status: 400, reason: expect.stringMatching(/^http1_/) });
    });
  }

  test("smuggling in the first request is refused while peeking: closed, logged, nothing sent", async () => {
    const before = seen.length;
    const out = await exchange(SMUGGLING[0]![1]);
    expect(out).toBe("");
    expect(lines.at(-1)).toMatchObject({ type: "conn_close", outcome: "refused" });
    expect(seen.length).toBe(before);
  });

  test("a request smuggled behind a good one on the same connection is refused, the good one answered", async () => {
    const before = seen.length;
    const out = await exchange("GET /good HTTP/1.1\r\nHost: api.test\r\n\r\nGET /bad HTTP/1.1\r\nHost: api.test\r\nHost: evil.test\r\n\r\n");
    expect(out).toStartWith("HTTP/1.1 200");
    expect(out).toContain("HTTP/1.1 400");
    expect(seen.slice(before).map((x) => x.path)).toEqual(["/good"]);
  });

  test("bodies pipelined behind a pending answer are bounded: over MAX_HELD the connection is refused (too_much_ahead)", async () => {
    const big = 4 * 1024 * 1024 + 128 * 1024;
    const out = await exchange(`GET /slow HTTP/1.1\r\nHost: api.test\r\n\r\nPOST /p HTTP/1.1\r\nHost: api.test\r\nContent-Length: ${big}\r\n\r\n${"x".repeat(big)}`);
    expect(out).toContain("HTTP/1.1 400");
    expect(out).toContain("too_much_ahead");
    expect(httpLines().at(-1)).toMatchObject({ outcome: "refused", reason: "too_much_ahead" });
  });

  test("heads pipelined behind a pending answer count toward MAX_HELD too: a stream of them is refused (too_much_ahead)", async () => {
    // ~4.3 MB of bodiless requests, each head different (a repeated one is one object, these are not)
    const heads = Array.from({ length: 30000 }, (_, i) => `GET /p${i} HTTP/1.1\r\nHost: api.test\r\nX-Pad: ${"a".repeat(100)}\r\n\r\n`).join("");
    const out = await exchange(`GET /slow HTTP/1.1\r\nHost: api.test\r\n\r\n${heads}`);
    expect(out).toContain("HTTP/1.1 400");
    expect(out).toContain("too_much_ahead");
    expect(httpLines().at(-1)).toMatchObject({ outcome: "refused", reason: "too_much_ahead" });
  });

  test("a Host no rule names is refused 403 and logged", async () => {
    const out = await exchange("GET / HTTP/1.1\r\nHost: elsewhere.test\r\n\r\n");
    expect(out).toStartWith("HTTP/1.1 403");
    const line = httpLines().at(-1)!;
    expect(line).toMatchObject({ outcome: "refused", reason: "no_rule", host: "elsewhere.test" });
    // the connection's line counts it: `requests` is how many http_request lines it wrote
    expect(await lineOf("conn_close", line.conn_id)).toMatchObject({ outcome: "refused", reason: "no_rule", requests: 1, bytes_up: 0, bytes_down: 0 });
  });

  /**
   * One kept-alive connection: GET /ok answered, then `fault(true)` and GET /after; what the
   * workload read once `done` holds or the connection closed, `fault(false)` after. `paths`: other
   * paths for the two requests.
   */
  async function faultMidConnection(fault: (on: boolean) => void, done: (got: string) => boolean, paths: readonly [string, string] = ["/ok", "/after"]): Promise<string> {
    let got = "";
    const first = Promise.withResolvers<void>();
    const second = Promise.withResolvers<void>();
    const sock = await Bun.connect({
      hostname: "127.0.0.1",
      port: proxyPort,
      socket: {
        data(_s, c) {
          got += new TextDecoder().decode(c);
          if (got.includes(`path=${paths[0]}`)) first.resolve();
          if (done(got)) second.resolve();
        },
        close: () => (first.resolve(), second.resolve()),
      },
    });
    sock.write(`GET ${paths[0]} HTTP/1.1\r\nHost: api.test\r\n\r\n`);
    await first.promise;
    fault(true);
    try {
      sock.write(`GET ${paths[1]} HTTP/1.1\r\nHost: api.test\r\n\r\n`);
      await second.promise;
    } finally {
      fault(false);
      sock.end();
    }
    return got;
  }

  test("the audit log failing mid-connection (on_failure refuse): the next request gets 503 and never reaches the API", async () => {
    const before = seen.length;
    const got = await faultMidConnection((on) => void (accepting = !on), (g) => g.includes("audit_unavailable"));
    expect(got).toContain("HTTP/1.1 503");
    expect(seen.slice(before).map((x) => x.path)).toEqual(["/ok"]);
    expect(httpLines().at(-1)).toMatchObject({ target: "/after", status: 503, outcome: "refused", reason: "audit_unavailable" });
  });

  test("the caller's identity revoked mid-connection (its registration changed): the next request gets 403 identity_revoked, never reaches the API, and the connection closes", async () => {
    const before = seen.length;
    const got = await faultMidConnection((on) => void (identified = !on), () => false);
    expect(got).toContain("HTTP/1.1 403");
    expect(got).toContain("tidegate: identity_revoked");
    expect(seen.slice(before).map((x) => x.path)).toEqual(["/ok"]);
    const line = httpLines().at(-1)!;
    expect(line).toMatchObject({ target: "/after", status: 403, outcome: "refused", reason: "identity_revoked", workload: "w" });
    expect(String(line.detail)).toContain(`workload w no longer has identity ${CALLER.toString()}`);
  });

  test("an upgrade (WebSocket) request is refused", async () => {
    const out = await exchange("GET /ws HTTP/1.1\r\nHost: api.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    expect(out).toStartWith("HTTP/1.1 403");
    expect(out).toContain("upgrade_refused");
  });
});

describe("intercept: the workload's TLS terminated with the interception CA", () => {
  test("curl over https trusts the leaf, and the API gets the injected header", async () => {
    const before = seen.length;
    // curl dials the proxy for https://api.test/ (port 443, as the harness records the connection: a Host port must be the one dialled)
    const p = Bun.spawn(["curl", "-sS", "--max-time", "5", "--cacert", h.agentCaFile, "--connect-to", `api.test:443:127.0.0.1:${proxyPort}`, "https://api.test/tls"], { stdout: "pipe", stderr: "pipe" });
    const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    expect(err).toBe("");
    expect(out).toBe("path=/tls auth=injected");
    expect(seen.slice(before).map((x) => [x.path, x.auth])).toEqual([["/tls", `Bearer ${SECRET}`]]);
  });

  test("a Host that does not match the SNI is refused 421", async () => {
    const p = Bun.spawn(["curl", "-sS", "--max-time", "5", "--cacert", h.agentCaFile, "-H", "Host: other.test", "--resolve", `api.test:${proxyPort}:127.0.0.1`, `https://api.test:${proxyPort}/x`], { stdout: "pipe", stderr: "pipe" });
    const out = await new Response(p.stdout).text();
    await p.exited;
    expect(out).toContain("host_sni_mismatch");
    expect(httpLines().at(-1)).toMatchObject({ outcome: "refused", reason: "host_sni_mismatch" });
  });
});
