import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CA_RECHECK_MS, MAX_CA_FILE_BYTES, readCaFile } from "./ca-file.ts";

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

// A rule's `ca` path may sit where someone other than root can put a file: a FIFO there once
// blocked the agent's event loop in readFileSync (every connection of every workload stalled),
// and /dev/zero was read until memory ran out.
test("a FIFO, a device or a directory as a CA file is refused at once, never read", () => {
  const fifo = join(dir, "fifo.pem");
  expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
  const t0 = performance.now();
  expect(() => readCaFile(fifo)).toThrow(expect.objectContaining({ code: "input_not_file" }));
  expect(() => readCaFile("/dev/zero")).toThrow(expect.objectContaining({ code: "input_not_file" }));
  expect(() => readCaFile(dir)).toThrow(expect.objectContaining({ code: "input_not_file" }));
  expect(performance.now() - t0).toBeLessThan(1000);
});

test("a CA file over MAX_CA_FILE_BYTES is refused", () => {
  const path = join(dir, "huge.pem");
  writeFileSync(path, Buffer.alloc(MAX_CA_FILE_BYTES + 1, 0x41));
  expect(() => readCaFile(path)).toThrow(expect.objectContaining({ code: "input_too_large" }));
  writeFileSync(path, Buffer.alloc(MAX_CA_FILE_BYTES, 0x41));
  expect(readCaFile(path).pem.length).toBe(MAX_CA_FILE_BYTES);
});
