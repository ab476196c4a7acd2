import fc from "fast-check";
import { assert, codeOf, describe, test } from "../../test/shim.ts";
import { McpError } from "./errors.ts";
import { decideTool, filterToolsList, toolDecider, type ToolFilter } from "./tool-filter.ts";

const f = (allow: string[] | null, deny: string[]): ToolFilter => ({ allow: allow === null ? null : new Set(allow), deny: new Set(deny) });

describe("decideTool", () => {
  const cases: [string, ToolFilter, string, string][] = [
    ["no allow list allows", f(null, []), "anything", "allowed"],
    ["an exact allow", f(["read_file"], []), "read_file", "allowed"],
    ["not in the allow list", f(["read_file"], []), "write_file", "not_allowed"],
    ["an empty allow list allows nothing", f([], []), "read_file", "not_allowed"],
    ["an exact deny", f(null, ["rm"]), "rm", "denied"],
    ["in both: denied", f(["rm"], ["rm"]), "rm", "denied"],
    ["a glob in both: denied", f(["fs.*"], ["fs.write*"]), "fs.write_file", "denied"],
    ["* matches any run", f(["fs.*"], []), "fs.read.deep", "allowed"],
    ["* matches the empty run", f(["fs.*"], []), "fs.", "allowed"],
    ["a lone * matches everything", f(null, ["*"]), "x", "denied"],
    ["? matches one character", f(["get_?"], []), "get_a", "allowed"],
    ["? matches exactly one", f(["get_?"], []), "get_ab", "not_allowed"],
    ["? does not match none", f(["get_?"], []), "get_", "not_allowed"],
    [". is literal", f(["a.b"], []), "aXb", "not_allowed"],
    ["a prefix is not a match", f(["read"], []), "read_file", "not_allowed"],
    ["case matters", f(["Read"], []), "read", "not_allowed"],
    ["regex characters are literal", f(["a+(b)|[c]"], []), "a+(b)|[c]", "allowed"],
    ["regex characters do not act", f(["a+"], []), "aa", "not_allowed"],
  ];
  for (const [name, filter, tool, want] of cases) test(`${name}: ${tool} is ${want}`, () => assert.equal(decideTool(filter, tool), want));
});

describe("filterToolsList", () => {
  const result = Object.freeze({
    tools: Object.freeze([{ name: "a", description: "x" }, { name: "secret_b" }, { nameless: true }, 7, { name: "c" }]),
    nextCursor: "n2",
    _meta: { k: 1 },
  });

  test("removes hidden and nameless tools, keeps every other member, does not change the input", () => {
    const before = JSON.stringify(result);
    const decide = toolDecider(f(null, ["secret_*"]));
    const out = filterToolsList(result, (n) => decide(n) === "allowed");
    assert.deepEqual(out, { tools: [{ name: "a", description: "x" }, { name: "c" }], nextCursor: "n2", _meta: { k: 1 } });
    assert.equal(JSON.stringify(result), before);
    assert.ok(Object.isFrozen(out) && Object.isFrozen(out.tools));
  });

  const bad: [string, unknown][] = [
    ["null", null],
    ["an array", []],
    ["no tools", { nextCursor: "x" }],
    ["tools that are an object", { tools: { a: 1 } }],
  ];
  for (const [name, value] of bad) test(`refuses ${name}: mcp_invalid_result`, () => assert.equal(codeOf(() => filterToolsList(value, () => true), McpError), "mcp_invalid_result"));

  test("property: never leaves a denied tool, keeps every allowed one in order", () => {
    const name = fc.stringMatching(/^[a-c_.?*-]{1,5}$/);
    fc.assert(
      fc.property(fc.option(fc.array(name, { maxLength: 4 }), { nil: null }), fc.array(name, { maxLength: 4 }), fc.array(name.filter((n) => !/[?*]/.test(n)), { maxLength: 12 }), (allow, deny, names) => {
        const decide = toolDecider(f(allow, deny));
        const input = { tools: names.map((n) => ({ name: n })), nextCursor: "c" };
        const out = filterToolsList(input, (n) => decide(n) === "allowed");
        const kept = (out.tools as { name: string }[]).map((t) => t.name);
        for (const n of kept) assert.equal(decide(n), "allowed");
        for (const n of kept) for (const d of deny) if (!/[?*]/.test(d)) assert.notEqual(n, d);
        assert.deepEqual(kept, names.filter((n) => decide(n) === "allowed"));
        assert.equal(out.nextCursor, "c");
      }),
      { numRuns: 300 },
    );
  });
});
