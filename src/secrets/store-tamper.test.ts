// What the store refuses: altered files, values moved between names, other keys, missing or loose
// key files. Every error's message, cause and stack is searched for the values set (none may appear).
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SecretStore, secretsDir } from "./store.ts";
import { SecretError } from "./errors.ts";
import { readSecretInput } from "./input.ts";
import { nodeFileOps, type FileOps } from "./private-file.ts";

const root = mkdtempSync(join(tmpdir(), "tidegate-test-secrets-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const VALUE_A = "canary-value-A-7f3e9b";
const VALUE_B = "canary-value-B-41c0d2";

/** The error's code, after checking that no value appears in its message, cause chain or stack. */
async function codeOf(f: () => unknown): Promise<string> {
  try {
    await f();
  } catch (e) {
    for (let c: unknown = e; c instanceof Error; c = c.cause) {
      for (const text of [c.message, String(c), c.stack ?? ""]) {
        for (const v of [VALUE_A, VALUE_B, VALUE_A.replace(/-/g, " ")]) expect(text).not.toContain(v);
        expect(text).not.toContain("canary-value");
      }
    }
    return e instanceof SecretError ? e.code : `not a SecretError: ${String(e)}`;
  }
  return "no error";
}

async function twoSecrets(): Promise<{ dir: string; file: string; doc: { secrets: Record<string, Record<string, string>> } }> {
  const dir = secretsDir(join(root, `state-${++n}`));
  const s = SecretStore.open(dir);
  await s.set("a", VALUE_A);
  await s.set("b", VALUE_B);
  const file = join(dir, "secrets.json");
  return { dir, file, doc: JSON.parse(readFileSync(file, "utf8")) };
}

const rewrite = (file: string, doc: unknown) => writeFileSync(file, JSON.stringify(doc), { mode: 0o600 });

describe("tampering is detected", () => {
  test("a flipped bit anywhere in a ciphertext, tag included: secret_decrypt_failed", async () => {
    const { dir, file, doc } = await twoSecrets();
    const original = Buffer.from(doc.secrets.a!.ciphertext!, "base64");
    for (let i = 0; i < original.length; i++) {
      const flipped = Buffer.from(original);
      flipped[i]! ^= 0x01;
      doc.secrets.a!.ciphertext = flipped.toString("base64");
      rewrite(file, doc);
      expect(await codeOf(() => SecretStore.open(dir).get("a"))).toBe("secret_decrypt_failed");
    }
    // The other value still opens.
    expect(SecretStore.open(dir).get("b")).toBe(VALUE_B);
  });

  test("a changed nonce: secret_decrypt_failed", async () => {
    const { dir, file, doc } = await twoSecrets();
    const nonce = Buffer.from(doc.secrets.a!.nonce!, "base64");
    nonce[0]! ^= 0x80;
    doc.secrets.a!.nonce = nonce.toString("base64");
    rewrite(file, doc);
    expect(await codeOf(() => SecretStore.open(dir).get("a"))).toBe("secret_decrypt_failed");
  });

  test("values swapped between two names (the name is authenticated): secret_decrypt_failed for both", async () => {
    const { dir, file, doc } = await twoSecrets();
    const a = doc.secrets.a!;
    doc.secrets.a = doc.secrets.b!;
    doc.secrets.b = a;
    rewrite(file, doc);
    const s = SecretStore.open(dir);
    expect(await codeOf(() => s.get("a"))).toBe("secret_decrypt_failed");
    expect(await codeOf(() => s.get("b"))).toBe("secret_decrypt_failed");
  });

  test("an entry copied under a new name: secret_decrypt_failed", async () => {
    const { dir, file, doc } = await twoSecrets();
    doc.secrets.c = doc.secrets.a!;
    rewrite(file, doc);
    expect(await codeOf(() => SecretStore.open(dir).get("c"))).toBe("secret_decrypt_failed");
  });

  test("another key: every get fails, and set refuses to mix keys but may replace the broken value itself", async () => {
    const { dir } = await twoSecrets();
    writeFileSync(join(dir, "key"), crypto.getRandomValues(new Uint8Array(32)), { mode: 0o600 });
    const s = SecretStore.open(dir);
    expect(await codeOf(() => s.get("a"))).toBe("secret_decrypt_failed");
    expect(await codeOf(() => s.set("c", "new"))).toBe("secret_decrypt_failed");
    expect(s.names()).toEqual(["a", "b"]);
    expect(await s.remove("b")).toBe(true);
    expect(await s.set("a", "fresh")).toBe("replaced");
    expect(s.get("a")).toBe("fresh");
  });

  test("a missing key file: secret_key_missing on get and set, never a new key over old values", async () => {
    const { dir } = await twoSecrets();
    unlinkSync(join(dir, "key"));
    const s = SecretStore.open(dir);
    expect(s.names()).toEqual(["a", "b"]);
    expect(await codeOf(() => s.get("a"))).toBe("secret_key_missing");
    expect(await codeOf(() => s.set("a", VALUE_A))).toBe("secret_key_missing");
    expect(s.get("zzz")).toBeNull();
    await s.remove("a");
    await s.remove("b");
    expect(await s.set("a", "again")).toBe("created");
    expect(s.get("a")).toBe("again");
  });

  test("a key file of the wrong size: secret_key_bad", async () => {
    const { dir } = await twoSecrets();
    writeFileSync(join(dir, "key"), new Uint8Array(31), { mode: 0o600 });
    expect(await codeOf(() => SecretStore.open(dir).get("a"))).toBe("secret_key_bad");
  });

  test("a key file readable by others, or a symbolic link: secret_store_permissions", async () => {
    const { dir } = await twoSecrets();
    const key = join(dir, "key");
    chmodSync(key, 0o644);
    expect(await codeOf(() => SecretStore.open(dir).get("a"))).toBe("secret_store_permissions");
    expect(await codeOf(() => SecretStore.open(dir).set("c", "v"))).toBe("secret_store_permissions");
    chmodSync(key, 0o600);
    const moved = join(dir, "..", "key-elsewhere");
    writeFileSync(moved, readFileSync(key), { mode: 0o600 });
    unlinkSync(key);
    symlinkSync(moved, key);
    expect(await codeOf(() => SecretStore.open(dir).get("a"))).toBe("secret_store_permissions");
  });

  test("secrets.json readable by others: secret_store_permissions", async () => {
    const { dir, file } = await twoSecrets();
    chmodSync(file, 0o640);
    expect(await codeOf(() => SecretStore.open(dir))).toBe("secret_store_permissions");
  });

  test("a corrupt secrets.json: secret_store_corrupt at open, and on every get of an open store", async () => {
    const { dir, file } = await twoSecrets();
    const s = SecretStore.open(dir);
    expect(s.get("a")).toBe(VALUE_A);
    writeFileSync(file, '{"version": 1, "secrets": {"a": ', { mode: 0o600 });
    expect(await codeOf(() => SecretStore.open(dir))).toBe("secret_store_corrupt");
    expect(await codeOf(() => s.get("a"))).toBe("secret_store_corrupt");
    expect(await codeOf(() => s.get("a"))).toBe("secret_store_corrupt");
    expect(await codeOf(() => s.set("c", "v"))).toBe("secret_store_corrupt");
    expect(await codeOf(() => s.remove("a"))).toBe("secret_store_corrupt");
  });
});

describe("a failed write leaves the previous file", () => {
  for (const step of ["writeSync", "fsyncSync", "renameSync"] as const) {
    test(`${step} failing: secret_write_failed, the old values still read, no temporary file left`, async () => {
      const { dir, file } = await twoSecrets();
      const before = readFileSync(file);
      const failing: FileOps = {
        ...nodeFileOps,
        [step]: () => {
          throw Object.assign(new Error(`injected ${VALUE_A}`), { code: "ENOSPC" });
        },
      };
      const s = SecretStore.open(dir, { fileOps: failing });
      expect(await codeOf(() => s.set("a", "replacement"))).toBe("secret_write_failed");
      expect(await codeOf(() => s.remove("b"))).toBe("secret_write_failed");
      expect(readFileSync(file)).toEqual(before);
      expect(s.get("a")).toBe(VALUE_A);
      expect(s.get("b")).toBe(VALUE_B);
      expect(require("node:fs").readdirSync(dir).sort()).toEqual(["key", "secrets.json"]);
    });
  }
});

describe("no value in any message (every codeOf above checks its error too)", () => {
  test("input errors name the secret, not the value", async () => {
    const stdin = (bytes: string) => Object.assign((async function* () {
      yield new TextEncoder().encode(bytes);
    })(), { isTTY: false }) as unknown as typeof process.stdin;
    expect(await codeOf(() => readSecretInput("a", () => {}, stdin(`${VALUE_A}\nsecond line`)))).toBe("secret_bad_value");
    expect(await codeOf(() => readSecretInput("a", () => {}, stdin(VALUE_A.repeat(1000))))).toBe("secret_bad_value");
    expect(await readSecretInput("a", () => {}, stdin(`${VALUE_A}\n`))).toBe(VALUE_A);
    const s = SecretStore.open(secretsDir(join(root, `state-${++n}`)));
    expect(await codeOf(() => s.set(VALUE_A.replace(/-/g, " "), "v"))).toBe("secret_bad_name");
    expect(await codeOf(() => s.set("a", `${VALUE_A}\u00e9`))).toBe("secret_bad_value");
    expect(await codeOf(() => s.set("a", `${VALUE_A}\u0000`))).toBe("secret_bad_value");
  });
});
