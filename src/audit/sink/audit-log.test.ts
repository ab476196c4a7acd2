// The audit log writer on real files: what it writes verifies (verifyAudit, with the test CA's
// bundle), across checkpoints, reopening, rotation, a torn tail and a disk that fills up (a tmpfs
// of the test's own, as root).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { appendFileSync, chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestCa, type TestCa } from "../../../test/helpers/test-ca.ts";
import { exportPkcs8Pem } from "../../x509/keys.ts";
import { verifyAudit, type VerifyReport } from "../format/index.ts";
import { AuditLog, type AuditLogOptions, type AuditSigner } from "./audit-log.ts";
import { ACTIVE_FILE, listLogFiles } from "./files.ts";
import { svidSigner } from "./signer.ts";

let root: string;
let ca: TestCa;
let signer: AuditSigner;
let n = 0;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "tidegate-test-audit-sink-"));
  ca = await createTestCa();
  const leaf = await ca.mintLeaf("/tidegate/agent/node-1");
  signer = svidSigner({ spiffeId: leaf.id.toString(), chain: leaf.chain, keyPem: await exportPkcs8Pem(leaf.privateKey) });
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

function fresh(over: Partial<AuditLogOptions> = {}): { dir: string; state: string; open(more?: Partial<AuditLogOptions>): AuditLog } {
  const dir = join(root, `log-${++n}`);
  const state = join(root, `state-${n}.json`);
  return { dir, state, open: (more = {}) => AuditLog.open({ dir, statePath: state, signer: () => signer, checkpointEvery: 10, ...over, ...more }) };
}

async function verifyDir(dir: string, state: string | null = null): Promise<VerifyReport> {
  const files = listLogFiles(dir).map((f) => ({ name: f.name, text: readFileSync(f.path, "utf8") }));
  const st = state === null ? null : (JSON.parse(readFileSync(state, "utf8")) as { seq: number; hash: string });
  return verifyAudit({ files, bundles: ca.bundle, state: st === null ? null : { seq: st.seq, hash: st.hash }, now: new Date() });
}

const conn = (i: number) => ({ conn_id: `c${i}`, side: "egress", outcome: "forwarded", bytes_up: i, bytes_down: 2 * i, duration_ms: 1 });

describe("AuditLog", () => {
  test("events and checkpoints every N verify against the bundle; the state holds the last checkpoint", async () => {
    const f = fresh();
    const log = f.open();
    for (let i = 0; i < 25; i++) log.emit("conn_close", conn(i));
    log.close();
    const r = await verifyDir(f.dir, f.state);
    expect(r.firstBreak).toBeNull();
    expect(r.ok).toBe(true);
    // 25 events, checkpoints after 10 and 20 and at close
    expect([r.events, r.checkpoints, r.lastSeq, r.unsealedTail]).toEqual([28, 3, 28, 0]);
    expect(JSON.parse(readFileSync(f.state, "utf8"))).toMatchObject({ seq: 28 });
    expect(statSync(join(f.dir, ACTIVE_FILE)).mode & 0o777).toBe(0o600);
    expect(statSync(f.dir).mode & 0o777).toBe(0o700);
  });

  test("a checkpoint between rotations: its state follows in the background, a newer one wins, close writes one still in flight", async () => {
    const f = fresh();
    const log = f.open();
    const lastCheckpoint = () => {
      const lines = readFileSync(join(f.dir, ACTIVE_FILE), "utf8").trimEnd().split("\n").map((l) => JSON.parse(l) as { seq: number; type: string });
      return lines.filter((l) => l.type === "checkpoint").at(-1)!.seq;
    };
    const stateSeq = () => (JSON.parse(readFileSync(f.state, "utf8")) as { seq: number }).seq;
    for (let i = 0; i < 10; i++) log.emit("conn_close", conn(i)); // a checkpoint (seq 11)
    expect(lastCheckpoint()).toBe(11);
    for (const deadline = Date.now() + 5000; !(statSync(f.state, { throwIfNoEntry: false }) && stateSeq() === 11); await Bun.sleep(5)) {
      if (Date.now() > deadline) throw new Error("the state never followed the checkpoint");
    }
    // two checkpoints in one turn: only the newer state lands, never the older after it
    for (let i = 0; i < 20; i++) log.emit("conn_close", conn(i)); // checkpoints at seq 22 and 33
    expect(lastCheckpoint()).toBe(33);
    log.close(); // nothing unsealed: no new checkpoint, but the one in flight is written now
    expect(stateSeq()).toBe(33);
    await Bun.sleep(100); // what was in flight finds itself superseded
    expect(stateSeq()).toBe(33);
    expect(readdirSync(root).filter((n) => n.includes(".tmp-"))).toEqual([]);
    const r = await verifyDir(f.dir, f.state);
    expect([r.ok, r.lastSeq]).toEqual([true, 33]);
  });

  test("a checkpoint's state waits for the periodic sync: not one write per checkpoint", async () => {
    const f = fresh({ fsyncIntervalMs: 3000 });
    const log = f.open();
    for (let i = 0; i < 30; i++) log.emit("conn_close", conn(i)); // checkpoints at seq 11, 22 and 33
    await Bun.sleep(300); // a state per checkpoint would be on disk by now; the first sync is 2.7 s away
    expect(statSync(f.state, { throwIfNoEntry: false })).toBeUndefined();
    for (const deadline = Date.now() + 10_000; !statSync(f.state, { throwIfNoEntry: false }); await Bun.sleep(20)) {
      if (Date.now() > deadline) throw new Error("the periodic sync never wrote the state");
    }
    expect(JSON.parse(readFileSync(f.state, "utf8"))).toMatchObject({ seq: 33 });
    log.close();
    const r = await verifyDir(f.dir, f.state);
    expect([r.ok, r.lastSeq]).toEqual([true, 33]);
  });

  test("checkpoints that come faster than a state is written: the state still moves on, never backwards", async () => {
    const f = fresh({ fsyncIntervalMs: 20, checkpointEvery: 1 });
    const log = f.open();
    const seen: number[] = [];
    for (const end = Date.now() + 1500; Date.now() < end; await Bun.sleep(1)) {
      log.emit("conn_close", conn(seen.length)); // and its checkpoint: one every turn
      const st = statSync(f.state, { throwIfNoEntry: false }) ? (JSON.parse(readFileSync(f.state, "utf8")) as { seq: number }).seq : 0;
      if (st !== seen.at(-1)) seen.push(st);
    }
    // A newer checkpoint does not cut short the write in flight (it would, every time, at this rate).
    expect(seen.filter((s) => s > 0).length).toBeGreaterThan(3);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    log.close();
    expect(readdirSync(root).filter((n) => n.includes(".tmp-"))).toEqual([]);
    const r = await verifyDir(f.dir, f.state);
    expect([r.ok, r.lastSeq]).toEqual([true, log.seq]);
  });

  test("reopened, the chain goes on where it stopped, also after a crash (no closing checkpoint)", async () => {
    const f = fresh();
    const a = f.open();
    for (let i = 0; i < 5; i++) a.emit("conn_close", conn(i));
    a.close();
    const b = f.open();
    for (let i = 0; i < 13; i++) b.emit("conn_close", conn(i)); // a checkpoint after 10, three unsealed
    // no close(): as if the process died
    const crashed = await verifyDir(f.dir, f.state);
    expect([crashed.ok, crashed.unsealedTail]).toEqual([true, 3]);
    const c = f.open();
    c.emit("agent_stop", { reason: "test" });
    c.close();
    const r = await verifyDir(f.dir, f.state);
    expect(r.ok).toBe(true);
    expect(r.firstBreak).toBeNull();
    expect(r.unsealedTail).toBe(0);
  });

  test("rotated by size: several files, one chain, each rotated file ends in a checkpoint", async () => {
    const f = fresh({ maxFileBytes: 4096, checkpointEvery: 1000, fsyncIntervalMs: 50 });
    const log = f.open();
    for (let i = 0; i < 100; i++) log.emit("conn_close", conn(i));
    // the last rotated file's closing checkpoint: its state follows at the next periodic sync
    const rotated = listLogFiles(f.dir).filter((x) => x.name !== ACTIVE_FILE).at(-1)!;
    const closing = (JSON.parse(readFileSync(rotated.path, "utf8").trimEnd().split("\n").at(-1)!) as { seq: number; type: string });
    expect(closing.type).toBe("checkpoint");
    for (const deadline = Date.now() + 5000; (statSync(f.state, { throwIfNoEntry: false }) ? JSON.parse(readFileSync(f.state, "utf8")).seq : 0) !== closing.seq; await Bun.sleep(10)) {
      if (Date.now() > deadline) throw new Error("the rotated file's checkpoint never reached the state");
    }
    log.close();
    const files = listLogFiles(f.dir);
    expect(files.length).toBeGreaterThan(2);
    for (const file of files.slice(0, -1)) {
      const lines = readFileSync(file.path, "utf8").trimEnd().split("\n");
      expect(JSON.parse(lines.at(-1)!).type).toBe("checkpoint");
    }
    const r = await verifyDir(f.dir, f.state);
    expect(r.firstBreak).toBeNull();
    expect(r.events).toBeGreaterThan(100);
  });

  test("a clock that steps back: checkpoints keep the later time, across rotation and reopening, and all verifies", async () => {
    // The leaf is valid from about now for an hour: the clock starts 10 minutes ahead, then steps back to now.
    const ahead = Date.now() + 600_000;
    let clock = ahead;
    const f = fresh({ now: () => new Date(clock), maxFileBytes: 4096, checkpointEvery: 1000 });
    const times = () =>
      listLogFiles(f.dir).flatMap((x) => readFileSync(x.path, "utf8").split("\n").filter((l) => l !== "")).map((l) => JSON.parse(l) as { type: string; time: string });
    const checkpointTimes = () => times().filter((l) => l.type === "checkpoint").map((l) => Date.parse(l.time));
    const a = f.open();
    a.emit("conn_close", conn(0));
    a.checkpoint(); // dated ahead
    clock = ahead - 600_000;
    for (let i = 1; i < 60; i++) a.emit("conn_close", conn(i)); // rotations: each file's closing checkpoint
    expect(listLogFiles(f.dir).length).toBeGreaterThan(1);
    a.close();
    const b = f.open(); // a restart: the floor comes from the files
    b.emit("agent_start", { version: "test", pid: process.pid });
    b.close();
    const cps = checkpointTimes();
    expect(cps.length).toBeGreaterThan(3);
    expect(cps.every((t) => t === ahead)).toBe(true);
    expect(times().filter((l) => l.type !== "checkpoint").at(-1)!.time).toBe(new Date(clock).toISOString()); // events keep the clock's time
    expect((JSON.parse(readFileSync(f.state, "utf8")) as { time: string }).time).toBe(new Date(ahead).toISOString());
    const r = await verifyDir(f.dir, f.state);
    expect(r.firstBreak).toBeNull();
    // the clock catches up: checkpoints follow it again
    clock = ahead + 1000;
    const c = f.open();
    c.emit("agent_start", { version: "test", pid: process.pid });
    c.close();
    expect(checkpointTimes().at(-1)).toBe(ahead + 1000);
    // files removed while the writer was down: the state's checkpoint is still the floor
    rmSync(f.dir, { recursive: true });
    clock = ahead - 600_000;
    const d = f.open();
    d.close();
    expect(checkpointTimes()).toEqual([ahead + 1000]);
  });

  test("a clock that had jumped past the signer's expiry: the checkpoint after the step back takes the clock's time", async () => {
    expect(signer.notAfterMs).toBeGreaterThan(Date.now()); // read from the leaf: valid for about an hour
    const past = signer.notAfterMs! + 3_600_000;
    let clock = past;
    const f = fresh({ now: () => new Date(clock), checkpointEvery: 1000 });
    const checkpointTimes = () =>
      listLogFiles(f.dir).flatMap((x) => readFileSync(x.path, "utf8").split("\n").filter((l) => l !== "")).map((l) => JSON.parse(l) as { type: string; time: string }).filter((l) => l.type === "checkpoint").map((l) => Date.parse(l.time));
    const a = f.open();
    a.emit("conn_close", conn(0));
    a.checkpoint(); // dated past the leaf's notAfter: never verifiable
    clock = Date.now();
    a.emit("conn_close", conn(1));
    a.checkpoint();
    a.close();
    // keeping `past` would leave this one (and every later one until the clock got there) unverifiable too
    expect(checkpointTimes()).toEqual([past, clock]);
  });

  test("a torn last line is left as it is; the next file begins with audit_recovered and all verifies", async () => {
    const f = fresh();
    const a = f.open();
    for (let i = 0; i < 4; i++) a.emit("conn_close", conn(i));
    a.close();
    const torn = '{"seq":6,"time":"2026-11-26T';
    appendFileSync(join(f.dir, ACTIVE_FILE), torn);
    const b = f.open();
    b.emit("agent_start", { version: "test", pid: process.pid });
    b.close();
    const names = readdirSync(f.dir).sort();
    expect(names.length).toBe(2);
    const first = JSON.parse(readFileSync(join(f.dir, ACTIVE_FILE), "utf8").split("\n")[0]!);
    expect(first).toMatchObject({ type: "audit_recovered", torn_bytes: Buffer.byteLength(torn), seq: 6 });
    const r = await verifyDir(f.dir, f.state);
    expect(r.firstBreak).toBeNull();
    expect(r.warnings.join(" ")).toContain("torn");
  });

  test("the active file removed under the writer: unhealthy, then a new file after an audit_gap counting what it held", async () => {
    const f = fresh({ checkpointEvery: 1000 });
    const health: [boolean, string | null][] = [];
    const log = f.open({ onHealth: (ok, e) => void health.push([ok, e]) });
    for (let i = 0; i < 5; i++) log.emit("conn_close", conn(i));
    rmSync(join(f.dir, ACTIVE_FILE));
    const deadline = Date.now() + 5000;
    while (health.length < 2 && Date.now() < deadline) await Bun.sleep(50);
    expect(health).toEqual([
      [false, "log_removed"],
      [true, null],
    ]);
    log.emit("conn_close", conn(6));
    log.close();
    const lines = readFileSync(join(f.dir, ACTIVE_FILE), "utf8").trimEnd().split("\n").map((l) => JSON.parse(l));
    expect(lines[0]).toMatchObject({ type: "audit_gap", dropped: 5, seq: 6 });
    const r = await verifyDir(f.dir);
    expect(r.ok).toBe(true); // the file starts at seq 6: earlier files not given, and the gap says why
    expect(r.warnings.join(" ")).toContain("starts at seq 6");
  });

  test("a torn active file holding only a cut first line does not replace an older file", async () => {
    const f = fresh({ maxFileBytes: 4096, checkpointEvery: 1000 });
    const a = f.open();
    for (let i = 0; i < 40; i++) a.emit("conn_close", conn(i));
    a.close();
    const before = listLogFiles(f.dir).filter((x) => x.name !== ACTIVE_FILE).map((x) => [x.name, readFileSync(x.path, "utf8")]);
    expect(before.length).toBeGreaterThan(0);
    writeFileSync(join(f.dir, ACTIVE_FILE), '{"se'); // a new active file cut in its first line
    const b = f.open();
    b.emit("agent_start", { version: "t", pid: 1 });
    b.close();
    for (const [name, text] of before) expect(readFileSync(join(f.dir, name!), "utf8")).toBe(text!);
    expect(readdirSync(f.dir).some((n) => n.startsWith("audit-torn-"))).toBe(true);
    const r = await verifyDir(f.dir, f.state);
    expect(r.firstBreak).toBeNull();
  });

  test("files removed while the writer was down: the new chain begins by saying how many lines the state knew of", async () => {
    const f = fresh();
    const a = f.open();
    for (let i = 0; i < 12; i++) a.emit("conn_close", conn(i));
    a.close();
    rmSync(f.dir, { recursive: true });
    const b = f.open();
    b.close();
    const first = JSON.parse(readFileSync(join(f.dir, ACTIVE_FILE), "utf8").split("\n")[0]!);
    expect(first).toMatchObject({ seq: 1, type: "audit_gap", dropped: 14, reason: "log_missing", recorded_seq: 14 });
  });

  test("without a signer no checkpoint is written and the events still chain", async () => {
    const f = fresh({ signer: () => null });
    const log = f.open();
    for (let i = 0; i < 15; i++) log.emit("conn_close", conn(i));
    log.close();
    const r = await verifyDir(f.dir);
    expect([r.ok, r.checkpoints, r.events]).toEqual([true, 0, 15]);
  });

  test("every emitted line passes the schema (a typo'd field would break verify)", async () => {
    const f = fresh();
    const log = f.open();
    log.emit("conn_close", { ...conn(1), bytes_up: -1 });
    log.close();
    const r = await verifyDir(f.dir);
    expect(r.firstBreak?.code).toBe("audit_malformed_line");
  });
});

const asRoot = process.getuid?.() === 0;
describe.skipIf(!asRoot && !process.env.CI)("AuditLog on a disk that fills up (a tmpfs of the test's own)", () => {
  let mnt: string;
  beforeAll(() => {
    if (!asRoot) throw new Error("CI runs these as root");
    mnt = join(root, "small-fs");
    mkdirSync(mnt);
    const r = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tidegate-test-audit", mnt]);
    if (r.exitCode !== 0) throw new Error(`mount tmpfs: ${r.stderr.toString()}`);
  });
  afterAll(() => {
    if (mnt !== undefined) Bun.spawnSync(["umount", mnt]);
  });

  test("a full disk makes the log unhealthy, events wait in memory, and are written in order once there is room", async () => {
    const dir = join(mnt, "log");
    const health: [boolean, string | null][] = [];
    const log = AuditLog.open({ dir, statePath: null, signer: () => signer, checkpointEvery: 1_000_000, maxPending: 50, onHealth: (ok, e) => void health.push([ok, e]) });
    const filler = join(mnt, "filler");
    // Fill the disk so that a few lines still fit.
    writeFileSync(filler, Buffer.alloc(0));
    let i = 0;
    while (log.healthy && i < 10_000) {
      log.emit("conn_close", conn(i++));
      if (i === 20) {
        try {
          writeFileSync(filler, Buffer.alloc(60 * 1024));
        } catch {
          // full already: fine
        }
      }
    }
    expect(log.healthy).toBe(false);
    expect(health[0]).toEqual([false, "ENOSPC"]);
    const written = log.seq;
    for (let k = 0; k < 80; k++) log.emit("conn_close", conn(i++)); // 50 wait, 30 are counted as lost
    rmSync(filler);
    const deadline = Date.now() + 5000;
    while (!log.healthy && Date.now() < deadline) await Bun.sleep(50);
    expect(log.healthy).toBe(true);
    expect(health.at(-1)).toEqual([true, null]);
    log.close();
    const text = readFileSync(join(dir, ACTIVE_FILE), "utf8");
    const lines = text.trimEnd().split("\n").map((l) => JSON.parse(l));
    const gap = lines.find((l) => l.type === "audit_gap");
    expect(gap).toMatchObject({ dropped: 31 });
    expect(lines.filter((l) => l.type === "conn_close").length).toBe(written + 50);
    const r = await verifyAudit({ files: [{ name: ACTIVE_FILE, text }], bundles: ca.bundle, state: null, now: new Date() });
    expect(r.firstBreak).toBeNull();
    chmodSync(dir, 0o700);
  });
});

describe("AuditLog lines", () => {
  test("each line is formatLine's for { ...base, ...fields }, whatever the fields (property)", async () => {
    const { default: fc } = await import("fast-check");
    const { formatLine, parseLine } = await import("../format/index.ts");
    const key = fc.oneof(fc.stringMatching(/^[a-z_]{1,8}$/), fc.constantFrom("instance", "node_id"));
    const value = fc.jsonValue({ maxDepth: 2 });
    const cases = fc.sample(fc.record({ base: fc.oneof(fc.constant(undefined), fc.dictionary(key, value, { maxKeys: 3 })), events: fc.array(fc.dictionary(key, value, { maxKeys: 6 }), { minLength: 1, maxLength: 8 }) }), 60);
    for (const c of cases) {
      const f = fresh({ signer: () => null, ...(c.base !== undefined ? { base: c.base } : {}) });
      const log = f.open();
      for (const fields of c.events) log.emit("admin", fields);
      log.close();
      const lines = readFileSync(join(f.dir, ACTIVE_FILE), "utf8").trimEnd().split("\n");
      expect(lines.length).toBe(c.events.length);
      lines.forEach((line, i) => {
        const p = parseLine(line);
        const merged = c.base === undefined ? c.events[i]! : { ...c.base, ...c.events[i]! };
        expect(line).toBe(formatLine(p.seq, new Date(p.time), "admin", merged, p.prev));
      });
    }
    // a field formatLine refuses (JSON would move an integer-like key first) is refused here too
    const f = fresh({ signer: () => null });
    const log = f.open();
    expect(() => log.emit("admin", { action: "x", "7": 1 })).toThrow(/reserved/);
    log.close();
  });
});
