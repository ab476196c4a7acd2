import { assert, codeOf, describe, errorOf, test } from "../../test/shim.ts";
import { Http1Error } from "./errors.ts";
import { HeaderList } from "./headers.ts";
import { chunkSizeLine, chunkDataEnd, encodeChunk, lastChunk, serializeRequestHead, serializeResponseHead } from "./serialize.ts";
import { bytes, runRequests, runResponses, text } from "./test-helpers.ts";

describe("serializeRequestHead and serializeResponseHead", () => {
  test("write what a parser reads back", () => {
    const raw = "POST /a?b=c HTTP/1.1\r\nHost: a.example\r\nX-Latin: \u00e9\u00ff\r\nX-Empty: \r\nContent-Length: 2\r\n\r\n";
    const steps = runRequests(`${raw}hi`);
    const head = steps[0]?.kind === "head" ? steps[0].head : null;
    assert.ok(head !== null);
    assert.equal(text(serializeRequestHead(head)), raw);
    const resp = "HTTP/1.0 404 Not Found\r\nServer: x\r\n\r\n";
    const r = runResponses(resp, ["GET"])[0];
    assert.ok(r?.kind === "head");
    assert.equal(text(serializeResponseHead(r.head)), resp);
  });

  test("defaults: HTTP/1.1, an empty reason; lists of pairs or a HeaderList", () => {
    assert.equal(text(serializeRequestHead({ method: "GET", target: "/", headers: [["Host", "h"]] })), "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert.equal(text(serializeResponseHead({ status: 204, headers: new HeaderList([]) })), "HTTP/1.1 204 \r\n\r\n");
    const big = "v".repeat(10000);
    assert.equal(text(serializeRequestHead({ method: "GET", target: "/", headers: [["X", big]] })).length, 10000 + 23);
  });

  const secret = "s3cr3t-v4lue";
  const req = (over: Partial<Parameters<typeof serializeRequestHead>[0]>) => () => serializeRequestHead({ method: "GET", target: "/", headers: [], ...over });
  const cases: [string, () => unknown, string][] = [
    ["a CR in a value", req({ headers: [["Authorization", `${secret}\r\nX: 1`]] }), "http1_bad_header_value"],
    ["an LF in a value", req({ headers: [["Authorization", `${secret}\nX: 1`]] }), "http1_bad_header_value"],
    ["a NUL in a value", req({ headers: [["Authorization", `${secret}\u0000`]] }), "http1_bad_header_value"],
    ["a character over U+00FF in a value", req({ headers: [["Authorization", `${secret}\u20ac`]] }), "http1_bad_header_value"],
    ["a colon in a name", req({ headers: [["X:Y", "1"]] }), "http1_bad_header_name"],
    ["a space in a name", req({ headers: [["X Y", "1"]] }), "http1_bad_header_name"],
    ["an empty name", req({ headers: [["", "1"]] }), "http1_bad_header_name"],
    ["a space in the method", req({ method: "GET /x" }), "http1_bad_method"],
    ["an empty method", req({ method: "" }), "http1_bad_method"],
    ["a space in the target", req({ target: "/a b" }), "http1_bad_target"],
    ["a CRLF in the target", req({ target: `/?k=${secret}\r\n` }), "http1_bad_target"],
    ["an empty target", req({ target: "" }), "http1_bad_target"],
    ["HTTP/2", req({ version: "HTTP/2" as "HTTP/1.1" }), "http1_bad_version"],
    ["status 600", () => serializeResponseHead({ status: 600, headers: [] }), "http1_bad_status"],
    ["status 99.5", () => serializeResponseHead({ status: 99.5, headers: [] }), "http1_bad_status"],
    ["a CR in the reason", () => serializeResponseHead({ status: 200, reason: "OK\r\nX: 1", headers: [] }), "http1_bad_status"],
  ];
  for (const [name, fn, code] of cases) {
    test(`refuse ${name}: ${code}`, () => {
      const e = errorOf(fn, Http1Error);
      assert.equal(e.code, code);
      assert.ok(!e.message.includes(secret), e.message);
      assert.ok(e.message.startsWith("http1: serialize: "), e.message);
    });
  }

  test("a refusal leaves the next head whole", () => {
    assert.equal(codeOf(req({ headers: [["A", "1"], ["B", "\r"]] }), Http1Error), "http1_bad_header_value");
    assert.equal(text(serializeRequestHead({ method: "GET", target: "/", headers: [["A", "1"]] })), "GET / HTTP/1.1\r\nA: 1\r\n\r\n");
  });
});

describe("chunks", () => {
  test("encodeChunk, chunkSizeLine and lastChunk decode to the bytes given", () => {
    const data = bytes("x".repeat(300));
    const parts = [encodeChunk(bytes("hello")), encodeChunk(new Uint8Array(0)), chunkSizeLine(300), data, chunkDataEnd(), lastChunk([["X-Sum", "9"]])];
    assert.equal(text(parts[0] ?? new Uint8Array(0)), "5\r\nhello\r\n");
    assert.equal(parts[1]?.length, 0);
    assert.equal(text(parts[2] ?? new Uint8Array(0)), "12c\r\n");
    assert.equal(text(lastChunk()), "0\r\n\r\n");
    const coded = parts.map(text).join("");
    const steps = runRequests(`POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n${coded}`);
    assert.deepEqual(steps.slice(1), [{ kind: "body", text: `hello${"x".repeat(300)}` }, { kind: "end", trailers: [["X-Sum", "9"]] }]);
  });

  test("refuse sizes that are no chunk, and bad trailers", () => {
    for (const n of [0, -1, 1.5, 2 ** 53]) assert.equal(codeOf(() => chunkSizeLine(n), Http1Error), "http1_bad_chunk_size", String(n));
    assert.equal(codeOf(() => lastChunk([["X", "a\nb"]]), Http1Error), "http1_bad_header_value");
  });
});
