import { assert, codeOf, describe, errorOf, test } from "../../../test/shim.ts";
import { MAX_PEEK_BYTES, PeekError } from "./errors.ts";
import { MAX_HEADERS, MAX_LINE, parseHttpHead } from "./http-head.ts";

const enc = (s: string): Uint8Array => Uint8Array.from([...s].map((c) => c.charCodeAt(0)));
const parse = (s: string) => parseHttpHead(enc(s));
const code = (s: string): string | null => codeOf(() => parse(s), PeekError);
const get = (headers: string, line = "GET / HTTP/1.1") => `${line}\r\n${headers}\r\n`;

describe("parseHttpHead accepts", () => {
  type Want = [method: string, host: string | null, port: number | null, version?: string];
  const cases: [string, Want][] = [
    [get("Host: api.example.com\r\n"), ["GET", "api.example.com", null]],
    [get("host:API.Example.COM.:8443\r\nAccept: */*\r\n"), ["GET", "api.example.com", 8443]],
    [get("Host: \t_svc.example.com\t \r\n"), ["GET", "_svc.example.com", null]],
    [get("Host: 192.0.2.1:80\r\n"), ["GET", null, 80]],
    [get("Host: [2001:db8::1]:8080\r\n"), ["GET", null, 8080]],
    [get("Host: [::1]\r\n"), ["GET", null, null]],
    [get("", "GET / HTTP/1.0"), ["GET", null, null, "HTTP/1.0"]],
    [get("Host: a.example\r\n", "POST /x?y=1 HTTP/1.0"), ["POST", "a.example", null, "HTTP/1.0"]],
    [get("Host: api.example.com:8080\r\n", "GET http://api.example.com:8080/x?y HTTP/1.1"), ["GET", "api.example.com", 8080]],
    [get("Host: api.example.com:80\r\n", "GET HTTP://API.example.com HTTP/1.1"), ["GET", "api.example.com", null]],
    [get("Host: api.example.com\r\n", "GET http://api.example.com:80?q HTTP/1.1"), ["GET", "api.example.com", 80]],
    [get("Host: [::1]:81\r\n", "GET http://[0::1]:81/ HTTP/1.1"), ["GET", null, 81]],
    [get("", "GET http://api.example.com/ HTTP/1.0"), ["GET", "api.example.com", null, "HTTP/1.0"]],
    [get("Host: api.example.com:443\r\n", "CONNECT api.example.com:443 HTTP/1.1"), ["CONNECT", "api.example.com", 443]],
    [get("Host: API.example.com\r\n", "CONNECT api.example.com:443 HTTP/1.1"), ["CONNECT", "api.example.com", 443]],
    [get("Host: a.example\r\n", "OPTIONS * HTTP/1.1"), ["OPTIONS", "a.example", null]],
    [get("Host: a.example\r\nContent-Length: 5\r\n"), ["GET", "a.example", null]],
    [get("Host: a.example\r\nContent-Length: 5, 5\r\ncontent-length: 005\r\n"), ["GET", "a.example", null]],
    [get("Host: a.example\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: Chunked\r\n"), ["GET", "a.example", null]],
    [get("Host: a.example\r\nX-Empty:\r\nX-Tab:\ta\tb\r\nX-Latin: \u00e9\u00ff\r\n"), ["GET", "a.example", null]],
    [get("Host: a.example\r\nX-!#$%&'*+-.^_`|~09: 1\r\n"), ["GET", "a.example", null]],
    [get("Host: a.example\r\n", "M-SEARCH /%7Euser/a;b?c=d&e=f|g HTTP/1.1"), ["M-SEARCH", "a.example", null]],
  ];
  for (const [text, [method, host, hostPort, version]] of cases) {
    test(JSON.stringify(text.split("\r\n")[0] + " " + (text.split("\r\n")[1] ?? "")), () => {
      const bytes = enc(`${text}BODY`);
      const r = parseHttpHead(bytes);
      assert.ok(r !== null);
      assert.deepEqual(
        { ...r },
        { kind: "http", method, target: text.split(" ")[1], host, hostPort, version: version ?? "HTTP/1.1", headLength: text.length },
      );
      assert.ok(Object.isFrozen(r));
    });
  }

  test(`${MAX_HEADERS} header lines, a line of ${MAX_LINE} bytes, a head of ${MAX_PEEK_BYTES} bytes`, () => {
    const many = Array.from({ length: MAX_HEADERS - 1 }, (_, i) => `X-${i}: ${i}\r\n`).join("");
    assert.equal(parse(get(`Host: a.b\r\n${many}`))?.host, "a.b");
    const long = `X: ${"v".repeat(MAX_LINE - 3)}\r\n`;
    assert.equal(parse(get(`Host: a.b\r\n${long}`))?.host, "a.b");
    const head = get(`Host: a.b\r\n${long}`);
    const filler = `Y: ${"w".repeat(MAX_PEEK_BYTES - head.length - 5)}\r\n`;
    const full = get(`Host: a.b\r\n${long}${filler}`);
    assert.equal(full.length, MAX_PEEK_BYTES);
    assert.equal(parse(full)?.headLength, MAX_PEEK_BYTES);
    assert.equal(code(get(`Host: a.b\r\n${long}Y${filler}`)), "peek_too_large");
  });
});

describe("parseHttpHead refuses", () => {
  const h = "Host: a.example\r\n";
  const cases: [string, string, string][] = [
    ["two spaces", get(h, "GET  / HTTP/1.1"), "peek_http_malformed"],
    ["a space after the version", get(h, "GET / HTTP/1.1 "), "peek_http_malformed"],
    ["HTTP/2.0", get(h, "GET / HTTP/2.0"), "peek_http_malformed"],
    ["HTTP/1.2", get(h, "GET / HTTP/1.2"), "peek_http_malformed"],
    ["a lowercase version", get(h, "GET / http/1.1"), "peek_http_malformed"],
    ["no version (HTTP/0.9)", get(h, "GET /"), "peek_http_malformed"],
    ["no target", get(h, "GET"), "peek_http_malformed"],
    ["the HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "peek_http_malformed"],
    ["asterisk-form with GET", get(h, "GET * HTTP/1.1"), "peek_http_malformed"],
    ["https absolute-form", get(h, "GET https://a.example/ HTTP/1.1"), "peek_http_malformed"],
    ["authority-form with GET", get(h, "GET a.example:443 HTTP/1.1"), "peek_http_malformed"],
    ["origin-form with CONNECT", get(h, "CONNECT / HTTP/1.1"), "peek_http_malformed"],
    ["a fragment in the target", get(h, "GET /a#b HTTP/1.1"), "peek_http_malformed"],
    ["a non-ASCII byte in the target", get(h, "GET /\u00e9 HTTP/1.1"), "peek_http_malformed"],
    ["a parenthesis in the method", get(h, "GE(T / HTTP/1.1"), "peek_http_malformed"],
    ["an SSH banner", "SSH-2.0-OpenSSH_9.6\r\n", "peek_http_malformed"],
    ["a header line without a colon", get(`${h}Foo\r\n`), "peek_http_malformed"],
    ["a control byte in a value", get(`${h}X: a\u0001b\r\n`), "peek_http_malformed"],
    ["DEL in a value", get(`${h}X: a\u007fb\r\n`), "peek_http_malformed"],
    ["a bare LF after the request line", `GET / HTTP/1.1\n${h}\r\n`, "peek_http_smuggling"],
    ["a bare LF after a header", `GET / HTTP/1.1\r\nHost: a.example\nX: 1\r\n\r\n`, "peek_http_smuggling"],
    ["a bare LF ending the head", `GET / HTTP/1.1\r\n${h}\n`, "peek_http_smuggling"],
    ["a CR inside a value", get(`${h}X: a\rb\r\n`), "peek_http_smuggling"],
    ["a NUL inside a value", get(`${h}X: a\u0000b\r\n`), "peek_http_smuggling"],
    ["obsolete line folding", get(`${h}X: a\r\n b\r\n`), "peek_http_smuggling"],
    ["a tab-folded line", get(`${h}X: a\r\n\tb\r\n`), "peek_http_smuggling"],
    ["whitespace before the first header", get(` ${h}`), "peek_http_smuggling"],
    ["whitespace before the colon", get("Host : a.example\r\n"), "peek_http_smuggling"],
    ["a tab before the colon", get(`${h}Content-Length\t: 0\r\n`), "peek_http_smuggling"],
    ["a header name with a parenthesis", get(`${h}X(y): 1\r\n`), "peek_http_smuggling"],
    ["a non-ASCII header name", get(`${h}X\u00e9: 1\r\n`), "peek_http_smuggling"],
    ["an empty header name", get(`${h}: 1\r\n`), "peek_http_smuggling"],
    ["Content-Length then Transfer-Encoding", get(`${h}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n`), "peek_http_smuggling"],
    ["Transfer-Encoding then Content-Length", get(`${h}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n`), "peek_http_smuggling"],
    ["two different Content-Lengths", get(`${h}Content-Length: 5\r\nContent-Length: 6\r\n`), "peek_http_smuggling"],
    ["a Content-Length list that differs", get(`${h}Content-Length: 5, 6\r\n`), "peek_http_smuggling"],
    ["Content-Length +5", get(`${h}Content-Length: +5\r\n`), "peek_http_smuggling"],
    ["Content-Length -1", get(`${h}Content-Length: -1\r\n`), "peek_http_smuggling"],
    ["Content-Length 0x5", get(`${h}Content-Length: 0x5\r\n`), "peek_http_smuggling"],
    ["an empty Content-Length", get(`${h}Content-Length:\r\n`), "peek_http_smuggling"],
    ["Transfer-Encoding in HTTP/1.0", get(`${h}Transfer-Encoding: chunked\r\n`, "POST / HTTP/1.0"), "peek_http_smuggling"],
    ["chunked not last", get(`${h}Transfer-Encoding: chunked, gzip\r\n`), "peek_http_smuggling"],
    ["no chunked", get(`${h}Transfer-Encoding: gzip\r\n`), "peek_http_smuggling"],
    ["chunked twice", get(`${h}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n`), "peek_http_smuggling"],
    ["an empty Transfer-Encoding", get(`${h}Transfer-Encoding: \r\n`), "peek_http_smuggling"],
    ["two Host headers", get(`${h}host: a.example\r\n`), "peek_http_smuggling"],
    ["two Host headers, the second other", get(`${h}HOST: b.example\r\n`), "peek_http_smuggling"],
    ["no Host in HTTP/1.1", get("X: 1\r\n"), "peek_http_bad_host"],
    ["an empty Host", get("Host: \r\n"), "peek_http_bad_host"],
    ["userinfo in Host", get("Host: user@a.example\r\n"), "peek_http_bad_host"],
    ["port 0", get("Host: a.example:0\r\n"), "peek_http_bad_host"],
    ["port 65536", get("Host: a.example:65536\r\n"), "peek_http_bad_host"],
    ["an empty port", get("Host: a.example:\r\n"), "peek_http_bad_host"],
    ["a port with a leading zero", get("Host: a.example:080\r\n"), "peek_http_bad_host"],
    ["a port with a letter", get("Host: a.example:8a\r\n"), "peek_http_bad_host"],
    ["IPv6 without brackets", get("Host: ::1\r\n"), "peek_http_bad_host"],
    ["an unclosed bracket", get("Host: [::1\r\n"), "peek_http_bad_host"],
    ["bytes after the bracket", get("Host: [::1]x\r\n"), "peek_http_bad_host"],
    ["IPv4 in brackets", get("Host: [192.0.2.1]\r\n"), "peek_http_bad_host"],
    ["IPvFuture", get("Host: [v1.x]\r\n"), "peek_http_bad_host"],
    ["an empty label", get("Host: a..example\r\n"), "peek_http_bad_host"],
    ["a space in the host", get("Host: a example\r\n"), "peek_http_bad_host"],
    ["percent-encoding in the host", get("Host: exa%6dple.com\r\n"), "peek_http_bad_host"],
    ["a non-ASCII host", get("Host: b\u00fccher.de\r\n"), "peek_http_bad_host"],
    ["a Host other than the target's", get("Host: b.example\r\n", "GET http://a.example/ HTTP/1.1"), "peek_http_bad_host"],
    ["a Host port other than the target's", get("Host: a.example:8080\r\n", "GET http://a.example/ HTTP/1.1"), "peek_http_bad_host"],
    ["a target port other than the Host's", get("Host: a.example\r\n", "GET http://a.example:81/ HTTP/1.1"), "peek_http_bad_host"],
    ["an address Host other than the target's", get("Host: [::2]\r\n", "GET http://[::1]/ HTTP/1.1"), "peek_http_bad_host"],
    ["userinfo in the target", get(h, "GET http://u:p@a.example/ HTTP/1.1"), "peek_http_bad_host"],
    ["an empty host in the target", get(h, "GET http:///x HTTP/1.1"), "peek_http_bad_host"],
    ["a port only in the target", get(h, "GET http://:80/ HTTP/1.1"), "peek_http_bad_host"],
    ["CONNECT without a port", get(h, "CONNECT a.example HTTP/1.1"), "peek_http_bad_host"],
    ["CONNECT with another Host", get("Host: b.example:443\r\n", "CONNECT a.example:443 HTTP/1.1"), "peek_http_bad_host"],
    ["CONNECT with another Host port", get("Host: a.example:80\r\n", "CONNECT a.example:443 HTTP/1.1"), "peek_http_bad_host"],
    ["CONNECT without Host", get("", "CONNECT a.example:443 HTTP/1.1"), "peek_http_bad_host"],
    [`a line over ${MAX_LINE} bytes`, get(`${h}X: ${"v".repeat(MAX_LINE - 2)}\r\n`), "peek_too_large"],
    [`a request line over ${MAX_LINE} bytes`, get(h, `GET /${"a".repeat(MAX_LINE)} HTTP/1.1`), "peek_too_large"],
    [`${MAX_HEADERS + 1} header lines`, get(h + Array.from({ length: MAX_HEADERS }, (_, i) => `X-${i}: ${i}\r\n`).join("")), "peek_too_large"],
  ];
  for (const [name, text, want] of cases) {
    test(name, () => assert.equal(code(text), want));
  }

  test("messages name the header, never its value", () => {
    const e = errorOf(() => parse(get("Host: a.b\r\nAuthorization: Bearer sekrit\u0001\r\n")), PeekError);
    assert.equal(e.message, 'peek: http: control byte 0x01 in the value of header "authorization"');
    const cr = errorOf(() => parse(get("Host: a.b\r\nCookie: sekrit\rx\r\n")), PeekError);
    assert.ok(!cr.message.includes("sekrit"));
    const host = errorOf(() => parse(get("Host: a..b\r\n")), PeekError);
    assert.ok(host.message.startsWith('peek: http: the Host header: "a..b": ') && host.cause instanceof Error);
  });
});

describe("parseHttpHead on a prefix", () => {
  const heads = [
    get("Host: api.example.com\r\nUser-Agent: curl/8\r\nAccept: */*\r\n"),
    get("Host: [::1]:8080\r\nContent-Length: 3\r\n", "POST http://[::1]:8080/a?b HTTP/1.1"),
    get("Host: a.example:443\r\n", "CONNECT a.example:443 HTTP/1.1"),
    get("", "OPTIONS * HTTP/1.0"),
  ];
  for (const text of heads) {
    test(`need more at every cut: ${JSON.stringify(text.slice(0, 30))}`, () => {
      const bytes = enc(text);
      for (let n = 1; n < bytes.length; n++) assert.equal(parseHttpHead(bytes.subarray(0, n)), null, `cut at ${n}`);
      assert.equal(parseHttpHead(bytes)?.headLength, bytes.length);
    });
  }

  test("refuses as soon as the bytes present show the fault", () => {
    assert.equal(code("GET / HTTP/1.1\r\nHost: a\u0000"), "peek_http_smuggling");
    assert.equal(code("GET / HTTP/1.1\r\n "), "peek_http_smuggling");
    assert.equal(code("GET / HTTP/2"), "peek_http_malformed");
    assert.equal(code("GET * "), "peek_http_malformed");
    assert.equal(code("GET / HTTP/1.1\r\nHost: a.b\r\nHost: a.b\r\n"), "peek_http_smuggling");
    assert.equal(code("GET / HTTP/1.1\r\nX: a\rb"), "peek_http_smuggling");
    assert.equal(code("GET / HTTP/1.1\r\nX: a\r"), null);
    assert.equal(code(`GET /${"a".repeat(MAX_LINE)}`), "peek_too_large");
    assert.equal(code(`GET /${"a".repeat(MAX_LINE - 5)}`), null);
  });
});

describe("byte classes", () => {
  const isTchar = (ch: string) => /^[!#$%&'*+\-.^_`|~0-9A-Za-z]$/.test(ch);
  test("every byte 0..255 in a header name", () => {
    for (let c = 0; c < 256; c++) {
      const ch = String.fromCharCode(c);
      const got = code(get(`Host: a.b\r\nX${ch}y: 1\r\n`));
      assert.equal(got, isTchar(ch) || c === 0x3a ? null : "peek_http_smuggling", `byte ${c}`);
    }
  });
  test("every byte 0..255 in a header value", () => {
    for (let c = 0; c < 256; c++) {
      const got = code(get(`Host: a.b\r\nX: a${String.fromCharCode(c)}b\r\n`));
      const ok = c === 9 || (c >= 0x20 && c !== 0x7f);
      assert.equal(got, ok ? null : c === 0 || c === 0x0d || c === 0x0a ? "peek_http_smuggling" : "peek_http_malformed", `byte ${c}`);
    }
  });
  test("every byte 0..255 in a request target", () => {
    for (let c = 0; c < 256; c++) {
      const got = code(get("Host: a.b\r\n", `GET /a${String.fromCharCode(c)}b HTTP/1.1`));
      const ok = c > 0x20 && c < 0x7f && c !== 0x23;
      assert.equal(got, ok ? null : c === 0x0d || c === 0x0a ? "peek_http_smuggling" : "peek_http_malformed", `byte ${c}`);
    }
  });
  test("every byte 0..255 in a method", () => {
    for (let c = 0; c < 256; c++) {
      const ch = String.fromCharCode(c);
      const got = code(get("Host: a.b\r\n", `G${ch}T / HTTP/1.1`));
      assert.equal(got, isTchar(ch) ? null : c === 0x0d || c === 0x0a ? "peek_http_smuggling" : "peek_http_malformed", `byte ${c}`);
    }
  });
});

describe("parseHttpHead: a header line without a colon", () => {
  test("the error does not repeat the line (a credential sent without its name)", () => {
    const e = errorOf(() => parse(get("Host: a.example\r\nsk-live-0123456789abcdef\r\n")), PeekError);
    assert.equal(e.code, "peek_http_malformed");
    assert.equal(e.message.includes("sk-live"), false);
        assert.ok(e.message.includes("a header line (24 bytes) has no colon"), e.message);
  });
});
