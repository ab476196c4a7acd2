// One line far longer than a read block (a damaged or forged log, a torn line of a crash) costs
// time in proportion to its length: reading backwards in fixed blocks copied what was held of the
// line at each block, so a 100 MB line took `audit tail` 10 s and 1.2 GB, and the agent's start
// (readTail, recovering the chain) and `audit export` as long.
import { afterAll, expect, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { linesBackward } from "./audit-files.ts";
import { readTail } from "../audit/sink/files.ts";

const dir = mkdtempSync(join(tmpdir(), "tidegate-long-line-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const LONG = 96 * 1024 * 1024;

test("linesBackward: a 96 MiB line among short ones, in well under 2 s", () => {
  const path = join(dir, "a.jsonl");
  writeFileSync(path, `{"seq":1}\n${"x".repeat(LONG)}\n{"seq":3}\n`);
  const fd = openSync(path, "r");
  try {
    const t0 = performance.now();
    expect([...linesBackward(fd)].map((l) => l.length)).toEqual([9, LONG, 9]);
    expect(performance.now() - t0).toBeLessThan(2000);
  } finally {
    closeSync(fd);
  }
});

test("readTail: a torn last line of 96 MiB, in well under 2 s", () => {
  const path = join(dir, "audit.jsonl");
  writeFileSync(path, `{"seq":1}\n${"x".repeat(LONG)}`);
  const t0 = performance.now();
  const tail = readTail(path);
  expect(performance.now() - t0).toBeLessThan(2000);
  expect([tail.tornBytes, tail.lines]).toEqual([LONG, ['{"seq":1}']]);
});
