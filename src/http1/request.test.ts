import { assert, describe, test } from "../../test/shim.ts";
import { DEFAULT_LIMITS } from "./errors.ts";
import { errorCode, runRequests, type Step } from "./test-helpers.ts";
import type { RequestHead } from "./types.ts";

const get = (headers: string, line = "GET / HTTP/1.1") => `${line}\r\n${headers}\r\n`;
const H = "Host: a.example\r\n";

function onlyHead(raw: string): RequestHead {
  const steps = runRequests(raw);
  const head = steps[0];
  assert.ok(head?.kind === "head", `no head: ${JSON.stringify(steps.at(-1))}`);
  return head.head;
}

function pick(h: RequestHead, keys: readonly (keyof RequestHead)[]): Record<string, unknown> {
  return Object.fromEntries(keys.map((k) => [k, h[k]]));
}

describe("request heads accepted", () => {
  const cases: [string, string, Partial<Record<keyof RequestHead, unknown>>][] = [
    ["a plain GET", get(H), { method: "GET", target: "/", form: "origin", version: "HTTP/1.1", framing: "none", contentLength: null, keepAlive: true }],
    ["the host's name, port, case and dot", get("host:API.Example.COM.:8443\r\n"), { host: { text: "API.Example.COM.:8443", name: "api.example.com", ip: null, port: 8443 } }],
    ["an IPv4 Host", get("Host: 192.0.2.1:80\r\n"), { host: { text: "192.0.2.1:80", name: null, ip: "192.0.2.1", port: 80 } }],
    ["an IPv6 Host", get("Host: [2001:DB8::1]\r\n"), { host: { text: "[2001:DB8::1]", name: null, ip: "2001:db8::1", port: null } }],
    ["absolute-form http, Host with the default port", get("Host: a.example:80\r\n", "GET http://A.example/x?y HTTP/1.1"), { form: "absolute", host: { text: "A.example", name: "a.example", ip: null, port: null } }],
    ["absolute-form https, Host without the port", get(H, "GET HTTPS://a.example:443 HTTP/1.1"), { form: "absolute", host: { text: "a.example:443", name: "a.example", ip: null, port: 443 } }],
    ["CONNECT with a Host without port", get(H, "CONNECT a.example:443 HTTP/1.1"), { method: "CONNECT", form: "authority", host: { text: "a.example:443", name: "a.example", ip: null, port: 443 } }],
    ["OPTIONS *", get(H, "OPTIONS * HTTP/1.1"), { form: "asterisk", target: "*" }],
    ["HTTP/1.0 without Host", get("", "GET /x HTTP/1.0"), { version: "HTTP/1.0", host: null, keepAlive: false }],
    ["HTTP/1.0 keep-alive", get("Connection: Keep-Alive\r\n", "GET / HTTP/1.0"), { keepAlive: true, connection: ["keep-alive"] }],
    ["HTTP/1.1 close", get(`${H}Connection: close\r\n`), { keepAlive: false, connection: ["close"] }],
    ["Connection lists, several lines, empty elements", get(`${H}Connection: ,TE\r\nconnection: x-a , close,\r\n`), { keepAlive: false, connection: ["te", "x-a", "close"] }],
    ["an upgrade request", get(`${H}Connection: Upgrade\r\nUpgrade: websocket, HTTP/2.0\r\n`), { upgrade: ["websocket", "HTTP/2.0"] }],
    ["Upgrade without the connection option", get(`${H}Upgrade: websocket\r\n`), { upgrade: [] }],
    ["Content-Length", get(`${H}Content-Length: 5\r\n`, "POST / HTTP/1.1"), { framing: "length", contentLength: 5 }],
    ["Content-Length 0", get(`${H}Content-Length: 0\r\n`, "POST / HTTP/1.1"), { framing: "length", contentLength: 0 }],
    ["a Content-Length repeated", get(`${H}Content-Length: 5 ,5\r\ncontent-length: 005\r\n`), { contentLength: 5 }],
    ["Content-Length 2^53 - 1", get(`${H}Content-Length: 9007199254740991\r\n`), { contentLength: 9007199254740991 }],
    ["Transfer-Encoding chunked, any case", get(`${H}Transfer-Encoding:  Chunked \r\n`), { framing: "chunked", contentLength: null }],
    ["leading empty lines", `\r\n\r\n${get(H)}`, { method: "GET", headLength: get(H).length }],
    ["token characters in names and methods", get(`${H}X-!#$%&'*+-.^_\`|~09: 1\r\n`, "M-SEARCH /%7Eu/a;b?c=d|e HTTP/1.1"), { method: "M-SEARCH", target: "/%7Eu/a;b?c=d|e" }],
  ];
  for (const [name, raw, want] of cases) {
    test(name, () => {
      const h = onlyHead(raw);
      assert.deepEqual(pick(h, Object.keys(want) as (keyof RequestHead)[]), want);
      assert.ok(Object.isFrozen(h));
    });
  }

  test("headers in order, names as sent, values trimmed, obs-text kept", () => {
    const h = onlyHead(get(`Host: a.example\r\nX-Empty:\r\nX-Tab:\t a\tb \t\r\nX-Latin: \u00e9\u0080\u00ff\r\nx-tab: 2\r\n`));
    assert.deepEqual(h.headers.entries, [["Host", "a.example"], ["X-Empty", ""], ["X-Tab", "a\tb"], ["X-Latin", "\u00e9\u0080\u00ff"], ["x-tab", "2"]]);
    assert.deepEqual(h.headers.getAll("X-TAB"), ["a\tb", "2"]);
    assert.equal(h.headers.get("x-tab"), "a\tb, 2");
    assert.equal(h.headers.get("host"), "a.example");
    assert.equal(h.headers.get("nope"), null);
    assert.ok(h.headers.has("X-EMPTY"));
    assert.deepEqual(h.headers.names(), ["host", "x-empty", "x-tab", "x-latin", "x-tab"]);
    assert.equal(h.headLength, get("Host: a.example\r\nX-Empty:\r\nX-Tab:\t a\tb \t\r\nX-Latin: \u00e9\u0080\u00ff\r\nx-tab: 2\r\n").length);
  });

  test(`${DEFAULT_LIMITS.maxHeaders} headers, a ${DEFAULT_LIMITS.maxStartLineBytes}-byte request line, a ${DEFAULT_LIMITS.maxHeadBytes}-byte head`, () => {
    const many = Array.from({ length: DEFAULT_LIMITS.maxHeaders - 1 }, (_, i) => `X-${i}: ${i}\r\n`).join("");
    assert.equal(onlyHead(get(`${H}${many}`)).headers.length, DEFAULT_LIMITS.maxHeaders);
    const line = `GET /${"a".repeat(DEFAULT_LIMITS.maxStartLineBytes - 14)} HTTP/1.1`;
    assert.equal(line.length, DEFAULT_LIMITS.maxStartLineBytes);
    assert.equal(onlyHead(get(H, line)).method, "GET");
    const base = get(H);
    const full = get(`${H}X: ${"v".repeat(DEFAULT_LIMITS.maxHeadBytes - base.length - 5)}\r\n`);
    assert.equal(full.length, DEFAULT_LIMITS.maxHeadBytes);
    assert.equal(onlyHead(full).headLength, DEFAULT_LIMITS.maxHeadBytes);
  });
});

describe("request heads refused", () => {
  const cases: [string, string, string][] = [
    ["a parenthesis in the method", get(H, "GE(T / HTTP/1.1"), "http1_bad_method"],
    ["a NUL in the method", get(H, "G\u0000T / HTTP/1.1"), "http1_bad_method"],
    ["a non-ASCII method", get(H, "G\u00c9T / HTTP/1.1"), "http1_bad_method"],
    ["a tab after the method", get(H, "GET\t/ HTTP/1.1"), "http1_bad_method"],
    ["a fragment in the target", get(H, "GET /a#b HTTP/1.1"), "http1_bad_target"],
    ["a non-ASCII byte in the target", get(H, "GET /\u00e9 HTTP/1.1"), "http1_bad_target"],
    ["DEL in the target", get(H, "GET /\u007f HTTP/1.1"), "http1_bad_target"],
    ["authority-form with GET", get(H, "GET a.example:443 HTTP/1.1"), "http1_bad_target"],
    ["origin-form with CONNECT", get(H, "CONNECT / HTTP/1.1"), "http1_bad_target"],
    ["CONNECT without a port", get(H, "CONNECT a.example HTTP/1.1"), "http1_bad_target"],
    ["asterisk-form with GET", get(H, "GET * HTTP/1.1"), "http1_bad_target"],
    ["an ftp absolute-form", get(H, "GET ftp://a.example/ HTTP/1.1"), "http1_bad_target"],
    ["HTTP/2.0", get(H, "GET / HTTP/2.0"), "http1_bad_version"],
    ["HTTP/1.2", get(H, "GET / HTTP/1.2"), "http1_bad_version"],
    ["a lowercase version", get(H, "GET / http/1.1"), "http1_bad_version"],
    ["no version (HTTP/0.9)", get(H, "GET /"), "http1_bad_version"],
    ["the HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "http1_bad_version"],
    ["two spaces after the method", get(H, "GET  / HTTP/1.1"), "http1_bad_start_line"],
    ["two spaces before the version", get(H, "GET /  HTTP/1.1"), "http1_bad_start_line"],
    ["a space after the version", get(H, "GET / HTTP/1.1 "), "http1_bad_start_line"],
    ["a method alone", get(H, "GET"), "http1_bad_start_line"],
    ["a line starting with a space", get(H, " GET / HTTP/1.1"), "http1_bad_start_line"],
    ["a request line over the limit", get(H, `GET /${"a".repeat(DEFAULT_LIMITS.maxStartLineBytes - 13)} HTTP/1.1`), "http1_start_line_too_long"],
    ["a head over the limit", get(`${H}X: ${"v".repeat(DEFAULT_LIMITS.maxHeadBytes)}\r\n`), "http1_head_too_large"],
    ["too many headers", get(`${H}${"X: 1\r\n".repeat(DEFAULT_LIMITS.maxHeaders)}`), "http1_too_many_headers"],
    ["a bare LF after the request line", `GET / HTTP/1.1\n${H}\r\n`, "http1_bad_line_ending"],
    ["a bare LF after a header", `GET / HTTP/1.1\r\nHost: a.example\nX: 1\r\n\r\n`, "http1_bad_line_ending"],
    ["a bare LF ending the head", `GET / HTTP/1.1\r\n${H}\n`, "http1_bad_line_ending"],
    ["a CR inside the target", get(H, "GET /a\rb HTTP/1.1"), "http1_bad_line_ending"],
    ["obsolete line folding", get(`${H}X: a\r\n b\r\n`), "http1_obs_fold"],
    ["a tab-folded line", get(`${H}X: a\r\n\tb\r\n`), "http1_obs_fold"],
    ["whitespace before the first header", get(` ${H}`), "http1_obs_fold"],
    ["a header name with a parenthesis", get(`${H}X(y): 1\r\n`), "http1_bad_header_name"],
    ["a non-ASCII header name", get(`${H}X\u00e9: 1\r\n`), "http1_bad_header_name"],
    ["an empty header name", get(`${H}: 1\r\n`), "http1_bad_header_name"],
    ["a line without a colon", get(`${H}Foo\r\n`), "http1_bad_header_name"],
    ["whitespace before the colon", get("Host : a.example\r\n"), "http1_space_before_colon"],
    ["a tab before the colon", get(`${H}Content-Length\t: 0\r\n`), "http1_space_before_colon"],
    ["a CR inside a value", get(`${H}X: a\rb\r\n`), "http1_bad_header_value"],
    ["a NUL inside a value", get(`${H}X: a\u0000b\r\n`), "http1_bad_header_value"],
    ["a control byte inside a value", get(`${H}X: a\u0001b\r\n`), "http1_bad_header_value"],
    ["DEL inside a value", get(`${H}X: a\u007fb\r\n`), "http1_bad_header_value"],
    ["a Connection element with a space", get(`${H}Connection: keep alive\r\n`), "http1_bad_header_value"],
    ["an Upgrade element with a space", get(`${H}Connection: upgrade\r\nUpgrade: web socket\r\n`), "http1_bad_header_value"],
    ["two Host headers", get(`${H}host: a.example\r\n`), "http1_duplicate_host"],
    ["two Host headers, the second another", get(`${H}HOST: b.example\r\n`), "http1_duplicate_host"],
    ["no Host in HTTP/1.1", get("X: 1\r\n"), "http1_missing_host"],
    ["no Host in HTTP/1.1 absolute-form", get("", "GET http://a.example/ HTTP/1.1"), "http1_missing_host"],
    ["an empty Host", get("Host: \r\n"), "http1_bad_host"],
    ["userinfo in Host", get("Host: user@a.example\r\n"), "http1_bad_host"],
    ["port 0", get("Host: a.example:0\r\n"), "http1_bad_host"],
    ["port 65536", get("Host: a.example:65536\r\n"), "http1_bad_host"],
    ["an empty port", get("Host: a.example:\r\n"), "http1_bad_host"],
    ["a port with a leading zero", get("Host: a.example:080\r\n"), "http1_bad_host"],
    ["an IPv6 Host without brackets", get("Host: 2001:db8::1\r\n"), "http1_bad_host"],
    ["an unclosed bracket", get("Host: [::1\r\n"), "http1_bad_host"],
    ["an empty label", get("Host: a..example\r\n"), "http1_bad_host"],
    ["a Host other than the target's", get("Host: b.example\r\n", "GET http://a.example/ HTTP/1.1"), "http1_bad_host"],
    ["a Host port other than the target's", get("Host: a.example:8080\r\n", "GET http://a.example/ HTTP/1.1"), "http1_bad_host"],
    ["a Host port other than CONNECT's", get("Host: a.example:444\r\n", "CONNECT a.example:443 HTTP/1.1"), "http1_bad_host"],
    ["userinfo in the target", get(H, "GET http://u@a.example/ HTTP/1.1"), "http1_bad_host"],
    ["Content-Length +5", get(`${H}Content-Length: +5\r\n`), "http1_bad_content_length"],
    ["Content-Length -1", get(`${H}Content-Length: -1\r\n`), "http1_bad_content_length"],
    ["Content-Length 0x5", get(`${H}Content-Length: 0x5\r\n`), "http1_bad_content_length"],
    ["Content-Length 1e3", get(`${H}Content-Length: 1e3\r\n`), "http1_bad_content_length"],
    ["an empty Content-Length", get(`${H}Content-Length:\r\n`), "http1_bad_content_length"],
    ["Content-Length with a trailing comma", get(`${H}Content-Length: 5,\r\n`), "http1_bad_content_length"],
    ["Content-Length 5 5", get(`${H}Content-Length: 5 5\r\n`), "http1_bad_content_length"],
    ["Content-Length 2^53", get(`${H}Content-Length: 9007199254740992\r\n`), "http1_bad_content_length"],
    ["Content-Length of 17 digits", get(`${H}Content-Length: 00000000000000001\r\n`), "http1_bad_content_length"],
    ["two different Content-Lengths", get(`${H}Content-Length: 5\r\nContent-Length: 6\r\n`), "http1_differing_content_length"],
    ["a Content-Length list that differs", get(`${H}Content-Length: 5, 6\r\n`), "http1_differing_content_length"],
    ["Content-Length then Transfer-Encoding", get(`${H}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n`), "http1_conflicting_framing"],
    ["Transfer-Encoding then Content-Length", get(`${H}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n`), "http1_conflicting_framing"],
    ["Transfer-Encoding gzip", get(`${H}Transfer-Encoding: gzip\r\n`), "http1_bad_transfer_encoding"],
    ["Transfer-Encoding gzip, chunked", get(`${H}Transfer-Encoding: gzip, chunked\r\n`), "http1_bad_transfer_encoding"],
    ["Transfer-Encoding chunked, gzip", get(`${H}Transfer-Encoding: chunked, gzip\r\n`), "http1_bad_transfer_encoding"],
    ["Transfer-Encoding chunked, chunked", get(`${H}Transfer-Encoding: chunked, chunked\r\n`), "http1_bad_transfer_encoding"],
    ["Transfer-Encoding twice", get(`${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n`), "http1_bad_transfer_encoding"],
    ["Transfer-Encoding identity", get(`${H}Transfer-Encoding: identity\r\n`), "http1_bad_transfer_encoding"],
    ["an empty Transfer-Encoding", get(`${H}Transfer-Encoding: \r\n`), "http1_bad_transfer_encoding"],
    ["Transfer-Encoding in HTTP/1.0", get(`${H}Transfer-Encoding: chunked\r\n`, "POST / HTTP/1.0"), "http1_bad_transfer_encoding"],
  ];
  for (const [name, raw, code] of cases) {
    test(`${name}: ${code}`, () => {
      const steps = runRequests(raw);
      assert.equal(errorCode(steps), code, JSON.stringify(steps.at(-1)));
      assert.equal(steps.length, 1, "no head before the error");
    });
  }

  test("a Host with userinfo is refused without repeating it (it may be a password)", () => {
    const last = runRequests(get("Host: u:hunter2@a.example\r\n")).at(-1) as Step<RequestHead> & { kind: "error" };
    assert.equal(last.kind, "error");
    assert.ok(!last.message.includes("hunter2"), last.message);
  });

  test("messages quote no header value but framing ones", () => {
    const secret = "s3cr3t-t0ken";
    for (const raw of [get(`${H}Authorization: ${secret}\u0001\r\n`), get(`${H}Authorization: ${secret}\r\n X\r\n`), get(`${H}X-${secret}\r\n`, `GET /?k=${secret}# HTTP/1.1`)]) {
      const last = runRequests(raw).at(-1) as Step<RequestHead> & { kind: "error" };
      assert.equal(last.kind, "error");
      assert.ok(!last.message.includes(secret), last.message);
      assert.ok(last.message.startsWith("http1: "), last.message);
    }
  });
});

describe("request bytes, one by one", () => {
  const TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  const codeFor = (raw: string) => errorCode(runRequests(raw));

  test("in a method: tokens pass, every other byte is refused", () => {
    for (let c = 0; c < 256; c++) {
      const ch = String.fromCharCode(c);
      const code = codeFor(get(H, `G${ch}T / HTTP/1.1`));
      if (TCHARS.includes(ch)) assert.equal(code, null, `byte ${c}`);
      else assert.ok(code !== null, `byte ${c} passed`);
    }
  });

  test("in a header name: tokens pass, every other byte is refused (a colon ends the name)", () => {
    for (let c = 0; c < 256; c++) {
      if (c === 58) continue;
      const ch = String.fromCharCode(c);
      const code = codeFor(get(`${H}X${ch}Y: 1\r\n`));
      if (TCHARS.includes(ch)) assert.equal(code, null, `byte ${c}`);
      else assert.ok(code !== null, `byte ${c} passed`);
    }
  });

  test("in a header value: HTAB, SP, visible ASCII and obs-text pass", () => {
    for (let c = 0; c < 256; c++) {
      const code = codeFor(get(`${H}X: a${String.fromCharCode(c)}b\r\n`));
      const ok = c === 9 || (c >= 32 && c !== 127);
      if (ok) assert.equal(code, null, `byte ${c}`);
      else assert.equal(code, c === 10 ? "http1_bad_line_ending" : "http1_bad_header_value", `byte ${c}`);
    }
  });

  test("in a target: visible ASCII but # passes", () => {
    for (let c = 0; c < 256; c++) {
      const code = codeFor(get(H, `GET /a${String.fromCharCode(c)}b HTTP/1.1`));
      const ok = c > 32 && c < 127 && c !== 35;
      if (ok) assert.equal(code, null, `byte ${c}`);
      else assert.ok(code !== null, `byte ${c} passed`);
    }
  });
});

describe("a header line without a colon", () => {
  test("the error does not repeat the line (a credential sent without its name)", () => {
    const steps = runRequests(get(`${H}sk-live-0123456789abcdef\r\n`));
    const last = steps.at(-1)!;
    assert.ok(last.kind === "error", JSON.stringify(last));
    assert.equal(last.code, "http1_bad_header_name");
    assert.equal(last.message.includes("sk-live"), false);
    assert.ok(last.message.includes("a header line (24 bytes) has no colon"), last.message);
  });
});
