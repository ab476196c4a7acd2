import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileCaStorage } from "./file-storage.ts";
import { CaManager } from "./manager.ts";
import { SMALL, TD, at, codeOf, mintAt, verifyNow } from "./test-support.ts";

const base = mkdtempSync(join(tmpdir(), "tidegate-ca-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));
let n = 0;

async function fresh() {
  const dir = join(base, `ca-${n++}`, "server", "ca");
  const storage = new FileCaStorage(dir);
  const ca = await CaManager.init({ trustDomain: TD, settings: SMALL, storage, now: at(0) });
  return { dir, storage, ca };
}

const mode = (path: string) => statSync(path).mode & 0o777;
const load = (dir: string) => CaManager.load({ settings: SMALL, storage: new FileCaStorage(dir), now: at(10) });

describe("FileCaStorage", () => {
  test("init writes ca.json and one 0600 key per key in a 0700 directory; load reads it back", async () => {
    const { dir, ca } = await fresh();
    const st = ca.status();
    expect(mode(dir)).toBe(0o700);
    expect(readdirSync(dir).sort()).toEqual(["ca.json", `${st.roots[0]!.serial}.key`, `${st.signing.serial}.key`].sort());
    for (const f of readdirSync(dir)) expect(mode(join(dir, f))).toBe(0o600);
    const json = readFileSync(join(dir, "ca.json"), "utf8");
    expect(json).not.toContain("PRIVATE KEY");
    expect(JSON.parse(json)).toMatchObject({ version: 1, trustDomain: "example.org", bundleSequence: 1 });
    expect(readFileSync(join(dir, `${st.signing.serial}.key`), "utf8")).toStartWith("-----BEGIN PRIVATE KEY-----");
    const svid = await mintAt(ca, at(5));
    const again = await load(dir);
    expect(again.status()).toEqual(st);
    await verifyNow(again, svid, at(10));
    await verifyNow(ca, await mintAt(again, at(10)), at(10));
    const stored = await new FileCaStorage(dir).load();
    expect([...stored!.keys.values()].every((k) => !k.extractable)).toBe(true);
  });

  test("rotation replaces ca.json atomically and removes the keys no longer used", async () => {
    const { dir, ca } = await fresh();
    const old = ca.status().signing.serial;
    await ca.rotateSigning(at(1));
    const now = ca.status().signing.serial;
    const files = readdirSync(dir);
    expect(files).not.toContain(`${old}.key`);
    expect(files).toContain(`${now}.key`);
    expect(files.filter((f) => f.endsWith(".tmp"))).toEqual([]);
    expect((await load(dir)).status().signing.serial).toBe(now);
  });

  test("init refuses a directory holding a CA: ca_exists", async () => {
    const { dir } = await fresh();
    const before = readFileSync(join(dir, "ca.json"), "utf8");
    const err = await CaManager.init({ trustDomain: TD, settings: SMALL, storage: new FileCaStorage(dir), now: at(1) }).catch((e) => e);
    expect(codeOf(err)).toBe("ca_exists");
    expect(readFileSync(join(dir, "ca.json"), "utf8")).toBe(before);
  });

  test("load of a directory without a CA: ca_missing", async () => {
    expect(codeOf(await load(join(base, "nothing-here")).catch((e) => e))).toBe("ca_missing");
  });

  test("a corrupt ca.json: ca_corrupt naming the file", async () => {
    const { dir } = await fresh();
    writeFileSync(join(dir, "ca.json"), "{ not json");
    const err = await load(dir).catch((e) => e);
    expect(codeOf(err)).toBe("ca_corrupt");
    expect(err.message).toContain(join(dir, "ca.json"));
  });

  test("a missing key file: ca_corrupt naming it", async () => {
    const { dir, ca } = await fresh();
    const key = join(dir, `${ca.status().signing.serial}.key`);
    rmSync(key);
    const err = await load(dir).catch((e) => e);
    expect(codeOf(err)).toBe("ca_corrupt");
    expect(err.message).toContain(key);
  });

  test("a key file that is not a key: ca_corrupt naming it, without its content", async () => {
    const { dir, ca } = await fresh();
    const key = join(dir, `${ca.status().roots[0]!.serial}.key`);
    writeFileSync(key, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    const err = await load(dir).catch((e) => e);
    expect(codeOf(err)).toBe("ca_corrupt");
    expect(err.message).toContain(key);
    expect(err.message).not.toContain("AAAA");
  });

  for (const bad of [0o640, 0o604, 0o660, 0o644]) {
    test(`a key file with mode ${bad.toString(8)}: ca_key_permissions`, async () => {
      const { dir, ca } = await fresh();
      const key = join(dir, `${ca.status().signing.serial}.key`);
      chmodSync(key, bad);
      const err = await load(dir).catch((e) => e);
      expect(codeOf(err)).toBe("ca_key_permissions");
      expect(err.message).toContain(key);
    });
  }

  test.skipIf(process.getuid?.() !== 0)("a key file owned by another user: ca_key_permissions (needs root to chown)", async () => {
    const { dir, ca } = await fresh();
    const key = join(dir, `${ca.status().signing.serial}.key`);
    chownSync(key, 65534, 65534);
    const err = await load(dir).catch((e) => e);
    expect(codeOf(err)).toBe("ca_key_permissions");
    expect(err.message).toContain("uid 65534");
  });

  test("a key file that is a symbolic link: ca_key_permissions", async () => {
    const { dir, ca } = await fresh();
    const key = join(dir, `${ca.status().signing.serial}.key`);
    renameSync(key, join(dir, "elsewhere"));
    symlinkSync(join(dir, "elsewhere"), key);
    expect(codeOf(await load(dir).catch((e) => e))).toBe("ca_key_permissions");
  });

  test("a key is never written over an existing file (O_EXCL): ca_storage", async () => {
    const { dir, ca } = await fresh();
    const serial = ca.status().signing.serial;
    const before = readFileSync(join(dir, `${serial}.key`), "utf8");
    const err = await new FileCaStorage(dir).saveKey(serial, "x").catch((e) => e);
    expect(codeOf(err)).toBe("ca_storage");
    expect(readFileSync(join(dir, `${serial}.key`), "utf8")).toBe(before);
  });

  test("a key name that is not a serial is refused before any path is built", async () => {
    const err = await new FileCaStorage(base).saveKey("../escape", "x").catch((e) => e);
    expect(codeOf(err)).toBe("ca_corrupt");
  });
});
