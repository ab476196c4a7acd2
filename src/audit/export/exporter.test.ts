import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { event } from "../otlp/test-events.ts";
import { CursorFile } from "./cursor-file.ts";
import { ExportError } from "./errors.ts";
import { OtlpExporter, type EventSource, type ExportStatus, type OtlpExporterOptions, type ParsedEvent } from "./exporter.ts";
import { TestCollector, memorySource, until, within } from "./test-collector.ts";

const tmp = mkdtempSync(join(tmpdir(), "tidegate-export-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let dirs = 0;

function events(n: number, from = 1): ParsedEvent[] {
  const types = ["conn_open", "conn_close", "deny", "http_request", "tool_call"];
  return Array.from({ length: n }, (_, i) => event(from + i, types[(from + i) % types.length]!, { conn_id: `c-${from + i}`, n: from + i }));
}

/** An exporter whose waits are recorded and only yield to the event loop. */
function harness(o: Partial<OtlpExporterOptions> & { url: string; source: EventSource }) {
  const cursor = new CursorFile(join(tmp, `cursor-${++dirs}.json`));
  const sleeps: number[] = [];
  const statuses: ExportStatus[] = [];
  const exporter = new OtlpExporter({
    instance: "node-a",
    cursor,
    sleep: async (ms) => {
      sleeps.push(ms);
      await new Promise((r) => setTimeout(r, 0));
    },
    random: () => 0.5,
    ...o,
    onStatus: (s) => {
      statuses.push(s);
      o.onStatus?.(s);
    },
  });
  return { exporter, cursor, sleeps, statuses };
}

const cursorText = (c: CursorFile) => readFileSync(c.path, "utf8");
const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

describe("OtlpExporter against a real OTLP/HTTP receiver", () => {
  test("2,000 events through 503s, 429s with Retry-After and a receiver restart arrive once each, in order", async () => {
    const collector = TestCollector.start((n) => {
      if (n % 4 === 2) return new Response("overloaded", { status: 503 });
      if (n % 5 === 3) return new Response(null, { status: 429, headers: { "retry-after": "1" } });
      return null;
    });
    const all = events(2000);
    let closedOnce = false;
    const source: EventSource = {
      read: async (after, max) => {
        if (after >= 1000 && !closedOnce) {
          closedOnce = true;
          await collector.close();
        }
        return memorySource(all).read(after, max);
      },
    };
    const h = harness({
      url: collector.url,
      source,
      batchMax: 97,
      onStatus: (s) => {
        if (s.state === "retrying" && s.status === undefined && !collector.up) collector.listen();
      },
    });
    try {
      const r = await within(h.exporter.runOnce(), 10_000, "runOnce");
      expect(r.delivered).toBe(2000);
      expect(collector.seqs).toEqual(range(1, 2000));
      expect(collector.received.map((x) => x.line)).toEqual(all.map((e) => e.line));
      expect(cursorText(h.cursor)).toBe('{"seq":2000}\n');
      expect(collector.restarts).toBe(1);
      expect(Math.max(...collector.requests.map((q) => q.seqs.length))).toBe(97);
      expect(new Set(collector.requests.map((q) => `${q.path} ${q.contentType}`))).toEqual(new Set(["/v1/logs application/json"]));
      const retries = h.statuses.filter((s) => s.state === "retrying");
      expect(retries.some((s) => s.status === 503)).toBe(true);
      expect(retries.some((s) => s.status === 429 && s.waitMs === 1000)).toBe(true);
      expect(retries.some((s) => s.status === undefined && /ECONNREFUSED|connection failed/.test(s.error ?? ""))).toBe(true);
      expect(h.sleeps).toContain(1000);
      expect(h.statuses.at(-1)).toEqual({ state: "idle", seq: 2000 });
    } finally {
      await collector.close();
    }
  });

  test("a 400 stops with export_rejected, the cursor on the last acknowledged seq; a restart resends nothing acknowledged", async () => {
    const collector = TestCollector.start((_n, records) =>
      records.some((r) => r.seq === 250) ? Response.json({ code: 3, message: "record 50 is bad" }, { status: 400 }) : null,
    );
    const all = events(500);
    const secret = "Bearer s3cr3t-t0ken";
    const url = `${collector.url}?tenant=t-9`;
    const h = harness({ url, source: memorySource(all), batchMax: 100, headers: { authorization: secret } });
    try {
      const err = await h.exporter.runOnce().then(
        () => null,
        (e) => e,
      );
      expect(err).toBeInstanceOf(ExportError);
      expect(err.code).toBe("export_rejected");
      expect(err.status).toBe(400);
      expect(err.message).toBe(`audit: export to ${collector.url}: status 400 for seq 201-300 ("record 50 is bad"): not retried; the cursor stays at 200`);
      expect(err.message).not.toContain("s3cr3t");
      expect(err.message).not.toContain("tenant");
      expect(collector.seqs).toEqual(range(1, 200));
      expect(collector.requests.every((q) => q.authorization === secret)).toBe(true);
      expect(cursorText(h.cursor)).toBe('{"seq":200}\n');
      expect(h.statuses.at(-1)).toEqual({ state: "failed", seq: 200, error: err.message });
      expect(h.exporter.failure).toBe(err);

      collector.plan = () => null;
      const again = new OtlpExporter({ url, instance: "node-a", cursor: new CursorFile(h.cursor.path), source: memorySource(all), batchMax: 100 });
      expect((await within(again.runOnce())).delivered).toBe(300);
      expect(collector.seqs).toEqual(range(1, 500));
      expect(cursorText(h.cursor)).toBe('{"seq":500}\n');
    } finally {
      await collector.close();
    }
  });

  test("a partial success stops with export_partial and the cursor stays", async () => {
    const collector = TestCollector.start((n) => (n === 2 ? Response.json({ partialSuccess: { rejectedLogRecords: "3", errorMessage: "too old" } }) : null));
    const h = harness({ url: collector.url, source: memorySource(events(30)), batchMax: 10 });
    try {
      const err = await h.exporter.runOnce().catch((e) => e);
      expect(err.code).toBe("export_partial");
      expect(err.message).toContain('rejected 3 of the 10 records of seq 11-20 ("too old")');
      expect(cursorText(h.cursor)).toBe('{"seq":10}\n');
      expect(collector.requests.length).toBe(2);
    } finally {
      await collector.close();
    }
  });

  test("a 2xx whose answer is too long to read whole (a partial success after 64 KiB, or no end) is not taken as delivered", async () => {
    const endless = () => new Response(new ReadableStream({ pull: (c) => c.enqueue(new Uint8Array(65536).fill(0x20)) }), { status: 200 });
    for (const answer of [() => new Response(JSON.stringify({ pad: "x".repeat(70_000), partialSuccess: { rejectedLogRecords: "3" } }), { status: 200 }), endless]) {
      const collector = TestCollector.start((n) => (n === 2 ? answer() : null));
      const h = harness({ url: collector.url, source: memorySource(events(30)), batchMax: 10 });
      try {
        const err = await h.exporter.runOnce().catch((e) => e);
        expect(err.code).toBe("export_partial");
        expect(cursorText(h.cursor)).toBe('{"seq":10}\n');
        expect(collector.requests.length).toBe(2);
      } finally {
        await collector.close();
      }
    }
  });

  test("a partial success that rejects nothing (a warning) counts as delivered", async () => {
    const collector = TestCollector.start(() => null);
    collector.plan = (_n, records) => (collector.received.push(...records), Response.json({ partialSuccess: { errorMessage: "slow down" } }));
    const h = harness({ url: collector.url, source: memorySource(events(5)) });
    try {
      expect((await h.exporter.runOnce()).delivered).toBe(5);
      expect(collector.seqs).toEqual(range(1, 5));
    } finally {
      await collector.close();
    }
  });

  test("a redirect is not followed: export_rejected naming the status", async () => {
    const collector = TestCollector.start(() => new Response(null, { status: 308, headers: { location: "http://127.0.0.1:1/v1/logs" } }));
    const h = harness({ url: collector.url, source: memorySource(events(3)) });
    try {
      const err = await h.exporter.runOnce().catch((e) => e);
      expect(err.code).toBe("export_rejected");
      expect(err.status).toBe(308);
      expect(collector.requests.length).toBe(1);
    } finally {
      await collector.close();
    }
  });

  test("500 is not retried (OTLP retries 429, 502, 503, 504 only; 408 too here)", async () => {
    for (const [status, retried] of [[500, false], [501, false], [408, true], [502, true], [504, true]] as const) {
      const collector = TestCollector.start((n) => (n === 1 ? new Response(null, { status }) : null));
      const h = harness({ url: collector.url, source: memorySource(events(2)) });
      try {
        const result = await h.exporter.runOnce().then(
          (r) => r.delivered,
          (e) => e.code,
        );
        expect([status, result]).toEqual([status, retried ? 2 : "export_rejected"]);
      } finally {
        await collector.close();
      }
    }
  });

  test("a request without an answer within timeoutMs is sent again", async () => {
    let release: () => void = () => undefined;
    const held = new Promise<Response>((r) => (release = () => r(new Response(null, { status: 503 }))));
    const collector = TestCollector.start((n) => (n === 1 ? held : null));
    const h = harness({ url: collector.url, source: memorySource(events(4)), timeoutMs: 150 });
    try {
      expect((await within(h.exporter.runOnce())).delivered).toBe(4);
      expect(h.statuses.some((s) => s.state === "retrying" && s.error === "no answer within 150 ms")).toBe(true);
      expect(collector.seqs).toEqual([1, 2, 3, 4]);
    } finally {
      release();
      await collector.close();
    }
  });

  test("a source that does not continue the cursor stops with export_source_gap and sends nothing", async () => {
    const collector = TestCollector.start();
    for (const list of [events(3, 5), [...events(2), ...events(2, 4)], [...events(2), ...events(1, 2)]]) {
      const h = harness({ url: collector.url, source: memorySource(list) });
      const err = await h.exporter.runOnce().catch((e) => e);
      expect(err.code).toBe("export_source_gap");
    }
    expect(collector.requests.length).toBe(0);
    await collector.close();
  });
});

describe("OtlpExporter loop: start, notify, stop", () => {
  test("notify() delivers new events at once though pollMs is a minute; stop() ends the idle wait", async () => {
    const collector = TestCollector.start();
    const all = events(10);
    const statuses: ExportStatus[] = [];
    const exporter = new OtlpExporter({
      url: collector.url,
      instance: "node-a",
      source: memorySource(all),
      cursor: new CursorFile(join(tmp, "loop.json")),
      pollMs: 60_000,
      onStatus: (s) => statuses.push(s),
    });
    try {
      exporter.start();
      exporter.start();
      await until(() => collector.received.length === 10, 3000, "the first 10 events");
      await until(() => statuses.at(-1)?.state === "idle", 3000, "idle");
      all.push(...events(5, 11));
      exporter.notify();
      await until(() => collector.received.length === 15, 3000, "the 5 notified events");
      await until(() => statuses.at(-1)?.state === "idle", 3000, "idle again");
      await within(exporter.stop(), 2000, "stop");
      expect(collector.seqs).toEqual(range(1, 15));
      expect(statuses.at(-1)).toEqual({ state: "stopped", seq: 15 });
      expect(statuses.filter((s) => s.state === "idle").length).toBe(2);
    } finally {
      await collector.close();
    }
  });

  test("stop() during a retry wait returns at once; notify() never cuts a retry wait short", async () => {
    const collector = TestCollector.start(() => new Response(null, { status: 503 }));
    const h = harness({ url: collector.url, source: memorySource(events(3)), sleep: () => new Promise(() => undefined) });
    try {
      h.exporter.start();
      await until(() => h.statuses.some((s) => s.state === "retrying"), 3000, "a retry");
      for (let i = 0; i < 5; i++) h.exporter.notify();
      await new Promise((r) => setTimeout(r, 0));
      expect(collector.requests.length).toBe(1);
      await within(h.exporter.stop(), 2000, "stop");
      expect(h.statuses.at(-1)).toEqual({ state: "stopped", seq: 0 });
      expect(h.exporter.failure).toBe(null);
      expect(await h.cursor.load()).toBe(0);
    } finally {
      await collector.close();
    }
  });

  test("a refusal ends the loop: failure is set, the status is failed, start() runs it again", async () => {
    const collector = TestCollector.start(() => new Response(null, { status: 401 }));
    const h = harness({ url: collector.url, source: memorySource(events(3)) });
    try {
      h.exporter.start();
      await until(() => h.exporter.failure !== null, 3000, "the failure");
      expect((h.exporter.failure as ExportError).code).toBe("export_rejected");
      expect(h.statuses.at(-1)?.state).toBe("failed");
      collector.plan = () => null;
      h.exporter.start();
      await until(() => collector.received.length === 3, 3000, "delivery after start");
      await h.exporter.stop();
    } finally {
      await collector.close();
    }
  });
});

describe("OtlpExporter and a log replaced under its cursor", () => {
  test("a cursor past the end of the log (removed and begun again) stops with export_source_gap, sending nothing", async () => {
    const { AuditLog } = await import("../sink/audit-log.ts");
    const { FileSource } = await import("./file-source.ts");
    const dir = join(tmp, `replaced-${++dirs}`);
    const log = AuditLog.open({ dir, statePath: null, signer: () => null });
    for (let i = 0; i < 3; i++) log.emit("admin", { action: `a${i}`, actor: null, detail: null });
    log.close();
    const collector = TestCollector.start();
    try {
      const h = harness({ url: collector.url, source: new FileSource(dir) });
      await h.cursor.save(10); // delivered up to seq 10 of the chain that was there before
      const err = await h.exporter.runOnce().then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(ExportError);
      expect((err as ExportError).code).toBe("export_source_gap");
      expect((err as Error).message).toContain("ends at seq 3, before the cursor's seq 10");
      expect(collector.received).toEqual([]);
    } finally {
      await collector.close();
    }
  });
});
