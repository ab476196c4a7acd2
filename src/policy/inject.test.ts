// Header templates (inject.ts): references parsed, every rejection by code, rendering.
import { describe, test, assert, codeOf } from "../../test/shim.ts";
import { PolicyError } from "./errors.ts";
import { DEFAULT_PLACEHOLDER_HEADERS, parseHeaderName, parseHeaderTemplate, parsePlaceholderHeaders, parseSecretName, renderHeader } from "./inject.ts";

describe("inject: templates", () => {
  test("literal text and references, in order, each secret named once", () => {
    const t = parseHeaderTemplate("Authorization", "Bearer ${secret:gh} and ${secret:x.y-z} ${secret:gh}");
    assert.deepEqual(t.parts, ["Bearer ", { secret: "gh" }, " and ", { secret: "x.y-z" }, " ", { secret: "gh" }]);
    assert.deepEqual(t.secrets, ["gh", "x.y-z"]);
    assert.equal(t.key, "authorization");
    assert.equal(renderHeader(t, { secret: (n) => `<${n}>` }), "Bearer <gh> and <x.y-z> <gh>");
  });
  test("rendered from the values in force: a changed or removed value never gives the last rendering", () => {
    const t = parseHeaderTemplate("Authorization", "Bearer ${secret:a}");
    const held: Record<string, string> = { a: "one" };
    const store = { secret: (n: string) => held[n] ?? null };
    const first = renderHeader(t, store);
    assert.equal(first, "Bearer one");
    assert.equal(renderHeader(t, store), first);
    held.a = "two";
    assert.equal(renderHeader(t, store), "Bearer two");
    delete held.a;
    assert.deepEqual(renderHeader(t, store), { missing: "a" });
    held.a = "one";
    assert.equal(renderHeader(t, store), "Bearer one");
  });
  test("a reference the store has no value for renders nothing, and is named", () => {
    const t = parseHeaderTemplate("Authorization", "${secret:a} ${secret:b}");
    const store = { secret: (n: string) => (n === "a" ? "va" : null) };
    assert.deepEqual(renderHeader(t, store), { missing: "b" });
    assert.equal(renderHeader(t, { secret: () => "v" }), "v v");
  });
  test("a value without references is literal", () => {
    assert.deepEqual(parseHeaderTemplate("X-Api-Version", "2022-11-28").parts, ["2022-11-28"]);
  });
  test("a tab is allowed in a value", () => {
    assert.deepEqual(parseHeaderTemplate("X-A", "a\tb").parts, ["a\tb"]);
  });
  const BAD: [string, () => unknown][] = [
    ["an empty value", () => parseHeaderTemplate("X-A", "")],
    ["CR", () => parseHeaderTemplate("X-A", "a\rb")],
    ["LF", () => parseHeaderTemplate("X-A", "a\nX-B: c")],
    ["NUL", () => parseHeaderTemplate("X-A", "a\u0000")],
    ["DEL", () => parseHeaderTemplate("X-A", "a\u007f")],
    ["an unclosed reference", () => parseHeaderTemplate("X-A", "${secret:gh")],
    ["a reference of another kind", () => parseHeaderTemplate("X-A", "${env:HOME}")],
    ["an empty secret name", () => parseHeaderTemplate("X-A", "${secret:}")],
    ["a secret name with a space", () => parseHeaderTemplate("X-A", "${secret:a b}")],
    ["a secret name over 64", () => parseSecretName("a".repeat(65))],
    ["a secret name starting with a dot", () => parseSecretName(".a")],
    ["a header name with a space", () => parseHeaderName("X A")],
    ["a header name with a colon", () => parseHeaderName("X:A")],
    ["an empty header name", () => parseHeaderName("")],
    ["a value over 8192", () => parseHeaderTemplate("X-A", "a".repeat(8193))],
    ["a placeholder header that is not a token", () => parsePlaceholderHeaders(["X-A", "X A"])],
    ["a placeholder header that frames the request", () => parsePlaceholderHeaders(["Content-Length"])],
    ["a placeholder header listed twice, in another case", () => parsePlaceholderHeaders(["X-Auth", "x-AUTH"])],
  ];
  for (const [what, f] of BAD) test(`rejects ${what}`, () => assert.equal(codeOf(f, PolicyError), "policy_bad_header"));
  for (const h of ["Host", "content-length", "Transfer-Encoding", "Connection", "Upgrade", "TE", "Trailer", "Keep-Alive", "Proxy-Connection", "Expect"]) {
    test(`refuses to inject ${h}`, () => assert.equal(codeOf(() => parseHeaderName(h), PolicyError), "policy_bad_header"));
  }
  test("header-name characters: exactly the RFC 9110 token set", () => {
    const tchar = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    for (let c = 0; c < 256; c++) {
      const ch = String.fromCharCode(c);
      const ok = codeOf(() => parseHeaderName(`X${ch}`), PolicyError) === null;
      assert.equal(ok, tchar.includes(ch), `byte ${c}`);
    }
  });
  test("the message names the header, never the rest of the value", () => {
    const e = (() => {
      try {
        parseHeaderTemplate("Authorization", "Bearer hunter2\n");
      } catch (x) {
        return x as Error;
      }
      return null;
    })();
    assert.ok(e !== null && e.message.includes("Authorization") && !e.message.includes("hunter2"));
  });
});

describe("inject: placeholder_headers", () => {
  test("the names lowercase, in order; none is an empty list", () => {
    assert.deepEqual(parsePlaceholderHeaders(["X-Custom-Auth", "Api-Key"]), ["x-custom-auth", "api-key"]);
    assert.deepEqual(parsePlaceholderHeaders([]), []);
  });
  test("the default is the credential headers, each one a name the parser takes", () => {
    assert.deepEqual(parsePlaceholderHeaders(DEFAULT_PLACEHOLDER_HEADERS), ["authorization", "x-api-key", "api-key"]);
  });
});
