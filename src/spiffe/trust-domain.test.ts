import fc from "fast-check";
import { fuzzRuns } from "../../test/fuzz-runs.ts";
import { assert, describe, test, codeOf as codeOfError } from "../../test/shim.ts";
import { SpiffeIdError, quote } from "./errors.ts";
import { TrustDomain } from "./trust-domain.ts";

// Explicitly typed: TypeScript only allows assertion-signature calls through a declared type.

const codeOf = (fn: () => unknown) => codeOfError(fn, SpiffeIdError);

const accepted: [string, string][] = [
  ["example.org", "example.org"],
  ["spiffe://example.org", "example.org"],
  ["a", "a"],
  ["my_domain-1.example", "my_domain-1.example"],
  ["a".repeat(255), "a".repeat(255)],
  [`spiffe://${"a".repeat(255)}`, "a".repeat(255)],
];

const rejected: [string, string][] = [
  ["", "spiffeid_missing_trust_domain"],
  ["spiffe://", "spiffeid_missing_trust_domain"],
  ["Example.org", "spiffeid_bad_trust_domain_char"],
  ["example.org/", "spiffeid_bad_trust_domain_char"],
  ["example.org/a", "spiffeid_bad_trust_domain_char"],
  ["exa mple", "spiffeid_bad_trust_domain_char"],
  ["spiffe://Example.org", "spiffeid_bad_trust_domain_char"],
  ["example.org:443", "spiffeid_port"],
  ["spiffe://example.org:443", "spiffeid_port"],
  ["user@example.org", "spiffeid_userinfo"],
  ["spiffe://u:p@example.org", "spiffeid_userinfo"],
  ["example.org?x", "spiffeid_query"],
  ["example.org#x", "spiffeid_fragment"],
  ["ex%61mple.org", "spiffeid_percent_encoding"],
  ["a".repeat(256), "spiffeid_trust_domain_too_long"],
  [`spiffe://${"a".repeat(256)}`, "spiffeid_trust_domain_too_long"],
  ["spiffe://example.org/", "spiffeid_trust_domain_has_path"],
  ["spiffe://example.org/workload", "spiffeid_trust_domain_has_path"],
  ["spiffe:/example.org", "spiffeid_wrong_scheme"],
  ["https://example.org", "spiffeid_wrong_scheme"],
  ["SPIFFE://example.org", "spiffeid_wrong_scheme"],
];

describe("TrustDomain.parse", () => {
  for (const [input, name] of accepted) {
    test(`accepts ${JSON.stringify(input.slice(0, 30))}`, () => {
      const td = TrustDomain.parse(input);
      assert.equal(td.name, name);
      assert.equal(td.toString(), name);
      assert.equal(td.idString(), `spiffe://${name}`);
      assert.equal(td.id().toString(), `spiffe://${name}`);
      assert.equal(td.id().path, "");
      assert.ok(td.equals(TrustDomain.parse(name)));
    });
  }

  for (const [input, code] of rejected) {
    test(`rejects ${JSON.stringify(input.slice(0, 30))} with ${code}`, () => {
      assert.equal(codeOf(() => TrustDomain.parse(input)), code);
    });
  }

  test("exact message", () => {
    assert.throws(
      () => TrustDomain.parse("Example.org"),
      (e: unknown) =>
        e instanceof SpiffeIdError &&
        e.message === 'spiffeid: "Example.org" has an invalid trust domain character "E" at 0',
    );
  });

  test("every byte 0-255 inside a bare name", () => {
    const named: Record<string, string> = {
      "?": "spiffeid_query",
      "#": "spiffeid_fragment",
      "%": "spiffeid_percent_encoding",
      ":": "spiffeid_port",
      "@": "spiffeid_userinfo",
    };
    for (let b = 0; b < 256; b++) {
      const ch = String.fromCharCode(b);
      const input = `a${ch}b`;
      if (/^[a-z0-9._-]$/.test(ch)) {
        assert.equal(TrustDomain.parse(input).name, input);
        continue;
      }
      let err: SpiffeIdError | undefined;
      try {
        TrustDomain.parse(input);
      } catch (e) {
        if (!(e instanceof SpiffeIdError)) throw e;
        err = e;
      }
      if (err === undefined) throw new Error(`byte ${b}: accepted`);
      assert.equal(err.code, named[ch] ?? "spiffeid_bad_trust_domain_char", `byte ${b}`);
      assert.ok(err.message.includes(`${quote(ch)} at 1`), `byte ${b}: ${err.message}`);
    }
  });

  test("equality and immutability", () => {
    const a = TrustDomain.parse("example.org");
    assert.ok(a.equals(TrustDomain.parse("spiffe://example.org")));
    assert.ok(!a.equals(TrustDomain.parse("example.com")));
    assert.ok(Object.isFrozen(a));
  });

  test("property: returns a TrustDomain whose name round-trips, or throws SpiffeIdError", () => {
    const check = (s: string) => {
      let td: TrustDomain;
      try {
        td = TrustDomain.parse(s);
      } catch (e) {
        if (e instanceof SpiffeIdError) return;
        throw e;
      }
      assert.ok(s === td.name || s === td.idString());
    };
    fc.assert(fc.property(fc.string({ unit: "binary", maxLength: 300 }), check), { numRuns: fuzzRuns(300) });
    const piece = fc.constantFrom(..."az09._-/:@?#%A ".split(""), "spiffe://", ":/");
    fc.assert(fc.property(fc.array(piece, { maxLength: 30 }).map((p) => p.join("")), check), { numRuns: fuzzRuns(300) });
  });
});
