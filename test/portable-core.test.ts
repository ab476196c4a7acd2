// The portable core must stay web-standard (../shared/STYLE.md point 2): no Bun globals, no bun:
// or node: modules, in code or tests. This test fails on the first file that names one.
import { test, expect } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { PORTABLE_PATHS, PORTABLE_EXCEPTIONS } from "../scripts/portable-core.ts";

const root = join(import.meta.dir, "..");
const FORBIDDEN = /\bBun\.|\bbun:|\bnode:/;

function files(path: string): string[] {
  if (!statSync(join(root, path)).isDirectory()) return [path];
  const dir = path;
  return readdirSync(join(root, dir)).flatMap((name) => {
    const rel = `${dir}/${name}`;
    return statSync(join(root, rel)).isDirectory() ? files(rel) : /\.(ts|js|mjs)$/.test(name) ? [rel] : [];
  });
}

test("portable core names no Bun, bun: or node: API", () => {
  const offenders: string[] = [];
  let scanned = 0;
  for (const path of PORTABLE_PATHS) {
    for (const file of files(path)) {
      if (PORTABLE_EXCEPTIONS.includes(file)) continue;
      scanned++;
      readFileSync(join(root, file), "utf8").split("\n").forEach((line, i) => {
        const m = FORBIDDEN.exec(line);
        if (m) offenders.push(`${file}:${i + 1}: ${m[0]}`);
      });
    }
  }
  expect(scanned).toBeGreaterThan(0);
  expect(offenders).toEqual([]);
});

test("the guard's pattern catches each forbidden form", () => {
  for (const bad of ['Bun.file("x")', 'import { test } from "bun:test"', 'import fs from "node:fs"']) {
    expect(FORBIDDEN.test(bad)).toBe(true);
  }
  for (const good of ['import * as pkijs from "pkijs"', "const bundle = 1", "// a Bundle of roots"]) {
    expect(FORBIDDEN.test(good)).toBe(false);
  }
});
