import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { fuzzRuns } from "../../test/fuzz-runs.ts";
import { parseIp } from "../policy/address.ts";
import { PolicyError } from "../policy/errors.ts";
import { decodeAnswer, encodeQuery, encodeResponse, MAX_CHAIN, type Question, type WireRecord } from "./dns-wire.ts";

const ip = parseIp;
const qA: Question = { id: 0x1234, name: "example.com", type: "A" };
const qAAAA: Question = { id: 0x1234, name: "example.com", type: "AAAA" };
/** Where the first answer record starts in a response to a question for example.com. */
const AFTER_QUESTION = 12 + 13 + 4;

const a = (name: string, address: string, ttl = 300): WireRecord => ({ name, ttl, type: "A", address: ip(address) });
const aaaa = (name: string, address: string, ttl = 300): WireRecord => ({ name, ttl, type: "AAAA", address: ip(address) });
const cname = (name: string, target: string, ttl = 300): WireRecord => ({ name, ttl, type: "CNAME", target });
const soa = (name: string, minimum: number, ttl = 3600): WireRecord => ({ name, ttl, type: "SOA", minimum });

/** The code decodeAnswer throws, or "ok"; anything other than a PolicyError fails the test. */
function outcome(bytes: Uint8Array, q: Question = qA): string {
  try {
    decodeAnswer(bytes, q);
    return "ok";
  } catch (e) {
    if (e instanceof PolicyError) return e.code;
    throw e;
  }
}

function texts(bytes: Uint8Array, q: Question = qA): string[] {
  return decodeAnswer(bytes, q).addresses.map((x) => x.address.text);
}

/** A response to qA whose answer section is the given raw bytes (`count` records). */
function rawAnswer(count: number, ...record: number[]): Uint8Array {
  const head = encodeResponse(qA, {});
  const out = Uint8Array.from([...head, ...record]);
  out[7] = count;
  return out;
}

/** A well-formed A record's fixed part and data after an owner name. */
const A_TAIL = [0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 10, 0, 0, 1];

describe("encodeQuery", () => {
  test("one question of class IN with RD set", () => {
    const q = encodeQuery(0xbeef, "Example.COM", "AAAA");
    expect(Array.from(q)).toEqual([0xbe, 0xef, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7, ..."Example".split("").map((c) => c.charCodeAt(0)), 3, 67, 79, 77, 0, 0, 28, 0, 1]);
    expect(encodeQuery(1, "a.b.", "A").length).toBe(12 + 5 + 4);
  });

  test.each([
    ["", "empty"],
    [".", "empty"],
    ["a..b", "empty label"],
    [`${"x".repeat(64)}.com`, "63"],
    [Array(128).fill("a").join("."), "255"],
    ["bücher.de", "ASCII"],
    ["a b.com", "ASCII"],
  ])("refuses %j as policy_bad_host", (name, why) => {
    expect(() => encodeQuery(1, name, "A")).toThrow(expect.objectContaining({ code: "policy_bad_host", message: expect.stringContaining(why) }));
  });

  test("a name of 253 characters (255 octets on the wire) is accepted", () => {
    const longest = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61)].join(".");
    expect(longest.length).toBe(253);
    expect(encodeQuery(1, longest, "A").length).toBe(12 + 255 + 4);
    expect(() => encodeQuery(1, `${longest}e`, "A")).toThrow(expect.objectContaining({ code: "policy_bad_host" }));
  });
});

describe("decodeAnswer accepts", () => {
  test("A records: addresses in order, ttl the least", () => {
    const d = decodeAnswer(encodeResponse(qA, { answers: [a("example.com", "192.0.2.1", 300), a("example.com", "192.0.2.2", 60)] }), qA);
    expect(d).toEqual({ rcode: 0, truncated: false, ttl: 60, addresses: [{ address: ip("192.0.2.1"), ttl: 300 }, { address: ip("192.0.2.2"), ttl: 60 }] });
  });

  test("AAAA records", () => {
    const d = decodeAnswer(encodeResponse(qAAAA, { answers: [aaaa("example.com", "2001:db8::1", 120)] }), qAAAA);
    expect(d.addresses.map((x) => [x.address.family, x.address.text])).toEqual([[6, "2001:db8::1"]]);
    expect(d.ttl).toBe(120);
  });

  test("a CNAME chain: the last name's addresses, ttl bounded by every link", () => {
    const answers = [cname("example.com", "a.cdn.net", 40), cname("a.cdn.net", "B.CDN.net", 500), a("b.cdn.net", "198.51.100.7", 300)];
    const d = decodeAnswer(encodeResponse(qA, { answers }), qA);
    expect(d.addresses.map((x) => x.address.text)).toEqual(["198.51.100.7"]);
    expect(d.ttl).toBe(40);
  });

  test(`a chain of ${MAX_CHAIN} links, not ${MAX_CHAIN + 1}`, () => {
    const chain = (n: number) => [...Array.from({ length: n }, (_, i) => cname(i === 0 ? "example.com" : `c${i}.net`, `c${i + 1}.net`)), a(`c${n}.net`, "192.0.2.9")];
    expect(texts(encodeResponse(qA, { answers: chain(MAX_CHAIN) }))).toEqual(["192.0.2.9"]);
    expect(outcome(encodeResponse(qA, { answers: chain(MAX_CHAIN + 1) }))).toBe("policy_dns_bad_answer");
  });

  test("names compared case-insensitively (RFC 4343)", () => {
    const bytes = encodeResponse({ ...qA, name: "EXAMPLE.Com" }, { answers: [a("eXample.COM.", "192.0.2.1")] });
    expect(texts(bytes)).toEqual(["192.0.2.1"]);
  });

  test("records of another owner, type or class are ignored", () => {
    const answers: WireRecord[] = [
      a("attacker.example", "203.0.113.66"),
      a("sub.example.com", "203.0.113.67"),
      aaaa("example.com", "2001:db8::66"),
      { name: "example.com", ttl: 1, type: 16, rdata: Uint8Array.of(3, 97, 98, 99) },
      a("example.com", "192.0.2.1", 50),
    ];
    const d = decodeAnswer(encodeResponse(qA, { answers }), qA);
    expect(d.addresses.map((x) => x.address.text)).toEqual(["192.0.2.1"]);
    expect(d.ttl).toBe(50);
    const chaos = encodeResponse(qA, { answers: [a("example.com", "192.0.2.2")] });
    chaos[AFTER_QUESTION + 13 + 2 + 1] = 3; // class CH
    expect(texts(chaos)).toEqual([]);
  });

  test("an address the chain does not end at is ignored", () => {
    expect(texts(encodeResponse(qA, { answers: [cname("example.com", "x.net"), a("example.com", "203.0.113.1")] }))).toEqual([]);
  });

  test("compression pointers that point backwards", () => {
    expect(texts(rawAnswer(1, 0xc0, 12, ...A_TAIL))).toEqual(["10.0.0.1"]);
    // "www" then a pointer to example.com, then "www.example.com" as a pointer to that.
    const chained = rawAnswer(1, ...[3, 119, 119, 119, 0xc0, 12], 0, 5, 0, 1, 0, 0, 0, 9, 0, 2, 0xc0, AFTER_QUESTION);
    expect(outcome(chained)).toBe("ok");
  });

  test("a TTL with the top bit set is 0 (RFC 2181 section 8)", () => {
    const bytes = encodeResponse(qA, { answers: [a("example.com", "192.0.2.1", 0x80000001)] });
    expect(decodeAnswer(bytes, qA).ttl).toBe(0);
    expect(decodeAnswer(encodeResponse(qA, { answers: [a("example.com", "192.0.2.1", 0x7fffffff)] }), qA).ttl).toBe(0x7fffffff);
  });

  test("NXDOMAIN with an SOA: no addresses, ttl min(SOA ttl, MINIMUM) (RFC 2308 section 5)", () => {
    expect(decodeAnswer(encodeResponse(qA, { rcode: 3, authority: [soa("com", 900, 3600)] }), qA)).toEqual({ rcode: 3, truncated: false, addresses: [], ttl: 900 });
    expect(decodeAnswer(encodeResponse(qA, { rcode: 3, authority: [soa("example.com", 900, 120)] }), qA).ttl).toBe(120);
    expect(decodeAnswer(encodeResponse(qA, { rcode: 3, authority: [soa(".", 60)] }), qA).ttl).toBe(60);
  });

  test("NXDOMAIN ignores address records, and an SOA of an unrelated zone", () => {
    const d = decodeAnswer(encodeResponse(qA, { rcode: 3, answers: [a("example.com", "192.0.2.1")], authority: [soa("example.net", 5)] }), qA);
    expect(d).toEqual({ rcode: 3, truncated: false, addresses: [], ttl: null });
  });

  test("NODATA: rcode 0, no record of the type; SOA ttl after a chain", () => {
    expect(decodeAnswer(encodeResponse(qAAAA, { answers: [a("example.com", "192.0.2.1")] }), qAAAA)).toEqual({ rcode: 0, truncated: false, addresses: [], ttl: null });
    const d = decodeAnswer(encodeResponse(qA, { answers: [cname("example.com", "x.example.org", 20)], authority: [soa("example.org", 600)] }), qA);
    expect([d.addresses.length, d.ttl]).toEqual([0, 20]);
  });

  test("SERVFAIL, REFUSED and TC=1 report the header and read nothing past the question", () => {
    expect(decodeAnswer(encodeResponse(qA, { rcode: 2 }), qA)).toEqual({ rcode: 2, truncated: false, addresses: [], ttl: null });
    expect(decodeAnswer(encodeResponse(qA, { rcode: 5 }), qA).rcode).toBe(5);
    const tc = encodeResponse(qA, { truncated: true, answers: [a("example.com", "192.0.2.1")] });
    expect(decodeAnswer(tc.subarray(0, AFTER_QUESTION + 3), qA)).toEqual({ rcode: 0, truncated: true, addresses: [], ttl: null });
  });
});

describe("decodeAnswer rejects with policy_dns_bad_answer", () => {
  const good = encodeResponse(qA, { answers: [cname("example.com", "b.example.net"), a("b.example.net", "192.0.2.1")], authority: [soa("example.net", 30)] });
  const patched = (at: number, ...bytes: number[]) => {
    const out = good.slice();
    out.set(bytes, at);
    return out;
  };
  const cases: [string, Uint8Array, string, Question?][] = [
    ["an empty message", new Uint8Array(0), "shorter than a header"],
    ["a query (QR=0)", patched(2, 0x01, 0x80), "not a response"],
    ["another id", good, "does not match query id", { ...qA, id: 0x1235 }],
    ["opcode 2 (status)", patched(2, 0x91, 0x80), "opcode 2"],
    ["no question", patched(4, 0, 0), "0 questions"],
    ["two questions", patched(4, 0, 2), "2 questions"],
    ["another name", good, "not \"example.org\"", { ...qA, name: "example.org" }],
    ["a parent name", good, "not \"com\"", { ...qA, name: "com" }],
    ["a longer name", good, "not \"www.example.com\"", { ...qA, name: "www.example.com" }],
    ["another type", good, "is not AAAA IN", qAAAA],
    ["another class", patched(AFTER_QUESTION - 1, 3), "class 3"],
    ["a pointer to itself", rawAnswer(1, 0xc0, AFTER_QUESTION, ...A_TAIL), "does not point backwards"],
    ["a pointer loop through a label", rawAnswer(1, 1, 97, 0xc0, AFTER_QUESTION, ...A_TAIL), "does not point backwards"],
    ["a forward pointer", rawAnswer(1, 0xc0, AFTER_QUESTION + 2 + A_TAIL.length, ...A_TAIL, 0), "does not point backwards"],
    ["a pointer past the end", rawAnswer(1, 0xff, 0xff, ...A_TAIL), "does not point backwards"],
    ["an extended label type (0x40)", rawAnswer(1, 0x41, 0, ...A_TAIL), "unsupported type"],
    ["a name over 255 octets", rawAnswer(1, ...Array(5).fill([63, ...Array(63).fill(120)]).flat(), 0, ...A_TAIL), "longer than 255"],
    ["an A record with 5 bytes", rawAnswer(1, 0xc0, 12, ...A_TAIL.slice(0, 9), 5, 10, 0, 0, 1, 1), "5 bytes of data, not 4"],
    ["an A record with 16 bytes", encodeResponse(qA, { answers: [{ name: "example.com", ttl: 1, type: 1, rdata: new Uint8Array(16) }] }), "16 bytes of data, not 4"],
    ["an AAAA record with 4 bytes", encodeResponse(qAAAA, { answers: [{ name: "example.com", ttl: 1, type: 28, rdata: new Uint8Array(4) }] }), "4 bytes of data, not 16", qAAAA],
    ["an answer count past the records", patched(7, 3), "message ends inside"],
    ["a record's data past the end", rawAnswer(1, 0xc0, 12, ...A_TAIL.slice(0, 9), 200, 10, 0, 0, 1), "message ends inside a record's data"],
    ["a cname loop", encodeResponse(qA, { answers: [cname("example.com", "b.net"), cname("b.net", "EXAMPLE.com")] }), "cname loop"],
    ["two cnames for one name", encodeResponse(qA, { answers: [cname("example.com", "b.net"), cname("example.com", "c.net")] }), "several cnames"],
    ["a cname with bytes after its name", encodeResponse(qA, { answers: [{ name: "example.com", ttl: 1, type: 5, rdata: Uint8Array.of(1, 98, 0, 0) }] }), "wrong length"],
    [
      "a cname name running past its data",
      encodeResponse(qA, { answers: [{ name: "example.com", ttl: 1, type: 5, rdata: Uint8Array.of(1, 98) }, a("b.example.com", "192.0.2.1")] }),
      "runs past its record",
    ],
    ["an soa of the wrong length", encodeResponse(qA, { rcode: 3, authority: [{ name: "com", ttl: 1, type: 6, rdata: Uint8Array.of(0, 0, 1, 2, 3) }] }), "wrong length"],
  ];
  test.each(cases)("%s", (_, bytes, why, q = qA) => {
    expect(outcome(bytes, q)).toBe("policy_dns_bad_answer");
    expect(() => decodeAnswer(bytes, q)).toThrow(why);
  });

  test("every message cut short of a valid answer", () => {
    expect(outcome(good)).toBe("ok");
    for (let n = 0; n < good.length; n++) expect([n, outcome(good.subarray(0, n))]).toEqual([n, "policy_dns_bad_answer"]);
  });

  test("messages name the problem, not the bytes", () => {
    expect(() => decodeAnswer(good, { ...qA, name: "example.org" })).toThrow('dns: response is for "example.com", not "example.org"');
    expect(() => decodeAnswer(good, { ...qA, id: 7 })).toThrow("dns: response id 4660 does not match query id 7");
  });
});

describe("decodeAnswer on hostile bytes returns or throws PolicyError", () => {
  const valid = [
    encodeResponse(qA, { answers: [cname("example.com", "b.example.net", 10), a("b.example.net", "192.0.2.1"), a("b.example.net", "192.0.2.2")], authority: [soa("example.net", 30)] }),
    rawAnswer(2, 0xc0, 12, ...A_TAIL, 3, 119, 119, 119, 0xc0, 12, ...A_TAIL),
    encodeResponse(qA, { rcode: 3, authority: [soa("com", 30)] }),
  ];

  test("arbitrary bytes", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => void outcome(bytes)), { numRuns: fuzzRuns(1000) });
  });

  test("arbitrary bytes after a matching header and question", () => {
    const head = valid[0]!.subarray(0, AFTER_QUESTION);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 3, maxLength: 3 }), fc.uint8Array({ maxLength: 400 }), (counts, tail) => {
        const bytes = Uint8Array.from([...head, ...tail]);
        counts.forEach((c, i) => (bytes[7 + 2 * i] = c));
        void outcome(bytes);
      }),
      { numRuns: fuzzRuns(1000) },
    );
  });

  test("valid answers with bytes changed", () => {
    const mutation = fc.record({ which: fc.nat(valid.length - 1), edits: fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 6 }) });
    fc.assert(
      fc.property(mutation, ({ which, edits }) => {
        const bytes = valid[which]!.slice();
        for (const [at, v] of edits) bytes[at % bytes.length] = v;
        const r = outcome(bytes);
        expect(["ok", "policy_dns_bad_answer"]).toContain(r);
      }),
      { numRuns: fuzzRuns(1000) },
    );
  });
});
