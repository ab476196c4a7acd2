import fc from "fast-check";
import { fuzzRuns } from "../../test/fuzz-runs.ts";
import { assert, describe, test } from "../../test/shim.ts";
import { toolDecider, type ToolFilter } from "./tool-filter.ts";

const f = (allow: string[] | null, deny: string[]): ToolFilter => ({ allow: allow === null ? null : new Set(allow), deny: new Set(deny) });

describe("toolDecider", () => {
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
  for (const [name, filter, tool, want] of cases) test(`${name}: ${tool} is ${want}`, () => assert.equal(toolDecider(filter)(tool), want));
});

describe("toolDecider on what a peer sends (a resource URI, a listed tool's name: up to 4 MiB)", () => {
  test("several *s against a long name that does not match take linear time, not a backtracking regex's power of it (the agent's one thread)", () => {
    const d = toolDecider(f(null, ["file:///data/*/*/*.txt", "*_*_*_admin"]));
    const t = performance.now();
    assert.equal(d(`file:///data/${"a/".repeat(1500)}x`), "allowed");
    assert.equal(d("a_".repeat(1500)), "allowed");
    assert.ok(performance.now() - t < 250, `took ${performance.now() - t} ms`);
    const big = performance.now();
    assert.equal(d(`file:///data/${"a/".repeat(2 * 1024 * 1024)}x`), "allowed");
    assert.equal(d(`${"a_".repeat(2 * 1024 * 1024)}admin`), "denied");
    assert.ok(performance.now() - big < 2000, `took ${performance.now() - big} ms`);
  });

  test("matches as a glob does: the same as the anchored regex of * and ? (property)", () => {
    const alphabet = fc.constantFrom("a", "b", "_", "*", "?", "\n", "é", "😀");
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 8 }), fc.array(fc.constantFrom("a", "b", "_", "\n", "é", "😀", "*", "?"), { maxLength: 10 }), (p, n) => {
        const pattern = p.join("");
        const name = n.join("");
        const body = Array.from(pattern, (c) => (c === "*" ? ".*" : c === "?" ? "." : c.replace(/[\\^$.|+()[\]{}\/]/g, "\\$&"))).join("");
        const want = new RegExp(`^${body}$`, "su").test(name);
        assert.equal(toolDecider(f(null, [pattern]))(name) === "denied", want, `${JSON.stringify(pattern)} ${JSON.stringify(name)}`);
      }),
      { numRuns: fuzzRuns(2000) },
    );
  });
});
