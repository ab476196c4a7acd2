import { expect, test } from "bun:test";
import { chartFootprint, markdownFootprint, summarize, tree, type Footprint } from "./lib-footprint.ts";
import { renderChart } from "./lib-svg.ts";

const mem = (mib: number) => ({ rssKiB: mib * 1024, hwmKiB: mib * 1024, processes: 1, readyS: 1 });
const base: Footprint = {
  date: "2026-11-27",
  command: "bun bench/footprint.ts",
  bun: "1.4.5",
  tidegateVersion: "tidegate 0.1.0 (abc)",
  size: { tidegate: 110 * 2 ** 20, hello: 100 * 2 ** 20, serve: 100 * 2 ** 20 },
  startup: { runs: 3, tidegate: [40, 60, 45], hello: [5, 6, 7] },
  idleS: 60,
  rss: [
    { rep: 1, tidegate: mem(40), bare: mem(30) },
    { rep: 2, tidegate: mem(50), bare: mem(30) },
    { rep: 3, tidegate: mem(60), bare: mem(30) },
  ],
};

test("medians, the median of the per-repetition RSS ratios, and the targets", () => {
  const s = summarize(base);
  expect(s.startup).toEqual({ tidegate: 45, hello: 6 });
  expect(s.rssRatio).toBeCloseTo(50 / 30, 6);
  expect(s.startupMet).toBe(true);
  expect(s.rssMet).toBe(false);
  const md = markdownFootprint(base);
  expect(md).toContain("| ≤ 50 ms | met |");
  expect(md).toContain("| ≤ 1.5x | **missed** |");
  expect(md).toContain("| binary size | 110.0 MiB | 100.0 MiB");
});

test("without the memory part the report and the chart say so", () => {
  const f = { ...base, rss: [] };
  expect(markdownFootprint(f)).toContain("not measured (--no-rss)");
  const svg = renderChart(chartFootprint(f));
  expect(svg.match(/<rect class="bar[ "]/g)?.length).toBe(4);
  expect(svg).not.toContain("repetition");
  expect(svg).toContain("RSS (not measured)");
});

test("tree lists this process", () => {
  expect(tree(process.pid)[0]).toBe(process.pid);
});
