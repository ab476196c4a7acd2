import fc from "fast-check";
import { fuzzRuns } from "../../test/fuzz-runs.ts";
import { assert, codeOf, describe, errorOf, test } from "../../test/shim.ts";
import { INVALID_PARAMS, INVALID_REQUEST, jsonRpcCodeOf, jsonRpcError, jsonRpcErrorOf, McpError, PARSE_ERROR } from "./errors.ts";
import { parseMessage } from "./message.ts";

describe("parseMessage accepts", () => {
  const cases: [string, string, object][] = [
    ["a request", '{"jsonrpc":"2.0","id":1,"method":"tools/list"}', { kind: "request", id: 1, method: "tools/list", params: undefined }],
    ["a request with a string id and params", '{"jsonrpc":"2.0","id":"a","method":"x","params":{"k":[1]}}', { kind: "request", id: "a", method: "x", params: { k: [1] } }],
    ["a notification", '{"jsonrpc":"2.0","method":"notifications/initialized"}', { kind: "notification", method: "notifications/initialized", params: undefined }],
    ["a result", '{"jsonrpc":"2.0","id":7,"result":{"tools":[]}}', { kind: "result", id: 7, result: { tools: [] } }],
    ["a null result", '{"jsonrpc":"2.0","id":7,"result":null}', { kind: "result", id: 7, result: null }],
    ["an error response", '{"jsonrpc":"2.0","id":"q","error":{"code":-32601,"message":"no"}}', { kind: "error", id: "q", error: { code: -32601, message: "no" } }],
    ["an error response with a null id", '{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"p","data":1}}', { kind: "error", id: null, error: { code: -32700, message: "p", data: 1 } }],
    ["surrounding whitespace", ' \n{"jsonrpc":"2.0","id":0,"method":"m"}\n', { kind: "request", id: 0, method: "m", params: undefined }],
  ];
  for (const [name, text, want] of cases) {
    test(name, () => {
      assert.deepEqual(parseMessage(text), want);
      assert.deepEqual(parseMessage(new TextEncoder().encode(text)), want);
    });
  }

  test("the message and everything in it are frozen", () => {
    const m = parseMessage('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"x":{"y":[1]}}}}');
    assert.ok(Object.isFrozen(m));
    assert.ok(m.kind === "request" && Object.isFrozen(m.params));
    const args = m.kind === "request" ? (m.params?.arguments as { x: { y: number[] } }) : null;
    assert.ok(args && Object.isFrozen(args.x) && Object.isFrozen(args.x.y));
  });
});

describe("parseMessage refuses", () => {
  const big = `{"jsonrpc":"2.0","method":"m","params":{"p":"${"a".repeat(100)}"}}`;
  const cases: [string, string | Uint8Array, string, object?][] = [
    ["empty input", "", "mcp_parse_error"],
    ["malformed JSON", '{"jsonrpc":"2.0",', "mcp_parse_error"],
    ["trailing bytes", '{"jsonrpc":"2.0","method":"m"} x', "mcp_parse_error"],
    ["invalid UTF-8", new Uint8Array([0x7b, 0xff, 0x7d]), "mcp_parse_error"],
    ["a batch", '[{"jsonrpc":"2.0","id":1,"method":"m"}]', "mcp_batch"],
    ["an empty batch", "[]", "mcp_batch"],
    ["over maxBytes (string)", big, "mcp_too_large", { maxBytes: 100 }],
    ["over maxBytes (bytes)", new TextEncoder().encode(big), "mcp_too_large", { maxBytes: 100 }],
    ["over maxBytes counted in UTF-8", `"${"é".repeat(40)}"`, "mcp_too_large", { maxBytes: 80 }],
    ["nesting over maxDepth", `{"jsonrpc":"2.0","method":"m","params":{"a":{"b":[[1]]}}}`, "mcp_too_deep", { maxDepth: 4 }],
    ["a number", "1", "mcp_invalid_request"],
    ["null", "null", "mcp_invalid_request"],
    ["a string", '"x"', "mcp_invalid_request"],
    ["no jsonrpc", '{"id":1,"method":"m"}', "mcp_invalid_request"],
    ['jsonrpc "1.0"', '{"jsonrpc":"1.0","id":1,"method":"m"}', "mcp_invalid_request"],
    ["jsonrpc 2.0 as a number", '{"jsonrpc":2.0,"id":1,"method":"m"}', "mcp_invalid_request"],
    ["a method that is a number", '{"jsonrpc":"2.0","id":1,"method":5}', "mcp_invalid_request"],
    ["a method that is null", '{"jsonrpc":"2.0","id":1,"method":null}', "mcp_invalid_request"],
    ["a fractional id", '{"jsonrpc":"2.0","id":1.5,"method":"m"}', "mcp_invalid_request"],
    ["an id over 2^53", '{"jsonrpc":"2.0","id":9007199254740993,"method":"m"}', "mcp_invalid_request"],
    ["an object id", '{"jsonrpc":"2.0","id":{},"method":"m"}', "mcp_invalid_request"],
    ["a boolean id", '{"jsonrpc":"2.0","id":true,"method":"m"}', "mcp_invalid_request"],
    ["a null request id", '{"jsonrpc":"2.0","id":null,"method":"m"}', "mcp_invalid_request"],
    ["a null result id", '{"jsonrpc":"2.0","id":null,"result":1}', "mcp_invalid_request"],
    ["a request with a result", '{"jsonrpc":"2.0","id":1,"method":"m","result":1}', "mcp_invalid_request"],
    ["a response with result and error", '{"jsonrpc":"2.0","id":1,"result":1,"error":{"code":1,"message":"m"}}', "mcp_invalid_request"],
    ["neither method, result nor error", '{"jsonrpc":"2.0","id":1}', "mcp_invalid_request"],
    ["a response without an id", '{"jsonrpc":"2.0","result":1}', "mcp_invalid_request"],
    ["an error that is a string", '{"jsonrpc":"2.0","id":1,"error":"bad"}', "mcp_invalid_request"],
    ["an error code that is not an integer", '{"jsonrpc":"2.0","id":1,"error":{"code":1.5,"message":"m"}}', "mcp_invalid_request"],
    ["an error without a message", '{"jsonrpc":"2.0","id":1,"error":{"code":1}}', "mcp_invalid_request"],
    ["params that are an array", '{"jsonrpc":"2.0","id":1,"method":"m","params":[1]}', "mcp_invalid_params"],
    ["params that are a string", '{"jsonrpc":"2.0","method":"m","params":"x"}', "mcp_invalid_params"],
  ];
  for (const [name, input, code, limits] of cases) {
    test(`${name}: ${code}`, () => {
      assert.equal(codeOf(() => parseMessage(input, limits), McpError), code);
    });
  }

  test("the error carries the id when it could be read, and becomes a JSON-RPC error", () => {
    const e = errorOf(() => parseMessage('{"jsonrpc":"2.0","id":"r1","method":"m","params":7}'), McpError);
    assert.equal(e.requestId, "r1");
    assert.deepEqual(jsonRpcErrorOf(e), { jsonrpc: "2.0", id: "r1", error: { code: INVALID_PARAMS, message: e.message } });
    assert.match(e.message, /^mcp: params of m /);
    const p = errorOf(() => parseMessage("{"), McpError);
    assert.equal(p.requestId, null);
    assert.equal(jsonRpcCodeOf(p), PARSE_ERROR);
    assert.equal(jsonRpcCodeOf(errorOf(() => parseMessage("[]"), McpError)), INVALID_REQUEST);
  });

  test("jsonRpcError builds the response, with data only when given", () => {
    assert.deepEqual(jsonRpcError(null, -32700, "mcp: x"), { jsonrpc: "2.0", id: null, error: { code: -32700, message: "mcp: x" } });
    assert.deepEqual(jsonRpcError(3, -32020, "m", { h: 1 }), { jsonrpc: "2.0", id: 3, error: { code: -32020, message: "m", data: { h: 1 } } });
  });

  test("a parameter's value never appears in a message", () => {
    const e = errorOf(() => parseMessage('{"jsonrpc":"2.0","id":1,"method":"m","params":"SECRET-TOKEN"}'), McpError);
    assert.ok(!e.message.includes("SECRET"));
  });
});

describe("parseMessage properties", () => {
  const onlyMcpError = (input: string | Uint8Array, limits?: { maxBytes?: number; maxDepth?: number }): void => {
    try {
      parseMessage(input, limits);
    } catch (e) {
      if (!(e instanceof McpError)) throw e;
    }
  };

  test("arbitrary strings return a message or throw McpError only", () => {
    fc.assert(fc.property(fc.string({ unit: "binary" }), (s) => onlyMcpError(s)), { numRuns: fuzzRuns(500) });
  });

  test("arbitrary JSON values and bytes return a message or throw McpError only", () => {
    fc.assert(fc.property(fc.jsonValue(), fc.integer({ min: 1, max: 6 }), (v, depth) => onlyMcpError(JSON.stringify(v), { maxDepth: depth, maxBytes: 2000 })), { numRuns: fuzzRuns(500) });
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (b) => onlyMcpError(b)), { numRuns: fuzzRuns(300) });
  });

  test("mutated valid messages return a message or throw McpError only", () => {
    const base = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"x":[1,{"y":null}]}}}';
    fc.assert(
      fc.property(fc.nat(base.length - 1), fc.nat(base.length), fc.string({ maxLength: 4 }), (at, end, ins) => onlyMcpError(base.slice(0, at) + ins + base.slice(Math.max(at, end)))),
      { numRuns: fuzzRuns(500) },
    );
  });

  test("very deep nesting is refused without a crash", () => {
    const arrays = codeOf(() => parseMessage(`${"[".repeat(200000)}${"]".repeat(200000)}`), McpError);
    assert.ok(arrays === "mcp_batch" || arrays === "mcp_parse_error", String(arrays));
    const deep = `{"jsonrpc":"2.0","method":"m","params":${'{"a":'.repeat(100000)}1${"}".repeat(100001)}`;
    const code = codeOf(() => parseMessage(deep), McpError);
    assert.ok(code === "mcp_too_deep" || code === "mcp_parse_error", String(code));
  });
});

describe("parseMessage freeze: false", () => {
  test("gives the same message, not frozen, and still refuses what is too deep", () => {
    const text = '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}]}}';
    const m = parseMessage(text, { freeze: false });
    assert.deepEqual(m, parseMessage(text));
    assert.equal(Object.isFrozen((m as { result: object }).result), false);
    assert.equal(Object.isFrozen((parseMessage(text) as { result: object }).result), true);
    const deep = `{"jsonrpc":"2.0","id":1,"result":${"[".repeat(70)}${"]".repeat(70)}}`;
    assert.throws(() => parseMessage(deep, { freeze: false }), (e: unknown) => e instanceof McpError && e.code === "mcp_too_deep");
  });
});
