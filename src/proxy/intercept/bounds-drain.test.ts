// Interception's bounds and drain over real sockets (test-harness.ts). With small bounds: a
// request head sent a byte at a time (slowloris) is answered 408 `header_timeout` at the header
// bound though each byte came within the idle bound, while a body sent so is forwarded whole; a
// workload that resets its connection mid-answer has its request logged as cut and the leg to
// the API closed; an API that never answers gets the workload a 504 `upstream_first_byte_timeout`, on a kept-alive
// connection for each request afresh; one that answers and goes silent is cut (`idle_timeout`,
// the workload's end reset); a slow stream lasting past the idle bound arrives whole; one that
// never completes its TCP connect gets a 504 `upstream_connect_timeout`; each request's line and
// the connection's say why. With the default bounds, a stopping agent's drain: a kept-alive
// connection between requests ends at once, cleanly; one that has had no answer yet gets its
// first; an answer in progress ends whole first; at the deadline an answer in progress is cut and
// one not begun is answered 503 `drain_timeout`.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import tls from "node:tls";
import { readFileSync } from "node:fs";
import { apiRule, createHarness, type Harness } from "./test-harness.ts";
import { fullBacklog, startWorkload, waitUntil } from "../bounds-test-kit.ts";

const secrets = { api_token: "t0ken-value" };
const enc = new TextEncoder();
let api: ReturnType<typeof Bun.serve>;
let stuck: Awaited<ReturnType<typeof fullBacklog>>;
let bounded: Harness;
let plain: Harness;
let boundedPort: number;
let plainPort: number;
/** Requests for /hang the API received. */
let hanging = 0;
/** Every path the API was asked for. */
const asked: string[] = [];
/** /stream answers whose reader cancelled (the leg toward the API closed mid-answer). */
let cancelled = 0;

/** An API: /hang never answers; /partial sends a head and a first chunk, then nothing; /stream 8 chunks, 100 ms apart. */
function startApi(h: Harness) {
  return Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    tls: h.apiTls,
    idleTimeout: 0,
    async fetch(req) {
      const path = new URL(req.url).pathname;
      asked.push(path);
      if (path === "/echo") return new Response(await req.text());
      if (path === "/hang") {
        hanging++;
        return new Promise<Response>(() => {});
      }
      if (path === "/partial") return new Response(new ReadableStream({ start: (c) => c.enqueue(enc.encode("part")) }));
      if (path === "/stream") {
        let n = 0;
        return new Response(
          new ReadableStream({
            async pull(c) {
              await Bun.sleep(100);
              c.enqueue(enc.encode(`chunk${n}\n`));
              if (++n === 8) c.close();
            },
            cancel: () => void cancelled++,
          }),
        );
      }
      return new Response("ok");
    },
  });
}

beforeAll(async () => {
  bounded = await createHarness();
  plain = await createHarness();
  api = startApi(bounded);
  stuck = await fullBacklog();
  // Port 80 (plain HTTP from the workload): the API; port 443 (TLS from the workload): a listener that never completes a connect.
  boundedPort = bounded.start(`trust_domain: example.org\negress:\n${apiRule("api", 80, bounded, api.port!)}${apiRule("stuck", 443, bounded, stuck.port)}`, {
    secrets,
    timeouts: { connectTimeoutMs: 300, firstByteTimeoutMs: 300, idleTimeoutMs: 400, headerTimeoutMs: 600 },
  });
  // The same CA file is given to both harnesses' rules: the API's leaf comes from `bounded`'s API CA.
  plainPort = plain.start(`trust_domain: example.org\negress:\n${apiRule("api", 80, bounded, api.port!)}${apiRule("api-tls", 443, bounded, api.port!)}`, { secrets });
});

afterAll(() => {
  bounded?.stop();
  plain?.stop();
  api?.stop(true);
  stuck?.stop();
});

const get = (path: string, close = false) => `GET ${path} HTTP/1.1\r\nHost: api.test\r\n${close ? "Connection: close\r\n" : ""}\r\n`;
const last = (h: Harness, type: string) => h.lines.filter((l) => l.type === type).at(-1);
const closedAfter = (h: Harness, n: number) => waitUntil("a conn_close", () => h.lines.filter((l) => l.type === "conn_close").slice(n)[0]);
const closes = (h: Harness) => h.lines.filter((l) => l.type === "conn_close").length;

describe("intercept bounds", () => {
  test("an API that never answers: the workload gets 504 upstream_first_byte_timeout", async () => {
    const n = closes(bounded);
    const w = await startWorkload(boundedPort, get("/hang"));
    const out = await w.done;
    expect(out.text).toStartWith("HTTP/1.1 504 ");
    expect(out.text).toContain("tidegate: upstream_first_byte_timeout");
    expect(last(bounded, "http_request")).toMatchObject({ method: "GET", target: "/hang", host: "api.test", rule: "api", status: 504, outcome: "upstream_failed", reason: "upstream_first_byte_timeout" });
    expect(await closedAfter(bounded, n)).toMatchObject({ outcome: "upstream_failed", reason: "upstream_first_byte_timeout", requests: 1 });
  });

  test("on a kept-alive connection each request's answer is awaited afresh: a second one that never comes gets 504", async () => {
    const w = await startWorkload(boundedPort, get("/a"));
    await waitUntil("the first answer", () => (w.text().endsWith("ok") ? true : undefined));
    w.write(get("/hang"));
    const out = await w.done;
    expect(out.text).toStartWith("HTTP/1.1 200 ");
    expect(out.text).toContain("HTTP/1.1 504 ");
    expect(last(bounded, "conn_close")).toMatchObject({ outcome: "upstream_failed", reason: "upstream_first_byte_timeout", requests: 2 });
  });

  test("an answer that goes silent is cut after the idle bound: the workload's end reset", async () => {
    const n = closes(bounded);
    const w = await startWorkload(boundedPort, get("/partial"));
    const out = await w.done;
    expect(out.text).toStartWith("HTTP/1.1 200 ");
    expect(out.text).toContain("part");
    expect(out.error).toBe("ECONNRESET");
    expect(last(bounded, "http_request")).toMatchObject({ target: "/partial", status: 200, outcome: "terminated", reason: "idle_timeout" });
    expect(await closedAfter(bounded, n)).toMatchObject({ outcome: "terminated", reason: "idle_timeout" });
  });

  test("a streamed answer lasting twice the idle bound, a byte every 100 ms, arrives whole", async () => {
    const w = await startWorkload(boundedPort, get("/stream", true));
    const out = await w.done;
    expect(out.error).toBeNull();
    expect(out.text).toContain("chunk7\n");
    expect(last(bounded, "http_request")).toMatchObject({ target: "/stream", status: 200, outcome: "forwarded" });
  });

  test("an upstream that never completes its TCP connect: 504 upstream_connect_timeout, the request named", async () => {
    const n = closes(bounded);
    const got = await new Promise<string>((resolve, reject) => {
      let text = "";
      const s = tls.connect({ host: "127.0.0.1", port: boundedPort, servername: "api.test", ca: readFileSync(bounded.agentCaFile, "utf8") }, () => s.write(get("/v1")));
      s.on("data", (d: Buffer) => void (text += d.toString()));
      s.on("close", () => resolve(text));
      s.on("error", reject);
    });
    expect(got).toStartWith("HTTP/1.1 504 ");
    expect(got).toContain("upstream_connect_timeout");
    expect(last(bounded, "http_request")).toMatchObject({ method: "GET", target: "/v1", rule: "stuck", status: 504, outcome: "upstream_failed", reason: "upstream_connect_timeout" });
    expect(await closedAfter(bounded, n)).toMatchObject({ outcome: "upstream_failed", reason: "upstream_connect_timeout" });
  });
});

/** Writes `text` to `w` a byte every `ms` until it is written or the connection ends. */
async function trickle(w: Awaited<ReturnType<typeof startWorkload>>, text: string, ms = 100): Promise<number> {
  let ended = false;
  void w.done.then(() => (ended = true));
  let sent = 0;
  for (const ch of text) {
    if (ended) break;
    w.write(ch);
    sent++;
    await Bun.sleep(ms);
  }
  return sent;
}

describe("intercept: slow heads, slow bodies, and a workload that resets", () => {
  test("a head sent a byte every 100 ms (within the idle bound) after the TLS handshake is answered 408 header_timeout at the header bound; the API gets nothing", async () => {
    const n = closes(bounded);
    const before = asked.length;
    const started = performance.now();
    let sent = 0;
    const got = await new Promise<string>((resolve, reject) => {
      let text = "";
      let open = true;
      const s = tls.connect({ host: "127.0.0.1", port: boundedPort, servername: "api.test", ca: readFileSync(bounded.agentCaFile, "utf8") }, async () => {
        for (const ch of "GET /slow HTTP/1.1\r\nHost: api.test\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n") {
          if (!open) break;
          s.write(ch);
          sent++;
          await Bun.sleep(100);
        }
      });
      s.on("data", (d: Buffer) => void (text += d.toString()));
      s.on("close", () => {
        open = false;
        resolve(text);
      });
      s.on("error", reject);
    });
    expect(got).toStartWith("HTTP/1.1 408 ");
    expect(got).toContain("tidegate: header_timeout");
    expect(performance.now() - started).toBeGreaterThanOrEqual(590);
    expect(sent).toBeLessThan(20); // cut long before the head was whole
    expect(last(bounded, "http_request")).toMatchObject({ status: 408, outcome: "refused", reason: "header_timeout", detail: "no whole request head within 600 ms" });
    expect(await closedAfter(bounded, n)).toMatchObject({ tls_terminated: true, outcome: "refused", reason: "header_timeout" });
    expect(asked.slice(before)).toEqual([]);
  });

  test("on a kept-alive connection the next head is bound from its first byte, not from the answer before", async () => {
    const n = closes(bounded);
    const w = await startWorkload(boundedPort, get("/first"));
    await waitUntil("the first answer", () => (w.text().endsWith("ok") ? true : undefined));
    await Bun.sleep(300); // quiet, within the idle bound: no head awaited yet
    w.write(get("/second"));
    await waitUntil("the second answer", () => (w.text().split("HTTP/1.1 200 ").length === 3 ? true : undefined));
    await trickle(w, "GET /third HTTP/1.1\r\nHost: api.test\r\n\r\n");
    const out = await w.done;
    expect(out.text).toContain("HTTP/1.1 408 ");
    // two answered, and the third's line (408): `requests` counts the connection's http_request lines
    expect(await closedAfter(bounded, n)).toMatchObject({ outcome: "refused", reason: "header_timeout", requests: 3 });
  });

  test("the header bound is for heads only: a body sent a byte every 100 ms for twice the bound is forwarded whole", async () => {
    const body = "0123456789ab";
    const w = await startWorkload(boundedPort, `POST /echo HTTP/1.1\r\nHost: api.test\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
    await trickle(w, body);
    const out = await w.done;
    expect(out.error).toBeNull();
    expect(out.text).toStartWith("HTTP/1.1 200 ");
    expect(out.text).toEndWith(body);
    expect(last(bounded, "http_request")).toMatchObject({ target: "/echo", status: 200, outcome: "forwarded", bytes_up: body.length });
  });

  test("a workload that resets its connection mid-answer: its request is logged cut (client_gone), the connection too, and the leg to the API is closed, not pooled", async () => {
    const n = closes(plain);
    const gone = cancelled;
    let sock: import("bun").Socket<undefined> | null = null;
    let text = "";
    sock = await Bun.connect({ hostname: "127.0.0.1", port: plainPort, socket: { data: (_s, d) => void (text += new TextDecoder().decode(d)) } });
    sock.write(get("/stream"));
    await waitUntil("the first chunk", () => (text.includes("chunk1") ? true : undefined));
    sock.terminate(); // a reset
    expect(await closedAfter(plain, n)).toMatchObject({ outcome: "client_gone", requests: 1 });
    expect(last(plain, "http_request")).toMatchObject({ target: "/stream", status: 200, outcome: "client_gone", detail: "the workload's connection closed before the answer ended" });
    await waitUntil("the API's answer cancelled", () => (cancelled > gone ? true : undefined));
    expect(plain.inFlight.size).toBe(0);
  });

  test("a TLS workload that closes after its answer ended: the connection closed, not client_gone", async () => {
    const n = closes(plain);
    const got = await new Promise<string>((resolve, reject) => {
      let text = "";
      const s = tls.connect({ host: "127.0.0.1", port: plainPort, servername: "api.test", ca: readFileSync(plain.agentCaFile, "utf8") }, () => s.write(get("/first")));
      s.on("data", (d: Buffer) => {
        text += d.toString();
        if (text.endsWith("ok")) s.end(); // close_notify and FIN, as curl does
      });
      s.on("close", () => resolve(text));
      s.on("error", reject);
    });
    expect(got).toStartWith("HTTP/1.1 200 ");
    expect(await closedAfter(plain, n)).toMatchObject({ tls_terminated: true, outcome: "closed", requests: 1 });
    expect(last(plain, "http_request")).toMatchObject({ target: "/first", status: 200, outcome: "forwarded" });
  });

  test("a reset between requests loses nothing: the connection closed, not client_gone", async () => {
    const n = closes(plain);
    let text = "";
    const idle = await Bun.connect({ hostname: "127.0.0.1", port: plainPort, socket: { data: (_s, d) => void (text += new TextDecoder().decode(d)) } });
    idle.write(get("/first"));
    await waitUntil("the answer", () => (text.endsWith("ok") ? true : undefined));
    idle.terminate();
    expect(await closedAfter(plain, n)).toMatchObject({ outcome: "closed", requests: 1 });
  });
});

describe("intercept drain (a stopping agent)", () => {
  const DEADLINE = { outcome: "terminated", reason: "drain_timeout", detail: "still open at the drain deadline" };

  test("between requests on a kept-alive connection: ends at once, cleanly", async () => {
    const n = closes(plain);
    const w = await startWorkload(plainPort, get("/a"));
    await waitUntil("the answer", () => (w.text().endsWith("ok") ? true : undefined));
    plain.inFlight.drain();
    expect((await w.done).error).toBeNull();
    expect(await closedAfter(plain, n)).toMatchObject({ outcome: "closed", detail: "the agent is stopping", requests: 1 });
    expect(plain.inFlight.size).toBe(0);
  });

  test("a connection that has had no answer yet (its TLS just set up) gets its first, then closes", async () => {
    const n = closes(plain);
    const got = await new Promise<string>((resolve, reject) => {
      let text = "";
      const s = tls.connect({ host: "127.0.0.1", port: plainPort, servername: "api.test", ca: readFileSync(plain.agentCaFile, "utf8") }, () => {
        plain.inFlight.drain();
        setTimeout(() => s.write(get("/first")), 50);
      });
      s.on("data", (d: Buffer) => void (text += d.toString()));
      s.on("close", () => resolve(text));
      s.on("error", reject);
    });
    expect(got).toStartWith("HTTP/1.1 200 ");
    expect(got).toEndWith("ok");
    expect(await closedAfter(plain, n)).toMatchObject({ tls_terminated: true, outcome: "closed", detail: "the agent is stopping", requests: 1 });
  });

  test("an answer in progress ends whole, then the connection closes", async () => {
    const n = closes(plain);
    const w = await startWorkload(plainPort, get("/stream"));
    await waitUntil("the first chunk", () => (w.text().includes("chunk0") ? true : undefined));
    plain.inFlight.drain();
    const out = await w.done;
    expect(out.error).toBeNull();
    expect(out.text).toContain("chunk7\n");
    expect(last(plain, "http_request")).toMatchObject({ target: "/stream", status: 200, outcome: "forwarded" });
    expect(await closedAfter(plain, n)).toMatchObject({ outcome: "closed", requests: 1 });
  });

  test("at the deadline: an answer in progress is cut (reset), one not begun is answered 503", async () => {
    const n = closes(plain);
    const hung = hanging;
    const streaming = await startWorkload(plainPort, get("/partial"));
    const waiting = await startWorkload(plainPort, get("/hang"));
    await waitUntil("the first chunk", () => (streaming.text().includes("part") ? true : undefined));
    await waitUntil("/hang at the API", () => (hanging > hung ? true : undefined));
    expect(plain.inFlight.size).toBe(2);
    expect(plain.inFlight.endAll(DEADLINE)).toBe(2);
    expect(plain.inFlight.size).toBe(0);
    expect((await streaming.done).error).toBe("ECONNRESET");
    const answered = await waiting.done;
    expect(answered.text).toStartWith("HTTP/1.1 503 ");
    expect(answered.text).toContain("tidegate: drain_timeout");
    const reqs = plain.lines.filter((l) => l.type === "http_request").slice(-2);
    expect(reqs.map((r) => [r.target, r.status, r.outcome, r.reason])).toEqual(expect.arrayContaining([["/partial", 200, "terminated", "drain_timeout"], ["/hang", 503, "terminated", "drain_timeout"]]));
    const ends = plain.lines.filter((l) => l.type === "conn_close").slice(n);
    expect(ends.map((e) => [e.outcome, e.reason])).toEqual([["terminated", "drain_timeout"], ["terminated", "drain_timeout"]]);
  });
});
