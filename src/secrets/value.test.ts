import { describe, expect, test } from "bun:test";
import { checkSecretName, checkSecretValue, secretValueFromBytes, MAX_SECRET_BYTES } from "./value.ts";
import { SecretError } from "./errors.ts";

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return e instanceof SecretError ? e.code : `not a SecretError: ${String(e)}`;
  }
  return "no error";
}

describe("secret names", () => {
  for (const ok of ["a", "github_token", "_x", "9lives", "a.b-c_d", "x".repeat(64), "__proto__"]) {
    test(`accepts ${JSON.stringify(ok)}`, () => expect(checkSecretName(ok)).toBe(ok));
  }
  for (const bad of ["", ".a", "-a", "x".repeat(65), "a b", "a/b", "a=b", "sk-live\n", "ünicode", "a:b"]) {
    test(`refuses ${JSON.stringify(bad)} without repeating it`, () => {
      try {
        checkSecretName(bad);
        throw new Error("accepted");
      } catch (e) {
        expect((e as SecretError).code).toBe("secret_bad_name");
        if (bad.length > 1) expect((e as Error).message).not.toContain(bad);
      }
    });
  }
});

describe("secret values", () => {
  test("every single byte: printable ASCII and tab are kept, everything else refused", () => {
    for (let b = 0; b < 256; b++) {
      const bytes = new Uint8Array([0x41, b, 0x42]);
      const ok = b === 0x09 || (b >= 0x20 && b <= 0x7e);
      if (ok) expect(secretValueFromBytes("n", bytes)).toBe(`A${String.fromCharCode(b)}B`);
      else expect(codeOf(() => secretValueFromBytes("n", bytes))).toBe("secret_bad_value");
      const text = `A${String.fromCharCode(b)}B`;
      if (ok) expect(checkSecretValue("n", text)).toBe(text);
      else expect(codeOf(() => checkSecretValue("n", text))).toBe("secret_bad_value");
    }
  });

  const enc = (s: string) => new TextEncoder().encode(s);
  const cases: [string, string | null][] = [
    ["token\n", "token"],
    ["token\r\n", "token"],
    ["token", "token"],
    ["token\n\n", null],
    ["\n", null],
    ["", null],
    ["a\rb", null],
    ["a\nb\n", null],
    [" spaced out\t", " spaced out\t"],
  ];
  for (const [input, want] of cases) {
    test(`input ${JSON.stringify(input)} gives ${want === null ? "secret_bad_value" : JSON.stringify(want)} (one trailing newline removed)`, () => {
      if (want === null) expect(codeOf(() => secretValueFromBytes("n", enc(input)))).toBe("secret_bad_value");
      else expect(secretValueFromBytes("n", enc(input))).toBe(want);
    });
  }

  test(`at most ${MAX_SECRET_BYTES} bytes, not counting the newline`, () => {
    expect(secretValueFromBytes("n", enc("x".repeat(MAX_SECRET_BYTES) + "\n")).length).toBe(MAX_SECRET_BYTES);
    expect(codeOf(() => secretValueFromBytes("n", enc("x".repeat(MAX_SECRET_BYTES + 1))))).toBe("secret_bad_value");
    expect(codeOf(() => checkSecretValue("n", "x".repeat(MAX_SECRET_BYTES + 1)))).toBe("secret_bad_value");
  });

  test("a refused value is named by its secret, never shown", () => {
    for (const value of ["hunter2-PLAIN-ü", "hunter2\r\nX-Evil: 1", "hunter2".repeat(3000)]) {
      let message = "no error";
      try {
        checkSecretValue("api", value);
      } catch (e) {
        message = (e as Error).message;
      }
      expect(message).toStartWith("secrets: the value of api ");
      expect(message).not.toContain("hunter2");
    }
  });
});
