import { assert, codeOf, describe, errorOf, test } from "../../../test/shim.ts";
import { parseClientHello } from "./client-hello.ts";
import { MAX_PEEK_BYTES, PeekError } from "./errors.ts";
import { u16, u24, ascii, vec8, vec16, ext } from "./hello-bytes.ts";

// A ClientHello builder (RFC 8446 section 4.1.2), byte by byte: every field can be set wrong.
type Bytes = readonly number[];
const sniData = (name: string | Bytes): number[] => vec16([0, ...vec16(typeof name === "string" ? ascii(name) : name)]);
const sni = (name: string | Bytes): number[] => ext(0, sniData(name));
const alpn = (...names: string[]): number[] => ext(16, vec16(names.flatMap((n) => vec8(ascii(n)))));

interface Spec {
  version?: number;
  sessionId?: number;
  suites?: Bytes;
  compression?: Bytes;
  /** The extensions, concatenated; null for a ClientHello without an extensions block. */
  extensions?: Bytes | null;
}

function body(s: Spec = {}): number[] {
  const exts = s.extensions === undefined ? sni("api.example.com") : s.extensions;
  return [
    ...u16(s.version ?? 0x0303),
    ...Array.from({ length: 32 }, (_, i) => i),
    ...vec8(Array.from({ length: s.sessionId ?? 32 }, () => 7)),
    ...vec16(s.suites ?? [0x13, 0x01, 0x13, 0x02, 0xc0, 0x2f]),
    ...vec8(s.compression ?? [0]),
    ...(exts === null ? [] : vec16(exts)),
  ];
}

const handshake = (b: Bytes, type = 1): number[] => [type, ...u24(b.length), ...b];

/** `hs` in handshake records of at most `size` bytes each. */
function records(hs: Bytes, size = 1 << 14, version = 0x0301): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < hs.length; i += size) {
    const part = hs.slice(i, i + size);
    out.push(22, ...u16(version), ...u16(part.length), ...part);
  }
  return Uint8Array.from(out);
}

const hello = (s: Spec = {}): Uint8Array => records(handshake(body(s)));
const withRecord = (hs: Bytes, type: number, version: number, len: number): Uint8Array => Uint8Array.from([type, ...u16(version), ...u16(len), ...hs]);

/** Shaped like a browser's: GREASE, key share, supported_versions, padding, pre_shared_key last. */
const browserExtensions = [
  ...ext(0x0a0a, []),
  ...sni("www.Example.org"),
  ...ext(23, []),
  ...ext(0xff01, [0]),
  ...ext(10, vec16([0x1a, 0x1a, 0, 0x1d, 0, 0x17, 0, 0x18])),
  ...ext(11, vec8([0])),
  ...ext(35, []),
  ...alpn("h2", "http/1.1"),
  ...ext(5, [1, 0, 0, 0, 0]),
  ...ext(13, vec16([4, 3, 8, 4, 4, 1, 5, 3, 8, 5, 5, 1, 8, 6, 6, 1])),
  ...ext(18, []),
  ...ext(51, vec16([0x1a, 0x1a, 0, 1, 0, 0, 0x1d, 0, 32, ...Array.from({ length: 32 }, (_, i) => i)])),
  ...ext(45, vec8([1])),
  ...ext(43, vec8([0x2a, 0x2a, 3, 4, 3, 3])),
  ...ext(27, vec8([0, 2])),
  ...ext(0x1a1a, [0]),
  ...ext(21, Array.from({ length: 180 }, () => 0)),
  ...ext(41, vec16([...vec16([1, 2, 3, 4]), 0, 0, 0, 1]).concat(vec16(vec8(Array.from({ length: 32 }, () => 9))))),
];

function indexOfBytes(hay: Uint8Array, needle: Bytes): number {
  return hay.findIndex((_, i) => needle.every((x, j) => hay[i + j] === x));
}

const label63 = "a".repeat(63);
const name253 = `${label63}.${label63}.${label63}.${"b".repeat(61)}`;
const code = (b: Uint8Array): string | null => codeOf(() => parseClientHello(b), PeekError);

describe("parseClientHello accepts", () => {
  const cases: [string, Uint8Array, string | null, string[]][] = [
    ["a name", hello(), "api.example.com", []],
    ["uppercase and a trailing dot, normalised", hello({ extensions: sni("Api.Example.COM.") }), "api.example.com", []],
    ["an underscore label", hello({ extensions: sni("_svc.Example.com") }), "_svc.example.com", []],
    ["a name of 253 bytes", hello({ extensions: sni(name253) }), name253, []],
    ["a name of 253 bytes and a dot (254)", hello({ extensions: sni(`${name253}.`) }), name253, []],
    ["an IPv4 literal: no name", hello({ extensions: sni("192.0.2.1") }), null, []],
    ["an IPv6 literal: no name", hello({ extensions: sni("2001:DB8::1") }), null, []],
    ["a bracketed IPv6 literal: no name", hello({ extensions: sni("[2001:DB8::1]") }), null, []],
    ["no server_name extension", hello({ extensions: alpn("h2") }), null, ["h2"]],
    ["an empty extensions block", hello({ extensions: [] }), null, []],
    ["no extensions block (TLS 1.0-1.2)", hello({ extensions: null, version: 0x0301 }), null, []],
    ["ALPN h2 and http/1.1", hello({ extensions: [...alpn("h2", "http/1.1"), ...sni("a.b")] }), "a.b", ["h2", "http/1.1"]],
    ["a GREASE ALPN value, byte for byte", hello({ extensions: alpn("\u000a\u000a", "h2") }), null, ["\n\n", "h2"]],
    ["a browser-shaped hello", hello({ extensions: browserExtensions }), "www.example.org", ["h2", "http/1.1"]],
    ["legacy_version 0x0302", hello({ version: 0x0302 }), "api.example.com", []],
    ["an empty session id", hello({ sessionId: 0 }), "api.example.com", []],
    ["compression methods 1 and null", hello({ compression: [1, 0] }), "api.example.com", []],
    ["one cipher suite", hello({ suites: [0, 0x2f] }), "api.example.com", []],
  ];
  for (const [name, bytes, serverName, protocols] of cases) {
    test(name, () => {
      const r = parseClientHello(bytes);
      assert.ok(r !== null);
      assert.deepEqual({ ...r, alpn: [...r.alpn] }, { kind: "tls", serverName, alpn: protocols, clientHelloLength: bytes.length });
      assert.ok(Object.isFrozen(r) && Object.isFrozen(r.alpn));
    });
  }

  test("record versions 0x0301 to 0x0304", () => {
    for (const v of [0x0301, 0x0302, 0x0303, 0x0304]) assert.equal(parseClientHello(records(handshake(body()), 1 << 14, v))?.serverName, "api.example.com");
  });

  test("a hello spread over records of every size from 1 to 40 bytes", () => {
    const hs = handshake(body({ extensions: browserExtensions }));
    for (let size = 1; size <= 40; size++) {
      const bytes = records(hs, size);
      const r = parseClientHello(bytes);
      assert.equal(r?.serverName, "www.example.org");
      assert.equal(r?.clientHelloLength, bytes.length);
    }
  });

  test("records after its last one are not read: clientHelloLength stops before them", () => {
    const h = hello();
    const ccs = [20, 3, 3, 0, 1, 1];
    const r = parseClientHello(Uint8Array.from([...h, ...ccs, 0xff, 0]));
    assert.equal(r?.clientHelloLength, h.length);
  });

  test(`records of ${MAX_PEEK_BYTES} bytes in all, headers included`, () => {
    const padding = (n: number) => [...sni("a.example"), ...ext(21, Array.from({ length: n }, () => 0))];
    const base = hello({ extensions: padding(0) }).length;
    const exact = hello({ extensions: padding(MAX_PEEK_BYTES - base) });
    assert.equal(exact.length, MAX_PEEK_BYTES);
    assert.equal(parseClientHello(exact)?.serverName, "a.example");
    const split = records(handshake(body({ extensions: padding(MAX_PEEK_BYTES - base - 5) })), 8192);
    assert.equal(split.length, MAX_PEEK_BYTES);
    assert.equal(parseClientHello(split)?.serverName, "a.example");
    assert.equal(code(hello({ extensions: padding(MAX_PEEK_BYTES - base + 1) })), "peek_too_large");
    assert.equal(code(records(handshake(body({ extensions: padding(MAX_PEEK_BYTES - base - 4) })), 8192)), "peek_too_large");
  });
});

describe("parseClientHello refuses", () => {
  const hs = handshake(body());
  const b = body();
  const cases: [string, Uint8Array, string][] = [
    ["record version 0x0300 (SSL 3.0)", records(hs, 1 << 14, 0x0300), "peek_tls_malformed"],
    ["record version 0x0305", records(hs, 1 << 14, 0x0305), "peek_tls_malformed"],
    ["record version 0x0201", records(hs, 1 << 14, 0x0201), "peek_tls_malformed"],
    ["a record of 0 bytes", Uint8Array.from([22, 3, 1, 0, 0, ...records(hs)]), "peek_tls_malformed"],
    ["a record over 2^14 bytes", withRecord(hs, 22, 0x0301, (1 << 14) + 1), "peek_tls_malformed"],
    ["handshake type 2 (server_hello)", records(handshake(b, 2)), "peek_tls_malformed"],
    ["an alert record between fragments", Uint8Array.from([...records(hs.slice(0, 10)), 21, 3, 3, 0, 2, 1, 0]), "peek_tls_malformed"],
    ["a ChangeCipherSpec record between fragments", Uint8Array.from([...records(hs.slice(0, 10)), 20, 3, 3, 0, 1, 1]), "peek_tls_malformed"],
    ["a record that goes on after the hello", records([...hs, 0]), "peek_tls_malformed"],
    ["a handshake length shorter than the body", records([1, ...u24(b.length - 1), ...b]), "peek_tls_malformed"],
    ["legacy_version 0x0300", hello({ version: 0x0300 }), "peek_tls_malformed"],
    ["legacy_version 0x0304", hello({ version: 0x0304 }), "peek_tls_malformed"],
    ["a session id of 33 bytes", hello({ sessionId: 33 }), "peek_tls_malformed"],
    ["no cipher suite", hello({ suites: [] }), "peek_tls_malformed"],
    ["cipher suites of odd length", hello({ suites: [0, 0x2f, 1] }), "peek_tls_malformed"],
    ["no compression method", hello({ compression: [] }), "peek_tls_malformed"],
    ["no null compression method", hello({ compression: [1] }), "peek_tls_malformed"],
    ["a body that stops inside the random", records(handshake(body().slice(0, 20))), "peek_tls_malformed"],
    ["an extensions length short of the message", records(handshake([...body({ extensions: null }), 0, 0, 0])), "peek_tls_malformed"],
    ["an extensions length past the message", records(handshake([...body({ extensions: null }), 0, 9, 0, 0])), "peek_tls_malformed"],
    ["an extension past its block", hello({ extensions: [0, 23, 0, 1] }), "peek_tls_malformed"],
    ["a lone byte in the extensions block", hello({ extensions: [...ext(23, []), 0] }), "peek_tls_malformed"],
    ["an extension twice", hello({ extensions: [...ext(23, []), ...sni("a.b"), ...ext(23, [])] }), "peek_tls_malformed"],
    ["server_name twice", hello({ extensions: [...sni("a.b"), ...sni("a.b")] }), "peek_tls_malformed"],
    ["an extension after pre_shared_key", hello({ extensions: [...ext(41, [0]), ...ext(23, [])] }), "peek_tls_malformed"],
    ["server_name without data", hello({ extensions: ext(0, []) }), "peek_tls_malformed"],
    ["a server_name list short of its extension", hello({ extensions: ext(0, [...sniData("a.b"), 0]) }), "peek_tls_malformed"],
    ["a server_name list past its extension", hello({ extensions: ext(0, [0, 9, 0, 0, 1, 97]) }), "peek_tls_malformed"],
    ["a host_name past its list", hello({ extensions: ext(0, vec16([0, 0, 9, 97])) }), "peek_tls_malformed"],
    ["an empty ALPN list", hello({ extensions: ext(16, vec16([])) }), "peek_tls_malformed"],
    ["an empty ALPN name", hello({ extensions: ext(16, vec16([2, 104, 50, 0])) }), "peek_tls_malformed"],
    ["an ALPN name past its list", hello({ extensions: ext(16, vec16([3, 104, 50])) }), "peek_tls_malformed"],
    ["an ALPN list short of its extension", hello({ extensions: ext(16, [...vec16([2, 104, 50]), 0]) }), "peek_tls_malformed"],
    ["an empty server_name list", hello({ extensions: ext(0, vec16([])) }), "peek_tls_bad_sni"],
    ["a name type other than host_name", hello({ extensions: ext(0, vec16([1, ...vec16(ascii("a.b"))])) }), "peek_tls_bad_sni"],
    ["two host_names", hello({ extensions: ext(0, vec16([0, ...vec16(ascii("a.b")), 0, ...vec16(ascii("c.d"))])) }), "peek_tls_bad_sni"],
    ["an empty host_name", hello({ extensions: sni("") }), "peek_tls_bad_sni"],
    ["a NUL in the name", hello({ extensions: sni([...ascii("evil.com"), 0, ...ascii(".good.com")]) }), "peek_tls_bad_sni"],
    ["a name of 255 bytes", hello({ extensions: sni(`${name253}.b.`) }), "peek_tls_bad_sni"],
    ["a name of 256 bytes", hello({ extensions: sni(`${name253}.bb.`) }), "peek_tls_bad_sni"],
    ["a name of 10000 bytes", hello({ extensions: sni("a".repeat(10000)) }), "peek_tls_bad_sni"],
    ["an empty label", hello({ extensions: sni("a..b") }), "peek_tls_bad_sni"],
    ["only a dot", hello({ extensions: sni(".") }), "peek_tls_bad_sni"],
    ["a label starting with a hyphen", hello({ extensions: sni("-a.com") }), "peek_tls_bad_sni"],
    ["an all-digit last label", hello({ extensions: sni("1.2.3.4.5") }), "peek_tls_bad_sni"],
    ["a colon that is no IPv6 literal", hello({ extensions: sni("a.com:443") }), "peek_tls_bad_sni"],
    ["a UTF-8 name", hello({ extensions: sni([0x62, 0xc3, 0xbc, 0x63, 0x68, 0x65, 0x72, 0x2e, 0x64, 0x65]) }), "peek_tls_bad_sni"],
    ["a handshake length over the limit", records(handshake(body()).slice(0, 4).map((x, i) => (i === 1 ? 0 : i === 2 ? 0x40 : x))), "peek_too_large"],
  ];
  for (const [name, bytes, want] of cases) {
    test(name, () => assert.equal(code(bytes), want));
  }

  test("errors are PeekErrors with peek: messages naming the input", () => {
    const e = errorOf(() => parseClientHello(hello({ extensions: sni("Evil\u0000.com") })), PeekError);
    assert.equal(e.code, "peek_tls_bad_sni");
    assert.match(e.message, /^peek: tls: server name "Evil\\u0000\.com" holds a NUL byte$/);
    const ip = errorOf(() => parseClientHello(hello({ extensions: sni("a..b") })), PeekError);
    assert.ok(ip.cause instanceof Error && ip.message.includes('"a..b"'));
  });
});

describe("parseClientHello on a prefix", () => {
  const shapes: [string, Uint8Array][] = [
    ["a simple hello", hello()],
    ["a browser-shaped hello", hello({ extensions: browserExtensions })],
    ["a hello in 7-byte records", records(handshake(body({ extensions: browserExtensions })), 7)],
    ["a hello without extensions", hello({ extensions: null })],
  ];
  for (const [name, bytes] of shapes) {
    test(`${name}: need more at every cut`, () => {
      for (let n = 1; n < bytes.length; n++) assert.equal(parseClientHello(bytes.subarray(0, n)), null, `cut at ${n}`);
      assert.notEqual(parseClientHello(bytes), null);
    });
  }

  test("refuses as soon as the bytes present show the fault", () => {
    const nul = hello({ extensions: [...sni([...ascii("evil"), 0, ...ascii(".com")]), ...alpn("h2")] });
    const at = indexOfBytes(nul, ascii("evil")) + 4;
    assert.equal(code(nul.subarray(0, at + 1)), "peek_tls_bad_sni");
    assert.equal(code(nul.subarray(0, at)), null);
    assert.equal(code(Uint8Array.from([22, 3, 0])), "peek_tls_malformed");
    assert.equal(code(Uint8Array.from([22, 3, 1, 0x40, 1])), "peek_tls_malformed");
    assert.equal(code(Uint8Array.from([22, 3, 1, 0x40, 0])), "peek_too_large");
    assert.equal(code(Uint8Array.from([22, 3, 1, 0x3f, 0xfb, 1, 0, 0x3f, 0xf7])), null);
    assert.equal(code(Uint8Array.from([22, 3, 1, 0x3f, 0xfb, 1, 0, 0x3f, 0xf8])), "peek_too_large");
    assert.equal(code(Uint8Array.from([22, 3, 1, 0x3f, 0xfb, 1, 0, 0x3f, 0xf6])), "peek_tls_malformed");
    assert.equal(code(Uint8Array.from([22, 3, 1, 0, 1, 2])), "peek_tls_malformed");
  });
});

describe("server name bytes", () => {
  test("every byte 0..255 inside a label", () => {
    for (let c = 0; c < 256; c++) {
      const ch = String.fromCharCode(c);
      const bytes = hello({ extensions: sni([...ascii("ab"), c, ...ascii("d.example.com")]) });
      const ldh = /[A-Za-z0-9_-]/.test(ch);
      if (ldh) assert.equal(parseClientHello(bytes)?.serverName, `ab${ch.toLowerCase()}d.example.com`, `byte ${c}`);
      else if (c === 0x2e) assert.equal(parseClientHello(bytes)?.serverName, "ab.d.example.com");
      else assert.equal(code(bytes), "peek_tls_bad_sni", `byte ${c}`);
    }
  });
});

// Odd server names a workload may send: what normalises, what counts as no name, what is refused.
// The name's bytes are those of "letters, digits, -, ., _" (as policy host names, which take "_"
// too, so every name a rule can hold can arrive), ":" and edge brackets only on the way to an IP
// literal; every other byte is refused, never dropped or cut at.
describe("odd server names", () => {
  const named = (name: string | Bytes): Uint8Array => hello({ extensions: [...sni(name), ...alpn("h2")] });
  const nameOf = (name: string | Bytes): string | null | undefined => parseClientHello(named(name))?.serverName;

  const normalised: [string, string][] = [
    ["API.Example.COM.", "api.example.com"],
    ["API.EXAMPLE.COM", "api.example.com"],
    ["api.example.com.", "api.example.com"],
    ["_Acme-Challenge.Example.com", "_acme-challenge.example.com"],
    ["XN--BCHER-KVA.Example", "xn--bcher-kva.example"],
    ["localhost.", "localhost"],
  ];
  for (const [raw, want] of normalised) {
    test(`${JSON.stringify(raw)} decides as ${JSON.stringify(want)}, and that again gives itself`, () => {
      assert.equal(nameOf(raw), want);
      assert.equal(nameOf(want), want);
    });
  }

  const literals = [
    "192.0.2.1", "192.0.2.1.", "0.0.0.0", "255.255.255.255", "127.0.0.1",
    "::1", "::", "2001:db8::1", "2001:DB8::1", "1:2:3:4:5:6:7:8", "::ffff:192.0.2.1", "fe80::1",
    "[::1]", "[2001:DB8::1]", "[::ffff:192.0.2.1]",
  ];
  for (const raw of literals) {
    test(`the IP literal ${JSON.stringify(raw)} counts as no server_name`, () => {
      const withIp = parseClientHello(named(raw));
      const without = parseClientHello(hello({ extensions: alpn("h2") }));
      assert.ok(withIp !== null && without !== null);
      assert.deepEqual({ ...withIp, clientHelloLength: 0 }, { ...without, clientHelloLength: 0 });
    });
  }

  const refused: [string, string | Bytes][] = [
    ["a NUL after an allowed name (a C string would stop there)", [...ascii("api.example.com"), 0, ...ascii(".evil.test")]],
    ["a NUL first", [0, ...ascii("api.example.com")]],
    ["a NUL last", [...ascii("api.example.com"), 0]],
    ["a NUL after the trailing dot", [...ascii("api.example.com."), 0]],
    ["SOH", [...ascii("api"), 1, ...ascii(".example.com")]],
    ["CR LF", "api.example.com\r\nX: y"],
    ["a tab", "api\t.example.com"],
    ["DEL", [...ascii("api"), 0x7f, ...ascii(".example.com")]],
    ["a space", "api .example.com"],
    ["a wildcard label", "*.example.com"],
    ["a percent-encoded byte", "api%2eexample.com"],
    ["a slash", "api.example.com/x"],
    ["a backslash", "api.example.com\\x"],
    ["an at sign", "user@api.example.com"],
    ["a port", "api.example.com:443"],
    ["UTF-8", [...ascii("b"), 0xc3, 0xbc, ...ascii("cher.example")]],
    ["a lone byte 0xff", [...ascii("a"), 0xff, ...ascii(".example")]],
    ["IPv4 in brackets", "[192.0.2.1]"],
    ["a name in brackets", "[api.example.com]"],
    ["a bracket inside", "api[1].example.com"],
    ["an open bracket only", "[::1"],
    ["a close bracket only", "::1]"],
    ["empty brackets", "[]"],
    ["a bracketed literal and a dot", "[::1]."],
    ["an IPv6 zone", "fe80::1%eth0"],
    ["an IPv4 octet over 255", "192.0.2.256"],
    ["an IPv4 octet with a leading zero", "192.0.2.01"],
    ["three octets", "192.0.2"],
    ["two trailing dots", "api.example.com.."],
    ["a label of 64 bytes", `${"a".repeat(64)}.example`],
    ["255 bytes", `${name253}.b.`],
    ["256 bytes", `${name253}.bb.`],
    ["300 bytes", "a.".repeat(150)],
  ];
  for (const [name, raw] of refused) {
    test(`${name}: refused (peek_tls_bad_sni)`, () => assert.equal(code(named(raw)), "peek_tls_bad_sni"));
  }

  test("a refusal's message is printable ASCII, naming the byte or the fault", () => {
    for (let c = 0; c < 256; c++) {
      if (/[A-Za-z0-9_.:-]/.test(String.fromCharCode(c))) continue;
      const e = errorOf(() => parseClientHello(named([...ascii("api.ex"), c, ...ascii("ample.com")])), PeekError);
      assert.equal(e.code, "peek_tls_bad_sni", `byte ${c}`);
      assert.match(e.message, /^[\x20-\x7e]+$/, `byte ${c}`);
      assert.ok(c === 0 ? e.message.endsWith("holds a NUL byte") : e.message.includes(`byte 0x${c.toString(16).padStart(2, "0")}`), e.message);
    }
    const long = errorOf(() => parseClientHello(named("a".repeat(300))), PeekError);
    assert.match(long.message, /^peek: tls: server name of 300 bytes \(at most 255\)$/);
  });
});
