import { assert, describe, test } from "../../test/shim.ts";
import { Http1Error } from "./errors.ts";
import { RequestParser } from "./request-parser.ts";
import { ResponseParser } from "./response-parser.ts";
import { bytes, errorCode, runRequests, runResponses, text, type Step } from "./test-helpers.ts";
import type { RequestEvent, RequestHead } from "./types.ts";

const H = "Host: a.example\r\n";
const STREAM = [
  `GET /1 HTTP/1.1\r\n${H}\r\n`,
  `POST /2 HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhello`,
  `\r\nPUT /3 HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n`,
  `GET /4 HTTP/1.1\r\n${H}\r\n`,
  `GET /4 HTTP/1.1\r\n${H}\r\n`,
  `GET /5 HTTP/1.1\r\n${H}X-B: 2\r\n\r\n`,
  `POST /6 HTTP/1.1\r\n${H}Content-Length: 0\r\nConnection: close\r\n\r\n`,
  `GET /ignored HTTP/1.1\r\n${H}\r\n`,
].join("");

function outline(steps: Step<RequestHead>[]): string[] {
  return steps.map((s) => (s.kind === "head" ? `${s.head.method} ${s.head.target}` : s.kind === "body" ? `body ${s.text}` : s.kind === "end" ? `end${s.trailers.map(([n, v]) => ` ${n}=${v}`).join("")}` : s.kind === "error" ? `error ${s.code}` : s.kind));
}

describe("a pipelined stream", () => {
  const want = ["GET /1", "end", "POST /2", "body hello", "end", "PUT /3", "body abcde", "end X-T=1", "GET /4", "end", "GET /4", "end", "GET /5", "end", "POST /6", "end"];

  test("gives each request's head, body and end, and ignores what follows Connection: close", () => {
    assert.deepEqual(outline(runRequests(STREAM)), want);
  });

  test("cut anywhere, in two or byte by byte, gives the same steps", () => {
    const whole = runRequests(STREAM);
    for (let cut = 1; cut < STREAM.length; cut++) assert.deepEqual(runRequests(STREAM, [cut]), whole, `cut at ${cut}`);
    assert.deepEqual(runRequests(STREAM, Array.from({ length: STREAM.length }, (_, i) => i)), whole);
  });

  test("a repeated head is its first parse again (the same frozen object), and a head one byte apart is parsed anew", () => {
    const steps = runRequests(STREAM).flatMap((s) => (s.kind === "head" ? [s.head] : []));
    const [g4a, g4b, g5] = [steps[3], steps[4], steps[5]];
    assert.ok(g4a && g4b && g5);
    assert.equal(g4a, g4b);
    assert.ok(Object.isFrozen(g4a));
    assert.notEqual(g4b, g5);
    assert.deepEqual(g5.headers.entries, [["Host", "a.example"], ["X-B", "2"]]);
    const p = new RequestParser();
    const first = p.push(bytes(`GET / HTTP/1.1\r\n${H}Content-Length: 1\r\n\r\nx`));
    const second = p.push(bytes(`GET / HTTP/1.1\r\n${H}Content-Length: 2\r\n\r\nxy`));
    const heads = [...first, ...second].flatMap((e) => (e.kind === "head" ? [e.head.contentLength] : []));
    assert.deepEqual(heads, [1, 2]);
  });

  test("repeated header lines are checked again under another version", () => {
    const fields = `${H}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n`;
    const steps = runRequests(`POST / HTTP/1.1\r\n${fields}POST / HTTP/1.0\r\n${fields}`);
    assert.deepEqual(outline(steps), ["POST /", "end", "error http1_bad_transfer_encoding"]);
  });

  test("bytes the parser keeps are copies: reusing a pushed buffer changes no head", () => {
    const p = new RequestParser();
    const buf = bytes(`GET /abc HTTP/1.1\r\nHo`);
    assert.deepEqual(p.push(buf), []);
    buf.fill(0x41);
    const events = p.push(bytes(`st: a.example\r\n\r\n`));
    const head = events[0]?.kind === "head" ? events[0].head : null;
    assert.equal(head?.target, "/abc");
    assert.equal(head?.headers.get("host"), "a.example");
  });

  test("a body after its head in one push is a copy; a push that is all body is passed as it is", () => {
    const p = new ResponseParser();
    p.expect("GET");
    const big = "x".repeat(100_000); // more than the staging buffer holds at first
    const first = bytes(`HTTP/1.1 200 OK\r\nContent-Length: ${big.length + 3}\r\n\r\n${big}`);
    const events = p.push(first);
    const body = events.find((e) => e.kind === "body");
    assert.ok(body?.kind === "body");
    assert.notEqual(body.bytes.buffer, first.buffer);
    assert.equal(text(body.bytes), big);
    first.fill(0x21); // reusing the pushed buffer changes no event
    assert.equal(text(body.bytes), big);
    const rest = bytes("end");
    const more = p.push(rest);
    assert.ok(more[0]?.kind === "body");
    assert.equal(more[0].bytes, rest);
    assert.equal(more[1]?.kind, "end");
  });
});

describe("errors", () => {
  test("the events before an error are kept; the error sticks", () => {
    const p = new RequestParser();
    const events = p.push(bytes(`GET / HTTP/1.1\r\n${H}\r\nGET / HTTP/1.1\r\nHost : x\r\n\r\n`));
    assert.deepEqual(events.map((e) => e.kind), ["head", "end", "error"]);
    const err = events[2]?.kind === "error" ? events[2].error : null;
    assert.ok(err instanceof Http1Error);
    assert.equal(err.code, "http1_space_before_colon");
    assert.deepEqual(p.push(bytes(`GET / HTTP/1.1\r\n${H}\r\n`)), [{ kind: "error", error: err }]);
    assert.deepEqual(p.finish(), [{ kind: "error", error: err }]);
  });

  test("finish: nothing between messages, truncated inside one", () => {
    assert.deepEqual(new RequestParser().finish(), []);
    const q = new RequestParser();
    assert.ok(!q.inMessage);
    q.push(bytes("\r\n"));
    assert.ok(!q.inMessage, "skipped empty lines start no message");
    q.push(bytes(`POST / HTTP/1.1\r\n${H}Content-Length: 2\r\n\r\nx`));
    assert.ok(q.inMessage);
    q.push(bytes("y"));
    assert.ok(!q.inMessage);
    const p = new RequestParser();
    p.push(bytes(`GET / HTTP/1.1\r\n${H}\r\n\r\n`));
    assert.deepEqual(p.finish(), []);
    for (const partial of ["G", `GET / HTTP/1.1\r\n${H}`, `POST / HTTP/1.1\r\n${H}Content-Length: 2\r\n\r\nx`, "\r"]) {
      assert.equal(errorCode(runRequests(partial)), "http1_truncated", JSON.stringify(partial));
    }
  });

  test("custom limits", () => {
    const p = new RequestParser({ maxHeaders: 2, maxHeadBytes: 100, maxStartLineBytes: 20 });
    assert.deepEqual(p.push(bytes(`GET / HTTP/1.1\r\n${H}X: 1\r\n\r\n`)).map((e) => e.kind), ["head", "end"]);
    const code = (raw: string, limits: ConstructorParameters<typeof RequestParser>[0]) => {
      const last = new RequestParser(limits).push(bytes(raw)).at(-1);
      return last?.kind === "error" ? last.error.code : null;
    };
    assert.equal(code(`GET / HTTP/1.1\r\n${H}X: 1\r\nY: 2\r\n\r\n`, { maxHeaders: 2 }), "http1_too_many_headers");
    assert.equal(code(`GET /toolong HTTP/1.1\r\n${H}\r\n`, { maxStartLineBytes: 20 }), "http1_start_line_too_long");
    assert.equal(code(`GET / HTTP/1.1\r\n${H}X: ${"v".repeat(60)}\r\n\r\n`, { maxHeadBytes: 100 }), null);
    assert.equal(code(`GET / HTTP/1.1\r\n${H}X: ${"v".repeat(61)}\r\n\r\n`, { maxHeadBytes: 100 }), "http1_head_too_large");
    assert.equal(code(`GET / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n1;ab\r\n`, { maxChunkExtBytes: 2 }), "http1_chunk_ext_too_long");
  });

  test("a head over the limit is refused before its end arrives", () => {
    const p = new RequestParser({ maxHeadBytes: 64 });
    assert.deepEqual(p.push(bytes(`GET / HTTP/1.1\r\n${H}X: ${"v".repeat(20)}`)), []);
    const events = p.push(bytes("v".repeat(20)));
    assert.equal(events[0]?.kind === "error" ? events[0].error.code : null, "http1_head_too_large");
  });
});

describe("CONNECT and upgrade requests hold what follows", () => {
  const connect = `CONNECT a.example:443 HTTP/1.1\r\n${H}\r\n`;
  const upgrade = `GET /ws HTTP/1.1\r\n${H}Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n`;
  const kinds = (es: RequestEvent[]) => es.map((e) => (e.kind === "head" ? `head ${e.head.target}` : e.kind));

  for (const [name, first] of [["CONNECT", connect], ["an upgrade", upgrade]] as const) {
    test(`${name}: tunnel() returns the held bytes, later pushes are tunnel bytes`, () => {
      const p = new RequestParser();
      const events = p.push(bytes(`${first}\u0016\u0003\u0001GET / HTTP/1.1\r\n`));
      assert.equal(events.length, 2);
      assert.ok(p.held);
      assert.deepEqual(p.push(bytes("more")), []);
      assert.equal(text(p.tunnel()), "\u0016\u0003\u0001GET / HTTP/1.1\r\nmore");
      assert.ok(!p.held);
      assert.deepEqual(p.push(bytes("x y")).map((e) => (e.kind === "tunnel" ? text(e.bytes) : e.kind)), ["x y"]);
      assert.deepEqual(p.finish(), []);
    });

    test(`${name}: resume() parses the held bytes as the next request`, () => {
      const p = new RequestParser();
      p.push(bytes(`${first}GET /next HTTP/1.1\r\n`));
      assert.deepEqual(p.push(bytes(H)), []);
      assert.deepEqual(kinds(p.resume()), []);
      assert.deepEqual(kinds(p.push(bytes("\r\n"))), ["head /next", "end"]);
    });
  }

  test(`holding more than maxHeadBytes is refused`, () => {
    const p = new RequestParser({ maxHeadBytes: 100 });
    p.push(bytes(connect));
    assert.deepEqual(p.push(new Uint8Array(100)), []);
    const last = p.push(new Uint8Array(1)).at(-1);
    assert.equal(last?.kind === "error" ? last.error.code : null, "http1_held_too_large");
  });

  test("resume() or tunnel() while nothing is held is a programming error", () => {
    assert.throws(() => new RequestParser().resume(), /no bytes are held/);
    assert.throws(() => new RequestParser().tunnel(), /no bytes are held/);
  });
});

describe("a response stream", () => {
  const raw = [
    "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
    "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
    "HTTP/1.1 200 OK\r\n\r\nthe rest",
  ].join("");
  const methods = ["GET", "HEAD", "POST", "GET", "GET"];

  test("cut anywhere gives the same steps", () => {
    const whole = runResponses(raw, methods);
    assert.deepEqual(whole.map((s) => s.kind), ["head", "body", "end", "head", "end", "head", "end", "head", "body", "end", "head", "body", "end", "head", "body", "end"]);
    for (let cut = 1; cut < raw.length; cut++) assert.deepEqual(runResponses(raw, methods, [cut]), whole, `cut at ${cut}`);
  });

  test("a repeated head answering another method is parsed anew", () => {
    const p = new ResponseParser();
    p.expect("GET");
    p.expect("HEAD");
    const one = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n";
    const events = p.push(bytes(`${one}abc${one}`));
    assert.deepEqual(events.map((e) => (e.kind === "head" ? `${e.head.requestMethod} ${e.head.framing}` : e.kind)), ["GET length", "body", "end", "HEAD none", "end"]);
  });
});
