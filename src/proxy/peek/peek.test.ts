import { assert, codeOf, describe, test } from "../../../test/shim.ts";
import { MAX_PEEK_BYTES, PEEK_ERROR_CODES, PeekError, peek, type PeekResult } from "./peek.ts";

const enc = (s: string): Uint8Array => Uint8Array.from([...s].map((c) => c.charCodeAt(0)));

/** A minimal TLS 1.2 ClientHello naming `name`, in one record. */
function hello(name: string): Uint8Array {
  const n = enc(name);
  const sni = [0, 0, 0, n.length + 5, 0, n.length + 3, 0, 0, n.length, ...n];
  const body = [3, 3, ...new Array<number>(32).fill(1), 0, 0, 2, 0, 0x2f, 1, 0, 0, sni.length, ...sni];
  return Uint8Array.from([22, 3, 1, 0, body.length + 4, 1, 0, 0, body.length, ...body]);
}

const HEAD = "GET /v1/models HTTP/1.1\r\nHost: API.Example.com:8443\r\nAccept: */*\r\n\r\n";

describe("peek decides by the first byte", () => {
  test("no bytes: need more (a server-first protocol is the caller's timeout)", () => {
    assert.deepEqual(peek(new Uint8Array(0)), { kind: "need_more" });
  });

  test("every first byte 0..255 alone", () => {
    for (let c = 0; c < 256; c++) {
      const want = c === 22 || (c >= 0x41 && c <= 0x5a) ? "need_more" : "other";
      assert.equal(peek(Uint8Array.of(c)).kind, want, `byte ${c}`);
    }
  });

  test("a ClientHello is tls, with its name", () => {
    const bytes = hello("Api.Example.COM.");
    const r = peek(bytes);
    assert.deepEqual(r, { kind: "tls", serverName: "api.example.com", alpn: [], clientHelloLength: bytes.length });
  });

  test("a request head is http, with its host", () => {
    const r = peek(enc(`${HEAD}{"x":1}`));
    assert.deepEqual(r, {
      kind: "http", method: "GET", target: "/v1/models", host: "api.example.com", hostPort: 8443, version: "HTTP/1.1", headLength: HEAD.length,
    });
  });

  const others: [string, number[]][] = [
    ["an SSLv2-format hello", [0x80, 0x2e, 0x01, 0x03, 0x01]],
    ["a TLS alert record", [21, 3, 3, 0, 2, 2, 40]],
    ["lowercase text", [...enc("get / HTTP/1.1\r\n\r\n")]],
    ["a leading empty line", [...enc("\r\nGET / HTTP/1.1\r\n\r\n")]],
    ["a NUL", [0]],
    ["a PostgreSQL startup message", [0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f]],
  ];
  for (const [name, bytes] of others) {
    test(`${name} is other`, () => assert.deepEqual(peek(Uint8Array.from(bytes)), { kind: "other" }));
  }

  test("results are frozen", () => {
    const results: PeekResult[] = [peek(new Uint8Array(0)), peek(Uint8Array.of(0)), peek(hello("a.b")), peek(enc(HEAD))];
    for (const r of results) assert.ok(Object.isFrozen(r), r.kind);
  });
});

describe("a start like TLS or HTTP commits", () => {
  const cases: [string, Uint8Array, string][] = [
    ["0x16 then garbage", Uint8Array.of(22, 0x41, 0x41), "peek_tls_malformed"],
    ["0x16 with SSL 3.0", Uint8Array.of(22, 3, 0, 0, 5), "peek_tls_malformed"],
    ["a ClientHello with a NUL in its name", hello("evil.com\u0000.good.com"), "peek_tls_bad_sni"],
    ["an uppercase letter then binary", Uint8Array.of(0x47, 0x45, 0x54, 0x00), "peek_http_malformed"],
    ["an uppercase letter then a bare LF", enc("G\n"), "peek_http_smuggling"],
    ["a request with two Hosts", enc("GET / HTTP/1.1\r\nHost: a.b\r\nHost: c.d\r\n\r\n"), "peek_http_smuggling"],
    ["a request without Host", enc("GET / HTTP/1.1\r\n\r\n"), "peek_http_bad_host"],
    ["an SSH client banner", enc("SSH-2.0-OpenSSH_9.6\r\n"), "peek_http_malformed"],
    [`${MAX_PEEK_BYTES} bytes of a header`, enc(`GET / HTTP/1.1\r\n${"X: 1234\r\n".repeat(MAX_PEEK_BYTES / 9)}`), "peek_too_large"],
  ];
  for (const [name, bytes, want] of cases) {
    test(name, () => assert.equal(codeOf(() => peek(bytes), PeekError), want));
  }

  test("the codes are the closed list", () => {
    assert.deepEqual([...PEEK_ERROR_CODES], [
      "peek_tls_malformed", "peek_tls_bad_sni", "peek_http_malformed", "peek_http_smuggling", "peek_http_bad_host", "peek_too_large",
    ]);
    assert.equal(MAX_PEEK_BYTES, 16384);
  });
});

describe("more bytes never change a decision", () => {
  test("bytes after a complete hello or head are not read", () => {
    const h = hello("a.example");
    const tail = [0, 1, 2, 0x16, 0x41, 0x0a, 0xff];
    assert.deepEqual(peek(Uint8Array.from([...h, ...tail])), peek(h));
    const head = enc(HEAD);
    assert.deepEqual(peek(Uint8Array.from([...head, ...tail])), peek(head));
  });
});
