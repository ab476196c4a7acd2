import fc from "fast-check";
import { fuzzRuns } from "../../test/fuzz-runs.ts";
import { assert, describe, test } from "../../test/shim.ts";
import { firstDuplicateKey, foldKey } from "./duplicate-keys.ts";
import { McpError } from "./errors.ts";
import { parseMessage } from "./message.ts";

describe("firstDuplicateKey", () => {
  const table: [string, string | null][] = [
    ['{"a":1,"b":2}', null],
    ['{"a":1,"a":2}', "a"],
    ['{"params":{"name":"ok","name":"evil"}}', "name"],
    ['{"a":1,"\\u0061":2}', "a"],
    ['{"a":{"a":1},"b":{"a":2}}', null],
    ['[{"a":1},{"a":2}]', null],
    ['{"x":[{"k":1,"k":2}]}', "k"],
    ['{"a":"b","c":"b"}', null],
    ['{"a":"\\"a\\":{","b":"}"}', null],
    ['{"a\\"b":1,"a\\"b":2}', 'a"b'],
    ['{"a":[1,{"a":2}],"b":[],"a2":{}}', null],
    ['{"":1,"":2}', ""],
  ];
  for (const [text, want] of table) {
    test(`${text} -> ${String(want)}`, () => {
      JSON.parse(text); // the scanner runs on text JSON.parse accepted
      assert.equal(firstDuplicateKey(text), want);
    });
  }

  /** A reference: does any object in `v` hold two keys that fold together? */
  const foldClash = (v: unknown): boolean => {
    if (Array.isArray(v)) return v.some(foldClash);
    if (v === null || typeof v !== "object") return false;
    const keys = Object.keys(v);
    return new Set(keys.map(foldKey)).size !== keys.length || Object.values(v).some(foldClash);
  };

  test("null exactly when no object of what JSON.stringify writes has keys that fold together; a key written twice is always found (property)", () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 3 }), { minKeys: 1, maxKeys: 6 }), (obj) => {
        const text = JSON.stringify(obj);
        assert.equal(firstDuplicateKey(text) === null, !foldClash(obj));
        fc.pre(!foldClash(obj));
        const [k, v] = Object.entries(obj)[0]!;
        const doubled = `{${JSON.stringify(k)}:${JSON.stringify(v) ?? "null"},${text.slice(1)}`;
        assert.equal(firstDuplicateKey(doubled), k);
      }),
      { numRuns: fuzzRuns(300) },
    );
  });
});

describe("parseMessage refuses a repeated key", () => {
  test("a tools/call naming two tools: mcp_duplicate_key, answered -32600", () => {
    const text = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"allowed","name":"denied","arguments":{}}}';
    assert.throws(() => parseMessage(text), (e: unknown) => e instanceof McpError && e.code === "mcp_duplicate_key");
  });
});

describe("keys another parser folds together (review finding 1)", () => {
  const refused: [string, string, string][] = [
    ["Name beside name", '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","Name":"delete_all"}}', "mcp_duplicate_key"],
    ["NAME alone", '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"NAME":"delete_all"}}', "mcp_invalid_request"],
    ["a name with a NUL beside name", '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","name\\u0000":"delete_all"}}', "mcp_duplicate_key"],
    ["Method beside method", '{"jsonrpc":"2.0","id":3,"method":"ping","Method":"tools/call"}', "mcp_duplicate_key"],
    ["a long-s params", '{"jsonrpc":"2.0","id":3,"method":"ping","param\\u017f":{"name":"delete_all"}}', "mcp_invalid_request"],
    ["a Kelvin-sign key beside k in arguments", '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"k":1,"\\u212a":2}}}', "mcp_duplicate_key"],
    ["a control character in an envelope key", '{"jsonrpc":"2.0","id":1,"method":"ping","x\\u0001":1}', "mcp_invalid_request"],
  ];
  for (const [name, text, code] of refused) {
    test(`${name} is refused (${code})`, () => {
      assert.throws(() => parseMessage(text), (e: unknown) => e instanceof McpError && e.code === code);
    });
  }
  test("differently cased keys inside arguments that do not collide pass", () => {
    const m = parseMessage('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"Path":"/x","mode":"r"}}}');
    assert.equal(m.kind, "request");
  });
});
