// The first-bytes peek (src/proxy/peek) on what real clients send: openssl s_client and curl
// connect to a listener that keeps their first bytes and closes once peek has decided; peek must
// find the name, ALPN list or Host each was told to use. TLS never completes: the listener answers
// nothing, so the clients fail after sending, and that is all the test needs of them.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { TCPSocketListener } from "bun";
import { PeekError, peek, type PeekResult } from "../../src/proxy/peek/peek.ts";

const T = 15_000;

interface Seen {
  readonly outcome: PeekResult | PeekError;
  readonly bytes: Uint8Array;
}

let server: TCPSocketListener<{ buf: Uint8Array; done: boolean }>;
let port = 0;
let deliver: ((s: Seen) => void) | null = null;

beforeAll(() => {
  server = Bun.listen<{ buf: Uint8Array; done: boolean }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) {
        s.data = { buf: new Uint8Array(0), done: false };
      },
      data(s, chunk) {
        if (s.data.done) return;
        const buf = new Uint8Array(s.data.buf.length + chunk.length);
        buf.set(s.data.buf);
        buf.set(chunk, s.data.buf.length);
        s.data.buf = buf;
        let outcome: PeekResult | PeekError;
        try {
          outcome = peek(buf);
        } catch (e) {
          if (!(e instanceof PeekError)) throw e;
          outcome = e;
        }
        if (!(outcome instanceof PeekError) && outcome.kind === "need_more") return;
        s.data.done = true;
        deliver?.({ outcome, bytes: buf });
        deliver = null;
        s.end();
      },
    },
  });
  port = server.port;
});
afterAll(() => server.stop(true));

/** Runs `cmd` and gives what peek made of the first connection it opened. */
async function firstBytesOf(cmd: string[]): Promise<Seen> {
  const seen = new Promise<Seen>((resolve) => {
    deliver = resolve;
  });
  const proc = Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      proc.kill();
      void new Response(proc.stderr).text().then((err) => reject(new Error(`${cmd[0]}: no decision within 10 s; its stderr:\n${err}`)));
    }, 10_000);
  });
  try {
    return await Promise.race([seen, timeout]);
  } finally {
    clearTimeout(timer);
    deliver = null;
    proc.kill();
    await proc.exited;
  }
}

function decided(s: Seen): PeekResult {
  if (s.outcome instanceof PeekError) throw new Error(`peek refused real client bytes: ${s.outcome.code}: ${s.outcome.message}`);
  return s.outcome;
}

const curl = ["curl", "-s", "--max-time", "8", "--noproxy", "*"];

describe("peek on real clients' first bytes", () => {
  test("openssl s_client with -servername Api.Example.COM. and -alpn h2,http/1.1", async () => {
    const s = await firstBytesOf(["openssl", "s_client", "-connect", `127.0.0.1:${port}`, "-servername", "Api.Example.COM.", "-alpn", "h2,http/1.1"]);
    const r = decided(s);
    expect(r).toEqual({ kind: "tls", serverName: "api.example.com", alpn: ["h2", "http/1.1"], clientHelloLength: s.bytes.length });
  }, T);

  test("openssl s_client -tls1_2 -noservername: a TLS 1.2 hello without SNI", async () => {
    const s = await firstBytesOf(["openssl", "s_client", "-connect", `127.0.0.1:${port}`, "-noservername", "-tls1_2"]);
    expect(decided(s)).toEqual({ kind: "tls", serverName: null, alpn: [], clientHelloLength: s.bytes.length });
  }, T);

  test("curl https:// with --resolve sends SNI and its ALPN list", async () => {
    const s = await firstBytesOf([...curl, "-k", "--resolve", `api.example.com:${port}:127.0.0.1`, `https://api.example.com:${port}/`]);
    expect(decided(s)).toEqual({ kind: "tls", serverName: "api.example.com", alpn: ["h2", "http/1.1"], clientHelloLength: s.bytes.length });
  }, T);

  test("curl http:// sends an origin-form request with Host", async () => {
    const s = await firstBytesOf([...curl, "--resolve", `api.example.com:${port}:127.0.0.1`, `http://api.example.com:${port}/v1/models?x=1`]);
    expect(decided(s)).toEqual({
      kind: "http", method: "GET", target: "/v1/models?x=1", host: "api.example.com", hostPort: port, version: "HTTP/1.1", headLength: s.bytes.length,
    });
  }, T);

  test("curl POST: the head ends before the body", async () => {
    const s = await firstBytesOf([...curl, "--data", "a=1", `http://127.0.0.1:${port}/post`]);
    const r = decided(s);
    expect(r).toMatchObject({ kind: "http", method: "POST", target: "/post", host: null, hostPort: port });
    if (r.kind !== "http") throw new Error("not http");
    expect(new TextDecoder().decode(s.bytes.subarray(r.headLength - 4, r.headLength))).toBe("\r\n\r\n");
  }, T);

  test("curl through an HTTP proxy: absolute-form, the target's authority", async () => {
    const s = await firstBytesOf([...curl.slice(0, 4), "-x", `http://127.0.0.1:${port}`, "http://api.example.com/x"]);
    expect(decided(s)).toEqual({
      kind: "http", method: "GET", target: "http://api.example.com/x", host: "api.example.com", hostPort: null, version: "HTTP/1.1", headLength: s.bytes.length,
    });
  }, T);

  test("curl through a CONNECT proxy: authority-form", async () => {
    const s = await firstBytesOf([...curl.slice(0, 4), "-p", "-x", `http://127.0.0.1:${port}`, "https://api.example.com/"]);
    expect(decided(s)).toEqual({
      kind: "http", method: "CONNECT", target: "api.example.com:443", host: "api.example.com", hostPort: 443, version: "HTTP/1.1", headLength: s.bytes.length,
    });
  }, T);
});
