import { describe, expect, test } from "bun:test";
import { importKey, newKeyBytes, seal, unseal } from "./cipher.ts";
import { SecretError } from "./errors.ts";

const AT = "2025-01-01T00:00:00.000Z";

describe("AES-256-GCM sealing", () => {
  test("round trip; a fresh nonce each seal; the layout WebCrypto opens (tag appended, NAME as AAD)", async () => {
    const raw = newKeyBytes();
    const key = importKey(raw, "k");
    const a = seal(key, "api", "value one", AT);
    const b = seal(key, "api", "value one", AT);
    expect(unseal(key, "api", a, "f")).toBe("value one");
    expect(a.nonce.length).toBe(12);
    expect(a.ciphertext.length).toBe("value one".length + 16);
    expect(Buffer.from(a.nonce).equals(Buffer.from(b.nonce))).toBe(false);
    const web = await crypto.subtle.importKey("raw", new Uint8Array(raw), "AES-GCM", false, ["decrypt"]);
    const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: new Uint8Array(a.nonce), additionalData: new TextEncoder().encode("api"), tagLength: 128 }, web, new Uint8Array(a.ciphertext));
    expect(new TextDecoder().decode(plain)).toBe("value one");
  });

  test("another name, another key, a cut ciphertext: secret_decrypt_failed", () => {
    const key = importKey(newKeyBytes(), "k");
    const e = seal(key, "api", "v", AT);
    const code = (f: () => unknown) => {
      try {
        f();
        return "no error";
      } catch (err) {
        return (err as SecretError).code;
      }
    };
    expect(code(() => unseal(key, "apI", e, "f"))).toBe("secret_decrypt_failed");
    expect(code(() => unseal(importKey(newKeyBytes(), "k"), "api", e, "f"))).toBe("secret_decrypt_failed");
    expect(code(() => unseal(key, "api", { ...e, ciphertext: e.ciphertext.subarray(0, e.ciphertext.length - 4) }, "f"))).toBe("secret_decrypt_failed");
  });

  test("a key is exactly 32 bytes: secret_key_bad", () => {
    for (const n of [0, 16, 31, 33, 64]) {
      expect(() => importKey(new Uint8Array(n), "/k")).toThrow(expect.objectContaining({ code: "secret_key_bad" }));
    }
  });
});
