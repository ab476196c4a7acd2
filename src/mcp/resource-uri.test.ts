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
    // What a WHATWG URL parser (new URL, a server's) reads as another URI than the text says.
    ["file:/etc/shadow", null],
    ["file:etc/shadow", null],
    ["HTTP:example.com/x", null],
    ["file://localhost/etc/shadow", "file:///etc/shadow"],
    ["file://LOCALHOST/etc/shadow", "file:///etc/shadow"],
    ["foo:/a/../b", null],
    ["foo:/a/%2e%2e/b", null],
    ["foo:/a//b", null],
    ["foo:/a/b", "foo:/a/b"],
    ["https://user@example.com/x", null],
    ["https://example.com:443/x", "https://example.com/x"],
    ["http://example.com:80/x", "http://example.com/x"],
    ["http://example.com:8080/x", "http://example.com:8080/x"],
    // A file URI has no use for a query or fragment; a server that takes the URI's text after
    // file:// for a path (and path.resolve()s it) reads ../ in one as the path's.
    ["file:///shared/x?/../../etc/shadow", null],
    ["file:///shared/x#/../../etc/shadow", null],
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
