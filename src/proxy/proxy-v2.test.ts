import fc from "fast-check";
import { assert, codeOf, describe, test } from "../../test/shim.ts";
import { ipFromBytes, parseIp, type IpAddress } from "../policy/address.ts";
import { MAX_PROXY_V2_BYTES, ProxyV2Error, decodeProxyV2, encodeProxyV2, type DecodedProxyV2, type ProxyHeader } from "./proxy-v2.ts";

const ID = "spiffe://example.org/a";
const CONN = Uint8Array.from({ length: 16 }, (_, i) => i);

/** 192.0.2.10:51234 -> 198.51.100.7:8443, connection id 00..0f, ID, TLSv1.3: written out by hand. */
const GOLDEN_V4 = Uint8Array.of(
  // signature: \r \n \r \n \0 \r \n Q U I T \n
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
  // version 2, command PROXY
  0x21,
  // AF_INET, STREAM
  0x11,
  // length 74 = addresses 12 + TLV 0x05 (3 + 16) + TLV 0x20 (3 + 15) + TLV 0xE0 (3 + 22)
  0x00, 0x4a,
  // source 192.0.2.10
  0xc0, 0x00, 0x02, 0x0a,
  // destination 198.51.100.7
  0xc6, 0x33, 0x64, 0x07,
  // source port 51234 = 200 * 256 + 34
  0xc8, 0x22,
  // destination port 8443 = 32 * 256 + 251
  0x20, 0xfb,
  // PP2_TYPE_UNIQUE_ID, length 16, the connection id
  0x05, 0x00, 0x10,
  0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
  // PP2_TYPE_SSL, length 15 = client 1 + verify 4 + sub-TLV (3 + 7)
  0x20, 0x00, 0x0f,
  // client: PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS
  0x07,
  // verify: 0 (verified), uint32
  0x00, 0x00, 0x00, 0x00,
  // PP2_SUBTYPE_SSL_VERSION, length 7, "TLSv1.3"
  0x21, 0x00, 0x07, 0x54, 0x4c, 0x53, 0x76, 0x31, 0x2e, 0x33,
  // custom type 0xE0, length 22, "spiffe://example.org/a"
  0xe0, 0x00, 0x16,
  0x73, 0x70, 0x69, 0x66, 0x66, 0x65, 0x3a, 0x2f, 0x2f, // spiffe://
  0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x6f, 0x72, 0x67, // example.org
  0x2f, 0x61, // /a
);

const GOLDEN_HEADER: ProxyHeader = {
  source: { address: parseIp("192.0.2.10"), port: 51234 },
  destination: { address: parseIp("198.51.100.7"), port: 8443 },
  connectionId: CONN,
  spiffeId: ID,
};

// A header builder for the decoder's rejection rows, independent of the encoder.
const u16 = (n: number): number[] => [(n >> 8) & 255, n & 255];
const ascii = (s: string): number[] => [...s].map((c) => c.charCodeAt(0));
const SIG = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
const V4_BLOCK = [192, 0, 2, 10, 198, 51, 100, 7, ...u16(51234), ...u16(8443)];
const tlv = (type: number, value: readonly number[]): number[] => [type, ...u16(value.length), ...value];
const SSL = tlv(0x20, [7, 0, 0, 0, 0, ...tlv(0x21, ascii("TLSv1.3"))]);

function raw(o: { verCmd?: number; fam?: number; len?: number; body?: readonly number[] } = {}): Uint8Array {
  const body = o.body ?? [...V4_BLOCK, ...SSL];
  return Uint8Array.from([...SIG, o.verCmd ?? 0x21, o.fam ?? 0x11, ...u16(o.len ?? body.length), ...body]);
}

const decoded = (b: Uint8Array): { header: DecodedProxyV2; length: number } => {
  const r = decodeProxyV2(b);
  if (r === "need_more") throw new Error("need_more");
  return r;
};
const decodeCode = (b: Uint8Array): string | null => codeOf(() => decodeProxyV2(b), ProxyV2Error);
const encodeCode = (h: ProxyHeader): string | null => codeOf(() => encodeProxyV2(h), ProxyV2Error);

/** What decode must give back for `h`. */
function assertRoundTrip(h: ProxyHeader): void {
  const bytes = encodeProxyV2(h);
  const r = decoded(Uint8Array.from([...bytes, 0x47, 0x45, 0x54]));
  assert.equal(r.length, bytes.length);
  assert.equal(r.header.command, "proxy");
  assert.deepEqual(r.header.source, { address: h.source.address, port: h.source.port });
  assert.deepEqual(r.header.destination, { address: h.destination.address, port: h.destination.port });
  assert.deepEqual(r.header.uniqueId, h.connectionId);
  assert.equal(r.header.spiffeId, h.spiffeId);
  assert.deepEqual(r.header.ssl, { client: 7, verify: 0, version: h.tlsVersion ?? "TLSv1.3", tlvs: r.header.ssl?.tlvs });
  assert.deepEqual(r.header.tlvs.map((t) => t.type), [0x05, 0x20, 0xe0]);
}

describe("encodeProxyV2", () => {
  test("the golden IPv4 header, byte for byte", () => {
    assert.deepEqual(encodeProxyV2(GOLDEN_HEADER), GOLDEN_V4);
  });

  test("an explicit tlsVersion replaces TLSv1.3", () => {
    const b = encodeProxyV2({ ...GOLDEN_HEADER, tlsVersion: "TLSv1.2" });
    assert.deepEqual(b.subarray(0, 16 + 12 + 19), GOLDEN_V4.subarray(0, 16 + 12 + 19));
    assert.equal(decoded(b).header.ssl?.version, "TLSv1.2");
  });

  test("IPv6: family 0x21, 16-byte addresses", () => {
    const h = { ...GOLDEN_HEADER, source: { address: parseIp("2001:db8::1"), port: 1 }, destination: { address: parseIp("fe80::2"), port: 65535 } };
    const b = encodeProxyV2(h);
    assert.equal(b[13], 0x21);
    assert.deepEqual([...b.subarray(14, 16)], u16(36 + 19 + 18 + 25));
    assert.deepEqual([...b.subarray(16, 32)], [0x20, 0x01, 0x0d, 0xb8, ...new Array<number>(11).fill(0), 1]);
    assert.deepEqual([...b.subarray(32, 48)], [0xfe, 0x80, ...new Array<number>(13).fill(0), 2]);
    assert.deepEqual([...b.subarray(48, 52)], [0, 1, 0xff, 0xff]);
    assertRoundTrip(h);
  });

  test("IPv6 beside IPv4: family 0x21, the IPv4 one as ::ffff:a.b.c.d", () => {
    const h = { ...GOLDEN_HEADER, destination: { address: parseIp("2001:db8::7"), port: 443 } };
    const b = encodeProxyV2(h);
    assert.equal(b[13], 0x21);
    assert.deepEqual([...b.subarray(16, 32)], [...new Array<number>(10).fill(0), 0xff, 0xff, 192, 0, 2, 10]);
    assertRoundTrip(h);
  });

  test("IPv4-mapped addresses on both sides are written as IPv4", () => {
    const mappedSix = (v4: string): IpAddress => {
      const a = parseIp(v4);
      return { family: 6, value: 0xffff00000000n | a.value, text: `::ffff:${v4}` };
    };
    const parsed = { ...GOLDEN_HEADER, source: { address: parseIp("::ffff:192.0.2.10"), port: 51234 } };
    const handMade = { ...GOLDEN_HEADER, source: { address: mappedSix("192.0.2.10"), port: 51234 }, destination: { address: mappedSix("198.51.100.7"), port: 8443 } };
    assert.deepEqual(encodeProxyV2(parsed), GOLDEN_V4);
    assert.deepEqual(encodeProxyV2(handMade), GOLDEN_V4);
    assertRoundTrip(parsed);
  });

  test("a SPIFFE ID of exactly 2048 UTF-8 bytes, and one of multi-byte characters", () => {
    assertRoundTrip({ ...GOLDEN_HEADER, spiffeId: `spiffe://example.org/${"a".repeat(2048 - 21)}` });
    assertRoundTrip({ ...GOLDEN_HEADER, spiffeId: "spiffe://example.org/\u00e9\u{1f600}\ufeff" });
  });

  const g = GOLDEN_HEADER;
  const rows: [string, ProxyHeader, string][] = [
    ["a SPIFFE ID with NUL", { ...g, spiffeId: `${ID}\0x` }, "proxy_v2_bad_spiffe_id"],
    ["a SPIFFE ID of 2049 bytes", { ...g, spiffeId: `spiffe://example.org/${"a".repeat(2049 - 21)}` }, "proxy_v2_bad_spiffe_id"],
    ["a SPIFFE ID of 1025 two-byte characters", { ...g, spiffeId: "\u00e9".repeat(1025) }, "proxy_v2_bad_spiffe_id"],
    ["an empty SPIFFE ID", { ...g, spiffeId: "" }, "proxy_v2_bad_spiffe_id"],
    ["a SPIFFE ID with a lone surrogate", { ...g, spiffeId: `${ID}\ud800` }, "proxy_v2_bad_spiffe_id"],
    ["a connection id of 15 bytes", { ...g, connectionId: new Uint8Array(15) }, "proxy_v2_bad_connection_id"],
    ["a connection id of 17 bytes", { ...g, connectionId: new Uint8Array(17) }, "proxy_v2_bad_connection_id"],
    ["source port -1", { ...g, source: { ...g.source, port: -1 } }, "proxy_v2_bad_port"],
    ["destination port 65536", { ...g, destination: { ...g.destination, port: 65536 } }, "proxy_v2_bad_port"],
    ["port 1.5", { ...g, source: { ...g.source, port: 1.5 } }, "proxy_v2_bad_port"],
    ["port NaN", { ...g, source: { ...g.source, port: Number.NaN } }, "proxy_v2_bad_port"],
    ["an IPv4 value of 2^32", { ...g, source: { ...g.source, address: { family: 4, value: 1n << 32n, text: "x" } } }, "proxy_v2_bad_address"],
    ["an empty TLS version", { ...g, tlsVersion: "" }, "proxy_v2_bad_tls_version"],
    ["a TLS version with a space", { ...g, tlsVersion: "TLS 1.3" }, "proxy_v2_bad_tls_version"],
    ["a header over 65535 + 16 bytes", { ...g, tlsVersion: "v".repeat(0xffff - 12 - 19 - 25 - 11 + 1) }, "proxy_v2_too_large"],
  ];
  for (const [name, h, code] of rows) {
    test(`rejects ${name}`, () => assert.equal(encodeCode(h), code));
  }

  test("the largest header fits exactly", () => {
    const b = encodeProxyV2({ ...g, tlsVersion: "v".repeat(0xffff - 12 - 19 - 25 - 11) });
    assert.equal(b.length, MAX_PROXY_V2_BYTES);
    assert.equal(decoded(b).length, MAX_PROXY_V2_BYTES);
  });

  test("messages start with proxy-v2:", () => {
    for (const [, h] of rows) {
      try {
        encodeProxyV2(h);
      } catch (e) {
        assert.ok(e instanceof ProxyV2Error && e.message.startsWith("proxy-v2: encode: "), String(e));
      }
    }
  });
});

describe("decodeProxyV2", () => {
  test("the golden header", () => {
    const r = decoded(GOLDEN_V4);
    assert.equal(r.length, GOLDEN_V4.length);
    assert.equal(r.header.family, "tcp4");
    assert.equal(r.header.source?.address.text, "192.0.2.10");
    assert.equal(r.header.destination?.address.text, "198.51.100.7");
    assert.equal(r.header.source?.port, 51234);
    assert.equal(r.header.destination?.port, 8443);
    assert.deepEqual(r.header.uniqueId, CONN);
    assert.equal(r.header.spiffeId, ID);
    assert.deepEqual(r.header.ssl, { client: 7, verify: 0, version: "TLSv1.3", tlvs: [{ type: 0x21, value: Uint8Array.from(ascii("TLSv1.3")) }] });
    assert.ok(Object.isFrozen(r.header));
  });

  test("need_more for every prefix of the golden header", () => {
    for (let n = 0; n < GOLDEN_V4.length; n++) assert.equal(decodeProxyV2(GOLDEN_V4.subarray(0, n)), "need_more", `prefix of ${n}`);
  });

  test("need_more for up to 5 bytes of \"PROXY \": the 6th tells v1 from a bad signature", () => {
    for (let n = 1; n < 6; n++) assert.equal(decodeProxyV2(Uint8Array.from(ascii("PROXY ".slice(0, n)))), "need_more", `prefix of ${n}`);
  });

  test("bytes after the header are not read", () => {
    assert.equal(decoded(Uint8Array.from([...GOLDEN_V4, 0, 0xff, 0x0d])).length, GOLDEN_V4.length);
  });

  test("LOCAL with UNSPEC: no addresses, TLVs still read", () => {
    const r = decoded(raw({ verCmd: 0x20, fam: 0x00, body: SSL }));
    assert.equal(r.header.command, "local");
    assert.equal(r.header.family, "unspec");
    assert.equal(r.header.source, null);
    assert.equal(r.header.ssl?.version, "TLSv1.3");
    assert.equal(decoded(raw({ verCmd: 0x20, fam: 0x00, body: [] })).length, 16);
  });

  test("LOCAL with TCP4 keeps the addresses; other TLVs are listed", () => {
    const r = decoded(raw({ verCmd: 0x20, body: [...V4_BLOCK, ...tlv(0x04, [0, 0]), ...tlv(0xea, [1])] }));
    assert.equal(r.header.command, "local");
    assert.equal(r.header.source?.port, 51234);
    assert.deepEqual(r.header.tlvs, [{ type: 0x04, value: Uint8Array.of(0, 0) }, { type: 0xea, value: Uint8Array.of(1) }]);
    assert.equal(r.header.spiffeId, null);
    assert.equal(r.header.uniqueId, null);
    assert.equal(r.header.ssl, null);
  });

  const golden = (i: number, v: number): Uint8Array => {
    const b = GOLDEN_V4.slice();
    b[i] = v;
    return b;
  };
  const spiffeTlv = (value: readonly number[]) => raw({ body: [...V4_BLOCK, ...tlv(0xe0, value)] });
  const rows: [string, Uint8Array, string][] = [
    ["a signature byte changed", golden(7, 0x71), "proxy_v2_bad_signature"],
    ["the first byte wrong, alone", Uint8Array.of(0x0a), "proxy_v2_bad_signature"],
    ["an HTTP request", Uint8Array.from(ascii("GET / HTTP/1.1\r\n\r\n")), "proxy_v2_bad_signature"],
    ["a v1 text header", Uint8Array.from(ascii("PROXY TCP4 192.0.2.10 198.51.100.7 51234 8443\r\n")), "proxy_v2_version_1"],
    ["just \"PROXY \"", Uint8Array.from(ascii("PROXY ")), "proxy_v2_version_1"],
    ["\"PROXY\" and a NUL", Uint8Array.from(ascii("PROXY\0")), "proxy_v2_bad_signature"],
    ["\"P\" and a NUL", Uint8Array.of(0x50, 0), "proxy_v2_bad_signature"],
    ["version 1 in binary", golden(12, 0x11), "proxy_v2_bad_version"],
    ["version 3", golden(12, 0x31), "proxy_v2_bad_version"],
    ["command 2", golden(12, 0x22), "proxy_v2_bad_command"],
    ["command 15", golden(12, 0x2f), "proxy_v2_bad_command"],
    ["UDP over IPv4", golden(13, 0x12), "proxy_v2_bad_family"],
    ["UDP over IPv6", golden(13, 0x22), "proxy_v2_bad_family"],
    ["unix stream", golden(13, 0x31), "proxy_v2_bad_family"],
    ["IPv4 without protocol", golden(13, 0x10), "proxy_v2_bad_family"],
    ["UNSPEC with PROXY", golden(13, 0x00), "proxy_v2_bad_family"],
    ["family 0x41", golden(13, 0x41), "proxy_v2_bad_family"],
    ["length 11 for IPv4", raw({ len: 11 }).subarray(0, 16), "proxy_v2_short_addresses"],
    ["length 35 for IPv6", raw({ fam: 0x21, len: 35 }).subarray(0, 16), "proxy_v2_short_addresses"],
    ["length 0 for IPv4", raw({ len: 0 }).subarray(0, 16), "proxy_v2_short_addresses"],
    ["a TLV value past the end", raw({ body: [...V4_BLOCK, 0xe0, 0x00, 0x05, 0x61, 0x62] }), "proxy_v2_tlv_overrun"],
    ["the golden header one byte short", (() => { const b = golden(15, 0x49); return b.subarray(0, b.length - 1); })(), "proxy_v2_tlv_overrun"],
    ["two bytes after the last TLV", raw({ body: [...V4_BLOCK, ...SSL, 0xe0, 0x00] }), "proxy_v2_tlv_overrun"],
    ["an SSL sub-TLV past its TLV", raw({ body: [...V4_BLOCK, ...tlv(0x20, [7, 0, 0, 0, 0, 0x21, 0, 9, 0x54])] }), "proxy_v2_tlv_overrun"],
    ["an SSL TLV of 4 bytes", raw({ body: [...V4_BLOCK, ...tlv(0x20, [7, 0, 0, 0])] }), "proxy_v2_bad_ssl_tlv"],
    ["an empty SSL TLV", raw({ body: [...V4_BLOCK, ...tlv(0x20, [])] }), "proxy_v2_bad_ssl_tlv"],
    ["an SSL version with a control byte", raw({ body: [...V4_BLOCK, ...tlv(0x20, [7, 0, 0, 0, 0, ...tlv(0x21, [0x54, 0x0a])])] }), "proxy_v2_bad_ssl_tlv"],
    ["an SSL version sub-TLV twice", raw({ body: [...V4_BLOCK, ...tlv(0x20, [7, 0, 0, 0, 0, ...tlv(0x21, [0x54]), ...tlv(0x21, [0x54])])] }), "proxy_v2_duplicate_tlv"],
    ["two SSL TLVs", raw({ body: [...V4_BLOCK, ...SSL, ...SSL] }), "proxy_v2_duplicate_tlv"],
    ["two unique ids", raw({ body: [...V4_BLOCK, ...tlv(0x05, [1]), ...tlv(0x05, [1])] }), "proxy_v2_duplicate_tlv"],
    ["two SPIFFE IDs", raw({ body: [...V4_BLOCK, ...tlv(0xe0, [0x61]), ...tlv(0xe0, [0x61])] }), "proxy_v2_duplicate_tlv"],
    ["a unique id of 129 bytes", raw({ body: [...V4_BLOCK, ...tlv(0x05, new Array<number>(129).fill(1))] }), "proxy_v2_bad_unique_id"],
    ["0xE0 not UTF-8 (C3 28)", spiffeTlv([0x61, 0xc3, 0x28]), "proxy_v2_bad_spiffe_id"],
    ["0xE0 a lone surrogate in UTF-8 (ED A0 80)", spiffeTlv([0xed, 0xa0, 0x80]), "proxy_v2_bad_spiffe_id"],
    ["0xE0 an overlong NUL (C0 80)", spiffeTlv([0xc0, 0x80]), "proxy_v2_bad_spiffe_id"],
    ["0xE0 with NUL", spiffeTlv([0x61, 0x00, 0x62]), "proxy_v2_bad_spiffe_id"],
    ["0xE0 empty", spiffeTlv([]), "proxy_v2_bad_spiffe_id"],
    ["0xE0 of 2049 bytes", spiffeTlv(new Array<number>(2049).fill(0x61)), "proxy_v2_bad_spiffe_id"],
  ];
  for (const [name, bytes, code] of rows) {
    test(`rejects ${name}`, () => assert.equal(decodeCode(bytes), code));
  }

  test("messages start with proxy-v2: decode:", () => {
    for (const [name, bytes] of rows) {
      try {
        decodeProxyV2(bytes);
        assert.fail(name);
      } catch (e) {
        assert.ok(e instanceof ProxyV2Error && e.message.startsWith("proxy-v2: decode: "), `${name}: ${String(e)}`);
      }
    }
  });
});

describe("proxy-v2 properties", () => {
  const address = fc.oneof(
    fc.ipV4().map(parseIp),
    fc.ipV6().map(parseIp),
    fc.uint8Array({ minLength: 4, maxLength: 4 }).map((b) => parseIp(`::ffff:${b.join(".")}`)),
    fc.uint8Array({ minLength: 16, maxLength: 16 }).map(ipFromBytes),
  );
  const endpoint = fc.record({ address, port: fc.integer({ min: 0, max: 65535 }) });
  const header: fc.Arbitrary<ProxyHeader> = fc.record(
    {
      source: endpoint,
      destination: endpoint,
      connectionId: fc.uint8Array({ minLength: 16, maxLength: 16 }),
      spiffeId: fc.string({ unit: "binary", minLength: 1, maxLength: 300 }).filter((s) => !s.includes("\0")),
      tlsVersion: fc.stringMatching(/^[\x21-\x7e]{1,20}$/),
    },
    { requiredKeys: ["source", "destination", "connectionId", "spiffeId"] },
  );

  test("decode(encode(h)) gives h back", () => {
    fc.assert(fc.property(header, (h) => assertRoundTrip(h)), { numRuns: 300 });
  });

  function outcome(b: Uint8Array): "need_more" | { header: DecodedProxyV2; length: number } | ProxyV2Error {
    try {
      return decodeProxyV2(b);
    } catch (e) {
      if (e instanceof ProxyV2Error) return e;
      throw e;
    }
  }

  /** Every prefix: need_more, then one decision that more bytes never change. */
  function consistent(x: Uint8Array): void {
    let decided: ReturnType<typeof outcome> = "need_more";
    for (let n = 0; n <= x.length; n++) {
      const o = outcome(x.subarray(0, n));
      if (decided === "need_more") decided = o;
      else if (decided instanceof ProxyV2Error) assert.ok(o instanceof ProxyV2Error && o.code === decided.code, `prefix ${n}`);
      else assert.deepEqual(o, decided, `prefix ${n}`);
    }
  }

  test("arbitrary bytes: a result, need_more or ProxyV2Error, the same for longer prefixes", () => {
    const sig = Uint8Array.from(SIG);
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      fc.uint8Array({ maxLength: 200 }).map((b) => Uint8Array.from([...sig, ...b])),
      fc
        .tuple(fc.constantFrom(0x20, 0x21), fc.constantFrom(0x00, 0x11, 0x21), fc.uint8Array({ maxLength: 120 }))
        .map(([vc, fam, b]) => Uint8Array.from([...sig, vc, fam, ...u16(b.length), ...b])),
    );
    fc.assert(fc.property(bytes, consistent), { numRuns: 500 });
  });

  test("valid headers mutated byte by byte: a result, need_more or ProxyV2Error", () => {
    const mutated = fc.tuple(header, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 })).map(([h, edits]) => {
      const b = encodeProxyV2(h);
      for (const [at, v] of edits) b[at % b.length] = v;
      return b;
    });
    fc.assert(fc.property(mutated, consistent), { numRuns: 300 });
  });
});
