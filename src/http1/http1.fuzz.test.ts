/**
 * Property tests of the parsers (../shared/STYLE.md point 6): generated pipelined streams give
 * the messages they were built from, however they are cut into pushes; arbitrary and mutated
 * bytes only ever give events or an Http1Error (anything else thrown fails the run), and the same
 * steps, error included, however they are cut.
 */
import fc from "fast-check";
import { byteMutation, mutateBytes } from "../../test/helpers/byte-mutations.ts";
import { fuzzRuns } from "../../test/fuzz-runs.ts";
import { assert, describe, test } from "../../test/shim.ts";
import { serializeResponseHead } from "./serialize.ts";
import { bytes, runRequests, runResponses, text } from "./test-helpers.ts";

const RUNS = fuzzRuns(200);

const token = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}$/);
const RESERVED = ["host", "content-length", "transfer-encoding", "connection", "upgrade"];
const field = fc.tuple(
  token.filter((n) => !RESERVED.includes(n.toLowerCase())),
  fc.stringMatching(/^([\x21-\x7e\x80-\xff]([\x20-\x7e\x80-\xff]{0,20}[\x21-\x7e\x80-\xff])?)?$/),
);
const ext = fc.constantFrom("", ";a", ";a=b", ' ; q="x \\" y"', ";n=1;m");
const data = fc.uint8Array({ minLength: 1, maxLength: 40 }).map(text);

type Body = { kind: "none" } | { kind: "length"; data: string } | { kind: "chunked"; chunks: [string, string][]; last: string; trailers: [string, string][] };

const body: fc.Arbitrary<Body> = fc.oneof(
  fc.constant({ kind: "none" as const }),
  fc.uint8Array({ maxLength: 60 }).map((d) => ({ kind: "length" as const, data: text(d) })),
  fc.record({ kind: fc.constant("chunked" as const), chunks: fc.array(fc.tuple(data, ext), { maxLength: 4 }), last: ext, trailers: fc.array(field, { maxLength: 2 }) }),
);

interface RequestSpec {
  lead: boolean;
  method: string;
  path: string;
  host: string;
  fields: [string, string][];
  body: Body;
}

const request: fc.Arbitrary<RequestSpec> = fc.record({
  lead: fc.boolean(),
  method: fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"),
  path: fc.stringMatching(/^\/[A-Za-z0-9/._~%?=&-]{0,30}$/),
  host: fc.constantFrom("a.example", "API.example.com:8443", "[::1]:80", "192.0.2.9"),
  fields: fc.array(field, { maxLength: 5 }),
  body,
});

function framingField(b: Body): [string, string][] {
  return b.kind === "length" ? [["Content-Length", String(b.data.length)]] : b.kind === "chunked" ? [["Transfer-Encoding", "chunked"]] : [];
}

function bodyText(b: Body): string {
  if (b.kind === "none") return "";
  if (b.kind === "length") return b.data;
  const chunks = b.chunks.map(([d, e]) => `${d.length.toString(16)}${e}\r\n${d}\r\n`).join("");
  return `${chunks}0${b.last}\r\n${b.trailers.map(([n, v]) => `${n}: ${v}\r\n`).join("")}\r\n`;
}

function requestText(s: RequestSpec): string {
  const fields: [string, string][] = [["Host", s.host], ...s.fields, ...framingField(s.body)];
  return `${s.lead ? "\r\n" : ""}${s.method} ${s.path} HTTP/1.1\r\n${fields.map(([n, v]) => `${n}: ${v}\r\n`).join("")}\r\n${bodyText(s.body)}`;
}

/** The steps each spec should give: head fields, joined body, end with trailers. */
function expected(specs: { fields: [string, string][]; body: Body }[], headOf: (i: number) => [string, string][]): unknown[] {
  return specs.flatMap((s, i) => {
    const d = s.body.kind === "length" ? s.body.data : s.body.kind === "chunked" ? s.body.chunks.map(([c]) => c).join("") : "";
    return [{ kind: "head", headers: headOf(i) }, ...(d.length > 0 ? [{ kind: "body", text: d }] : []), { kind: "end", trailers: s.body.kind === "chunked" ? s.body.trailers : [] }];
  });
}

const cuts = fc.array(fc.nat(), { maxLength: 12 });

describe("generated request streams", () => {
  test("give the requests they were built from, however cut", () => {
    fc.assert(
      fc.property(fc.array(request, { minLength: 1, maxLength: 5 }), cuts, (specs, cs) => {
        const input = bytes(specs.map(requestText).join(""));
        const whole = runRequests(input);
        const brief = whole.map((s) => (s.kind === "head" ? { kind: "head", headers: s.head.headers.entries.map(([n, v]) => [n, v]) } : s));
        assert.deepEqual(brief, expected(specs, (i) => [["Host", specs[i]?.host ?? ""], ...(specs[i]?.fields ?? []), ...framingField(specs[i]?.body ?? { kind: "none" })]));
        for (const [i, s] of whole.filter((s) => s.kind === "head").entries()) {
          assert.ok(s.kind === "head");
          assert.equal(s.head.method, specs[i]?.method);
          assert.equal(s.head.target, specs[i]?.path);
        }
        assert.deepEqual(runRequests(input, cs.map((c) => c % (input.length + 1))), whole);
      }),
      { numRuns: RUNS },
    );
  });
});

interface ResponseSpec {
  method: string;
  status: number;
  fields: [string, string][];
  body: Body;
}

const response: fc.Arbitrary<ResponseSpec> = fc.record({
  method: fc.constantFrom("GET", "POST", "HEAD"),
  status: fc.constantFrom(200, 201, 204, 304, 404, 500),
  fields: fc.array(field, { maxLength: 4 }),
  body,
});

function bodiless(s: ResponseSpec): boolean {
  return s.method === "HEAD" || s.status === 204 || s.status === 304;
}

/** What a response really carries: none to HEAD, 204 or 304. */
function effective(s: ResponseSpec): Body {
  return bodiless(s) ? { kind: "none" } : s.body;
}

describe("generated response streams", () => {
  test("give the responses they were built from, however cut", () => {
    fc.assert(
      fc.property(fc.array(response, { minLength: 1, maxLength: 5 }), cuts, (specs, cs) => {
        // Neither framing would run to the end of the connection: give those an empty length.
        const ok = specs.map((s) => (s.body.kind === "none" && !bodiless(s) ? { ...s, body: { kind: "length" as const, data: "" } } : s));
        const raw = ok.map((s) => text(serializeResponseHead({ status: s.status, reason: "R", headers: [...s.fields, ...framingField(s.body)] })) + bodyText(effective(s))).join("");
        const input = bytes(raw);
        const methods = ok.map((s) => s.method);
        const whole = runResponses(input, methods);
        const brief = whole.map((s) => (s.kind === "head" ? { kind: "head", headers: s.head.headers.entries.map(([n, v]) => [n, v]) } : s));
        assert.deepEqual(brief, expected(ok.map((s) => ({ fields: s.fields, body: effective(s) })), (i) => [...(ok[i]?.fields ?? []), ...framingField(ok[i]?.body ?? { kind: "none" })]));
        assert.deepEqual(runResponses(input, methods, cs.map((c) => c % (input.length + 1))), whole);
      }),
      { numRuns: RUNS },
    );
  });
});

const mutation = byteMutation;
const mutate = mutateBytes;

describe("arbitrary and mutated bytes", () => {
  const starts = ["", "GET / HTTP/1.1\r\nHost: a\r\n", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n", "CONNECT a:1 HTTP/1.1\r\nHost: a\r\n\r\n"].map(bytes);

  test("requests: events or Http1Error, the same however cut", () => {
    fc.assert(
      fc.property(fc.constantFrom(...starts), fc.uint8Array({ maxLength: 200 }), cuts, (start, rest, cs) => {
        const input = Uint8Array.from([...start, ...rest]);
        assert.deepEqual(runRequests(input, cs.map((c) => c % (input.length + 1))), runRequests(input));
      }),
      { numRuns: RUNS * 3 },
    );
  });

  test("responses: events or Http1Error, the same however cut", () => {
    const rStarts = ["", "HTTP/1.1 200 OK\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.1 100 Continue\r\n\r\n"].map(bytes);
    fc.assert(
      fc.property(fc.constantFrom(...rStarts), fc.uint8Array({ maxLength: 200 }), fc.constantFrom("GET", "HEAD", "CONNECT"), cuts, (start, rest, method, cs) => {
        const input = Uint8Array.from([...start, ...rest]);
        assert.deepEqual(runResponses(input, [method, method], cs.map((c) => c % (input.length + 1))), runResponses(input, [method, method]));
      }),
      { numRuns: RUNS * 2 },
    );
  });

  test("mutated request streams: the same steps however cut, byte by byte too", () => {
    fc.assert(
      fc.property(fc.array(request, { minLength: 1, maxLength: 3 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), (specs, ms) => {
        const input = mutate(bytes(specs.map(requestText).join("")), ms);
        assert.deepEqual(runRequests(input, Array.from({ length: input.length }, (_, i) => i)), runRequests(input));
      }),
      { numRuns: RUNS },
    );
  });
});
