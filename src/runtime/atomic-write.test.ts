import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeAtomic, writeAtomicInBackground } from "./atomic-write.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "tidegate-test-atomic-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const leftovers = () => readdirSync(dir).filter((n) => n.includes(".tmp-"));

describe("writeAtomic", () => {
  test("replaces the file whole, with exactly the mode asked for, leaving no temporary file", () => {
    const path = join(dir, "state.json");
    writeFileSync(path, "old\n", { mode: 0o644 });
    writeAtomic(path, "new\n", 0o600);
    expect(readFileSync(path, "utf8")).toBe("new\n");
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(leftovers()).toEqual([]);
  });
});

describe("writeAtomicInBackground", () => {
  test("replaces the file whole, with exactly the mode asked for, and says so", async () => {
    const path = join(dir, "state.json");
    writeFileSync(path, "old\n", { mode: 0o644 });
    expect(await writeAtomicInBackground(path, "new\n", 0o600, () => true)).toBe(true);
    expect(readFileSync(path, "utf8")).toBe("new\n");
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(leftovers()).toEqual([]);
  });

  test("no longer wanted at rename time: the file is untouched and the temporary file removed", async () => {
    const path = join(dir, "state.json");
    writeFileSync(path, "old\n");
    let asked = 0;
    const out = writeAtomicInBackground(path, "stale\n", 0o600, () => {
      asked++;
      return false;
    });
    writeAtomic(path, "newer\n", 0o600); // a synchronous write of a newer text meanwhile
    expect(await out).toBe(false);
    expect(asked).toBe(1);
    expect(readFileSync(path, "utf8")).toBe("newer\n");
    expect(leftovers()).toEqual([]);
  });

  test("a destination that cannot be replaced rejects and leaves no temporary file", async () => {
    const sub = join(dir, "sub");
    // a directory in the file's place: rename(2) of a file over a directory fails (EISDIR)
    await Bun.write(join(sub, "keep"), "k");
    await expect(writeAtomicInBackground(sub, "new\n", 0o600, () => true)).rejects.toThrow();
    expect(readFileSync(join(sub, "keep"), "utf8")).toBe("k");
    expect(leftovers()).toEqual([]);
  });

  test("a link at the destination is replaced, its target left alone", async () => {
    writeFileSync(join(dir, "target"), "x");
    symlinkSync(join(dir, "target"), join(dir, "link"));
    expect(await writeAtomicInBackground(join(dir, "link"), "via\n", 0o600, () => true)).toBe(true);
    expect(readFileSync(join(dir, "target"), "utf8")).toBe("x"); // the link was replaced, not its target
    expect(statSync(join(dir, "link")).isFile()).toBe(true);
  });
});
