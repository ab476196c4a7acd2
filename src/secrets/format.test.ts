import { describe, expect, test } from "bun:test";
import { parseSecretsFile, serializeSecretsFile, type SealedEntry } from "./format.ts";
import { SecretError } from "./errors.ts";

const b64 = (n: number, fill = 7) => Buffer.from(new Uint8Array(n).fill(fill)).toString("base64");
const entry = (over: Record<string, unknown> = {}) => ({ nonce: b64(12), ciphertext: b64(21), changed_at: "2025-01-02T03:04:05.678Z", ...over });
const doc = (secrets: unknown, top: Record<string, unknown> = {}) => JSON.stringify({ version: 1, secrets, ...top });

describe("secrets.json", () => {
  test("round trip, names sorted, including a name that is an Object.prototype key", () => {
    const e = (fill: number): SealedEntry => ({ nonce: new Uint8Array(12).fill(fill), ciphertext: new Uint8Array(30).fill(fill), changedAt: "2025-01-02T03:04:05.678Z" });
    const entries = new Map([["zeta", e(1)], ["__proto__", e(2)], ["alpha", e(3)]]);
    const text = serializeSecretsFile(entries);
    expect(text.endsWith("\n")).toBe(true);
    expect(Object.keys(JSON.parse(text).secrets)).toEqual(["__proto__", "alpha", "zeta"]);
    const back = parseSecretsFile(text, "f");
    expect([...back.keys()].sort()).toEqual(["__proto__", "alpha", "zeta"]);
    for (const [k, v] of entries) {
      expect([...back.get(k)!.nonce]).toEqual([...v.nonce]);
      expect([...back.get(k)!.ciphertext]).toEqual([...v.ciphertext]);
      expect(back.get(k)!.changedAt).toBe(v.changedAt);
    }
    expect(parseSecretsFile(doc({}), "f").size).toBe(0);
  });

  const bad: [string, string, string][] = [
    ["not JSON", "{", "not JSON"],
    ["an array", "[]", "not a JSON object"],
    ["version 2", JSON.stringify({ version: 2, secrets: {} }), "version 2"],
    ["no version", JSON.stringify({ secrets: {} }), "version null"],
    ["an extra top-level field", doc({}, { extra: 1 }), "unknown top-level field"],
    ["secrets an array", doc([]), '"secrets" is not an object'],
    ["a bad name", doc({ "a b": entry() }), "key is not a secret name"],
    ["an entry that is a string", doc({ a: "x" }), "secrets.a is not an object"],
    ["a missing field", doc({ a: { nonce: b64(12), ciphertext: b64(21) } }), "exactly nonce, ciphertext and changed_at"],
    ["an extra field", doc({ a: entry({ value: "x" }) }), "exactly nonce, ciphertext and changed_at"],
    ["a short nonce", doc({ a: entry({ nonce: b64(11) }) }), "secrets.a.nonce"],
    ["a nonce without padding", doc({ a: entry({ nonce: b64(13).replace(/=+$/, "") }) }), "secrets.a.nonce"],
    ["a nonce with a space", doc({ a: entry({ nonce: ` ${b64(12)}` }) }), "secrets.a.nonce"],
    ["a non-canonical base64", doc({ a: entry({ ciphertext: "AAAAAAAAAAAAAAAAAAAAAAB=" }) }), "secrets.a.ciphertext"],
    ["a ciphertext no longer than the tag", doc({ a: entry({ ciphertext: b64(16) }) }), "secrets.a.ciphertext"],
    ["a ciphertext too long", doc({ a: entry({ ciphertext: b64(16384 + 17) }) }), "secrets.a.ciphertext"],
    ["a ciphertext that is a number", doc({ a: entry({ ciphertext: 5 }) }), "secrets.a.ciphertext"],
    ["a changed_at that is not UTC ISO", doc({ a: entry({ changed_at: "2025-01-02 03:04:05" }) }), "secrets.a.changed_at"],
    ["a changed_at that is no date", doc({ a: entry({ changed_at: "2025-13-45T99:99:99Z" }) }), "secrets.a.changed_at"],
  ];
  for (const [what, text, needle] of bad) {
    test(`refuses ${what}: secret_store_corrupt`, () => {
      let err: unknown = null;
      try {
        parseSecretsFile(text, "/x/secrets.json");
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(SecretError);
      expect((err as SecretError).code).toBe("secret_store_corrupt");
      expect((err as Error).message).toStartWith("secrets: /x/secrets.json: ");
      expect((err as Error).message).toContain(needle);
    });
  }
});
