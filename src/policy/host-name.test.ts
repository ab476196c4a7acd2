import { assert, codeOf, describe, errorOf, test } from "../../test/shim.ts";
import { PolicyError } from "./errors.ts";
import { hostMatches, normalizeServerName, parentOf, parseHostPattern } from "./host-name.ts";

const label63 = "a".repeat(63);
/** 253 characters: four labels of 63 and one of 1. */
const name253 = `${label63}.${label63}.${label63}.${"b".repeat(61)}`;

describe("parseHostPattern", () => {
  const accepted: [string, "exact" | "one" | "any", string, string][] = [
    ["example.com", "exact", "example.com", "example.com"],
    ["API.GitHub.COM", "exact", "api.github.com", "api.github.com"],
    ["example.com.", "exact", "example.com", "example.com"],
    ["localhost", "exact", "localhost", "localhost"],
    ["a-b.c_d.example", "exact", "a-b.c_d.example", "a-b.c_d.example"],
    ["_dmarc.example.com", "exact", "_dmarc.example.com", "_dmarc.example.com"],
    ["123.example.com", "exact", "123.example.com", "123.example.com"],
    ["x.com1", "exact", "x.com1", "x.com1"],
    ["xn--bcher-kva.de", "exact", "xn--bcher-kva.de", "xn--bcher-kva.de"],
    ["*.example.com", "one", "example.com", "*.example.com"],
    ["*.Example.COM.", "one", "example.com", "*.example.com"],
    ["**.example.com", "any", "example.com", "**.example.com"],
    ["**.a.b.c", "any", "a.b.c", "**.a.b.c"],
    [`${label63}.com`, "exact", `${label63}.com`, `${label63}.com`],
    [name253, "exact", name253, name253],
    [`${name253}.`, "exact", name253, name253],
    [`*.${name253.slice(2)}`, "one", name253.slice(2), `*.${name253.slice(2)}`],
    [`**.${name253.slice(2)}`, "any", name253.slice(2), `**.${name253.slice(2)}`],
  ];
  for (const [text, kind, name, canonical] of accepted) {
    test(`accepts ${text.length > 40 ? `${text.slice(0, 20)}... (${text.length})` : text}`, () => {
      const p = parseHostPattern(text);
      assert.deepEqual({ ...p }, { kind, name, text: canonical });
      assert.ok(Object.isFrozen(p));
      assert.deepEqual(parseHostPattern(p.text), p);
    });
  }

  const rejected: [string, string][] = [
    ["", "empty"],
    [".", "only the root"],
    ["example.com..", "two trailing dots"],
    [".example.com", "a leading dot"],
    ["a..b", "an empty label"],
    ["-a.com", "a label starting with a hyphen"],
    ["a-.com", "a label ending with a hyphen"],
    [`${"a".repeat(64)}.com`, "a label of 64"],
    [`${name253}x`, "254 characters"],
    ["exa mple.com", "a space"],
    ["bücher.de", "non-ASCII"],
    ["exampl\u212a.com", "a Kelvin sign (lowercases to k)"],
    ["a\u0000.com", "NUL"],
    ["a/b.com", "a slash"],
    ["a:80", "a port"],
    ["1.2.3.4", "an IPv4 address"],
    ["1.2.3.4.", "an IPv4 address with a dot"],
    ["::1", "an IPv6 address"],
    ["[::1]", "a bracketed IPv6 address"],
    ["[2001:db8::1]", "a bracketed IPv6 address"],
    ["010.0.0.1", "an address with leading zeros"],
    ["example.123", "an all-numeric last label"],
    ["1.2.3", "a short address"],
    ["*", "a bare wildcard"],
    ["**", "a bare double wildcard"],
    ["*.", "a wildcard over the root"],
    ["*.com", "a wildcard over one label"],
    ["**.local", "a double wildcard over one label"],
    ["a*.example.com", "a partial-label wildcard"],
    ["*a.example.com", "a partial-label wildcard"],
    ["a.*.com", "a wildcard in the middle"],
    ["example.*", "a wildcard last"],
    ["***.example.com", "a triple wildcard"],
    ["*.*.example.com", "two wildcards"],
    ["**.*.example.com", "two wildcards"],
    [`*.${name253.slice(1)}`, "a wildcard over 252 characters (no name can match)"],
    [`**.${name253.slice(1)}`, "a double wildcard over 252 characters (no name can match)"],
  ];
  for (const [text, why] of rejected) {
    test(`rejects ${JSON.stringify(text.length > 40 ? `${text.slice(0, 20)}...` : text)} (${why})`, () => {
      assert.equal(codeOf(() => parseHostPattern(text)), "policy_bad_host");
    });
  }

  test("key messages", () => {
    const msg = (t: string) => errorOf(() => parseHostPattern(t), PolicyError).message;
    assert.match(msg("1.2.3.4"), /^policy: host "1\.2\.3\.4": .*use cidr: for addresses/);
    assert.match(msg("[::1]"), /use cidr: for addresses/);
    assert.match(msg("example.123"), /looks like an address; use cidr: for addresses/);
    assert.match(msg("bücher.de"), /punycode A-label "xn--\.\.\."/);
    assert.match(msg("*.com"), /too broad/);
    assert.match(msg("a.*.com"), /whole first label/);
  });

  test("byte loop: a label takes letters, digits, hyphen (inside) and underscore; a first label may be *", () => {
    for (let b = 0; b < 256; b++) {
      const ch = String.fromCharCode(b);
      const ok = /^[A-Za-z0-9_*]$/.test(ch);
      const mid = /^[A-Za-z0-9_.-]$/.test(ch); // "." only splits the label
      assert.equal(codeOf(() => parseHostPattern(`${ch}.example.com`)), ok ? null : "policy_bad_host", `first ${b}`);
      assert.equal(codeOf(() => parseHostPattern(`a${ch}b.example.com`)), mid ? null : "policy_bad_host", `middle ${b}`);
      assert.equal(codeOf(() => normalizeServerName(`a${ch}b.example.com`)), mid ? null : "policy_bad_host", `query ${b}`);
    }
  });
});

describe("normalizeServerName", () => {
  const table: [string, string | null][] = [
    ["example.com", "example.com"],
    ["API.Example.COM", "api.example.com"],
    ["example.com.", "example.com"],
    ["localhost", "localhost"],
    ["_svc.example.com", "_svc.example.com"],
    [name253, name253],
    [`${name253}.`, name253],
    ["1.2.3.4", null],
    ["1.2.3.4.", null],
    ["::1", null],
    ["[::1]", null],
    ["[2001:DB8::1]", null],
    ["::ffff:1.2.3.4", null],
  ];
  for (const [text, want] of table) {
    test(`${JSON.stringify(text.length > 40 ? `${text.slice(0, 20)}...` : text)} -> ${want === null ? "null (an address)" : want.slice(0, 40)}`, () => {
      assert.equal(normalizeServerName(text), want);
    });
  }

  const rejected: [string, string][] = [
    ["", "empty"],
    [".", "only the root"],
    ["a..b", "an empty label"],
    ["example.com..", "two trailing dots"],
    ["a\u0000.com", "an embedded NUL"],
    ["example.com\u0000", "a trailing NUL"],
    [`${name253}x`, "254 characters"],
    ["x".repeat(300), "300 characters"],
    [`${"a".repeat(64)}.com`, "a label of 64"],
    ["*.example.com", "a wildcard"],
    ["bücher.de", "non-ASCII"],
    ["example.com:443", "a port left in"],
    ["[::1]:443", "a bracketed address with a port"],
    ["[example.com]", "a bracketed name"],
    ["[::1", "an unclosed bracket"],
    ["[1.2.3.4]", "IPv4 in brackets"],
    ["010.0.0.1", "a leading-zero address (neither name nor address)"],
    ["1.2.3", "a short address"],
    ["fe80::1%eth0", "a zone id"],
    ["-a.com", "a leading hyphen"],
  ];
  for (const [text, why] of rejected) {
    test(`rejects ${JSON.stringify(text.length > 40 ? `${text.slice(0, 20)}...` : text)} (${why})`, () => {
      assert.equal(codeOf(() => normalizeServerName(text)), "policy_bad_host");
    });
  }
});

describe("hostMatches", () => {
  const table: [string, string, boolean][] = [
    ["example.com", "example.com", true],
    ["example.com", "EXAMPLE.com.", true],
    ["example.com", "a.example.com", false],
    ["example.com", "xexample.com", false],
    ["example.com", "example.co", false],
    ["*.example.com", "a.example.com", true],
    ["*.example.com", "A.Example.Com.", true],
    ["*.example.com", "example.com", false],
    ["*.example.com", "a.b.example.com", false],
    ["*.example.com", "aexample.com", false],
    ["*.example.com", "a.example.com.evil", false],
    ["*.example.com", "a.xexample.com", false],
    ["**.example.com", "a.example.com", true],
    ["**.example.com", "a.b.example.com", true],
    ["**.example.com", "x.y.z.example.com", true],
    ["**.example.com", "example.com", false],
    ["**.example.com", "aexample.com", false],
    ["**.example.com", "a.b.xexample.com", false],
    ["**.example.com", "example.com.a", false],
  ];
  for (const [pattern, query, want] of table) {
    test(`${pattern} ${want ? "matches" : "does not match"} ${query}`, () => {
      const name = normalizeServerName(query);
      assert.ok(name !== null);
      assert.equal(hostMatches(parseHostPattern(pattern), name), want);
    });
  }
});

describe("parentOf", () => {
  const table: [string, string | null][] = [
    ["a.b.c", "b.c"],
    ["b.c", "c"],
    ["c", null],
  ];
  for (const [name, want] of table) {
    test(`${name} -> ${want}`, () => assert.equal(parentOf(name), want));
  }
  test("walking parents of a name reaches the names a wildcard is anchored on", () => {
    const p = parseHostPattern("*.example.com");
    assert.equal(parentOf("a.example.com"), p.name);
  });
});
