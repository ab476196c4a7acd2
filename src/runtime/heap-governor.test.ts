import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { CHECK_MS, HEADROOM_BYTES, HeapGovernor, heapGovernor, MIN_CHURN, MIN_SPACING_MS } from "./heap-governor.ts";

const MiB = 1048576;

/** A governor over a settable RSS and clock that counts its collections. */
function rig(o: { headroomMiB?: number; spacingMs?: number; rssMiB: number; churn?: boolean }) {
  const state = { rss: o.rssMiB * MiB, now: 0, collected: 0, closed: 0 };
  const g = new HeapGovernor({
    headroomBytes: (o.headroomMiB ?? 6) * MiB,
    minSpacingMs: o.spacingMs ?? 1000,
    rss: () => state.rss,
    now: () => state.now,
    collect: () => void (state.collected += 1),
    ...(o.churn === true ? { churn: () => state.closed, minChurn: 100 } : {}),
  });
  const at = (rssMiB: number, advanceMs = 250) => {
    state.rss = rssMiB * MiB;
    state.now += advanceMs;
    return g.check();
  };
  return { g, state, at };
}

describe("HeapGovernor", () => {
  test("the defaults: 6 MiB of headroom, a check every 250 ms, at most one collection a second, 256 connections closed in between", () => {
    expect(HEADROOM_BYTES).toBe(6 * MiB);
    expect(CHECK_MS).toBe(250);
    expect(MIN_SPACING_MS).toBe(1000);
    expect(MIN_CHURN).toBe(256);
  });

  test("given a count of closed connections, the RSS over the headroom is not enough: as many connections must have closed since the last collection", () => {
    const { state, at } = rig({ rssMiB: 90, churn: true });
    expect(at(100)).toBe(false); // keep-alive: the RSS climbs, nothing closes
    state.closed = 99;
    expect(at(100, 2000)).toBe(false);
    state.closed = 100;
    expect(at(100)).toBe(true);
    expect(at(90)).toBe(false); // settles
    state.closed = 150; // 50 since the collection
    expect(at(100, 2000)).toBe(false);
    state.closed = 200;
    expect(at(100)).toBe(true);
    expect(state.collected).toBe(2);
  });

  test("closed connections alone do not make it collect: the RSS must be over the headroom too", () => {
    const { state, at } = rig({ rssMiB: 90, churn: true });
    state.closed = 10_000;
    for (let i = 0; i < 8; i++) expect(at(95, 1000)).toBe(false);
    expect(state.collected).toBe(0);
  });

  test("does nothing while the RSS stays within the headroom of where it started", () => {
    const { g, state, at } = rig({ rssMiB: 90 });
    for (const r of [90, 92, 95, 96, 94, 96]) expect(at(r)).toBe(false);
    expect(state.collected).toBe(0);
    expect(g.collections).toBe(0);
    expect(g.floor).toBe(90 * MiB);
  });

  test("collects once the RSS stands more than the headroom above the floor, and takes the next reading as the floor", () => {
    const { g, state, at } = rig({ rssMiB: 90 });
    expect(at(96)).toBe(false); // exactly the headroom: not more
    expect(at(96.5)).toBe(true);
    expect(state.collected).toBe(1);
    expect(g.collections).toBe(1);
    // the check after a collection only reads what it left, even if that is still high
    expect(at(91)).toBe(false);
    expect(g.floor).toBe(91 * MiB);
    expect(at(97, 2000)).toBe(false);
    expect(at(97.5)).toBe(true);
  });

  test("the floor follows the RSS down, so growth is measured from the lowest point (a collection of the runtime's own)", () => {
    const { g, state, at } = rig({ rssMiB: 100 });
    expect(at(104)).toBe(false);
    expect(at(88)).toBe(false);
    expect(g.floor).toBe(88 * MiB);
    expect(at(94.5)).toBe(true); // 6.5 above 88, though below where it started
    expect(state.collected).toBe(1);
  });

  test("makes at most one collection per spacing, however long the RSS stays high", () => {
    const { state, at } = rig({ rssMiB: 90, spacingMs: 1000 });
    expect(at(100)).toBe(true);
    expect(at(90)).toBe(false); // settles
    // back up within the second: over the headroom, but the spacing holds it back
    expect(at(100, 250)).toBe(false);
    expect(at(100, 250)).toBe(false);
    expect(state.collected).toBe(1);
    expect(at(100, 250)).toBe(true); // 1,000 ms since the first
    expect(state.collected).toBe(2);
  });

  test("memory the process really holds raises the floor after one collection instead of making it collect again and again", () => {
    const { g, state, at } = rig({ rssMiB: 80 });
    expect(at(120)).toBe(true);
    expect(at(120)).toBe(false); // the collection freed nothing: 120 MiB is held
    expect(g.floor).toBe(120 * MiB);
    for (let i = 0; i < 20; i++) expect(at(124, 1000)).toBe(false);
    expect(state.collected).toBe(1);
  });

  // In a process of its own: the real full collection, triggered by the real RSS.
  test("with the real RSS and collector, garbage the young collections left behind is collected and the heap falls", async () => {
    const script = `
      import { heapSize } from "bun:jsc";
      import { HeapGovernor } from ${JSON.stringify(join(import.meta.dir, "heap-governor.ts"))};
      const g = new HeapGovernor({ headroomBytes: 1048576 });
      let held = [];
      for (let i = 0; i < 400000; i++) held.push({ i, s: "x" + i });
      Bun.gc(false); // a young collection: what is held moves to the old generation
      await Bun.sleep(50);
      held = null;
      const before = heapSize();
      const collected = g.check();
      console.log(JSON.stringify({ collected, before, after: heapSize(), collections: g.collections }));
    `;
    const p = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    expect(err).toBe("");
    expect(code).toBe(0);
    const r = JSON.parse(out);
    expect(r.collected).toBe(true);
    expect(r.collections).toBe(1);
    expect(r.before).toBeGreaterThan(20 * MiB);
    expect(r.after).toBeLessThan(r.before / 2);
  });
});

describe("heapGovernor", () => {
  test("start makes a governor and checks on a timer; stop ends it; a start after a stop does nothing", async () => {
    const h = heapGovernor({ rss: () => 1 });
    expect(h.governor).toBeNull();
    h.start();
    const g = h.governor;
    expect(g).not.toBeNull();
    h.start(); // a second start keeps the first governor
    expect(h.governor).toBe(g);
    h.stop();

    let reads = 0;
    const late = heapGovernor({ rss: () => ++reads });
    late.stop();
    late.start();
    expect(late.governor).toBeNull();
    await Bun.sleep(CHECK_MS * 2);
    expect(reads).toBe(0);
  });

  test("the timer reads the RSS every CHECK_MS while started", async () => {
    let reads = 0;
    const h = heapGovernor({ rss: () => ++reads, collect: () => {} });
    h.start();
    await Bun.sleep(CHECK_MS * 3 + 100);
    h.stop();
    const atStop = reads;
    expect(atStop).toBeGreaterThanOrEqual(2); // the reading at construction, then one per check (3 on an idle host)
    await Bun.sleep(CHECK_MS * 2);
    expect(reads).toBe(atStop);
  });
});
