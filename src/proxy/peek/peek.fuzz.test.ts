/**
 * Property tests of peek (../shared/STYLE.md point 6): on any bytes it returns a result or throws
 * PeekError, never anything else; it finishes; need_more is never the answer for MAX_PEEK_BYTES
 * bytes or more; and more bytes never change a decision (need_more, then one result for good or
 * an error for good). Inputs: arbitrary bytes, generated valid ClientHellos and request heads
 * (checked to give what was built), and those mutated byte by byte. Server names on their own: any
 * bytes give a canonical name or peek_tls_bad_sni; normalising is idempotent and case-blind; an
 * IP literal gives no name.
 */
import fc from "fast-check";
import { byteMutation, mutateBytes } from "../../../test/helpers/byte-mutations.ts";
import { fuzzRuns } from "../../../test/fuzz-runs.ts";
import { assert, describe, test } from "../../../test/shim.ts";
import { MAX_PEEK_BYTES, PeekError, peek, type PeekResult } from "./peek.ts";
import { u16, vec8, vec16, ascii, ext, minimalHello, serverNameExt } from "./hello-bytes.ts";

const RUNS = fuzzRuns(300);

function outcome(b: Uint8Array): PeekResult | PeekError {
  try {
    return peek(b);
  } catch (e) {
    if (e instanceof PeekError) return e;
    throw e;
  }
}

/** The one property every input must have: its own outcome and that of every prefix agree. */
function consistent(x: Uint8Array, everyPrefix: boolean): void {
  let decided: PeekResult | null = null;
  let failed = false;
  const step = everyPrefix ? 1 : Math.max(1, Math.floor(x.length / 40));
  for (let n = 0; n <= x.length; n = n === x.length ? n + 1 : Math.min(x.length, n + step)) {
    const o = outcome(x.subarray(0, n));
    if (o instanceof PeekError) {
      failed = true;
      continue;
    }
    assert.ok(!failed, `an error at a shorter prefix, ${o.kind} at ${n}`);
    if (o.kind === "need_more") {
      assert.ok(decided === null, `need_more at ${n} after a result`);
      assert.ok(n < MAX_PEEK_BYTES, `need_more for ${n} bytes`);
    } else if (decided === null) {
      decided = o;
    } else {
      assert.deepEqual(o, decided, `another result at ${n}`);
    }
  }
}


const label = fc.stringMatching(/^[a-zA-Z0-9_]([a-zA-Z0-9_-]{0,10}[a-zA-Z0-9_])?$/);
const hostName = fc
  .tuple(fc.array(label, { minLength: 0, maxLength: 3 }), fc.stringMatching(/^[a-zA-Z]{1,6}$/), fc.boolean())
  .map(([ls, tld, dot]) => [...ls, tld].join(".") + (dot ? "." : ""));

interface HelloSpec {
  name: string | null;
  alpn: string[];
  sessionId: number;
  suites: number;
  extra: [number, Uint8Array][];
  fragment: number;
  recordVersion: number;
}

const helloSpec: fc.Arbitrary<HelloSpec> = fc.record({
  name: fc.option(hostName, { nil: null }),
  alpn: fc.array(fc.stringMatching(/^[\x21-\x7e]{1,12}$/), { maxLength: 4 }),
  sessionId: fc.integer({ min: 0, max: 32 }),
  suites: fc.integer({ min: 1, max: 20 }),
  extra: fc.uniqueArray(fc.tuple(fc.integer({ min: 1, max: 0xfffe }).filter((t) => t !== 16 && t !== 41), fc.uint8Array({ maxLength: 40 })), {
    selector: ([t]) => t,
    maxLength: 6,
  }),
  fragment: fc.oneof(fc.integer({ min: 1, max: 64 }), fc.constant(1 << 14)),
  recordVersion: fc.integer({ min: 1, max: 4 }),
});

function buildHello(s: HelloSpec, padding = 0): Uint8Array {
  const exts = [
    ...(s.name === null ? [] : ext(0, vec16([0, ...vec16(ascii(s.name))]))),
    ...(s.alpn.length === 0 ? [] : ext(16, vec16(s.alpn.flatMap((a) => vec8(ascii(a)))))),
    ...s.extra.flatMap(([t, d]) => ext(t, [...d])),
    ...(padding > 0 ? ext(21, new Array<number>(padding).fill(0)) : []),
  ];
  const body = [3, 3, ...new Array<number>(32).fill(5), ...vec8(new Array<number>(s.sessionId).fill(1)), ...vec16(new Array<number>(2 * s.suites).fill(0x2f)), 1, 0, ...vec16(exts)];
  const hs = [1, 0, ...u16(body.length), ...body];
  const out: number[] = [];
  for (let i = 0; i < hs.length; i += s.fragment) {
    const part = hs.slice(i, i + s.fragment);
    out.push(22, 3, s.recordVersion, ...u16(part.length), ...part);
  }
  return Uint8Array.from(out);
}

interface HeadSpec {
  method: string;
  path: string;
  host: string;
  port: number | null;
  headers: [string, string][];
  version: "HTTP/1.1" | "HTTP/1.0";
}

const FRAMING = ["host", "content-length", "transfer-encoding"];
const headSpec: fc.Arbitrary<HeadSpec> = fc.record({
  method: fc.constantFrom("GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"),
  path: fc.stringMatching(/^\/[A-Za-z0-9/._~%?=&-]{0,40}$/),
  host: fc.oneof(hostName, fc.constantFrom("[::1]", "192.0.2.7", "[2001:db8::5]")),
  port: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: null }),
  headers: fc.array(
    fc.tuple(
      fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,16}$/).filter((n) => !FRAMING.includes(n.toLowerCase())),
      fc.stringMatching(/^([\x21-\x7e\x80-\xff]([\x20-\x7e\x80-\xff]{0,30}[\x21-\x7e\x80-\xff])?)?$/),
    ),
    { maxLength: 8 },
  ),
  version: fc.constantFrom("HTTP/1.1" as const, "HTTP/1.0" as const),
});

function headText(s: HeadSpec, filler = ""): string {
  const authority = s.port === null ? s.host : `${s.host}:${s.port}`;
  const headers = s.headers.map(([n, v]) => `${n}: ${v}\r\n`).join("");
  return `${s.method} ${s.path} ${s.version}\r\nHost: ${authority}\r\n${headers}${filler}\r\n`;
}

function latin1(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

const mutation = byteMutation;
const mutate = mutateBytes;

describe("peek on arbitrary bytes", () => {
  const starts = [[], [22], [22, 3, 1], [22, 3, 3, 0, 0x40, 1, 0], [...latin1("GET / HTTP/1.1\r\n")], [...latin1("CONNECT ")], [...latin1("G")]];
  test("returns a result or throws PeekError, and stays consistent", () => {
    fc.assert(
      fc.property(fc.constantFrom(...starts), fc.uint8Array({ maxLength: 300 }), (start, rest) => consistent(Uint8Array.from([...start, ...rest]), false)),
      { numRuns: RUNS * 3 },
    );
  });
});

describe("peek on generated ClientHellos", () => {
  test("gives the name and ALPN it was built with", () => {
    fc.assert(
      fc.property(helloSpec, (s) => {
        const bytes = buildHello(s);
        const name = s.name === null ? null : s.name.toLowerCase().replace(/\.$/, "");
        assert.deepEqual(peek(bytes), { kind: "tls", serverName: name, alpn: s.alpn, clientHelloLength: bytes.length });
      }),
      { numRuns: RUNS },
    );
  });

  test("mutated: a result or PeekError at every prefix, consistently", () => {
    fc.assert(
      fc.property(helloSpec, fc.array(mutation, { minLength: 1, maxLength: 4 }), (s, ms) => consistent(mutate(buildHello(s), ms), true)),
      { numRuns: fuzzRuns(150) },
    );
  });

  test(`around ${MAX_PEEK_BYTES} bytes: never need_more at or past the limit`, () => {
    fc.assert(
      fc.property(helloSpec, fc.integer({ min: -40, max: 40 }), (s, d) => {
        const bytes = buildHello(s, Math.max(1, MAX_PEEK_BYTES - buildHello(s).length - 4 + d));
        consistent(bytes, false);
        const o = outcome(bytes.subarray(0, MAX_PEEK_BYTES));
        assert.ok(o instanceof PeekError || o.kind === "tls");
      }),
      { numRuns: fuzzRuns(50) },
    );
  });
});

describe("peek on generated request heads", () => {
  test("gives the host it was built with", () => {
    fc.assert(
      fc.property(headSpec, (s) => {
        const text = headText(s);
        const name = s.host.startsWith("[") || /^[0-9.]+$/.test(s.host) ? null : s.host.toLowerCase().replace(/\.$/, "");
        assert.deepEqual(peek(latin1(`${text}body`)), {
          kind: "http", method: s.method, target: s.path, host: name, hostPort: s.port, version: s.version, headLength: text.length,
        });
      }),
      { numRuns: RUNS },
    );
  });

  test("mutated: a result or PeekError at every prefix, consistently", () => {
    fc.assert(
      fc.property(headSpec, fc.array(mutation, { minLength: 1, maxLength: 4 }), (s, ms) => consistent(mutate(latin1(headText(s)), ms), true)),
      { numRuns: fuzzRuns(150) },
    );
  });

  test(`around ${MAX_PEEK_BYTES} bytes: never need_more at or past the limit`, () => {
    fc.assert(
      fc.property(headSpec, fc.integer({ min: 1000, max: 8000 }), fc.integer({ min: -40, max: 40 }), (s, line, d) => {
        const room = MAX_PEEK_BYTES - headText(s).length + d;
        let filler = "";
        while (room - filler.length > line + 10) filler += `X-F: ${"f".repeat(line)}\r\n`;
        filler += `X-G: ${"g".repeat(Math.max(0, room - filler.length - 7))}\r\n`;
        const bytes = latin1(headText(s, filler));
        consistent(bytes, false);
        const o = outcome(bytes.subarray(0, MAX_PEEK_BYTES));
        assert.ok(o instanceof PeekError || o.kind === "http");
      }),
      { numRuns: fuzzRuns(50) },
    );
  });
});

describe("peek on server names", () => {
  const named = (name: string | readonly number[]): PeekResult | PeekError => outcome(minimalHello([...serverNameExt(name), ...ext(16, vec16(vec8(ascii("h2"))))]));
  const nameBytes = fc.oneof(
    fc.uint8Array({ maxLength: 300 }).map((b) => [...b]),
    fc.array(fc.constantFrom(..."aZ09-._:[]. \u0000\u007f*%".split("").map((c) => c.charCodeAt(0)), 0xc3, 0xff), { maxLength: 40 }),
    hostName.map(ascii),
  );
  const ASCII_UPPER = (s: string) => s.replace(/[a-z]/g, (c) => c.toUpperCase());

  test("any bytes: a canonical name, no name, or peek_tls_bad_sni; never another error", () => {
    fc.assert(
      fc.property(nameBytes, (b) => {
        const o = named(b);
        if (o instanceof PeekError) return assert.equal(o.code, "peek_tls_bad_sni");
        assert.equal(o.kind, "tls");
        if (o.kind !== "tls" || o.serverName === null) return;
        assert.match(o.serverName, /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/);
        assert.ok(o.serverName.length <= 253);
      }),
      { numRuns: RUNS * 3 },
    );
  });

  test("normalising is idempotent, blind to ASCII case and to one trailing dot", () => {
    fc.assert(
      fc.property(nameBytes, (b) => {
        const text = String.fromCharCode(...b);
        const o = named(b);
        const upper = named(ASCII_UPPER(text));
        if (o instanceof PeekError || upper instanceof PeekError) {
          assert.ok(o instanceof PeekError && upper instanceof PeekError, `${JSON.stringify(text)}: refused in one case only`);
          return;
        }
        assert.deepEqual(upper, o);
        if (o.kind !== "tls" || o.serverName === null) return;
        for (const again of [o.serverName, `${o.serverName}.`, ASCII_UPPER(o.serverName)]) {
          const r = named(again);
          assert.ok(!(r instanceof PeekError) && r.kind === "tls" && r.serverName === o.serverName, JSON.stringify(again));
        }
      }),
      { numRuns: RUNS * 3 },
    );
  });

  test("an IP literal, in any case, bracketed or not for IPv6, gives no name", () => {
    const literal = fc.oneof(
      fc.ipV4(),
      fc.tuple(fc.ipV6(), fc.boolean(), fc.boolean()).map(([a, bracketed, upper]) => {
        const t = upper ? a.toUpperCase() : a;
        return bracketed ? `[${t}]` : t;
      }),
    );
    fc.assert(
      fc.property(literal, (a) => {
        const o = named(a);
        const other = named("x.example");
        assert.ok(!(o instanceof PeekError) && !(other instanceof PeekError), `${a}: ${o instanceof PeekError ? o.message : ""}`);
        assert.deepEqual({ ...o, clientHelloLength: 0 }, { ...other, serverName: null, clientHelloLength: 0 });
      }),
      { numRuns: RUNS },
    );
  });
});
