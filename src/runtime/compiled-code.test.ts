import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { DROP_ATTEMPTS, dropStartupCode, liveCodeBlocks } from "./compiled-code.ts";
import { memoryLogger } from "./log.ts";

describe("liveCodeBlocks", () => {
  test("counts the code of functions as they first run", () => {
    const before = liveCodeBlocks();
    const fns = Array.from({ length: 300 }, (_, i) => new Function("a", `return a * ${i} + 1;`) as (a: number) => number);
    let sum = 0;
    for (const f of fns) sum += f(2);
    expect(sum).toBe(300 + 2 * ((299 * 300) / 2));
    expect(liveCodeBlocks()).toBeGreaterThanOrEqual(before + 300);
  });
});

describe("dropStartupCode", () => {
  // In a process of its own: the drop takes the compiled code of everything that ran in it.
  test("drops the code that ran, logs it, and what runs afterwards compiles again and answers alike", async () => {
    const script = `
      import { dropStartupCode, liveCodeBlocks } from ${JSON.stringify(join(import.meta.dir, "compiled-code.ts"))};
      import { memoryLogger } from ${JSON.stringify(join(import.meta.dir, "log.ts"))};
      const fns = Array.from({ length: 2000 }, (_, i) => new Function("a", "return a * " + i + " + 1;"));
      const run = () => fns.reduce((s, f) => s + f(3), 0);
      const first = run();
      const logger = memoryLogger();
      const drop = await dropStartupCode(logger, "test");
      const second = run();
      console.log(JSON.stringify({ drop, lines: logger.lines, first, second, rerun: liveCodeBlocks() }));
    `;
    const p = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    expect(err).toBe("");
    expect(code).toBe(0);
    const r = JSON.parse(out);
    expect(r.drop.codeBlocksBefore).toBeGreaterThan(2000);
    expect(r.drop.codeBlocksAfter).toBeLessThan(r.drop.codeBlocksBefore / 10);
    expect(r.second).toBe(r.first);
    expect(r.rerun).toBeGreaterThanOrEqual(r.drop.codeBlocksAfter + 2000); // compiled again as they ran
    expect(r.drop.rssBeforeMiB).toBeGreaterThan(0);
    expect(r.drop.rssAfterMiB).toBeGreaterThan(0);
    expect(r.drop.attempts).toBeGreaterThanOrEqual(1);
    expect(r.drop.attempts).toBeLessThanOrEqual(DROP_ATTEMPTS);
    expect(r.lines).toEqual([
      expect.objectContaining({ level: "info", event: "startup_code_dropped", component: "test", code_blocks_before: r.drop.codeBlocksBefore, code_blocks_after: r.drop.codeBlocksAfter, rss_before_mib: r.drop.rssBeforeMiB, rss_after_mib: r.drop.rssAfterMiB, attempts: r.drop.attempts }),
    ]);
  });

  // JavaScriptCore skips the deletion while a collection is under way: the drop is asked for again.
  test("a drop that did not happen is asked for again, and the log says how many times it took", async () => {
    const script = `
      import { dropStartupCode } from ${JSON.stringify(join(import.meta.dir, "compiled-code.ts"))};
      import { memoryLogger } from ${JSON.stringify(join(import.meta.dir, "log.ts"))};
      const fns = Array.from({ length: 2000 }, (_, i) => new Function("a", "return a * " + i + " + 1;"));
      fns.reduce((s, f) => s + f(3), 0);
      let asked = 0;
      const drop = await dropStartupCode(memoryLogger(), "test", () => { if (++asked >= 3) Bun.shrink(); });
      console.log(JSON.stringify({ drop, asked }));
    `;
    const p = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    expect(err).toBe("");
    expect(code).toBe(0);
    const r = JSON.parse(out);
    expect(r.asked).toBe(3);
    expect(r.drop.attempts).toBe(3);
    expect(r.drop.codeBlocksAfter).toBeLessThan(r.drop.codeBlocksBefore / 10);
  });

  test("a drop that never happens is asked for DROP_ATTEMPTS times, then reported as it is", async () => {
    const logger = memoryLogger();
    let asked = 0;
    const drop = await dropStartupCode(logger, "test", () => void asked++);
    expect(asked).toBe(DROP_ATTEMPTS);
    expect(drop.attempts).toBe(DROP_ATTEMPTS);
    expect(drop.codeBlocksAfter * 2).toBeGreaterThanOrEqual(drop.codeBlocksBefore);
    expect(logger.lines).toEqual([expect.objectContaining({ event: "startup_code_dropped", component: "test", attempts: DROP_ATTEMPTS })]);
  });
});
