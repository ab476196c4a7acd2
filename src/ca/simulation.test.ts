/**
 * Time travel: a CA driven by tick() over several root lifetimes with small TTLs. At every step a
 * freshly minted SVID verifies against bundle(), every SVID minted before and not yet expired
 * still verifies, and every chain ends at a root that was in the bundle at least one refresh hint
 * before the SVID was minted (the first root excepted): no chain ever breaks.
 */
import { expect, test } from "bun:test";
import { CaManager } from "./manager.ts";
import type { IssuedSvid } from "./manager.ts";
import type { CaSettings } from "./settings.ts";
import { MemoryCaStorage } from "./storage.ts";
import { TD, at, mintQuick, serialOf, verifyNow } from "./test-support.ts";

const H = 3600;
const SETTINGS: CaSettings = { rootTtlSeconds: 48 * H, signingTtlSeconds: 6 * H, rootRotateBeforeSeconds: 12 * H, refreshHintSeconds: 2 * H };
const LEAF_TTLS = [600, H, 4 * H];

/** A small deterministic PRNG (mulberry32), so a failure can be replayed. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Minted {
  svid: IssuedSvid;
  at: number;
}

async function simulate(steps: (s: number) => number, endS: number, manual?: (s: number, ca: CaManager) => Promise<void>) {
  const storage = new MemoryCaStorage();
  let ca = await CaManager.init({ trustDomain: TD, settings: SETTINGS, storage, now: at(0) });
  const publishedAt = new Map<string, number>([[ca.status().roots[0]!.serial, -Infinity]]);
  let sequence = ca.bundleSequence();
  let rootSet = ca.status().roots.map((r) => r.serial).join();
  let held: Minted[] = [];
  const seen = { roots: new Set<string>(), signing: new Set<string>(), minted: 0, restarts: 0 };

  const check = async (s: number) => {
    const now = at(s);
    for (const ttl of LEAF_TTLS) held.push({ svid: await mintQuick(ca, now, ttl), at: s });
    held = held.filter((m) => m.svid.notAfter.getTime() >= now.getTime());
    for (const m of held) {
      const v = await verifyNow(ca, m.svid, now).catch((e: Error) => {
        throw new Error(`at ${s}s an SVID minted at ${m.at}s fails: ${e.message}`);
      });
      const root = serialOf(v.chain[v.chain.length - 1]!);
      seen.roots.add(root);
      seen.signing.add(serialOf(m.svid.chain[1]!));
      expect(m.at - publishedAt.get(root)!).toBeGreaterThanOrEqual(SETTINGS.refreshHintSeconds);
    }
    seen.minted += LEAF_TTLS.length;
  };

  for (let s = 0; s <= endS; ) {
    await ca.tick(at(s));
    const due = ca.nextTickAt(at(s));
    expect(due === null || due.getTime() > at(s).getTime()).toBe(true); // a tick leaves nothing due: no busy loop
    if (manual) await manual(s, ca);
    const st = ca.status();
    const set = st.roots.map((r) => r.serial).join();
    if (set !== rootSet) expect(st.bundleSequence).toBeGreaterThan(sequence);
    else expect(st.bundleSequence).toBe(sequence);
    [sequence, rootSet] = [st.bundleSequence, set];
    for (const r of st.roots) if (!publishedAt.has(r.serial)) publishedAt.set(r.serial, s);
    await check(s);
    const next = s + steps(s);
    await check(next - 1); // the CA can mint right up to the next tick
    if (s % (30 * H) < steps(s)) {
      ca = await CaManager.load({ settings: SETTINGS, storage, now: at(s) }); // a restart now and then
      seen.restarts++;
    }
    s = next;
  }
  return seen;
}

test("hourly ticks over three root lifetimes: every chain verifies until its own end", async () => {
  const seen = await simulate(() => H, 3 * 48 * H);
  expect(seen.roots.size).toBeGreaterThanOrEqual(4);
  expect(seen.signing.size).toBeGreaterThan(40);
  expect(seen.restarts).toBeGreaterThan(3);
}, 60_000);

test("irregular ticks (1 to 90 minutes) with manual rotations: every chain verifies until its own end", async () => {
  const rand = prng(20300101);
  const seen = await simulate(
    () => 60 + Math.floor(rand() * 89 * 60),
    2 * 48 * H,
    async (s, ca) => {
      if (rand() < 0.05) await ca.rotateSigning(at(s));
      if (rand() < 0.02 && !ca.status().roots.some((r) => r.state === "pending")) await ca.rotateRoot(at(s));
    },
  );
  expect(seen.roots.size).toBeGreaterThanOrEqual(3);
}, 60_000);
