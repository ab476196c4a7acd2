import fc from "fast-check";
import { fuzzRuns } from "../../test/fuzz-runs.ts";
import { assert, describe, test } from "../../test/shim.ts";
import { normalizeResourceTemplate } from "./resource-template.ts";
import { normalizeResourceUri } from "./resource-uri.ts";
import { toolDecider } from "./tool-filter.ts";

describe("normalizeResourceTemplate", () => {
  const table: [string, string | null][] = [
    ["file:///shared/{name}", "file:///shared/*"],
    ["file:///shared/{+path}", "file:///shared/*"],
    ["file:///shared/{a}/{b}.txt", "file:///shared/*/*.txt"],
    ["file:///shared/{a}{b}", "file:///shared/**"],
    ["file:///shared/x{?q,lang}", "file:///shared/x*"],
    ["FILE:///shared/{name}", "file:///shared/*"],
    ["https://Example.COM/{id}", "https://example.com/*"],
    ["https://{host}/x", "https://*/x"],
    ["file:///shared/%73ecret/{n}", "file:///shared/secret/*"],
    ["file:///shared/a.txt", "file:///shared/a.txt"],
    ["file:///shared/{name", null],
    ["file:///shared/name}", null],
    ["file:///shared/{a{b}}", null],
    ["file:///shared/{}", null],
    ["{scheme}://x/y", null],
    ["file:///shared/{a}/../etc", null],
    ["file:///shared//{a}", null],
    ["file:///shared/%2f{a}", null],
    ["file:///shared/%{a}", null],
    ["file:///shared/a b/{c}", null],
    ["no-scheme/{a}", null],
    ["", null],
  ];
  for (const [template, want] of table) test(`${JSON.stringify(template)} -> ${JSON.stringify(want)}`, () => assert.equal(normalizeResourceTemplate(template), want));

  test("the text with `*` for expressions is decided by the glob filter as documented: allow by a prefix glob, deny when a deny pattern matches it", () => {
    const decide = toolDecider({ allow: new Set(["file:///shared/*", "file:///data/a*"]), deny: new Set(["file:///shared/secret*", "file:///shared/private/*"]) });
    const cases: [string, string][] = [
      ["file:///shared/{name}", "allowed"],
      ["file:///data/{name}", "not_allowed"],
      ["file:///other/{name}", "not_allowed"],
      ["file:///shared/secret/{name}", "denied"],
      ["file:///shared/private/{name}", "denied"],
      ["file:///shared/{dir}/secret", "allowed"],
    ];
    for (const [template, want] of cases) assert.equal(decide(normalizeResourceTemplate(template)!), want, template);
    assert.equal(toolDecider({ allow: null, deny: new Set(["file:///shared/*"]) })(normalizeResourceTemplate("file:///shared/{name}")!), "denied");
  });

  test("returns a text or null for any string, never throws; without braces, decided as the URI it is (property)", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: fc.constantFrom("{", "}", "a", "/", ":", ".", "%", "2f", "*", "file:///") })), (t) => {
        const n = normalizeResourceTemplate(t);
        assert.ok(n === null || typeof n === "string");
        if (!/[{}]/.test(t)) assert.equal(n, normalizeResourceUri(t));
        if (/\{[^}]*$/.test(t)) assert.equal(n, null, "an unclosed brace");
      }),
      { numRuns: fuzzRuns(300) },
    );
  });
});
