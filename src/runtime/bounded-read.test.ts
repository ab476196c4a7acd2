// What a named file may be before it is read whole: a regular file within the bound; a FIFO,
// a device, a directory (or a symlink to one) is refused at once, never waited on or read.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BoundedReadError, readRegularFile } from "./bounded-read.ts";

const dir = mkdtempSync(join(tmpdir(), "tidegate-bounded-read-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(BoundedReadError);
    return (e as BoundedReadError).code;
  }
  return "read";
}

test("each kind of file: read, or refused with its code, within a second", () => {
  const fifo = join(dir, "fifo");
  expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
  const toZero = join(dir, "to-zero");
  symlinkSync("/dev/zero", toZero);
  const small = join(dir, "small");
  writeFileSync(small, "abc");
  const exact = join(dir, "exact");
  writeFileSync(exact, "x".repeat(100));
  const over = join(dir, "over");
  writeFileSync(over, "x".repeat(101));
  const t0 = performance.now();
  const got = [small, exact, over, fifo, "/dev/zero", toZero, dir, join(dir, "none")].map((p) => codeOf(() => readRegularFile(p, "test", 100)));
  expect(got).toEqual(["read", "read", "input_too_large", "input_not_file", "input_not_file", "input_not_file", "input_not_file", "input_unreadable"]);
  expect(performance.now() - t0).toBeLessThan(1000);
  expect(readRegularFile(exact, "test", 100).length).toBe(100);
});

test("the path is quoted in messages: no control, C1 or bidi character reaches a terminal", () => {
  const name = join(dir, "a\u001b]0;x\u0007\u009b31m\u202egnp");
  expect(() => readRegularFile(name, "test")).toThrow(`test: cannot read "${dir}/a\\u001b]0;x\\u0007\\u009b31m\\u202egnp": no such file`);
});
