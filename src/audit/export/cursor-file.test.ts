import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CursorFile } from "./cursor-file.ts";

const tmp = mkdtempSync(join(tmpdir(), "tidegate-cursor-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("CursorFile", () => {
  test("a missing file loads as 0; a save writes {\"seq\":N} with mode 0600 and leaves no temporary file", async () => {
    const dir = mkdtempSync(join(tmp, "one-"));
    const c = new CursorFile(join(dir, "export.cursor"));
    expect(await c.load()).toBe(0);
    await c.save(5);
    expect(readFileSync(c.path, "utf8")).toBe('{"seq":5}\n');
    expect(statSync(c.path).mode & 0o777).toBe(0o600);
    await c.save(2000);
    expect(await new CursorFile(c.path).load()).toBe(2000);
    expect(statSync(c.path).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(["export.cursor"]);
  });

  const bad = ["", "5", "null", "[]", '{"seq":-1}', '{"seq":1.5}', '{"seq":"5"}', '{"seq":5,"x":1}', '{"cursor":5}', '{"seq":9007199254740992}'];
  for (const text of bad) {
    test(`refuses the contents ${JSON.stringify(text)} with export_bad_cursor`, async () => {
      const path = join(tmp, "bad.cursor");
      writeFileSync(path, text);
      await expect(new CursorFile(path).load()).rejects.toMatchObject({ code: "export_bad_cursor" });
    });
  }

  test("refuses to save a seq that is not a non-negative integer", async () => {
    const c = new CursorFile(join(tmp, "never.cursor"));
    for (const seq of [-1, 1.5, Number.NaN]) await expect(c.save(seq)).rejects.toMatchObject({ code: "export_bad_cursor" });
  });
});
