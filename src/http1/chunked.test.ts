import { assert, describe, test } from "../../test/shim.ts";
import { DEFAULT_LIMITS } from "./errors.ts";
import { RequestParser } from "./request-parser.ts";
import { bytes, errorCode, runRequests } from "./test-helpers.ts";

const HEAD = "POST /up HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n";
const NEXT = "GET /next HTTP/1.1\r\nHost: a.example\r\n\r\n";

/** The body and trailers of a chunked request whose coded body is `coded`, and that a request follows it. */
function decode(coded: string): { body: string; trailers: [string, string][] } {
  const steps = runRequests(`${HEAD}${coded}${NEXT}`);
  const kinds = steps.map((s) => s.kind);
  const code = errorCode(steps);
  if (code !== null) throw new Error(`${code}: ${JSON.stringify(steps.at(-1))}`);
  const end = steps.find((s) => s.kind === "end");
  assert.ok(end?.kind === "end");
  assert.deepEqual(kinds.slice(-2), ["head", "end"], "the next request follows");
  const body = steps[1]?.kind === "body" ? steps[1].text : "";
  return { body, trailers: end.trailers };
}

const code = (coded: string) => errorCode(runRequests(`${HEAD}${coded}`));

describe("chunked bodies accepted", () => {
  const cases: [string, string, string, [string, string][]?][] = [
    ["one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello"],
    ["no chunk at all", "0\r\n\r\n", ""],
    ["several chunks", "1\r\na\r\n2\r\nbc\r\n3\r\ndef\r\n0\r\n\r\n", "abcdef"],
    ["hex in either case, leading zeros", "A\r\n0123456789\r\n00000000000000b\r\n0123456789a\r\n000\r\n\r\n", "01234567890123456789a"],
    ["16 digits", "000000000000000A\r\n0123456789\r\n0\r\n\r\n", "0123456789"],
    ["data holding CRLF", "4\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n\r\n"],
    ["an extension", "5;a\r\nhello\r\n0\r\n\r\n", "hello"],
    ["extensions with values", '5;a=b;c="d;e \\" f"\r\nhello\r\n0;last=1\r\n\r\n', "hello"],
    ["whitespace around ; and =", "5 ; a = b ;c\r\nhello\r\n0\r\n\r\n", "hello"],
    ["a tab before ;", "5\t;a\r\nhello\r\n0\r\n\r\n", "hello"],
    [`extensions of ${DEFAULT_LIMITS.maxChunkExtBytes} bytes`, `5;${"a".repeat(DEFAULT_LIMITS.maxChunkExtBytes - 1)}\r\nhello\r\n0\r\n\r\n`, "hello"],
    ["trailers", "5\r\nhello\r\n0\r\nX-Sum: 1 \r\nx-other:2\r\n\r\n", "hello", [["X-Sum", "1"], ["x-other", "2"]]],
  ];
  for (const [name, coded, body, trailers] of cases) {
    test(name, () => assert.deepEqual(decode(coded), { body, trailers: trailers ?? [] }));
  }

  test("chunk data are copies of the pushed bytes (no view of a read), cut where the pushes are", () => {
    const p = new RequestParser();
    const input = bytes(`${HEAD}5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n`);
    const events = p.push(input);
    const bodies = events.flatMap((e) => (e.kind === "body" ? [e.bytes] : []));
    assert.deepEqual(bodies.map((b) => new TextDecoder().decode(b)), ["hello", "abc"]);
    for (const b of bodies) assert.notEqual(b.buffer, input.buffer);
    input.fill(0x21); // the caller may reuse its buffer: the events keep their bytes
    assert.deepEqual(bodies.map((b) => new TextDecoder().decode(b)), ["hello", "abc"]);
    const q = new RequestParser();
    q.push(bytes(`${HEAD}a\r\n01234`));
    const rest = q.push(bytes("56789\r\n0\r\n\r\n"));
    assert.deepEqual(rest.map((e) => e.kind), ["body", "end"]);
  });
});

describe("chunked bodies refused", () => {
  const long = "1".repeat(17);
  const cases: [string, string, string][] = [
    ["an empty size", "\r\nhello\r\n0\r\n\r\n", "http1_bad_chunk_size"],
    ["a non-hex size", "g\r\n", "http1_bad_chunk_size"],
    ["a negative size", "-1\r\n", "http1_bad_chunk_size"],
    ["a 0x prefix", "0x5\r\nhello\r\n", "http1_bad_chunk_size"],
    ["a + sign", "+5\r\nhello\r\n", "http1_bad_chunk_size"],
    ["a space before the size", " 5\r\nhello\r\n", "http1_bad_chunk_size"],
    ["17 digits", `${long}\r\n`, "http1_bad_chunk_size"],
    ["17 digits, mostly leading zeros", "00000000000000005\r\nhello\r\n0\r\n\r\n", "http1_bad_chunk_size"],
    ["2^53", "20000000000000\r\n", "http1_bad_chunk_size"],
    ["2^64 + 5 (wraps in 64 bits)", "10000000000000005\r\nhello\r\n", "http1_bad_chunk_size"],
    ["a space after the size without ;", "5 \r\nhello\r\n", "http1_bad_chunk_ext"],
    ["; with no name", "5;\r\nhello\r\n", "http1_bad_chunk_ext"],
    ["= with no value", "5;a=\r\nhello\r\n", "http1_bad_chunk_ext"],
    ["a space after a name, then CR", "5;a \r\nhello\r\n", "http1_bad_chunk_ext"],
    ["an unclosed quote", '5;a="b\r\nhello\r\n', "http1_bad_chunk_ext"],
    ["a non-token name", "5;a@b\r\nhello\r\n", "http1_bad_chunk_ext"],
    ["a control byte in a quoted value", '5;a="\u0001"\r\nhello\r\n', "http1_bad_chunk_ext"],
    [`extensions over ${DEFAULT_LIMITS.maxChunkExtBytes} bytes`, `5;${"a".repeat(DEFAULT_LIMITS.maxChunkExtBytes)}\r\nhello\r\n`, "http1_chunk_ext_too_long"],
    ["a bare LF after the size", "5\nhello\r\n", "http1_bad_line_ending"],
    ["a CR without LF after the size", "5\rhello\r\n", "http1_bad_line_ending"],
    ["a bare LF after an extension", "5;a\nhello\r\n", "http1_bad_line_ending"],
    ["data longer than its size", "5\r\nhello!\r\n0\r\n\r\n", "http1_bad_chunk_terminator"],
    ["data shorter than its size", "5\r\nhell\r\n0\r\n\r\n", "http1_bad_chunk_terminator"],
    ["a bare LF after data", "5\r\nhello\n0\r\n\r\n", "http1_bad_chunk_terminator"],
    ["a CR then not LF after data", "5\r\nhello\r0\r\n\r\n", "http1_bad_chunk_terminator"],
    ["another byte then LF after data", "5\r\nhelloX\n0\r\n\r\n", "http1_bad_chunk_terminator"],
    ["a folded trailer", "0\r\nX: 1\r\n 2\r\n\r\n", "http1_obs_fold"],
    ["a bare LF in trailers", "0\r\nX: 1\n\r\n", "http1_bad_line_ending"],
    ["a trailer without a colon", "0\r\nX\r\n\r\n", "http1_bad_header_name"],
    ["a NUL in a trailer value", "0\r\nX: \u0000\r\n\r\n", "http1_bad_header_value"],
    ["trailers over the head limit", `0\r\nX: ${"v".repeat(DEFAULT_LIMITS.maxHeadBytes)}\r\n\r\n`, "http1_head_too_large"],
    ["too many trailers", `0\r\n${"X: 1\r\n".repeat(DEFAULT_LIMITS.maxHeaders + 1)}\r\n`, "http1_too_many_headers"],
    ["the connection ending in a chunk", "5\r\nhel", "http1_truncated"],
    ["the connection ending in trailers", "0\r\nX: 1\r\n", "http1_truncated"],
  ];
  for (const [name, coded, want] of cases) {
    test(`${name}: ${want}`, () => assert.equal(code(coded), want));
  }

  test(`${DEFAULT_LIMITS.maxHeaders} trailers pass`, () => {
    assert.equal(decode(`0\r\n${"X: 1\r\n".repeat(DEFAULT_LIMITS.maxHeaders)}\r\n`).trailers.length, DEFAULT_LIMITS.maxHeaders);
  });

  test("every byte after a chunk size digit: hex digits, ;, SP and HTAB (then ;) continue it, others are refused", () => {
    for (let c = 0; c < 256; c++) {
      if (c === 13) continue;
      const ch = String.fromCharCode(c);
      const hex = /[0-9a-fA-F]/.test(ch);
      const line = hex ? `1${ch}` : ch === ";" ? "1;x" : ch === " " || ch === "\t" ? `1${ch};x` : `1${ch}`;
      const got = code(`${line}\r\n${"z".repeat(hex ? 16 + parseInt(ch, 16) : 1)}\r\n0\r\n\r\n`);
      if (hex || ch === ";" || ch === " " || ch === "\t") assert.equal(got, null, `byte ${c}`);
      else assert.ok(got !== null, `byte ${c} passed`);
    }
  });
});
