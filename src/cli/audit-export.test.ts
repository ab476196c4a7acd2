// `tidegate audit export --otlp URL` against a real OTLP/HTTP receiver (Bun.serve on 127.0.0.1,
// every body read with the strict decoder): every event once and in order, resumed with
// --cursor, started at --from-seq, FILES in any order; refusals and retries; the URL's
// credentials and query never printed.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { listLogFiles } from "../audit/sink/files.ts";
import { TestCollector } from "../audit/export/test-collector.ts";
import { connClose, eventually, linesOf, makeKit, run, type Kit } from "./audit-testkit.ts";

let kit: Kit;
beforeAll(async () => {
  kit = await makeKit("export");
});
afterAll(() => kit.cleanup());

const collectors: TestCollector[] = [];
afterEach(async () => {
  for (const c of collectors.splice(0)) await c.close();
});

function collector(plan?: ConstructorParameters<typeof TestCollector>[0]): TestCollector {
  const c = TestCollector.start(plan);
  collectors.push(c);
  return c;
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("audit export", () => {
  test("sends every event of the audit directory once, in order, with the raw line as body; --cursor resumes", async () => {
    const p = kit.place();
    const log = p.open({ maxFileBytes: 64 * 1024, checkpointEvery: 100 });
    for (let i = 1; i <= 1200; i++) log.emit("conn_close", connClose(i));
    const c = collector();
    const cursor = join(p.stateDir, "export.cursor");
    const first = await run(["audit", "export", ...p.flags, "--otlp", c.url, "--cursor", cursor]);
    const n = log.seq;
    expect(first.code).toBe(0);
    expect(listLogFiles(p.dir).length).toBeGreaterThan(2);
    expect(c.seqs).toEqual(range(1, n));
    expect(first.out).toBe(`exported ${n} events (seq 1 to ${n}) from ${p.dir} to ${c.url}\n`);
    const lines = listLogFiles(p.dir).flatMap((f) => linesOf(f.path));
    expect(c.received.map((r) => r.line)).toEqual(lines);
    expect(c.received[0]!.attributes).toMatchObject({ "tidegate.seq": 1, "tidegate.type": "conn_close", conn_id: "c1", bytes_up: 1 });
    expect(JSON.parse(readFileSync(cursor, "utf8"))).toEqual({ seq: n });

    for (let i = 1201; i <= 1300; i++) log.emit("conn_close", connClose(i));
    log.close();
    const again = await run(["audit", "export", ...p.flags, "--otlp", c.url, "--cursor", cursor]);
    expect(again.code).toBe(0);
    expect(again.out).toBe(`exported ${log.seq - n} events (seq ${n + 1} to ${log.seq}) from ${p.dir} to ${c.url}\n`);
    expect(c.seqs).toEqual(range(1, log.seq));
    const none = await run(["audit", "export", ...p.flags, "--otlp", c.url, "--cursor", cursor]);
    expect([none.code, none.out]).toEqual([0, `nothing to export from ${p.dir} after seq ${log.seq}\n`]);
    expect(c.seqs.length).toBe(log.seq);
  });

  test("FILES in any order, from --from-seq N (or after the cursor when that is later); progress on stderr every 5000 events", async () => {
    const p = kit.place();
    const log = p.open({ maxFileBytes: 512 * 1024, checkpointEvery: 1000 });
    for (let i = 1; i <= 12_000; i++) log.emit("conn_close", connClose(i));
    log.close();
    const files = listLogFiles(p.dir).map((f) => f.path);
    expect(files.length).toBeGreaterThan(2);
    const c = collector();
    // a cursor before --from-seq: the later of the two wins
    const cursor = join(p.stateDir, "export.cursor");
    writeFileSync(cursor, JSON.stringify({ seq: 5 }));
    const r = await run(["audit", "export", "--otlp", c.url, "--from-seq", "10", "--cursor", cursor, ...[...files].reverse()]);
    expect(r.code).toBe(0);
    expect(c.seqs).toEqual(range(10, log.seq));
    expect(r.out).toBe(`exported ${log.seq - 9} events (seq 10 to ${log.seq}) from ${files.length} files to ${c.url}\n`);
    // at the first batch boundary past each 5000
    const progress = [...r.err.matchAll(/^audit export: (\d+) events sent \(up to seq (\d+)\)$/gm)].map((m) => [Number(m[1]), Number(m[2])]);
    expect(progress.length).toBe(2);
    expect(progress.map(([sent]) => Math.floor(sent! / 5000))).toEqual([1, 2]);
    for (const [sent, seq] of progress) expect(seq).toBe(sent! + 9);
    expect(JSON.parse(readFileSync(cursor, "utf8"))).toEqual({ seq: log.seq });
    const later = await run(["audit", "export", "--otlp", c.url, "--from-seq", "10", "--cursor", cursor, ...files]);
    expect([later.code, later.out]).toEqual([0, `nothing to export from ${files.length} files after seq ${log.seq}\n`]);
  }, 30_000);

  test("without --cursor or --from-seq, FILES that begin after seq 1 are sent from their first event", async () => {
    const p = kit.place();
    const log = p.open({ maxFileBytes: 2048, checkpointEvery: 1000 });
    for (let i = 1; i <= 60; i++) log.emit("conn_close", connClose(i));
    log.close();
    const files = listLogFiles(p.dir).slice(1);
    const c = collector();
    const r = await run(["audit", "export", "--otlp", c.url, ...files.map((f) => f.path)]);
    expect(r.code).toBe(0);
    expect(c.seqs).toEqual(range(files[0]!.firstSeq!, log.seq));
  });

  test("SIGTERM while the collector is down: exit 1, saying where to resume", async () => {
    const p = kit.place();
    const log = p.open();
    for (let i = 1; i <= 5; i++) log.emit("conn_close", connClose(i));
    log.close();
    const c = collector(() => new Response("down", { status: 503 }));
    const cursor = join(p.stateDir, "export.cursor");
    const proc = Bun.spawn([process.execPath, join(import.meta.dir, "main.ts"), "audit", "export", ...p.flags, "--otlp", c.url, "--cursor", cursor], { stdout: "pipe", stderr: "pipe" });
    try {
      await eventually(() => (c.requests.length > 0 ? true : undefined), 10_000, "a request");
      proc.kill("SIGTERM");
      const code = await Promise.race([proc.exited, Bun.sleep(10_000).then(() => "timeout")]);
      expect(code).toBe(1);
      expect(await new Response(proc.stderr).text()).toContain("audit export: interrupted after 0 events; resume after seq 0 with the same --cursor\n");
    } finally {
      proc.kill("SIGKILL");
    }
  }, 20_000);

  test("a 503 is retried with a note on stderr; nothing is lost or sent twice", async () => {
    const p = kit.place();
    const log = p.open();
    for (let i = 1; i <= 20; i++) log.emit("conn_close", connClose(i));
    log.close();
    const c = collector((n) => (n === 1 ? new Response("busy", { status: 503 }) : null));
    const r = await run(["audit", "export", ...p.flags, "--otlp", c.url]);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/^audit export: status 503 from http:\/\/127\.0\.0\.1:\d+\/v1\/logs; trying again in \d+\.\d s\n$/);
    expect(c.seqs).toEqual(range(1, log.seq));
  });

  test("a refusal stops the export: exit 1, the code, how far it got; the cursor stays", async () => {
    const p = kit.place();
    const log = p.open({ checkpointEvery: 1000 });
    for (let i = 1; i <= 1000; i++) log.emit("conn_close", connClose(i));
    log.close();
    const c = collector((n) => (n === 2 ? Response.json({ message: "quota" }, { status: 400 }) : null));
    const cursor = join(p.stateDir, "export.cursor");
    const r = await run(["audit", "export", ...p.flags, "--otlp", c.url, "--cursor", cursor]);
    expect(r.code).toBe(1);
    expect(r.err).toContain("[export_rejected]");
    expect(r.err).toContain("status 400");
    const delivered = c.seqs.length;
    expect(delivered).toBeGreaterThan(0);
    expect(r.err).toContain(`audit export: ${delivered} events were delivered before the failure (up to seq ${delivered})\n`);
    expect(JSON.parse(readFileSync(cursor, "utf8"))).toEqual({ seq: delivered });
  });

  test("a --cursor whose folder is missing is refused before anything is sent: exit 2 naming the path", async () => {
    const p = kit.place();
    const log = p.open();
    for (let i = 1; i <= 5; i++) log.emit("conn_close", connClose(i));
    log.close();
    const c = collector();
    const dir = join(p.stateDir, "missing");
    const r = await run(["audit", "export", ...p.flags, "--otlp", c.url, "--cursor", join(dir, "export.cursor")]);
    expect([r.code, r.out]).toEqual([2, ""]);
    expect(r.err).toStartWith(`tidegate audit export: --cursor: cannot save the cursor file ${JSON.stringify(join(dir, "export.cursor"))}: its folder ${JSON.stringify(dir)} does not exist\n`);
    expect(c.requests.length).toBe(0);
    const isDir = await run(["audit", "export", ...p.flags, "--otlp", c.url, "--cursor", p.stateDir]);
    expect([isDir.code, isDir.err.includes(`--cursor: cannot save the cursor file ${JSON.stringify(p.stateDir)}: it is a directory`)]).toEqual([2, true]);
    expect(c.requests.length).toBe(0);
  });

  test("a cursor that cannot be saved after a batch was acknowledged: exit 1 export_cursor_unwritable, saying what was delivered", async () => {
    const p = kit.place();
    const log = p.open({ checkpointEvery: 1000 });
    for (let i = 1; i <= 1000; i++) log.emit("conn_close", connClose(i));
    log.close();
    const dir = join(p.stateDir, "cursors");
    mkdirSync(dir);
    // the second batch is acknowledged, but its cursor's folder is gone by then
    const c = collector((n) => {
      if (n === 2) rmSync(dir, { recursive: true });
      return null;
    });
    const r = await run(["audit", "export", ...p.flags, "--otlp", c.url, "--cursor", join(dir, "export.cursor")]);
    expect(r.code).toBe(1);
    const [first, second] = c.requests.map((q) => q.seqs.at(-1)!);
    expect(c.requests.length).toBe(2);
    expect(r.err).toBe(
      `audit export: ${second} events were delivered before the failure (up to seq ${second})\n` +
        `tidegate audit export: audit: export: the collector acknowledged the events up to seq ${second}, but cannot save the cursor file ${JSON.stringify(join(dir, "export.cursor"))}: its folder ${JSON.stringify(dir)} does not exist; it still holds seq ${first}, so a rerun with it sends seq ${first! + 1} to ${second} again [export_cursor_unwritable]\n`,
    );
  });

  test("events missing after the cursor stop the export with export_source_gap", async () => {
    const p = kit.place();
    const log = p.open({ maxFileBytes: 2048, checkpointEvery: 1000 });
    for (let i = 1; i <= 60; i++) log.emit("conn_close", connClose(i));
    log.close();
    const files = listLogFiles(p.dir);
    const c = collector();
    const cursor = join(p.stateDir, "export.cursor");
    writeFileSync(cursor, JSON.stringify({ seq: 2 }));
    const r = await run(["audit", "export", "--otlp", c.url, "--cursor", cursor, ...files.slice(2).map((f) => f.path)]);
    expect(r.code).toBe(1);
    expect(r.err).toContain("[export_source_gap]");
    expect(c.seqs).toEqual([]);
  });

  test("usage errors exit 2; a URL's user, password and query are never printed", async () => {
    const p = kit.place();
    const log = p.open();
    log.emit("conn_close", connClose(1));
    log.close();
    const c = collector();
    const port = new URL(c.url).port;
    const cases: [string[], string][] = [
      [["audit", "export", ...p.flags], "needs --otlp URL"],
      [["audit", "export", ...p.flags, "--otlp", `http://alice:hunter2secret@127.0.0.1:${port}/v1/logs`], "user name or password"],
      [["audit", "export", ...p.flags, "--otlp", "ftp://127.0.0.1/v1/logs"], "scheme"],
      [["audit", "export", ...p.flags, "--otlp", c.url, "--from-seq", "0"], "--from-seq"],
      [["audit", "export", "--otlp", c.url, join(p.dir, "missing.jsonl")], "no such file"],
      [["audit", "export", "--audit-dir", join(p.dir, "audit.jsonl"), "--otlp", c.url], `${JSON.stringify(join(p.dir, "audit.jsonl"))} is not a directory`],
    ];
    for (const [args, text] of cases) {
      const r = await run(args);
      expect([r.code, r.err.includes(text)]).toEqual([2, true]);
      expect(r.err + r.out).not.toContain("hunter2secret");
      expect(r.err + r.out).not.toContain("alice");
    }
    const q = await run(["audit", "export", ...p.flags, "--otlp", `${c.url}?api_key=querysecret`]);
    expect(q.code).toBe(0);
    expect(q.out + q.err).not.toContain("querysecret");
    expect(c.requests.length).toBe(1);
    const r = await run(["audit", "export", "--audit-dir", join(p.dir, "none"), "--otlp", c.url]);
    expect([r.code, r.err.includes("[audit_no_log]")]).toEqual([1, true]);
  });
});
