/**
 * Grouped horizontal bar charts as SVG text, for docs/bench/*.svg: one group per test, one bar per
 * path, each bar as long as the path's median divided by the baseline path's median (its ratio to
 * the baseline, usually "direct"; 1 is marked by a dashed line), the ratio and the median printed
 * at the bar's end, the highlighted paths (tidegate's) in a colour of their own.
 *
 * Guaranteed: every piece of text is escaped (& < > " ' and the characters XML 1.0 forbids, which
 * become U+FFFD); the output depends on the input only (no clock, no locale), so the same figures
 * give the same bytes and a chart in git changes only when a figure does. Each group has a scale of
 * its own (a p99 ratio of 10 would squash a req/s ratio of 0.9 on a shared one), so bar lengths
 * compare within a group, and the printed ratios across groups. A value that is missing, not
 * finite or not positive in the baseline gets no bar and "n/a".
 *
 * Web-standard code only: no Bun or node API.
 */

export interface ChartGroup {
  /** The test and its unit, e.g. "1 KiB keep-alive req/s". */
  readonly label: string;
  /** Which way a ratio is better, said in the group's header and the chart's note. */
  readonly better: "higher" | "lower";
  /** Each path's median in the group's unit. */
  readonly values: Readonly<Record<string, number>>;
  /** Printed after a median, e.g. "req/s" or "ms". */
  readonly unit?: string;
}

export interface Chart {
  readonly title: string;
  /** The path each ratio is taken against. */
  readonly baseline: string;
  /** The bars of each group, top to bottom. */
  readonly paths: readonly string[];
  /** Paths drawn in tidegate's colour. */
  readonly highlight: readonly string[];
  /** A bar's label by path, when it is not the path's name. */
  readonly labels?: Readonly<Record<string, string>>;
  readonly groups: readonly ChartGroup[];
  /** What the footer says: the day (YYYY-MM-DD), the command, the repetitions (null: not said), and any more. */
  readonly footer: { readonly date: string; readonly command: string; readonly reps: number | null; readonly note?: string };
}

/** values[path] / values[baseline]; NaN when either is missing or not finite, or the baseline is not positive. */
export function ratioOf(values: Readonly<Record<string, number>>, path: string, baseline: string): number {
  const v = values[path];
  const b = values[baseline];
  if (v === undefined || b === undefined || !Number.isFinite(v) || !Number.isFinite(b) || b <= 0) return Number.NaN;
  return v / b;
}

// XML 1.0 allows tab, LF, CR and U+0020 up, less lone surrogates and U+FFFE/U+FFFF.
const NOT_XML = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const ENTITY: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" };

/** Text safe in an element or a double-quoted attribute. */
export function escapeXml(s: string): string {
  return s.replace(NOT_XML, "\uFFFD").replace(/[&<>"']/g, (c) => ENTITY[c]!);
}

/** 12345.6 -> "12,346"; 123.4 -> "123"; 12.34 -> "12.3"; 1.234 -> "1.23"; 0.1234 -> "0.123". */
export function formatValue(x: number): string {
  if (!Number.isFinite(x)) return "n/a";
  const a = Math.abs(x);
  if (a >= 1000) return group(Math.round(x));
  return x.toFixed(a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3);
}

/** 0.984 -> "0.98×"; 12.34 -> "12.3×"; 123.4 -> "123×". */
export function formatRatio(r: number): string {
  if (!Number.isFinite(r)) return "n/a";
  return `${r.toFixed(r >= 100 ? 0 : r >= 10 ? 1 : 2)}×`;
}

function group(n: number): string {
  const s = String(Math.abs(n));
  const out = s.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return n < 0 ? `-${out}` : out;
}

/** Words to lines of at most `max` characters (a longer word is cut). */
export function wrap(text: string, max: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (let word of text.split(/\s+/).filter((w) => w !== "")) {
    while (word.length > max) {
      if (line !== "") lines.push(line);
      lines.push(word.slice(0, max));
      word = word.slice(max);
      line = "";
    }
    if (line === "") line = word;
    else if (line.length + 1 + word.length <= max) line += ` ${word}`;
    else {
      lines.push(line);
      line = word;
    }
  }
  if (line !== "") lines.push(line);
  return lines;
}

/** The scale of a group: the smallest of 1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a power of ten above x by 4 % (at least 1.25). */
export function niceMax(x: number): number {
  if (!(x > 1.2)) return 1.25;
  const t = x * 1.04;
  const p = 10 ** Math.floor(Math.log10(t));
  for (const s of [1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (s * p >= t) return Number((s * p).toPrecision(6));
  return 10 * p;
}

const W = 800;
const PAD = 16;
const LABEL_RIGHT = 196;
const BAR_X = 204;
const BAR_W = 420;
const BAR_H = 13;
const ROW = 18;
const WRAP = 118;
const COLOR = { highlight: "#d9480f", other: "#4a7fb5", baseline: "#a0a0a0", text: "#212529", muted: "#5c636a", ref: "#343a40" } as const;
const FONT = 'font-family="-apple-system, BlinkMacSystemFont, Segoe UI, Helvetica, Arial, sans-serif"';

/** Coordinates with one decimal at most, so that the text is stable. */
const n = (x: number) => String(Math.round(x * 10) / 10);

export function renderChart(c: Chart): string {
  const out: string[] = [];
  let y = PAD;
  const text = (x: number, yy: number, s: string, attrs = "") => out.push(`<text x="${n(x)}" y="${n(yy)}"${attrs === "" ? "" : ` ${attrs}`}>${escapeXml(s)}</text>`);

  wrap(c.title, 80).forEach((line, i) => {
    y += i === 0 ? 18 : 20;
    text(PAD, y, line, `font-size="16" font-weight="bold" fill="${COLOR.text}"`);
  });
  const better = (w: "higher" | "lower") => c.groups.filter((g) => g.better === w).map((g) => g.label);
  const note = [
    `Each bar: the path's median divided by ${c.baseline}'s (1× = ${c.baseline}, the dashed line); each group has its own scale.`,
    better("higher").length > 0 ? `Higher is better: ${better("higher").join("; ")}.` : "",
    better("lower").length > 0 ? `Lower is better: ${better("lower").join("; ")}.` : "",
  ].filter((s) => s !== "");
  for (const line of note.flatMap((sentence) => wrap(sentence, WRAP))) {
    y += 16;
    text(PAD, y, line, `font-size="12" fill="${COLOR.muted}"`);
  }

  // legend: tidegate, the other paths, the baseline, the line at 1×
  y += 22;
  const others = c.paths.some((p) => p !== c.baseline && !c.highlight.includes(p));
  const legend: [string, string][] = [[COLOR.highlight, "tidegate"], ...(others ? ([[COLOR.other, "other paths"]] as [string, string][]) : []), [COLOR.baseline, c.baseline]];
  let lx = PAD;
  for (const [color, label] of legend) {
    out.push(`<rect x="${n(lx)}" y="${n(y - 10)}" width="12" height="12" fill="${color}"/>`);
    text(lx + 17, y, label, `font-size="12" fill="${COLOR.text}"`);
    lx += 17 + label.length * 7.5 + 20;
  }
  out.push(`<line x1="${n(lx)}" y1="${n(y - 11)}" x2="${n(lx)}" y2="${n(y + 3)}" stroke="${COLOR.ref}" stroke-width="1" stroke-dasharray="3,2"/>`);
  text(lx + 6, y, `1× = ${c.baseline}`, `font-size="12" fill="${COLOR.text}"`);

  for (const g of c.groups) {
    y += 28;
    out.push(`<text x="${n(PAD)}" y="${n(y)}" font-size="13" font-weight="bold" fill="${COLOR.text}">${escapeXml(g.label)}<tspan font-size="11" font-weight="normal" fill="${COLOR.muted}" dx="8">${g.better} is better</tspan></text>`);
    const ratios = c.paths.map((p) => ratioOf(g.values, p, c.baseline));
    const max = niceMax(Math.max(1, ...ratios.filter((r) => Number.isFinite(r))));
    const x = (r: number) => BAR_X + (Math.max(0, r) / max) * BAR_W;
    const top = y + 6;
    const bottom = top + c.paths.length * ROW - (ROW - BAR_H);
    // under the bars and their text, which a white halo keeps readable where they cross it
    out.push(`<line class="ref" x1="${n(x(1))}" y1="${n(top - 3)}" x2="${n(x(1))}" y2="${n(bottom + 3)}" stroke="${COLOR.ref}" stroke-width="1" stroke-dasharray="3,2"/>`);
    c.paths.forEach((p, i) => {
      const by = top + i * ROW;
      const r = ratios[i]!;
      text(LABEL_RIGHT, by + BAR_H - 2, c.labels?.[p] ?? p, `font-size="12" text-anchor="end" fill="${COLOR.text}"`);
      const v = g.values[p];
      const shown = Number.isFinite(r) ? `${formatRatio(r)} (${formatValue(v!)}${g.unit !== undefined ? ` ${g.unit}` : ""})` : "n/a";
      if (Number.isFinite(r)) {
        const color = p === c.baseline ? COLOR.baseline : c.highlight.includes(p) ? COLOR.highlight : COLOR.other;
        const cls = p === c.baseline ? "bar baseline" : c.highlight.includes(p) ? "bar highlight" : "bar";
        out.push(`<rect class="${cls}" x="${n(BAR_X)}" y="${n(by)}" width="${n(x(r) - BAR_X)}" height="${BAR_H}" fill="${color}"><title>${escapeXml(`${c.labels?.[p] ?? p}: ${shown}`)}</title></rect>`);
      }
      text((Number.isFinite(r) ? x(r) : BAR_X) + 5, by + BAR_H - 2, shown, `font-size="11" fill="${COLOR.text}" stroke="#ffffff" stroke-width="3" paint-order="stroke"`);
    });
    y = bottom;
  }

  y += 14;
  const reps = c.footer.reps === null ? "" : ` · ${c.footer.reps} repetition${c.footer.reps === 1 ? "" : "s"}`;
  const foot = `${c.footer.date} · ${c.footer.command}${reps}${c.footer.note !== undefined && c.footer.note !== "" ? ` · ${c.footer.note}` : ""}`;
  for (const line of wrap(foot, WRAP + 6)) {
    y += 15;
    text(PAD, y, line, `font-size="11" fill="${COLOR.muted}"`);
  }
  y += PAD;

  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${n(y)}" viewBox="0 0 ${W} ${n(y)}" role="img" ${FONT}>`,
    `<title>${escapeXml(c.title)}</title>`,
    `<rect width="${W}" height="${n(y)}" fill="#ffffff"/>`,
    ...out,
    `</svg>`,
    "",
  ].join("\n");
}
