/**
 * Property tests of MCP message handling (../shared/STYLE.md point 6), beside the per-module ones
 * (message.test.ts, sse.test.ts, headers.test.ts, duplicate-keys.test.ts):
 * - generated messages of every kind parse back to what was sent, from text or bytes, frozen or not;
 * - valid messages with structural edits (members replaced by hostile JSON, removed, added under
 *   prototype names or near-miss spellings, doubled, wrapped) give a message or an McpError with a
 *   listed code, a JSON-RPC error that answers it, and a message that never quotes a parameter's
 *   value (tool arguments may carry a secret);
 * - `classify` on whatever parses gives a classification or mcp_invalid_params, and a tool call's
 *   argument hash does not depend on the order of keys or on whitespace;
 * - `checkHeadersMatchBody` never throws: headers taken from the body (plain or base64) match, any
 *   other headers match or mismatch with -32020, naming the header and never a value;
 * - `SseParser` with a small event limit refuses a stream (mcp_sse_too_large, which sticks) or not
 *   whatever the pushes it comes in, and the events it gives before are the stream's own.
 */
import fc from "fast-check";
import { fuzzRuns } from "../../test/fuzz-runs.ts";
import { mutatedJson } from "../../test/helpers/json-mutations.ts";
import { assert, describe, test } from "../../test/shim.ts";
import { classify } from "./classify.ts";
import { firstDuplicateKey } from "./duplicate-keys.ts";
import { HEADER_MISMATCH, INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, jsonRpcErrorOf, MCP_ERROR_CODES, McpError, PARSE_ERROR } from "./errors.ts";
import { checkHeadersMatchBody, paramPathsOf } from "./headers.ts";
import { type McpMessage, type McpNotification, type McpRequest, parseMessage } from "./message.ts";
import { SseParser } from "./sse.ts";

const RUNS = fuzzRuns(300);
const SECRET = "SECRET-VALUE-7f3a";

/** Argument names: lowercase, so no two fold together (that is a duplicate key, message.ts). */
const argKey = fc.stringMatching(/^[a-z][a-z0-9_]{0,7}$/);
/** A value that may carry the secret: strings with it, nested in objects and arrays. */
const argValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(SECRET),
  fc.string({ maxLength: 8 }).map((s) => `${s}${SECRET}`),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.dictionary(argKey, fc.constant(SECRET), { maxKeys: 2 }),
  fc.array(fc.constant(SECRET), { maxLength: 2 }),
);
const args = fc.dictionary(argKey, argValue, { maxKeys: 5 });
const id = fc.oneof(fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }), fc.string({ maxLength: 10 }));
const method = fc.constantFrom("tools/call", "tools/list", "resources/read", "prompts/get", "initialize", "notifications/progress", "x/y");

/** JSON-RPC messages of every kind, as the objects that go on the wire. */
const wire: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.record({ id, name: fc.stringMatching(/^[A-Za-z0-9_.-]{1,20}$/), arguments: args }).map((r) => ({ jsonrpc: "2.0", id: r.id, method: "tools/call", params: { name: r.name, arguments: r.arguments } })),
  fc.record({ id, method, params: fc.option(fc.record({ uri: fc.constant(`file:///${SECRET}`), name: fc.constant(SECRET) }), { nil: undefined }) }).map((r) => ({ jsonrpc: "2.0", ...r })),
  fc.record({ method, params: fc.option(args, { nil: undefined }) }).map((r) => ({ jsonrpc: "2.0", ...r })),
  fc.record({ id, result: fc.jsonValue({ maxDepth: 3 }).filter((v) => firstDuplicateKey(JSON.stringify(v)) === null) }).map((r) => ({ jsonrpc: "2.0", ...r })),
  fc.record({ id: fc.option(id, { nil: null }), code: fc.integer({ min: -32768, max: 32767 }), message: fc.string({ maxLength: 12 }) }).map((r) => ({ jsonrpc: "2.0", id: r.id, error: { code: r.code, message: r.message } })),
);

/** Parses, and checks any refusal: a listed McpError that maps to a JSON-RPC error and quotes no value. */
function parsed(input: string | Uint8Array): McpMessage | McpError {
  try {
    return parseMessage(input);
  } catch (e) {
    if (!(e instanceof McpError)) throw e;
    assert.ok((MCP_ERROR_CODES as readonly string[]).includes(e.code), e.code);
    assert.ok(e.message.startsWith("mcp: "), e.message);
    assert.ok(!e.message.includes(SECRET), e.message);
    const answer = jsonRpcErrorOf(e);
    assert.ok([PARSE_ERROR, INVALID_REQUEST, INVALID_PARAMS, INTERNAL_ERROR].includes(answer.error.code));
    assert.ok(answer.id === null || typeof answer.id === "string" || Number.isSafeInteger(answer.id));
    return e;
  }
}

describe("parseMessage", () => {
  test("generated messages parse back to what was sent, from text or bytes, frozen or not", () => {
    fc.assert(
      fc.property(wire, (w) => {
        const text = JSON.stringify(w);
        const m = parseMessage(text);
        assert.deepEqual(parseMessage(new TextEncoder().encode(text)), m);
        assert.deepEqual(parseMessage(text, { freeze: false }), m);
        assert.ok(Object.isFrozen(m));
        const back: Record<string, unknown> =
          m.kind === "request" ? { id: m.id, method: m.method, params: m.params }
          : m.kind === "notification" ? { method: m.method, params: m.params }
          : m.kind === "result" ? { id: m.id, result: m.result }
          : { id: m.id, error: m.error };
        assert.deepEqual(JSON.parse(JSON.stringify({ jsonrpc: "2.0", ...back })), JSON.parse(text));
      }),
      { numRuns: RUNS },
    );
  });

  test("valid messages with structural edits: a message, or a listed McpError that quotes no value", () => {
    const outcomes = new Set<string>();
    fc.assert(
      fc.property(wire.chain((w) => mutatedJson(w)), (doc) => {
        const r = parsed(JSON.stringify(doc) ?? "");
        outcomes.add(r instanceof McpError ? "refused" : "parsed");
      }),
      { numRuns: RUNS },
    );
    assert.deepEqual([...outcomes].sort(), ["parsed", "refused"]);
  });
});

describe("classify", () => {
  test("whatever parses: a classification or mcp_invalid_params, never quoting an argument", async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(wire, wire.chain((w) => mutatedJson(w))), async (doc) => {
        const m = parsed(JSON.stringify(doc) ?? "");
        if (m instanceof McpError || (m.kind !== "request" && m.kind !== "notification")) return;
        try {
          const c = await classify(m);
          assert.ok(Object.isFrozen(c));
          if (c.kind === "tool_call") assert.match(c.argsSha256, /^[0-9a-f]{64}$/);
        } catch (e) {
          if (!(e instanceof McpError)) throw e;
          assert.equal(e.code, "mcp_invalid_params");
          assert.ok(!e.message.includes(SECRET), e.message);
        }
      }),
      { numRuns: RUNS },
    );
  });

  test("a tool call's argument hash ignores key order and whitespace, and tells different arguments apart", async () => {
    const reorder = (v: unknown, flip: boolean): unknown => {
      if (Array.isArray(v)) return v.map((x) => reorder(x, flip));
      if (typeof v !== "object" || v === null) return v;
      const keys = Object.keys(v);
      return Object.fromEntries((flip ? keys.reverse() : keys).map((k) => [k, reorder((v as Record<string, unknown>)[k], flip)]));
    };
    const sorted = (v: unknown): string =>
      Array.isArray(v) ? `[${v.map(sorted).join(",")}]`
      : typeof v === "object" && v !== null ? `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${sorted((v as Record<string, unknown>)[k])}`).join(",")}}`
      : JSON.stringify(v);
    const call = (a: unknown, space?: number) => parseMessage(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "t", arguments: a } }, null, space)) as McpRequest;
    const hash = async (m: McpRequest) => ((await classify(m)) as { argsSha256: string }).argsSha256;
    await fc.assert(
      fc.asyncProperty(args, args, async (a, b) => {
        const h = await hash(call(a));
        assert.equal(await hash(call(reorder(a, true), 2)), h);
        assert.equal((await hash(call(b))) === h, sorted(a) === sorted(b));
      }),
      { numRuns: fuzzRuns(150) },
    );
  });
});

describe("checkHeadersMatchBody", () => {
  const sentinel = (s: string) => `=?base64?${btoa(String.fromCharCode(...new TextEncoder().encode(s)))}?=`;
  /** Header values a Headers object takes: Latin-1 without CR, LF or NUL, trimmed. */
  const headerText = fc.string({ unit: fc.constantFrom(..."aZ09 /:=?.-_+\u00e9", "=?base64?", "?="), maxLength: 20 }).map((s) => s.trim());
  const call = fc
    .record({ name: fc.stringMatching(/^[A-Za-z0-9_.-]{1,12}$/), arguments: fc.dictionary(argKey, fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.boolean(), fc.double({ noNaN: true, noDefaultInfinity: true })), { maxKeys: 4 }) })
    .map((params) => parseMessage(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params })) as McpRequest);

  test("headers taken from the body match, plain or in base64", () => {
    fc.assert(
      fc.property(call, fc.boolean(), (m, b64) => {
        const h = new Headers();
        const put = (name: string, v: string) => h.set(name, b64 || /[^\x20-\x7e]|^\s|\s$/.test(v) ? sentinel(v) : v);
        put("Mcp-Method", m.method);
        put("Mcp-Name", m.params!.name as string);
        // argKey is lowercase, so no two names fold together in the headers
        for (const [k, v] of Object.entries(m.params!.arguments as Record<string, unknown>)) put(`Mcp-Param-${k}`, String(v));
        assert.deepEqual(checkHeadersMatchBody(h, m), { ok: true });
      }),
      { numRuns: RUNS },
    );
  });

  test("any headers: a match or a -32020 mismatch naming the header, never a value; never a throw", () => {
    const names = fc.constantFrom("Mcp-Method", "Mcp-Name", "Mcp-Param-a", "Mcp-Param-ab", "MCP-PARAM-", "mcp-param-__proto__", "mcp-param-constructor", "x-other");
    const headerSet = fc.array(fc.tuple(names, fc.oneof(headerText, headerText.map(sentinel), fc.constant(SECRET))), { maxLength: 5 });
    const schema = fc.jsonValue({ maxDepth: 4 });
    const seen = { match: 0, mismatch: 0 };
    fc.assert(
      fc.property(fc.oneof(call, wire.map((w) => parseMessage(JSON.stringify(w)))), headerSet, schema, (m, hs, s) => {
        if (m.kind !== "request" && m.kind !== "notification") return;
        const h = new Headers();
        for (const [n, v] of hs) h.append(n, v);
        const got = checkHeadersMatchBody(h, m as McpRequest | McpNotification, paramPathsOf(s));
        if (got.ok) return void seen.match++;
        seen.mismatch++;
        assert.equal(got.code, HEADER_MISMATCH);
        assert.match(got.message, /^mcp: header Mcp-(Method|Name|Param-\S*) /);
        assert.ok(!got.message.includes(SECRET), got.message);
      }),
      { numRuns: RUNS },
    );
    // both outcomes came up: a check that always said ok (or never) would not pass
    assert.ok(seen.match > 0 && seen.mismatch > 0, JSON.stringify(seen));
  });
});

describe("SseParser with a small event limit", () => {
  /** The events of `stream` pushed in pieces cut at `cuts`, and the error if one was thrown (it must stick). */
  function run(stream: Uint8Array, cuts: number[], max: number): { events: string[]; error: boolean } {
    const p = new SseParser({ maxEventBytes: max });
    const bounds = [0, ...[...new Set(cuts)].filter((c) => c > 0 && c < stream.length).sort((a, b) => a - b), stream.length];
    const events: string[] = [];
    for (let i = 0; i + 1 < bounds.length; i++) {
      try {
        for (const e of p.push(stream.subarray(bounds[i], bounds[i + 1]))) events.push(new TextDecoder().decode(e.raw));
      } catch (e) {
        if (!(e instanceof McpError)) throw e;
        assert.equal(e.code, "mcp_sse_too_large");
        assert.throws(() => p.push(new Uint8Array([0x0a])), (x: unknown) => x === e);
        assert.throws(() => p.finish(), (x: unknown) => x === e);
        return { events, error: true };
      }
    }
    p.finish();
    return { events, error: false };
  }

  test("refused or not the same however the stream is cut; the events before a refusal are the stream's own", () => {
    const piece = fc.constantFrom("data: ", "x", "yy", "\n", "\r", "\r\n", "\n\n", ": c\n", "id: 1\n", "é");
    fc.assert(
      fc.property(fc.string({ unit: piece, maxLength: 40 }), fc.array(fc.nat(120), { maxLength: 6 }), fc.integer({ min: 1, max: 40 }), (text, cuts, max) => {
        const stream = new TextEncoder().encode(text);
        const whole = run(stream, [], max);
        const cut = run(stream, cuts, max);
        const bytes = run(stream, Array.from({ length: stream.length }, (_, i) => i), max);
        const all = run(stream, [], 1 << 20).events;
        assert.equal(cut.error, whole.error);
        assert.equal(bytes.error, whole.error);
        for (const r of [whole, cut, bytes]) {
          assert.deepEqual(r.events, all.slice(0, r.events.length));
          if (!r.error) assert.deepEqual(r.events, all);
        }
      }),
      { numRuns: RUNS },
    );
  });
});
