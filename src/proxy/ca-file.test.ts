import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readCaFile } from "./ca-file.ts";

const dir = mkdtempSync(join(tmpdir(), "tidegate-test-ca-file-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("a CA file is read once while unchanged, and again (with a new id) once it changes", async () => {
  const path = join(dir, "ca.pem");
  writeFileSync(path, "first");
  const a = await readCaFile(path);
  expect(a.pem).toBe("first");
  expect(a.id).toMatch(/^[0-9a-f]{64}$/);
  expect(await readCaFile(path)).toBe(a); // the same object: not read again
  writeFileSync(path, "second, longer");
  const b = await readCaFile(path);
  expect(b.pem).toBe("second, longer");
  expect(b.id).not.toBe(a.id);
});

test("a missing file throws the file system's error", async () => {
  const e = await readCaFile(join(dir, "none.pem")).catch((x: unknown) => x);
  expect((e as { code?: string }).code).toBe("ENOENT");
});
