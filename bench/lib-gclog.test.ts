import { describe, expect, test } from "bun:test";
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeGc, gcSince, logMark, parseGcLog } from "./lib-gclog.ts";

// Records as JavaScriptCore writes them (shortened in the middle, where nothing is read).
const eden = (before: number, after: number, p: number) =>
  `[GC<0x2271de00118>: START M ${before}kb => EdenCollection, a=0kb hf=0.000 mu=0.600 v=0kb (C:0 M:0 P1:0) o=20 b=9 i#1:N<CsMsrShDMsm(9)SrbBcs> 0+0 i#3:P<Msm(0)ShMsrCsBcsSrbDCbDomoJwWsO>Pbc => ${after}kb, p=${p}ms (max 5.673297), cycle 0.677800ms END]\nGC END!\n[GC<0x2271de00118>: epilogue 0.009344ms]\n`;
const concurrentFull = [
  "[GC<0x2271de00118>: START M 14907kb => FullCollection, a=0kb hf=0.000 mu=0.600 v=0kb (C:0 M:0 P1:0) o=0 b=4 i#1:N<CsMsrShDMsm(0)SrbBcs> 0+0 p=3.423283ms (max 5.673297)...]",
  '{"time":"2026-11-27T15:35:50.664Z","level":"info","event":"agent_ready","selectors":["a"]}',
  "[GC<0x2271de00118>: C a=24kb hf=0.001 mu=0.599 v=3255kb (C:873 M:0 P1:2381) o=13 b=0 0+0 p=0.738621ms (max 5.673297)...]",
  "[GC<0x2271de00118>: C a=44kb hf=0.002 mu=0.599 v=5091kb (C:1913 M:0 P1:3178) o=18 b=0 i#2:N<WsOJw>Pbc 40+0 => 12231kb, p=2.375070ms (max 5.673297), cycle 8.475875ms END]",
  "GC END!",
  "",
].join("\n");

describe("parseGcLog", () => {
  test("counts eden collections and their pauses", () => {
    const s = parseGcLog(eden(14907, 11925, 0.7) + eden(15019, 11925, 0.8) + eden(15083, 11925, 0.6));
    expect(s.eden.count).toBe(3);
    expect(s.eden.p50Ms).toBeCloseTo(0.7, 6);
    expect(s.eden.maxMs).toBeCloseTo(0.8, 6);
    expect(s.eden.totalMs).toBeCloseTo(2.1, 6);
    expect(s.full.count).toBe(0);
  });

  test("a collection logged over several lines pauses for the sum of its stops, other output between them skipped", () => {
    const s = parseGcLog(concurrentFull);
    expect(s.full.count).toBe(1);
    expect(s.full.totalMs).toBeCloseTo(3.423283 + 0.738621 + 2.37507, 6);
    expect(s.heapBeforeFullKiB).toEqual([14907]);
    expect(s.heapAfterFullKiB).toEqual([12231]);
    expect(s.eden.count).toBe(0);
  });

  test("a record cut off at either end of the text is not counted", () => {
    const lines = concurrentFull.split("\n");
    const headless = lines.slice(2).join("\n"); // begins in the middle of the full collection
    const tailless = eden(1, 1, 1) + lines.slice(0, 2).join("\n"); // ends before its END
    expect(parseGcLog(headless).full.count).toBe(0);
    expect(parseGcLog(tailless).full.count).toBe(0);
    expect(parseGcLog(tailless).eden.count).toBe(1);
  });

  test("no collections: counts of 0 and no figures", () => {
    const s = parseGcLog("bare-tunnel: client 127.0.0.1:1 -> 127.0.0.1:2\nRequesting GC because bytes allocated this cycle: 1 exceed bytes allowed: 0\n");
    expect(s.eden.count).toBe(0);
    expect(Number.isNaN(s.eden.p50Ms)).toBe(true);
    expect(describeGc(s, 10)).toContain("eden 0, pause p50 - ms");
  });

  test("describeGc gives the share of the time paused", () => {
    const s = parseGcLog(eden(2, 1, 5) + eden(2, 1, 5));
    expect(describeGc(s, 1)).toBe("eden 2, pause p50 5.00 ms, p90 5.00, max 5.00, total 10.0 ms (1.00 % of the time); full 0");
  });
});

describe("gcSince", () => {
  test("reads only what a log gained after the mark", () => {
    const dir = mkdtempSync(join(tmpdir(), "tidegate-gclog-"));
    try {
      const log = join(dir, "agent.log");
      expect(logMark(log)).toBe(0); // no file yet
      writeFileSync(log, eden(3, 2, 9));
      const mark = logMark(log);
      appendFileSync(log, eden(3, 2, 1) + concurrentFull);
      const s = gcSince(log, mark);
      expect(s.eden.count).toBe(1);
      expect(s.eden.maxMs).toBe(1);
      expect(s.full.count).toBe(1);
      expect(gcSince(log, logMark(log)).eden.count).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
