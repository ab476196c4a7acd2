import { afterAll, describe, expect, test } from "bun:test";
import { appendFileSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { event } from "../otlp/test-events.ts";
import { CursorFile } from "./cursor-file.ts";
import { OtlpExporter } from "./exporter.ts";
import { FileSource } from "./file-source.ts";
import { TestCollector, within } from "./test-collector.ts";

const tmp = mkdtempSync(join(tmpdir(), "tidegate-source-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;

function dir(): string {
  const d = join(tmp, `log-${++n}`);
  mkdirSync(d);
  return d;
}

/** The lines of seqs a..b, each with its "\n". */
function lines(a: number, b: number, type = "conn_close"): string {
  let s = "";
  for (let seq = a; seq <= b; seq++) s += `${event(seq, seq === a && type === "audit_recovered" ? type : "conn_close", { conn_id: `c-${seq}`, note: "é✓" }).line}\n`;
  return s;
}

const seqs = async (src: FileSource, after: number, max = 1000) => (await src.read(after, max)).map((e) => e.seq);

describe("FileSource", () => {
  test("reads across a rotated file and the active one, leaving each file's torn last line", async () => {
    const d = dir();
    writeFileSync(join(d, "audit-000000000001.jsonl"), `${lines(1, 3)}{"seq":4,"time":"2026-11-2`);
    writeFileSync(join(d, "audit.jsonl"), `${lines(4, 6, "audit_recovered")}{"seq":7,"ti`);
    const src = new FileSource(d);
    expect(await seqs(src, 0)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(await seqs(src, 6)).toEqual([]);
    appendFileSync(join(d, "audit.jsonl"), `${event(7, "conn_close", { conn_id: "c-7", note: "é✓" }).line.slice(`{"seq":7,"ti`.length)}\n`);
    expect(await seqs(src, 6)).toEqual([7]);
  });

  test("an event is the line's exact text, its seq, time, type, and the other fields without prev", async () => {
    const d = dir();
    writeFileSync(join(d, "audit.jsonl"), lines(1, 2));
    const [first] = await new FileSource(d).read(0, 1);
    const want = event(1, "conn_close", { conn_id: "c-1", note: "é✓" });
    expect(first).toEqual(want);
  });

  test("orders files by the seq of their first line, not by name", async () => {
    const d = dir();
    writeFileSync(join(d, "audit-000000000900.jsonl"), lines(1, 3));
    writeFileSync(join(d, "audit-000000000002.jsonl"), lines(4, 6));
    writeFileSync(join(d, "audit.jsonl"), lines(7, 8));
    writeFileSync(join(d, "audit-notes.jsonl"), "ignored\n");
    const src = new FileSource(d);
    expect(await seqs(src, 0)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(await seqs(src, 2, 3)).toEqual([3, 4, 5]);
    expect(await seqs(src, 5, 2)).toEqual([6, 7]);
    expect(await seqs(src, 8)).toEqual([]);
  });

  test("follows a rotation between two reads, and skips an empty active file or one holding only a torn line", async () => {
    const d = dir();
    writeFileSync(join(d, "audit.jsonl"), lines(1, 3));
    const src = new FileSource(d);
    expect(await seqs(src, 0, 2)).toEqual([1, 2]);
    renameSync(join(d, "audit.jsonl"), join(d, "audit-000000000001.jsonl"));
    writeFileSync(join(d, "audit.jsonl"), "");
    expect(await seqs(src, 2)).toEqual([3]);
    writeFileSync(join(d, "audit.jsonl"), '{"seq":4,"time"');
    expect(await seqs(src, 3)).toEqual([]);
    writeFileSync(join(d, "audit.jsonl"), lines(4, 5));
    expect(await seqs(src, 3)).toEqual([4, 5]);
  });

  test("a first line longer than the head read (a checkpoint with its chain) still gives the file's first seq", async () => {
    const d = dir();
    writeFileSync(join(d, "audit-000000000001.jsonl"), `${event(1, "checkpoint", { chain: ["x".repeat(20_000)] }).line}\n${lines(2, 2)}`);
    writeFileSync(join(d, "audit.jsonl"), lines(3, 3));
    expect(await seqs(new FileSource(d), 0)).toEqual([1, 2, 3]);
  });

  test("a directory that does not exist yet has no events", async () => {
    expect(await seqs(new FileSource(join(tmp, "nowhere")), 0)).toEqual([]);
  });

  const bad: [string, string][] = [
    ["a line that is not JSON", "not json\n"],
    ["a JSON array", "[1]\n"],
    ["a line without seq", '{"time":"2026-11-26T17:00:00Z","type":"x"}\n'],
    ["a seq of 0", '{"seq":0,"time":"2026-11-26T17:00:00Z","type":"x"}\n'],
    ["a type that is not a string", '{"seq":2,"time":"2026-11-26T17:00:00Z","type":1}\n'],
    ["an empty line", "\n"],
  ];
  for (const [name, text] of bad) {
    test(`refuses ${name} with export_bad_source`, async () => {
      const d = dir();
      writeFileSync(join(d, "audit.jsonl"), lines(1, 1) + text);
      await expect(new FileSource(d).read(0, 10)).rejects.toMatchObject({ code: "export_bad_source" });
    });
  }

  test("refuses bytes that are not UTF-8, and two rotated files that begin at the same seq", async () => {
    const d = dir();
    writeFileSync(join(d, "audit.jsonl"), Buffer.concat([Buffer.from(lines(1, 1)), Buffer.from([0x7b, 0xff, 0x7d, 0x0a])]));
    await expect(new FileSource(d).read(0, 10)).rejects.toMatchObject({ code: "export_bad_source", message: expect.stringContaining("not UTF-8") });
    const e = dir();
    writeFileSync(join(e, "audit-000000000001.jsonl"), lines(1, 2));
    writeFileSync(join(e, "audit-000000000003.jsonl"), lines(1, 2));
    await expect(new FileSource(e).read(0, 10)).rejects.toMatchObject({ code: "export_bad_source", message: expect.stringContaining("both begin at seq 1") });
  });

  test("with the exporter: the collector receives every line byte for byte, the torn one excluded", async () => {
    const d = dir();
    writeFileSync(join(d, "audit-000000000001.jsonl"), lines(1, 40));
    writeFileSync(join(d, "audit.jsonl"), `${lines(41, 75)}{"seq":76,`);
    const collector = TestCollector.start();
    try {
      const exporter = new OtlpExporter({ url: collector.url, instance: "node-a", hostName: "h", source: new FileSource(d), cursor: new CursorFile(join(d, "export.cursor")), batchMax: 16 });
      expect((await within(exporter.runOnce())).delivered).toBe(75);
      expect(collector.received.map((r) => `${r.line}\n`).join("")).toBe(lines(1, 40) + lines(41, 75));
    } finally {
      await collector.close();
    }
  });
});
