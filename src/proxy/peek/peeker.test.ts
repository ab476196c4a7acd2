/**
 * The Peeker, fed a connection's bytes as they arrive: (1) the bytes it reads in all grow with the
 * bytes sent, not with their square, however thinly they are dripped (a head of 16 KiB a byte at a
 * time was 16 KiB read per byte before); counted as reads of the caller's buffer through a Proxy,
 * not timed. (2) Split anywhere, it answers at each piece what peek answers on the bytes so far,
 * and what peek answers on them whole.
 */
import fc from "fast-check";
import { byteMutation, mutateBytes } from "../../../test/helpers/byte-mutations.ts";
import { fuzzRuns } from "../../../test/fuzz-runs.ts";
import { assert, describe, test } from "../../../test/shim.ts";
import { ClientHelloReader } from "./client-hello.ts";
import { GrowingBytes } from "./growing-bytes.ts";
import { ascii, ext, minimalHello, serverNameExt, u16, vec8, vec16 } from "./hello-bytes.ts";
import { MAX_PEEK_BYTES, PeekError, Peeker, peek, type PeekResult } from "./peek.ts";

const enc = (s: string): Uint8Array => Uint8Array.from([...s].map((c) => c.charCodeAt(0)));

/** Reads allowed per byte sent: a constant (each byte is scanned, then parsed or copied, once). */
const PER_BYTE = 6;

class OverBudget extends Error {}

/**
 * `bytes` behind a Proxy that adds to `meter` one per index read and the length of each subarray
 * or slice taken (a copy reads them all); past `budget` it throws, so quadratic code fails fast.
 */
function counted(bytes: Uint8Array, meter: { reads: number; budget: number }): Uint8Array {
  const spend = (n: number) => {
    meter.reads += n;
    if (meter.reads > meter.budget) throw new OverBudget(`over ${meter.budget} reads`);
  };
  return new Proxy(bytes, {
    get(target, key) {
      if (typeof key === "string" && key.length > 0 && key.charCodeAt(0) >= 48 && key.charCodeAt(0) <= 57) {
        spend(1);
        return target[Number(key)];
      }
      const v: unknown = Reflect.get(target, key, target);
      if (key === "subarray" || key === "slice") {
        return (from?: number, to?: number) => {
          const part = target[key](from, to);
          spend(part.length);
          return part;
        };
      }
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

/** Feeds `x` to a Peeker `step` bytes per call; the answer and the reads of the caller's buffer it took. */
function drip(x: Uint8Array, step: number): { answer: PeekResult | string; reads: number } {
  const meter = { reads: 0, budget: PER_BYTE * x.length + 64 };
  const p = new Peeker();
  let answer: PeekResult | string = { kind: "need_more" };
  for (let n = 0; n < x.length; ) {
    n = Math.min(x.length, n + step);
    try {
      answer = p.next(counted(x.subarray(0, n), meter));
    } catch (e) {
      if (!(e instanceof PeekError)) throw e;
      answer = e.code;
    }
    if (typeof answer === "string" || answer.kind !== "need_more") break;
  }
  return { answer, reads: meter.reads };
}

/** A request head of `size` bytes: long header lines (at most MAX_LINE each), then `end`. */
function longHead(size: number, end = "\r\n"): Uint8Array {
  let text = "GET /v1/models HTTP/1.1\r\nHost: api.example.com\r\n";
  for (let i = 0; size - text.length - end.length > 0; i++) {
    const room = size - text.length - end.length;
    const value = Math.min(8000, room - `X-Pad-${i}: \r\n`.length);
    text += value >= 0 ? `X-Pad-${i}: ${"v".repeat(value)}\r\n` : "X".repeat(room); // too little room left for a field: a line without a colon
  }
  return enc(text + end);
}

/** A ClientHello with a name, ALPN and `count` empty extensions, its handshake split into records of `fragment` bytes. */
function bigHello(count: number, fragment: number): Uint8Array {
  const exts = [...serverNameExt("api.example.com"), ...ext(16, vec16(vec8(ascii("h2"))))];
  for (let t = 0; t < count; t++) exts.push(...ext(1000 + t, []));
  const hs = minimalHello(exts).subarray(5);
  const out: number[] = [];
  for (let i = 0; i < hs.length; i += fragment) {
    const part = hs.subarray(i, i + fragment);
    out.push(22, 3, 1, ...u16(part.length), ...part);
  }
  return Uint8Array.from(out);
}

describe("a Peeker reads each byte a constant number of times, however the bytes are split", () => {
  const cases: [string, Uint8Array, string][] = [
    ["a 16 KiB request head, a byte per read", longHead(MAX_PEEK_BYTES - 1), "http"],
    ["16 KiB of a head that never ends, a byte per read", longHead(MAX_PEEK_BYTES, ""), "peek_too_large"],
    ["a 16 KiB ClientHello of 4,000 extensions, a byte per read", bigHello(4000, 1 << 14), "tls"],
    ["a 16 KiB ClientHello in records of 64 bytes, a byte per read", bigHello(3600, 64), "tls"],
  ];
  for (const [name, bytes, want] of cases) {
    test(name, () => {
      assert.ok(bytes.length >= MAX_PEEK_BYTES - 2000, `${bytes.length} bytes`);
      let got: { answer: PeekResult | string; reads: number };
      try {
        got = drip(bytes, 1);
      } catch (e) {
        if (e instanceof OverBudget) assert.fail(`${bytes.length} bytes a byte at a time took ${e.message}: not linear`);
        throw e;
      }
      assert.equal(typeof got.answer === "string" ? got.answer : got.answer.kind, want);
      assert.ok(got.reads <= PER_BYTE * bytes.length, `${got.reads} reads for ${bytes.length} bytes`);
      if (typeof got.answer !== "string") assert.deepEqual(got.answer, peek(bytes));
    });
  }

  test("the ClientHello's own fields are read once, not again on each read", () => {
    let reads = 0;
    class Counting extends GrowingBytes {
      override get array(): Uint8Array {
        if (++reads > PER_BYTE * bytes.length) throw new OverBudget(`over ${PER_BYTE * bytes.length} reads of the handshake bytes`);
        return super.array;
      }
    }
    const bytes = bigHello(4000, 1 << 14);
    const r = new ClientHelloReader(new Counting());
    let hello = null;
    for (let n = 1; hello === null && n <= bytes.length; n++) hello = r.next(bytes.subarray(0, n));
    assert.equal(hello?.serverName, "api.example.com");
    assert.ok(reads <= PER_BYTE * bytes.length, `${reads} reads of the handshake bytes for ${bytes.length} bytes`);
  });
});

type Answer = PeekResult | { code: string; message: string };

function answerOf(fn: () => PeekResult): Answer {
  try {
    return fn();
  } catch (e) {
    if (e instanceof PeekError) return { code: e.code, message: e.message };
    throw e;
  }
}

const isError = (a: Answer): a is { code: string; message: string } => "code" in a;

/**
 * Feeds `x` in pieces of the given sizes (cycled): until it decides, each answer is peek's on the
 * bytes so far (the same result, or the same code and message); after, the same answer again. At
 * the end: what peek gives on `x` whole when it has not decided before, the same result when it
 * has, and a refusal when it was refused. (A refusal's code may differ from the whole's: peek
 * reports the first fault in the bytes it has, and a later byte can be an earlier fault, such as
 * the bare LF ending a line whose method was already refused.)
 */
function splitAgrees(x: Uint8Array, sizes: readonly number[]): void {
  const p = new Peeker();
  let decided: Answer | null = null;
  let at = 0;
  for (let k = 0; at < x.length; k++) {
    at = Math.min(x.length, at + (sizes[k % sizes.length] ?? 1));
    const got = answerOf(() => p.next(x.subarray(0, at)));
    if (decided !== null) {
      assert.deepEqual(got, decided, `at ${at}: another answer after deciding`);
      continue;
    }
    assert.deepEqual(got, answerOf(() => peek(x.subarray(0, at))), `at ${at} of ${x.length}`);
    if (isError(got) || got.kind !== "need_more") decided = got;
  }
  const whole = answerOf(() => peek(x));
  if (decided === null || !isError(decided)) assert.deepEqual(decided ?? answerOf(() => p.next(x)), whole);
  else assert.ok(isError(whole), `refused in pieces (${decided.code}), not whole`);
}

const mutation = byteMutation;
const mutate = mutateBytes;

const header = fc.tuple(
  fc.constantFrom("Host", "host", "Content-Length", "Transfer-Encoding", "Accept", "X-A", "X A", ""),
  fc.constantFrom("api.example.com", "[::1]:8443", "5", "05, 5", "chunked", "gzip", "", " v ", "a\tb", "a\u0000b", "a\rb", "a\nb"),
);
const head = fc
  .record({
    line: fc.constantFrom("GET / HTTP/1.1", "CONNECT a.example:443 HTTP/1.1", "OPTIONS * HTTP/1.0", "GET http://a.example/ HTTP/1.1", "PRI * HTTP/2.0", "GET  / HTTP/1.1"),
    headers: fc.array(header, { maxLength: 6 }),
    end: fc.constantFrom("\r\n", "\n", "", "\r\nbody"),
  })
  .map((h) => enc(`${h.line}\r\n${h.headers.map(([n, v]) => `${n}: ${v}\r\n`).join("")}${h.end}`));
const hello = fc
  .record({
    name: fc.constantFrom("api.example.com", "API.example.COM.", "a_b", "[::1]", "a\u0000b", ""),
    alpn: fc.array(fc.constantFrom("h2", "http/1.1", ""), { maxLength: 3 }),
    extra: fc.uniqueArray(fc.integer({ min: 1, max: 0xfffe }).filter((t) => t !== 16), { maxLength: 6 }),
    fragment: fc.integer({ min: 1, max: 80 }),
  })
  .map((h) => {
    const exts = [...serverNameExt(h.name), ...(h.alpn.length > 0 ? ext(16, vec16(h.alpn.flatMap((a) => vec8(ascii(a))))) : []), ...h.extra.flatMap((t) => ext(t, [t & 255]))];
    const hs = minimalHello(exts).subarray(5);
    const out: number[] = [];
    for (let i = 0; i < hs.length; i += h.fragment) out.push(22, 3, 3, ...u16(Math.min(h.fragment, hs.length - i)), ...hs.subarray(i, i + h.fragment));
    return Uint8Array.from(out);
  });
const starts = [[], [22], [22, 3, 1], [...enc("GET / HTTP/1.1\r\n")], [...enc("G")], [0x80]];
const input = fc.oneof(
  fc.tuple(fc.constantFrom(...starts), fc.uint8Array({ maxLength: 200 })).map(([s, rest]) => Uint8Array.from([...s, ...rest])),
  fc.tuple(head, fc.array(mutation, { maxLength: 3 })).map(([h, ms]) => mutate(h, ms)),
  fc.tuple(hello, fc.array(mutation, { maxLength: 3 })).map(([h, ms]) => mutate(h, ms)),
);
const sizes = fc.array(fc.oneof(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 400 })), { minLength: 1, maxLength: 12 });

describe("a Peeker fed in pieces answers as peek on the bytes so far", () => {
  test("any bytes, split anywhere", () => {
    fc.assert(fc.property(input, sizes, (x, s) => splitAgrees(x, s)), { numRuns: fuzzRuns(600) });
  });

  test("a byte at a time", () => {
    fc.assert(fc.property(input, (x) => splitAgrees(x, [1])), { numRuns: fuzzRuns(200) });
  });

  test("at the limit: a head or hello running to MAX_PEEK_BYTES, in pieces", () => {
    for (const x of [longHead(MAX_PEEK_BYTES - 1), longHead(MAX_PEEK_BYTES), longHead(MAX_PEEK_BYTES + 1), longHead(MAX_PEEK_BYTES + 50, ""), bigHello(4000, 1 << 14), bigHello(3600, 64)]) {
      for (const s of [[997], [4096], [MAX_PEEK_BYTES - 1, 1], [MAX_PEEK_BYTES + 1]]) splitAgrees(x, s);
    }
  });
});
