import fc from "fast-check";
import { fuzzRuns } from "../../test/fuzz-runs.ts";
import { assert, describe, test } from "../../test/shim.ts";
import { normalizeResourceUri } from "./resource-uri.ts";

describe("normalizeResourceUri", () => {
  const table: [string, string | null][] = [
    ["file:///shared/a.txt", "file:///shared/a.txt"],
    ["FILE:///shared/a.txt", "file:///shared/a.txt"],
    ["file:///shared/%73ecret.txt", "file:///shared/secret.txt"],
    ["file:///shared/a%20b", "file:///shared/a b"],
    ["https://Example.COM/x?q=../..#f", "https://example.com/x?q=../..#f"],
    ["file:///shared/", "file:///shared/"],
    ["urn:isbn:0451450523", "urn:isbn:0451450523"],
    ["test://static/resource/1", "test://static/resource/1"],
    ["file:///shared/../../etc/shadow", null],
    ["file:///shared/./secret.txt", null],
    ["file:///shared//secret.txt", null],
    ["file:///shared/%2e%2e/etc", null],
    ["file:///shared/a%2fb", null],
    ["file:///shared/a%5cb", null],
    ["file:///shared/a%00", null],
    ["file:///shared/%zz", null],
    ["file:///shared/a\\b", null],
    ["file:///shared/a b", null],
    ["no-scheme/path", null],
    ["", null],
  ];
  for (const [uri, want] of table) test(`${JSON.stringify(uri)} -> ${JSON.stringify(want)}`, () => assert.equal(normalizeResourceUri(uri), want));

  test("what it returns for any web URL never has a dot segment in its path (property)", () => {
    fc.assert(
      fc.property(fc.webUrl({ withFragments: true, withQueryParameters: true }), (u) => {
        const n = normalizeResourceUri(u);
        if (n === null) return;
        const path = n.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/, "").split(/[?#]/)[0]!;
        assert.ok(!path.split("/").some((s) => s === "." || s === ".."), n);
      }),
      { numRuns: fuzzRuns(300) },
    );
  });
});
