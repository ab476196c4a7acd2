import { describe, expect, test } from "bun:test";
import { escapeXml, formatRatio, formatValue, niceMax, ratioOf, renderChart, wrap, type Chart } from "./lib-svg.ts";

/**
 * A small well-formedness check: one optional XML declaration, then elements that nest and close,
 * attributes double-quoted, text and attribute values with no raw `<` and only the five named
 * entities or numeric references. Returns the elements' names in document order.
 */
function parseXml(doc: string): string[] {
  const names: string[] = [];
  const stack: string[] = [];
  const ENT = /&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/;
  let rest = doc.replace(/^<\?xml [^?]*\?>\n?/, "");
  let roots = 0;
  while (rest !== "") {
    const lt = rest.indexOf("<");
    const chunk = lt === -1 ? rest : rest.slice(0, lt);
    if (ENT.test(chunk)) throw new Error(`bad entity in text: ${chunk}`);
    if (stack.length === 0 && chunk.trim() !== "") throw new Error(`text outside the root: ${chunk}`);
    if (lt === -1) break;
    rest = rest.slice(lt);
    const m = /^<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>/.exec(rest);
    if (m === null) throw new Error(`bad tag at: ${rest.slice(0, 80)}`);
    const [all, close, name, attrs, selfClose] = m as unknown as [string, string, string, string, string];
    if (ENT.test(attrs)) throw new Error(`bad entity in attributes: ${attrs}`);
    const seen = [...attrs.matchAll(/([\w:.-]+)=/g)].map((a) => a[1]);
    if (new Set(seen).size !== seen.length) throw new Error(`repeated attribute in <${name}>`);
    if (close !== "") {
      if (stack.pop() !== name) throw new Error(`</${name}> closes nothing open`);
    } else {
      if (stack.length === 0 && ++roots > 1) throw new Error("two roots");
      names.push(name);
      if (selfClose === "") stack.push(name);
    }
    rest = rest.slice(all.length);
  }
  if (stack.length !== 0) throw new Error(`unclosed: ${stack.join(", ")}`);
  return names;
}

const chart: Chart = {
  title: "L4 mutual TLS: ratios to direct",
  baseline: "direct",
  paths: ["direct", "nginx-stream", "tidegate"],
  highlight: ["tidegate"],
  groups: [
    { label: "1 KiB keep-alive req/s", better: "higher", unit: "req/s", values: { direct: 40_000, "nginx-stream": 16_000, tidegate: 17_200 } },
    { label: "1 KiB keep-alive p99", better: "lower", unit: "ms", values: { direct: 0.5, "nginx-stream": 3.3, tidegate: 3.4 } },
  ],
  footer: { date: "2026-11-27", command: "taskset -c 0,1 bun bench/mtls.ts --reps 3 --duration 10", reps: 3 },
};

describe("renderChart", () => {
  test("is well-formed XML with one bar per path and group and one reference line per group", () => {
    const svg = renderChart(chart);
    const names = parseXml(svg);
    expect(names[0]).toBe("svg");
    expect(svg.match(/<rect class="bar[ "]/g)?.length).toBe(6);
    expect(svg.match(/<rect class="bar highlight"/g)?.length).toBe(2);
    expect(svg.match(/<rect class="bar baseline"/g)?.length).toBe(2);
    expect(svg.match(/<line class="ref"/g)?.length).toBe(2);
  });

  test("prints each ratio to the baseline and the median beside it", () => {
    const svg = renderChart(chart);
    expect(svg).toContain(">0.40× (16,000 req/s)</text>");
    expect(svg).toContain(">0.43× (17,200 req/s)</text>");
    expect(svg).toContain(">1.00× (40,000 req/s)</text>");
    expect(svg).toContain(">6.60× (3.30 ms)</text>");
    expect(svg).toContain(">6.80× (3.40 ms)</text>");
    expect(svg).toContain("Higher is better: 1 KiB keep-alive req/s.");
    expect(svg).toContain("Lower is better: 1 KiB keep-alive p99.");
    expect(svg).toContain("2026-11-27 · taskset -c 0,1 bun bench/mtls.ts --reps 3 --duration 10 · 3 repetitions");
  });

  test("bar lengths are proportional to the ratios within a group", () => {
    const svg = renderChart(chart);
    const widths = [...svg.matchAll(/<rect class="bar[^"]*" x="[\d.]+" y="[\d.]+" width="([\d.]+)"/g)].map((m) => Number(m[1]));
    // group 1: scale 1.25 (max ratio 1); group 2: ratio 6.8 -> scale 8
    expect(widths[0]! / widths[1]!).toBeCloseTo(1 / 0.4, 1);
    expect(widths[4]! / widths[5]!).toBeCloseTo(6.6 / 6.8, 2);
    expect(widths[3]! / widths[5]!).toBeCloseTo(1 / 6.8, 2);
  });

  test("the same input gives the same bytes", () => {
    expect(renderChart(chart)).toBe(renderChart(structuredClone(chart)));
  });

  test("escapes every piece of text", () => {
    const evil = `<script>&"'\u0001`;
    const svg = renderChart({
      ...chart,
      title: evil,
      baseline: `d<${evil}`,
      paths: [`d<${evil}`, evil],
      highlight: [evil],
      labels: { [evil]: `label ${evil}` },
      groups: [{ label: evil, better: "higher", unit: evil, values: { [`d<${evil}`]: 2, [evil]: 3 } }],
      footer: { date: evil, command: evil, reps: 1, note: evil },
    });
    parseXml(svg);
    expect(svg).not.toContain("<script");
    expect(svg).not.toContain("\u0001");
    expect(svg).toContain("&lt;script&gt;&amp;&quot;&apos;\uFFFD");
    expect(svg).toContain("1.50× (3.00 &lt;script&gt;");
  });

  test("a missing or non-finite value, or a baseline of zero, gives n/a and no bar", () => {
    const svg = renderChart({
      ...chart,
      groups: [
        { label: "a", better: "higher", values: { direct: 10, "nginx-stream": Number.NaN } },
        { label: "b", better: "lower", values: { direct: 0, "nginx-stream": 1, tidegate: 2 } },
      ],
    });
    parseXml(svg);
    expect(svg.match(/<rect class="bar[ "]/g)?.length).toBe(1);
    expect(svg.match(/>n\/a<\/text>/g)?.length).toBe(5);
  });
});

describe("pieces", () => {
  test("ratioOf", () => {
    expect(ratioOf({ a: 3, b: 2 }, "a", "b")).toBe(1.5);
    expect(ratioOf({ a: 3, b: 0 }, "a", "b")).toBeNaN();
    expect(ratioOf({ a: 3, b: -1 }, "a", "b")).toBeNaN();
    expect(ratioOf({ a: Number.POSITIVE_INFINITY, b: 1 }, "a", "b")).toBeNaN();
    expect(ratioOf({ b: 1 }, "a", "b")).toBeNaN();
  });

  test.each([
    [16260.4, "16,260"], [1234567, "1,234,567"], [362.4, "362"], [12.34, "12.3"], [3.314, "3.31"], [0.8812, "0.881"], [0, "0.000"], [Number.NaN, "n/a"],
  ] as const)("formatValue(%p) is %p", (x, s) => expect(formatValue(x)).toBe(s));

  test.each([[0.984, "0.98×"], [1, "1.00×"], [12.34, "12.3×"], [123.4, "123×"], [Number.NaN, "n/a"]] as const)("formatRatio(%p) is %p", (x, s) => expect(formatRatio(x)).toBe(s));

  test.each([[0.5, 1.25], [1, 1.25], [1.3, 1.5], [1.9, 2], [2.1, 2.5], [6.8, 8], [9.9, 12.5], [12, 12.5], [13, 15], [95, 100]] as const)("niceMax(%p) is %p", (x, m) => expect(niceMax(x)).toBe(m));

  test("escapeXml", () => {
    expect(escapeXml(`a&b<c>d"e'f`)).toBe("a&amp;b&lt;c&gt;d&quot;e&apos;f");
    for (let c = 0; c < 0x20; c++) expect(escapeXml(String.fromCharCode(c))).toBe([9, 10, 13].includes(c) ? String.fromCharCode(c) : "\uFFFD");
    expect(escapeXml("\uD800x")).toBe("\uFFFDx");
    expect(escapeXml("\uD83D\uDE00")).toBe("\uD83D\uDE00");
  });

  test("wrap keeps lines within the width and every word", () => {
    const s = "one two three four five six seven eight nine ten eleven";
    const lines = wrap(s, 12);
    expect(lines.every((l) => l.length <= 12)).toBe(true);
    expect(lines.join(" ")).toBe(s);
    expect(wrap("abcdefghij", 4)).toEqual(["abcd", "efgh", "ij"]);
  });
});
