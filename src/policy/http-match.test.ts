import { assert, codeOf, describe, errorOf, test } from "../../test/shim.ts";
import { PolicyError } from "./errors.ts";
import { normalizeRequestPath, parseMethod, parsePathPattern, pathMatches } from "./http-match.ts";

describe("parseMethod", () => {
  for (const m of ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "PROPFIND", "M-SEARCH", "X_1", "A", `A${"B".repeat(31)}`]) {
    test(`accepts ${m.length > 20 ? `${m.slice(0, 8)}... (${m.length})` : m}`, () => assert.equal(parseMethod(m), m));
  }
  const rejected: [string, string][] = [
    ["", "empty"],
    ["get", "lowercase"],
    ["Get", "mixed case"],
    [`A${"B".repeat(32)}`, "33 characters"],
    ["1GET", "a leading digit"],
    ["-GET", "a leading hyphen"],
    ["GET ", "a trailing space"],
    ["G ET", "a space"],
    ["GET\r\n", "CRLF"],
    ["GÉT", "non-ASCII"],
    ["*", "a wildcard"],
  ];
  for (const [text, why] of rejected) {
    test(`rejects ${why}`, () => assert.equal(codeOf(() => parseMethod(text)), "policy_bad_method"));
  }
  test("a lowercase method gets a hint", () => {
    assert.match(errorOf(() => parseMethod("get"), PolicyError).message, /^policy: method "get": .*case-sensitive: write GET$/);
  });
});

describe("parsePathPattern", () => {
  const accepted = ["/", "/v1", "/v1/", "/v1/*", "/v1/*/", "/v1/**", "/**", "/*", "/a/*/b/**", "/repos/*/issues",
    "/a-b_c.d~e", "/a:b@c!$&'()+,=", "/café", "/..a/.b./a..b"];
  for (const text of accepted) {
    test(`accepts ${text}`, () => {
      const p = parsePathPattern(text);
      assert.equal(p.text, text);
      assert.ok(Object.isFrozen(p));
    });
  }

  const rejected: [string, string][] = [
    ["", "empty"],
    ["v1/a", "no leading slash"],
    ["*", "a bare wildcard"],
    ["//", "an empty segment"],
    ["/a//b", "an empty segment"],
    ["/a*", "a partial wildcard"],
    ["/*a/b", "a partial wildcard"],
    ["/a/***", "a triple wildcard"],
    ["/**/a", "** not last"],
    ["/a/**/", "** then a trailing slash"],
    ["/.", "a dot segment"],
    ["/a/../b", "a dot-dot segment"],
    ["/a/..", "a trailing dot-dot segment"],
    ["/a?b=1", "a query"],
    ["/a#x", "a fragment"],
    ["/a%20b", "a percent sign"],
    ["/a b", "a space"],
    ["/a\tb", "a tab"],
    ["/a\u0000", "NUL"],
    ["/a\u007f", "DEL"],
    ["/a\\b", "a backslash"],
    ["/a{b}", "braces"],
    ["/a|b", "a bar"],
    ["/a\"b", "a quote"],
    ["/a[0]", "brackets"],
    ["/a\ud800", "a lone surrogate"],
    [`/${"a".repeat(2048)}`, "2049 characters"],
    ["/a;b", "a semicolon: request segments are matched without their parameters"],
    ["/admin;x/**", "a semicolon"],
  ];
  for (const [text, why] of rejected) {
    test(`rejects ${JSON.stringify(text.length > 40 ? `${text.slice(0, 20)}...` : text)} (${why})`, () => {
      assert.equal(codeOf(() => parsePathPattern(text)), "policy_bad_path");
    });
  }

  test("byte loop: the characters a pattern segment takes literally", () => {
    for (let b = 0; b < 256; b++) {
      const ch = String.fromCharCode(b);
      const ok = /^[A-Za-z0-9._~!$&'()+,=:@/-]$/.test(ch) || b >= 128; // "/" splits the segment; ";" is refused
      assert.equal(codeOf(() => parsePathPattern(`/a${ch}b`)), ok ? null : "policy_bad_path", `byte ${b}`);
    }
  });
});

describe("pathMatches", () => {
  const table: [string, string, boolean][] = [
    ["/", "/", true],
    ["/", "/a", false],
    ["/v1", "/v1", true],
    ["/v1", "/v1/", false],
    ["/v1", "/V1", false],
    ["/v1", "/v1x", false],
    ["/v1", "/v", false],
    ["/v1/", "/v1/", true],
    ["/v1/", "/v1", false],
    ["/v1/*", "/v1/a", true],
    ["/v1/*", "/v1/", false],
    ["/v1/*", "/v1", false],
    ["/v1/*", "/v1/a/b", false],
    ["/v1/*", "/v1/a/", false],
    ["/v1/*/", "/v1/a/", true],
    ["/*", "/", false],
    ["/*", "/x", true],
    ["/v1/**", "/v1", true],
    ["/v1/**", "/v1/", true],
    ["/v1/**", "/v1/a", true],
    ["/v1/**", "/v1/a/b/c", true],
    ["/v1/**", "/v1x", false],
    ["/v1/**", "/v2/a", false],
    ["/v1/**", "/", false],
    ["/**", "/", true],
    ["/**", "/anything/at/all", true],
    ["/repos/*/issues", "/repos/tidegate/issues", true],
    ["/repos/*/issues", "/repos/issues", false],
    ["/repos/*/issues", "/repos/a/b/issues", false],
    ["/a/*/b/**", "/a/x/b", true],
    ["/a/*/b/**", "/a/x/b/c/d", true],
    ["/a/*/b/**", "/a/x/c", false],
    ["/café", "/caf%C3%A9", true],
    ["/café", "/caf%c3%a9", true],
    ["/a,b", "/a,b", true],
    ["/a,b", "/a%2Cb", false],
    ["/a~b", "/a%7Eb", true],
    // a segment is matched up to its parameters (";..."), as Tomcat, Jetty and Spring route it
    ["/admin/**", "/admin;x/users", true],
    ["/admin/users", "/admin/users;jsessionid=1", true],
    ["/admin/users", "/admin;a=b/users;c", true],
    ["/v1/*", "/v1/a;b", true],
    ["/v1/*/", "/v1/a;b/", true],
    ["/v1", "/v1x;y", false],
    ["/v1", "/v1;y/z", false],
    ["/a,b", "/a,b;c", true],
    ["/a/b", "/a;/b", true],
  ];
  for (const [pattern, target, want] of table) {
    test(`${pattern} ${want ? "matches" : "does not match"} ${target}`, () => {
      assert.equal(pathMatches(parsePathPattern(pattern), normalizeRequestPath(target)), want);
    });
  }
  test("a path that does not start with / matches nothing", () => {
    assert.equal(pathMatches(parsePathPattern("/**"), ""), false);
    assert.equal(pathMatches(parsePathPattern("/**"), "*"), false);
  });
});

describe("normalizeRequestPath", () => {
  test("a refused path is named without its query (it may hold a token)", () => {
    assert.throws(() => normalizeRequestPath("/v1/../x?access_token=ghp_SECRET"), (e: Error) => !e.message.includes("ghp_SECRET") && e.message.includes("/v1/../x"));
  });

  const table: [string, string][] = [
    ["/", "/"],
    ["/a/b", "/a/b"],
    ["/a/b/", "/a/b/"],
    ["/a?x=1&y=/../", "/a"],
    ["/?", "/"],
    ["/a%41%62", "/aAb"],
    ["/%7euser", "/~user"],
    ["/a%2d%2E%5f", "/a-._"],
    ["/a%2c", "/a%2C"],
    ["/a%20b", "/a%20b"],
    ["/caf%c3%a9", "/caf%C3%A9"],
    ["/a%25", "/a%25"],
    ["/a%2541", "/a%2541"],
    ["/a%3f", "/a%3F"],
    ["/%2e%2ea", "/..a"],
    ["/a.b/.c/..d", "/a.b/.c/..d"],
    ["/a:b@c!$&'()*+,;=", "/a:b@c!$&'()*+,;="],
    ["/a;b/c;d=e", "/a;b/c;d=e"],
    ["/a;b/%7E;x", "/a;b/~;x"],
    ["/a;%2e%2e", "/a;.."],
  ];
  for (const [target, want] of table) {
    test(`${target} -> ${want}`, () => {
      assert.equal(normalizeRequestPath(target), want);
      assert.equal(normalizeRequestPath(want), want, "idempotent");
    });
  }

  const rejected: [string, string][] = [
    ["", "empty"],
    ["?a", "only a query"],
    ["a/b", "no leading slash"],
    ["*", "asterisk-form"],
    ["http://x/a", "absolute-form"],
    ["//", "an empty segment"],
    ["//a", "a leading empty segment"],
    ["/a//b", "an empty segment"],
    ["/a//", "two trailing slashes"],
    ["/.", "a dot segment"],
    ["/..", "a dot-dot segment"],
    ["/a/./b", "a dot segment"],
    ["/a/../b", "a dot-dot segment"],
    ["/a/..", "a trailing dot-dot segment"],
    ["/a/../", "a dot-dot segment then a slash"],
    ["/%2e", "an encoded dot segment"],
    ["/%2E%2e/x", "an encoded dot-dot segment"],
    ["/.%2e/x", "a half-encoded dot-dot segment"],
    ["/a%2fb", "an encoded slash"],
    ["/a%2Fb", "an encoded slash"],
    ["/a%5cb", "an encoded backslash"],
    ["/a\\b", "a backslash"],
    ["/a%00", "an encoded NUL"],
    ["/a%0d%0a", "an encoded CRLF"],
    ["/a%7f", "an encoded DEL"],
    ["/a\u0000", "a NUL"],
    ["/a\r\n", "CRLF"],
    ["/a\t", "a tab"],
    ["/a b", "a space"],
    ["/a#b", "a fragment"],
    ["/a%", "a lone percent"],
    ["/a%4", "one hex digit"],
    ["/a%4/", "one hex digit before a slash"],
    ["/a%zz", "non-hex digits"],
    ["/a%%41", "a percent before an encoding"],
    ["/café", "raw non-ASCII"],
    ["/a{b}", "raw braces"],
    ["/a|b", "a raw bar"],
    ["/a\"b", "a raw quote"],
    ["/a<b>", "raw angle brackets"],
    ["/a[0]", "raw square brackets"],
    ["/a^b", "a raw caret"],
    ["/a`b", "a raw backtick"],
    [`/${"a".repeat(8192)}`, "8193 characters"],
    ["/public/..;/admin", "a dot-dot segment with parameters (Tomcat's /admin)"],
    ["/public/..;jsessionid=1/admin", "a dot-dot segment with parameters"],
    ["/public/.;x/admin", "a dot segment with parameters"],
    ["/public/%2e%2e;/admin", "an encoded dot-dot segment with parameters"],
    ["/admin/;x/secret", "a segment of parameters alone (read as //)"],
    ["/;x", "a first segment of parameters alone"],
    ["/a/;", "a last segment of parameters alone"],
  ];
  for (const [target, why] of rejected) {
    test(`rejects ${JSON.stringify(target.length > 40 ? `${target.slice(0, 20)}...` : target)} (${why})`, () => {
      assert.equal(codeOf(() => normalizeRequestPath(target)), "policy_bad_path");
    });
  }

  test("the length limit is on the path, not the query", () => {
    const path = `/${"a".repeat(8191)}`;
    assert.equal(normalizeRequestPath(`${path}?${"q".repeat(10000)}`), path);
  });

  test("byte loop: raw characters", () => {
    for (let b = 0; b < 256; b++) {
      const ch = String.fromCharCode(b);
      const want = b === 0x3f ? "/a" : /^[A-Za-z0-9._~!$&'()*+,;=:@/-]$/.test(ch) ? `/a${ch}b` : null;
      if (want === null) assert.equal(codeOf(() => normalizeRequestPath(`/a${ch}b`)), "policy_bad_path", `byte ${b}`);
      else assert.equal(normalizeRequestPath(`/a${ch}b`), want, `byte ${b}`);
    }
  });

  test("byte loop: every percent-encoded byte is decoded, kept or refused", () => {
    for (let b = 0; b < 256; b++) {
      const hex = b.toString(16).padStart(2, "0");
      const ch = String.fromCharCode(b);
      const got = (h: string) => {
        try {
          return normalizeRequestPath(`/a%${h}b`);
        } catch (e) {
          if (e instanceof PolicyError && e.code === "policy_bad_path") return "refused";
          throw e;
        }
      };
      const want = b < 0x20 || b === 0x7f || b === 0x2f || b === 0x5c ? "refused"
        : /^[A-Za-z0-9._~-]$/.test(ch) ? `/a${ch}b`
        : `/a%${hex.toUpperCase()}b`;
      assert.equal(got(hex), want, `byte ${b}`);
      assert.equal(got(hex.toUpperCase()), want, `byte ${b} (uppercase)`);
    }
  });
});
