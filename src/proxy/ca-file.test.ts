import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CA_RECHECK_MS, readCaFile } from "./ca-file.ts";

const dir = mkdtempSync(join(tmpdir(), "tidegate-test-ca-file-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("a CA file is read once while unchanged, and again (with a new id) once it changes and the window has passed", () => {
  const path = join(dir, "ca.pem");
  writeFileSync(path, "first");
  let t = 1_000_000;
  const a = readCaFile(path, t);
  expect(a.pem).toBe("first");
  expect(a.id).toMatch(/^[0-9a-f]{64}$/);
  t += CA_RECHECK_MS * 5;
  expect(readCaFile(path, t)).toBe(a); // looked at, unchanged: the same object, not read again
  writeFileSync(path, "second, longer");
  expect(readCaFile(path, t + CA_RECHECK_MS - 1)).toBe(a); // inside the window: not looked at
  const b = readCaFile(path, t + CA_RECHECK_MS);
  expect(b.pem).toBe("second, longer");
  expect(b.id).not.toBe(a.id);
  writeFileSync(path, "third");
  expect(readCaFile(path, t - 1).pem).toBe("third"); // a clock that went back is not inside the window
});

test("a missing file throws the file system's error; one removed is refused once the window has passed", () => {
  expect(() => readCaFile(join(dir, "none.pem"))).toThrow(expect.objectContaining({ code: "ENOENT" }));
  const path = join(dir, "gone.pem");
  writeFileSync(path, "ca");
  readCaFile(path, 5_000_000);
  rmSync(path);
  expect(() => readCaFile(path, 5_000_000 + CA_RECHECK_MS)).toThrow(expect.objectContaining({ code: "ENOENT" }));
});
