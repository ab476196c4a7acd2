// `tidegate audit tail` on logs the real sink wrote: -n, the human form, --json, --where, reading
// back through rotated files, a torn last line, and -f following new events across rotations
// (in-process with an AbortSignal, and as a real process stopped by SIGTERM).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { appendFileSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { formatLine, sha256Hex } from "../audit/format/index.ts";
import { SAMPLE_EVENTS } from "../audit/format/samples.ts";
import { listLogFiles } from "../audit/sink/files.ts";
import type { Output } from "./command.ts";
import { tailAudit, type TailOptions } from "./audit-tail.ts";
import { showValue } from "./audit-view.ts";
import { connClose, eventually, linesOf, makeKit, run, type Kit } from "./audit-testkit.ts";

let kit: Kit;
beforeAll(async () => {
  kit = await makeKit("tail");
});
afterAll(() => kit.cleanup());

const seqsOf = (jsonLines: string) =>
  jsonLines
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => (JSON.parse(l) as { seq: number }).seq);

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("audit tail", () => {
  test("-n N prints the last N events oldest first (default 20), also reading back through rotated files", async () => {
    const p = kit.place();
    const log = p.open({ maxFileBytes: 2048, checkpointEvery: 1000 });
    for (let i = 1; i <= 60; i++) log.emit("conn_close", connClose(i));
    log.close();
    expect(listLogFiles(p.dir).length).toBeGreaterThan(2);
    const last = Number(/"seq":(\d+)/.exec(linesOf(p.active).at(-1)!)![1]);
    const three = await run(["audit", "tail", ...p.flags, "-n", "3", "--json"]);
    expect([three.code, seqsOf(three.out)]).toEqual([0, range(last - 2, last)]);
    const byDefault = await run(["audit", "tail", "--json", "--dir", p.dir]);
    expect(seqsOf(byDefault.out)).toEqual(range(last - 19, last));
    const all = await run(["audit", "tail", ...p.flags, "-n", "1000", "--json"]);
    expect(seqsOf(all.out)).toEqual(range(1, last));
    expect((await run(["audit", "tail", ...p.flags, "-n", "0"])).out).toBe("");
  });

  test("--json prints the raw lines; the human form is time, type, #seq and flattened fields", async () => {
    const p = kit.place();
    const log = p.open({ base: { instance: "t1" } });
    log.emit("conn_open", SAMPLE_EVENTS.conn_open);
    log.emit("deny", SAMPLE_EVENTS.deny);
    log.close();
    const lines = linesOf(p.active);
    const json = await run(["audit", "tail", ...p.flags, "--json"]);
    expect(json.out).toBe(lines.map((l) => `${l}\n`).join(""));
    const human = (await run(["audit", "tail", ...p.flags])).out.split("\n");
    const t = (i: number) => (JSON.parse(lines[i]!) as { time: string }).time;
    expect(human[0]).toBe(
      `${t(0)} conn_open #1 instance=t1 conn_id=c-1f2e side=egress src.spiffe_id=spiffe://example.org/agent/claude src.pid=4242 src.uid=1000 ` +
        "src.cgroup_id=8123 src.workload=claude src.exe=/usr/bin/node src.peer=127.0.0.1:51234 dst.addr=140.82.112.6 dst.port=443 " +
        "dst.name=api.github.com decision=allow rule=github-api action=intercept",
    );
    // null fields left out; a value with a space quoted
    expect(human[1]).toStartWith(`${t(1)} deny #2 instance=t1 side=egress src.spiffe_id=`);
    expect(human[1]).toContain(" dst.addr=10.9.9.9 dst.port=22 reason=\"no rule allows this destination\"");
    expect(human[1]).not.toContain("rule=");
    expect(human[1]).not.toContain("conn_id=");
    // the closing checkpoint: signer, covers.seq, events; no certificates, signature, hash
    expect(human[2]).toBe(`${t(2)} checkpoint #3 instance=t1 signer=spiffe://example.org/tidegate/agent/node-1 covers.seq=2 events=2`);
  });

  test("a field holding terminal control characters is escaped in the human form", async () => {
    const p = kit.place();
    const log = p.open();
    const exe = "/bin/x\u001b]0;owned\u0007\u009b2J\u202e";
    log.emit("conn_open", { ...SAMPLE_EVENTS.conn_open, src: { ...SAMPLE_EVENTS.conn_open.src, exe } });
    log.close();
    const out = (await run(["audit", "tail", ...p.flags, "-n", "2"])).out;
    expect(out).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);
    expect(out).toContain('src.exe="/bin/x\\u001b]0;owned\\u0007\\u009b2J\\u202e"');
  });

  test("--json: a line holding characters JSON leaves raw (C1 controls, bidi overrides, U+2028) is printed with them escaped, the same JSON", async () => {
    const p = kit.place();
    const log = p.open();
    // a resource URI is the workload's own text (mcp_denied.target)
    const target = "file:///a\u009b2J\u009d52;c;eA==\u0007\u202eb\u2028c\u{e0041}";
    log.emit("mcp_denied", { conn_id: null, caller_id: "spiffe://example.org/w", server_id: "spiffe://example.org/mcp", method: "resources/read", target, rule: "r", reason: "resource_not_allowed" });
    log.close();
    const line = linesOf(p.active)[0]!;
    expect(line).toContain("\u009b"); // the file holds the raw character (JSON does not escape it)
    const out = (await run(["audit", "tail", ...p.flags, "--json", "-n", "2"])).out; // the event, then the closing checkpoint
    expect(out).not.toMatch(/[\u007f-\u009f\u202e\u2028]|\p{Cf}/u);
    expect(JSON.parse(out.split("\n")[0]!)).toEqual(JSON.parse(line));
  });

  test("a quoted value is JSON that reads back as the value, an escaped character beyond U+FFFF included", () => {
    // U+E0041 (a tag character, format class): one \\u escape takes 4 hex digits, so it is written as its surrogate pair
    for (const v of ["x\u{e0041}y", "\u{e0001}", "a\u202eb\u2028\u009b", "t\udc00"]) expect(JSON.parse(showValue(v))).toBe(v);
  });

  test("--where filters by dotted path, ANDed; numbers, null and values holding '=' compare as text", async () => {
    const p = kit.place();
    const log = p.open({ checkpointEvery: 1000 });
    const src = SAMPLE_EVENTS.conn_open.src;
    log.emit("conn_open", { ...SAMPLE_EVENTS.conn_open, conn_id: "a", src: { ...src, workload: "w1" } });
    log.emit("conn_open", { ...SAMPLE_EVENTS.conn_open, conn_id: "b", src: { ...src, workload: "w2" } });
    log.emit("conn_close", { ...connClose(1), conn_id: "a" });
    log.emit("deny", SAMPLE_EVENTS.deny);
    log.emit("admin", { action: "x=y", actor: null, detail: null });
    log.emit("http_request", SAMPLE_EVENTS.http_request);
    log.close();
    const where = async (...w: string[]) => seqsOf((await run(["audit", "tail", ...p.flags, "--json", ...w.flatMap((x) => ["--where", x])])).out);
    expect(await where("type=conn_open")).toEqual([1, 2]);
    expect(await where("type=conn_open", "src.workload=w2")).toEqual([2]);
    expect(await where("conn_id=a")).toEqual([1, 3]);
    expect(await where("dst.port=22")).toEqual([4]);
    expect(await where("conn_id=null")).toEqual([4]);
    expect(await where("action=x=y")).toEqual([5]);
    expect(await where('injected=["github_token"]')).toEqual([6]);
    expect(await where("duration_ms=87.5", "status=200")).toEqual([6]);
    expect(await where("src.pid=4242", "decision=allow")).toEqual([1, 2]);
    expect(await where("no.such=1")).toEqual([]);
    const limited = await run(["audit", "tail", ...p.flags, "--json", "--where", "type=conn_open", "-n", "1"]);
    expect(seqsOf(limited.out)).toEqual([2]);
    for (const bad of ["type", "=x", "a..b=1", "a b=1"]) expect((await run(["audit", "tail", ...p.flags, "--where", bad])).code).toBe(2);
    // a type no event has is a usage error naming the nearest; a field no event read has is said when nothing matched
    const typo = await run(["audit", "tail", ...p.flags, "--where", "type=tool_cal"]);
    expect([typo.code, typo.err]).toEqual([2, expect.stringContaining('--where type="tool_cal": no event has that type (did you mean tool_call? the types: ')]);
    const absent = await run(["audit", "tail", ...p.flags, "--where", "typ=deny", "--where", "dst.port=22"]);
    expect([absent.code, absent.out, absent.err]).toEqual([0, "", expect.stringMatching(/^note: none of the \d+ events read has a field typ \(--where names a field by its dotted path, as the output shows it\)\n$/)]);
    expect((await run(["audit", "tail", ...p.flags, "--where", "dst.port=23"])).err).toBe("");
    expect((await run(["audit", "tail", ...p.flags, "-n", "-1"])).code).toBe(2);
    expect((await run(["audit", "tail", ...p.flags, "-n", "lots"])).code).toBe(2);
    expect((await run(["audit", "tail", ...p.flags, "extra"])).code).toBe(2);
  });

  test("a torn last line is skipped, and a line that is not an event is skipped with a warning", async () => {
    const p = kit.place();
    const log = p.open({ checkpointEvery: 1000 });
    for (let i = 1; i <= 3; i++) log.emit("conn_close", connClose(i));
    log.close();
    appendFileSync(p.active, '{"seq":5,"time":"2026-11-26T17:0');
    const r = await run(["audit", "tail", ...p.flags, "--json"]);
    expect([r.code, seqsOf(r.out), r.err]).toEqual([0, [1, 2, 3, 4], ""]);
    appendFileSync(p.active, 'garbage"\nnot json either\n');
    const bad = await run(["audit", "tail", ...p.flags, "--json"]);
    expect([bad.code, seqsOf(bad.out)]).toEqual([0, [1, 2, 3, 4]]);
    expect(bad.err).toBe("warning: skipped 2 lines that are not audit events (audit verify says what is wrong)\n");
  });

  test("a torn line left in a rotated file by a crash is not printed", async () => {
    const p = kit.place();
    const a = p.open({ checkpointEvery: 1000 });
    for (let i = 1; i <= 3; i++) a.emit("conn_close", connClose(i));
    a.close();
    appendFileSync(p.active, '{"seq":5,"time":"2026-11-26T17:0');
    const b = p.open({ checkpointEvery: 1000 }); // rotates the torn file, opens with audit_recovered
    b.emit("conn_close", connClose(4));
    b.close();
    expect(listLogFiles(p.dir).length).toBe(2);
    const r = await run(["audit", "tail", ...p.flags, "--json", "-n", "100"]);
    expect([r.code, seqsOf(r.out), r.err]).toEqual([0, [1, 2, 3, 4, 5, 6, 7], ""]);
  });

  test("exit 1 audit_no_log when the directory does not exist", async () => {
    const p = kit.place();
    const r = await run(["audit", "tail", ...p.flags]);
    expect([r.code, r.err.includes("[audit_no_log]")]).toEqual([1, true]);
  });

  test("exit 2 naming the path when --audit-dir or --dir is a file, with -f too", async () => {
    const file = kit.rootsPem;
    for (const args of [["--audit-dir", file], ["--dir", file], ["-f", "--dir", file]]) {
      const r = await run(["audit", "tail", ...args]);
      expect([r.code, r.err]).toEqual([2, `tidegate audit tail: ${JSON.stringify(file)} is not a directory: give the audit log's folder (--audit-dir DIR, --instance NAME or --dir DIR)\nrun 'tidegate audit tail --help' for usage\n`]);
    }
  });
});

function capture(): Output & { text: string; errors: string } {
  const c = { text: "", errors: "", out: (t: string) => void (c.text += t), err: (t: string) => void (c.errors += t) };
  return c;
}

function follower(o: Omit<TailOptions, "signal" | "onPoll" | "follow">) {
  const io = capture();
  const ac = new AbortController();
  let polls = 0;
  const done = tailAudit({ ...o, follow: true, pollMs: 10, signal: ac.signal, onPoll: () => void polls++ }, io);
  return {
    io,
    polls: () => polls,
    /** Resolves after `n` more polls. */
    morePolls: (n: number) => {
      const target = polls + n;
      return eventually(() => (polls >= target ? true : undefined), 10_000, `${n} polls`);
    },
    stop: async () => {
      ac.abort();
      await done;
    },
  };
}

describe("audit tail -f", () => {
  test("follows new events across rotations, each printed once and in order", async () => {
    const p = kit.place();
    const log = p.open({ maxFileBytes: 2048, checkpointEvery: 7 });
    for (let i = 1; i <= 10; i++) log.emit("conn_close", connClose(i));
    const f = follower({ dir: p.dir, count: 3, json: true, filters: [] });
    try {
      await f.morePolls(1);
      const start = log.seq;
      // A burst: several rotations between two polls.
      for (let i = 11; i <= 120; i++) log.emit("conn_close", connClose(i));
      await eventually(() => (seqsOf(f.io.text).at(-1) === log.seq ? true : undefined), 10_000, "the burst");
      // Then one event at a time, each seen before the next: rotations while following.
      for (let i = 121; i <= 160; i++) {
        log.emit("conn_close", connClose(i));
        await eventually(() => (seqsOf(f.io.text).at(-1) === log.seq ? true : undefined), 10_000, `seq ${log.seq}`);
      }
      log.close();
      await eventually(() => (seqsOf(f.io.text).at(-1) === log.seq ? true : undefined), 10_000, "the closing checkpoint");
      expect(listLogFiles(p.dir).length).toBeGreaterThan(10);
      expect(seqsOf(f.io.text)).toEqual(range(start - 2, log.seq));
      expect(f.io.errors).toBe("");
    } finally {
      await f.stop();
    }
  });

  test("a line being written is printed once complete; filters apply to new events", async () => {
    const p = kit.place();
    const log = p.open({ checkpointEvery: 1000 });
    log.emit("conn_close", connClose(1));
    log.close(); // seq 1, checkpoint 2
    const f = follower({ dir: p.dir, count: 0, json: true, filters: [{ path: ["type"], value: "admin" }] });
    try {
      await f.morePolls(1);
      const prev = await sha256Hex(linesOf(p.active).at(-1)!);
      const line = formatLine(3, new Date(), "admin", { action: "half", actor: null, detail: null }, prev);
      appendFileSync(p.active, line.slice(0, 40));
      await f.morePolls(3);
      expect(f.io.text).toBe("");
      appendFileSync(p.active, `${line.slice(40)}\n`);
      await eventually(() => (f.io.text !== "" ? true : undefined), 10_000, "the completed line");
      expect(f.io.text).toBe(`${line}\n`);
      expect(f.io.errors).toBe("");
    } finally {
      await f.stop();
    }
  });

  test("waits for a log that does not exist yet, and for a log started anew", async () => {
    const p = kit.place();
    const f = follower({ dir: p.dir, count: 20, json: true, filters: [] });
    try {
      await f.morePolls(2);
      const log = p.open({ checkpointEvery: 1000 });
      log.emit("conn_close", connClose(1));
      log.emit("conn_close", connClose(2));
      await eventually(() => (seqsOf(f.io.text).length === 2 ? true : undefined), 10_000, "the first events");
      log.close();
      await eventually(() => (seqsOf(f.io.text).length === 3 ? true : undefined), 10_000, "the checkpoint");
      // The log removed and started from seq 1 again (a wiped disk): the writer's state still
      // names seq 3, so the new chain begins with an audit_gap saying so.
      rmSync(p.dir, { recursive: true });
      const again = p.open({ checkpointEvery: 1000 });
      again.emit("conn_close", connClose(1));
      await eventually(() => (seqsOf(f.io.text).length === 5 ? true : undefined), 10_000, "the new chain");
      again.close();
      expect(seqsOf(f.io.text)).toEqual([1, 2, 3, 1, 2]);
      expect(f.io.text).toContain('"type":"audit_gap"');
      expect(f.io.errors).toContain("starts again at seq 1 (after seq 3)");
    } finally {
      await f.stop();
    }
  });

  test("the command stops on SIGTERM with exit 0", async () => {
    const p = kit.place();
    mkdirSync(p.dir, { recursive: true });
    const log = p.open({ checkpointEvery: 1000 });
    log.emit("conn_close", connClose(1));
    const proc = Bun.spawn([process.execPath, join(import.meta.dir, "main.ts"), "audit", "tail", "-f", "--json", "--dir", p.dir], { stdout: "pipe", stderr: "pipe" });
    try {
      const reader = proc.stdout.getReader();
      let text = "";
      const deadline = Date.now() + 10_000;
      while (!text.includes('"seq":1,') && Date.now() < deadline) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      expect(text).toContain('"seq":1,');
      log.emit("conn_close", connClose(2));
      while (!text.includes('"seq":2,') && Date.now() < deadline) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      expect(text).toContain('"seq":2,');
      reader.releaseLock();
      proc.kill("SIGTERM");
      const code = await Promise.race([proc.exited, Bun.sleep(10_000).then(() => "timeout")]);
      expect(code).toBe(0);
    } finally {
      log.close();
      proc.kill("SIGKILL");
    }
  }, 20_000);
});
