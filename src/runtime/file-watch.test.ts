import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { watchFile, type FileWatch } from "./file-watch.ts";

let dir = "";
let w: FileWatch | null = null;
afterEach(() => {
  w?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Waits until `count()` reaches `n` or a second has passed; returns the count. */
async function until(count: () => number, n: number): Promise<number> {
  for (let i = 0; i < 50 && count() < n; i++) await Bun.sleep(20);
  return count();
}

describe("watchFile", () => {
  test("hears every save, whether written in place or renamed over the file", async () => {
    dir = mkdtempSync(join(tmpdir(), "tidegate-test-watch-"));
    const file = join(dir, "tidegate.yaml");
    writeFileSync(file, "a");
    let n = 0;
    w = watchFile(file, () => n++, 20);
    for (let i = 1; i <= 3; i++) {
      writeFileSync(join(dir, ".tidegate.yaml.tmp"), `v${i}`);
      renameSync(join(dir, ".tidegate.yaml.tmp"), file);
      expect(await until(() => n, i)).toBe(i);
      await Bun.sleep(60);
    }
    writeFileSync(file, "in place");
    expect(await until(() => n, 4)).toBe(4);
  });

  test("other files in the folder do not count, and a burst of writes is one call", async () => {
    dir = mkdtempSync(join(tmpdir(), "tidegate-test-watch-"));
    const file = join(dir, "tidegate.yaml");
    writeFileSync(file, "a");
    let n = 0;
    w = watchFile(file, () => n++, 50);
    writeFileSync(join(dir, "server.yaml"), "x");
    await Bun.sleep(150);
    expect(n).toBe(0);
    for (let i = 0; i < 5; i++) writeFileSync(file, `b${i}`);
    expect(await until(() => n, 1)).toBe(1);
    await Bun.sleep(150); // and no second call after it
    expect(n).toBe(1);
  });

  test("close stops it", async () => {
    dir = mkdtempSync(join(tmpdir(), "tidegate-test-watch-"));
    const file = join(dir, "tidegate.yaml");
    writeFileSync(file, "a");
    let n = 0;
    w = watchFile(file, () => n++, 20);
    w.close();
    writeFileSync(file, "b");
    await Bun.sleep(100);
    expect(n).toBe(0);
  });
});
