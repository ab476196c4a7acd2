import { assert, describe, test } from "../../test/shim.ts";
import { ResponseParser } from "./response-parser.ts";
import { bytes, errorCode, runResponses, text, type Step } from "./test-helpers.ts";
import type { ResponseHead } from "./types.ts";

type Want = Pick<ResponseHead, "status" | "framing" | "keepAlive"> & { body: string };

/** The head and body of the first response to `method` in `raw` (the connection then ends). */
function first(raw: string, method: string | [string, boolean] = "GET"): Want & { steps: Step<ResponseHead>[] } {
  const steps = runResponses(raw, [method]);
  const head = steps[0];
  assert.ok(head?.kind === "head", JSON.stringify(steps.at(-1)));
  const body = steps[1]?.kind === "body" ? steps[1].text : "";
  return { status: head.head.status, framing: head.head.framing, keepAlive: head.head.keepAlive, body, steps };
}

describe("response framing (RFC 9112 section 6.3)", () => {
  const cases: [string, string | [string, boolean], string, Want][] = [
    ["Content-Length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiXX", { status: 200, framing: "length", keepAlive: true, body: "hi" }],
    ["chunked", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n", { status: 200, framing: "chunked", keepAlive: true, body: "hi" }],
    ["neither: to the end of the connection", "GET", "HTTP/1.1 200 OK\r\n\r\nall of it", { status: 200, framing: "close", keepAlive: false, body: "all of it" }],
    ["HTTP/1.0 neither", "GET", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\nx", { status: 200, framing: "close", keepAlive: false, body: "x" }],
    ["HTTP/1.0 with a length and keep-alive", "GET", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx", { status: 200, framing: "length", keepAlive: true, body: "x" }],
    ["HTTP/1.0 with a length", "GET", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", { status: 200, framing: "length", keepAlive: false, body: "x" }],
    ["close", "GET", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx", { status: 200, framing: "length", keepAlive: false, body: "x" }],
    ["to HEAD, with a Content-Length", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", { status: 200, framing: "none", keepAlive: true, body: "" }],
    ["to HEAD, chunked", "HEAD", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", { status: 200, framing: "none", keepAlive: true, body: "" }],
    ["204 with a Content-Length", "GET", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", { status: 204, framing: "none", keepAlive: true, body: "" }],
    ["304", "GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", { status: 304, framing: "none", keepAlive: true, body: "" }],
    ["2xx to CONNECT", "CONNECT", "HTTP/1.1 200 Connection established\r\nContent-Length: 5\r\n\r\nTLS..", { status: 200, framing: "tunnel", keepAlive: false, body: "" }],
    ["407 to CONNECT", "CONNECT", "HTTP/1.1 407 Proxy Auth\r\nContent-Length: 1\r\n\r\nx", { status: 407, framing: "length", keepAlive: true, body: "x" }],
    ["101 to an upgrade", ["GET", true], "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n\u0081\u0000", { status: 101, framing: "tunnel", keepAlive: false, body: "" }],
    ["no reason phrase", "GET", "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", { status: 200, framing: "length", keepAlive: true, body: "" }],
    ["no space after the status", "GET", "HTTP/1.1 599\r\nContent-Length: 0\r\n\r\n", { status: 599, framing: "length", keepAlive: true, body: "" }],
  ];
  for (const [name, method, raw, want] of cases) {
    test(name, () => {
      const { steps, ...got } = first(raw, method);
      assert.deepEqual(got, want);
      if (want.framing === "tunnel") {
        assert.equal(steps[1]?.kind, "end");
        assert.deepEqual(steps[2], { kind: "tunnel", text: raw.slice(raw.indexOf("\r\n\r\n") + 4) });
      }
    });
  }

  test("reason, headers and the request's method", () => {
    const steps = runResponses("HTTP/1.1 404 Not \u00e9 Found\r\nServer: x\r\nContent-Length: 0\r\n\r\n", ["DELETE"]);
    const h = steps[0]?.kind === "head" ? steps[0].head : null;
    assert.ok(h !== null);
    assert.equal(h.reason, "Not \u00e9 Found");
    assert.equal(h.requestMethod, "DELETE");
    assert.equal(h.version, "HTTP/1.1");
    assert.deepEqual(h.headers.entries, [["Server", "x"], ["Content-Length", "0"]]);
    assert.ok(Object.isFrozen(h));
  });

  test("interim responses answer the same request as the final one", () => {
    const raw = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 204 No Content\r\n\r\n";
    const steps = runResponses(raw, ["POST", "HEAD"]);
    const heads = steps.flatMap((s) => (s.kind === "head" ? [[s.head.status, s.head.requestMethod, s.head.framing, s.head.keepAlive]] : []));
    assert.deepEqual(heads, [[100, "POST", "none", true], [103, "POST", "none", true], [200, "POST", "length", true], [204, "HEAD", "none", true]]);
    assert.deepEqual(steps.map((s) => s.kind), ["head", "end", "head", "end", "head", "body", "end", "head", "end"]);
  });

  test("a close-delimited body ends at finish(); a tunnel gives its bytes", () => {
    const p = new ResponseParser();
    p.expect("GET");
    const a = p.push(bytes("HTTP/1.1 200 OK\r\n\r\nab"));
    assert.deepEqual(a.map((e) => e.kind), ["head", "body"]);
    assert.deepEqual(p.push(bytes("HTTP/1.1 200 OK\r\n")).map((e) => (e.kind === "body" ? text(e.bytes) : e.kind)), ["HTTP/1.1 200 OK\r\n"]);
    assert.deepEqual(p.finish().map((e) => e.kind), ["end"]);
    assert.deepEqual(p.push(bytes("more")), []);
    const t = new ResponseParser();
    t.expect("CONNECT");
    t.push(bytes("HTTP/1.1 200 OK\r\n\r\n"));
    assert.deepEqual(t.push(bytes("\u0016\u0003\u0001")).map((e) => (e.kind === "tunnel" ? text(e.bytes) : e.kind)), ["\u0016\u0003\u0001"]);
    assert.deepEqual(t.finish(), []);
  });

  test("expectations: waiting counts the requests not answered", () => {
    const p = new ResponseParser();
    for (let i = 0; i < 200; i++) p.expect(i % 2 === 0 ? "GET" : "HEAD");
    const one = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n";
    let raw = "";
    for (let i = 0; i < 150; i++) raw += i % 2 === 0 ? `${one}x` : one;
    const events = p.push(bytes(raw));
    assert.equal(events.filter((e) => e.kind === "head").length, 150);
    assert.equal(events.filter((e) => e.kind === "error").length, 0);
    assert.equal(p.waiting, 50);
  });
});

describe("responses refused", () => {
  const cases: [string, string | [string, boolean], string, string][] = [
    ["no request waiting", "none", "HTTP/1.1 200 OK\r\n\r\n", "http1_unexpected_response"],
    ["a 101 to a request that asked no upgrade", "GET", "HTTP/1.1 101 Switching Protocols\r\n\r\n", "http1_bad_status"],
    ["status 600", "GET", "HTTP/1.1 600 X\r\n\r\n", "http1_bad_status"],
    ["status 099", "GET", "HTTP/1.1 099 X\r\n\r\n", "http1_bad_status"],
    ["a two-digit status", "GET", "HTTP/1.1 20 OK\r\n\r\n", "http1_bad_status"],
    ["a four-digit status", "GET", "HTTP/1.1 2000 OK\r\n\r\n", "http1_bad_status"],
    ["a letter in the status", "GET", "HTTP/1.1 2x0 OK\r\n\r\n", "http1_bad_status"],
    ["a control byte in the reason", "GET", "HTTP/1.1 200 O\u0001K\r\n\r\n", "http1_bad_status"],
    ["a CR in the reason", "GET", "HTTP/1.1 200 O\rK\r\n\r\n", "http1_bad_line_ending"],
    ["HTTP/2", "GET", "HTTP/2 200 OK\r\n\r\n", "http1_bad_version"],
    ["HTTP/1.2", "GET", "HTTP/1.2 200 OK\r\n\r\n", "http1_bad_version"],
    ["no status", "GET", "HTTP/1.1\r\n\r\n", "http1_bad_start_line"],
    ["a tab after the version", "GET", "HTTP/1.1\t200 OK\r\n\r\n", "http1_bad_start_line"],
    ["an empty line first", "GET", "\r\nHTTP/1.1 200 OK\r\n\r\n", "http1_bad_start_line"],
    ["both framings", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "http1_conflicting_framing"],
    ["both framings, to HEAD", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "http1_conflicting_framing"],
    ["differing lengths on a 304", "GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "http1_differing_content_length"],
    ["gzip, chunked", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "http1_bad_transfer_encoding"],
    ["Transfer-Encoding in HTTP/1.0", "GET", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "http1_bad_transfer_encoding"],
    ["obsolete line folding", "GET", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", "http1_obs_fold"],
    ["a bare LF", "GET", "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", "http1_bad_line_ending"],
    ["a truncated body", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc", "http1_truncated"],
    ["a truncated chunked body", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "http1_truncated"],
    ["a truncated head", "GET", "HTTP/1.1 200 OK\r\nContent-Le", "http1_truncated"],
  ];
  for (const [name, method, raw, code] of cases) {
    test(`${name}: ${code}`, () => {
      assert.equal(errorCode(runResponses(raw, method === "none" ? [] : [method])), code);
    });
  }
});
