// The watchdog's rules with real timers and bounds of 100 and 200 ms: which expiry comes,
// when, and that bytes keep a connection alive; never an expiry after stop, never two.
import { describe, expect, spyOn, test } from "bun:test";
import { expiryFields, Watchdog, type Expiry } from "./watchdog.ts";

const BOUNDS = { firstByteTimeoutMs: 100, idleTimeoutMs: 200 };

function watch(bounds = BOUNDS) {
  const started = performance.now();
  const fired: { why: Expiry; at: number }[] = [];
  const w = new Watchdog(bounds, (why) => void fired.push({ why, at: performance.now() - started }));
  return { w, fired, started };
}

/** Calls `f` every `every` ms for `ms`; when it last did. */
async function keep(ms: number, every: number, f: () => void): Promise<number> {
  const until = performance.now() + ms;
  let last = 0;
  while (performance.now() < until) {
    f();
    last = performance.now();
    await Bun.sleep(every);
  }
  return last;
}

describe("Watchdog", () => {
  test("setBounds: a bound brought nearer fires at the new one; one pushed later does not fire at the old", async () => {
    const near = watch({ firstByteTimeoutMs: 1000, idleTimeoutMs: 1000 });
    near.w.sent();
    near.w.setBounds({ firstByteTimeoutMs: 100, idleTimeoutMs: 1000 });
    await Bun.sleep(300);
    expect(near.fired.map((f) => f.why)).toEqual(["first_byte"]);
    expect(near.fired[0]!.at).toBeLessThan(900); // the new 100 ms bound, not the old 1 s
    const later = watch();
    later.w.setBounds({ firstByteTimeoutMs: 100, idleTimeoutMs: 400 });
    await Bun.sleep(300);
    expect(later.fired).toEqual([]);
    await Bun.sleep(200);
    expect(later.fired.map((f) => f.why)).toEqual(["idle"]);
    near.w.stop();
    later.w.stop();
  });

  test("nothing moves: idle, once, after the idle bound (nothing was sent, so no answer is awaited)", async () => {
    const { fired } = watch();
    await Bun.sleep(400);
    expect(fired.map((f) => f.why)).toEqual(["idle"]);
    expect(fired[0]!.at).toBeGreaterThanOrEqual(199);
  });

  test("a byte sent and no answer: first_byte, counted from the last byte sent", async () => {
    const started = performance.now();
    const { w, fired } = watch();
    const last = (await keep(250, 20, () => w.sent())) - started; // a slow upload: never cut meanwhile
    expect(fired).toEqual([]);
    await Bun.sleep(250);
    expect(fired.map((f) => f.why)).toEqual(["first_byte"]);
    expect(fired[0]!.at).toBeGreaterThanOrEqual(last + 99);
  });

  test("after the first answer only idle applies, however long the upstream then stays silent", async () => {
    const { w, fired } = watch();
    w.sent();
    w.received();
    await keep(450, 20, () => w.sent());
    expect(fired).toEqual([]);
    await Bun.sleep(350);
    expect(fired.map((f) => f.why)).toEqual(["idle"]);
  });

  test("expectAnswer: the next byte sent awaits a new answer", async () => {
    const { w, fired } = watch();
    w.sent();
    w.received();
    w.expectAnswer();
    w.sent();
    await Bun.sleep(250);
    expect(fired.map((f) => f.why)).toEqual(["first_byte"]);
  });

  test("bytes from the workload alone keep it from idling; stop ends every expiry", async () => {
    const { w, fired } = watch();
    await keep(450, 20, () => w.moved());
    expect(fired).toEqual([]);
    w.stop();
    await Bun.sleep(300);
    expect(fired).toEqual([]);
  });

  test("a kept-alive connection's requests do not set a timer each; its deadlines still hold after them", async () => {
    const set = spyOn(globalThis, "setTimeout");
    try {
      const { w, fired, started } = watch();
      const before = set.mock.calls.length;
      for (let i = 0; i < 1000; i++) {
        w.expectAnswer();
        w.sent();
        w.received();
      }
      expect(set.mock.calls.length - before).toBeLessThanOrEqual(1);
      // the last request goes unanswered: first_byte, from its byte
      w.expectAnswer();
      const lastSent = performance.now();
      w.sent();
      await Bun.sleep(300);
      expect(fired.map((f) => f.why)).toEqual(["first_byte"]);
      expect(started + fired[0]!.at - lastSent).toBeGreaterThanOrEqual(99);
    } finally {
      set.mockRestore();
    }
  });

  test("what each expiry records", () => {
    const t = { ...BOUNDS, connectTimeoutMs: 1 };
    expect(expiryFields("first_byte", t, "upstream")).toEqual({ outcome: "upstream_failed", reason: "upstream_first_byte_timeout", detail: "no byte from the upstream within 100 ms of the last byte sent to it" });
    expect(expiryFields("first_byte", t, "backend")).toMatchObject({ outcome: "backend_failed", reason: "backend_first_byte_timeout" });
    expect(expiryFields("idle", t, "backend")).toEqual({ outcome: "terminated", reason: "idle_timeout", detail: "no byte either way for 200 ms" });
  });
});
