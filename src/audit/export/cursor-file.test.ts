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

  test("a folder that is missing, or a folder in the file's place: export_cursor_unwritable naming the path, from checkWritable and from save", async () => {
    const missing = new CursorFile(join(tmp, "no-such-folder", "export.cursor"));
    const why = `the cursor file ${JSON.stringify(missing.path)}: its folder ${JSON.stringify(join(tmp, "no-such-folder"))} does not exist`;
    await expect(missing.checkWritable()).rejects.toMatchObject({ code: "export_cursor_unwritable", message: `audit: export: cannot save ${why}` });
    await expect(missing.save(5)).rejects.toMatchObject({ code: "export_cursor_unwritable", message: `audit: export: cannot save ${why}` });
    const dir = mkdtempSync(join(tmp, "dir-"));
    await expect(new CursorFile(dir).checkWritable()).rejects.toMatchObject({ code: "export_cursor_unwritable" });
    await expect(new CursorFile(dir).save(5)).rejects.toMatchObject({ code: "export_cursor_unwritable" });
    expect(readdirSync(dir)).toEqual([]);
  });

  test("checkWritable in a writable folder leaves nothing behind and writes no cursor", async () => {
    const dir = mkdtempSync(join(tmp, "ok-"));
    await new CursorFile(join(dir, "export.cursor")).checkWritable();
    expect(readdirSync(dir)).toEqual([]);
  });

  test("refuses to save a seq that is not a non-negative integer", async () => {
    const c = new CursorFile(join(tmp, "never.cursor"));
    for (const seq of [-1, 1.5, Number.NaN]) await expect(c.save(seq)).rejects.toMatchObject({ code: "export_bad_cursor" });
  });
});
