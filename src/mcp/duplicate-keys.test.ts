import fc from "fast-check";
import { assert, describe, test } from "../../test/shim.ts";
import { firstDuplicateKey } from "./duplicate-keys.ts";
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

  test("never a duplicate in what JSON.stringify writes; always one when a key is written twice (property)", () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 3 }), { minKeys: 1, maxKeys: 6 }), (obj) => {
        const text = JSON.stringify(obj);
        assert.equal(firstDuplicateKey(text), null);
        const [k, v] = Object.entries(obj)[0]!;
        const doubled = `{${JSON.stringify(k)}:${JSON.stringify(v) ?? "null"},${text.slice(1)}`;
        assert.equal(firstDuplicateKey(doubled), k);
      }),
      { numRuns: 300 },
    );
  });
});

describe("parseMessage refuses a repeated key", () => {
  test("a tools/call naming two tools: mcp_duplicate_key, answered -32600", () => {
    const text = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"allowed","name":"denied","arguments":{}}}';
    assert.throws(() => parseMessage(text), (e: unknown) => e instanceof McpError && e.code === "mcp_duplicate_key");
  });
});
