import { describe, expect, test } from "bun:test";
import { SpiffeId } from "../spiffe/id.ts";
import { generateKeyPair } from "../x509/keys.ts";
import type { Candidate } from "./authority.ts";
import { CaManager } from "./manager.ts";
import { MemoryCaStorage } from "./storage.ts";
import { SMALL, T0, TD, WORKLOAD, at, codeOf, mintAt, mintQuick, serialOf, verifyNow } from "./test-support.ts";

async function fresh(settings = SMALL) {
  const storage = new MemoryCaStorage();
  const ca = await CaManager.init({ trustDomain: TD, settings, storage, now: at(0) });
  return { ca, storage };
}

/** A hook that, while `broken.on`, swaps a new CA's key for an unrelated one. */
function breakable() {
  const broken = { on: false, seen: [] as Candidate[] };
  const hooks = {
    async candidate(c: Candidate): Promise<Candidate> {
      broken.seen.push(c);
      return broken.on ? { ...c, privateKey: (await generateKeyPair()).privateKey } : c;
    },
  };
  return { broken, hooks };
}

describe("init and load", () => {
  test("init makes one active root and a signing CA under it; bundle sequence 1", async () => {
    const { ca } = await fresh();
    const st = ca.status();
    expect(st.bundleSequence).toBe(1);
    expect(st.roots).toHaveLength(1);
    expect(st.roots[0]!.state).toBe("active");
    expect(st.roots[0]!.notAfter.getTime()).toBe(T0 + 10_000_000);
    expect(st.signing.root).toBe(st.roots[0]!.serial);
    expect(st.signing.notAfter.getTime()).toBe(T0 + 1_000_000);
    expect(ca.activeRootFingerprint()).toMatch(/^[0-9a-f]{64}$/);
    expect(ca.activeRootFingerprint()).toBe(st.roots[0]!.sha256);
    const b = ca.bundle();
    expect(b.trustDomain.name).toBe("example.org");
    expect(b.x509Authorities).toHaveLength(1);
    expect(b.sequence).toBe(1);
    expect(b.refreshHintSeconds).toBe(300);
    const svid = await mintAt(ca, at(10));
    expect(svid.chain).toHaveLength(2);
    expect(serialOf(svid.chain[1]!)).toBe(st.signing.serial);
    const v = await verifyNow(ca, svid, at(10));
    expect(v.id.toString()).toBe(WORKLOAD.toString());
    expect(v.chain).toHaveLength(3);
  });

  test("load gives back the same CA; chains from before verify with the loaded bundle", async () => {
    const { ca, storage } = await fresh();
    const before = await mintAt(ca, at(5));
    const again = await CaManager.load({ settings: SMALL, storage, now: at(20) });
    expect(again.trustDomain.name).toBe("example.org");
    expect(again.status()).toEqual(ca.status());
    expect(again.activeRootFingerprint()).toBe(ca.activeRootFingerprint());
    expect(again.bundle().equals(ca.bundle())).toBe(true);
    await verifyNow(again, before, at(20));
    await verifyNow(ca, await mintAt(again, at(20)), at(20));
  });

  test("keys are non-extractable once made and after load", async () => {
    const { broken, hooks } = breakable();
    const storage = new MemoryCaStorage();
    await CaManager.init({ trustDomain: TD, settings: SMALL, storage, now: at(0), hooks });
    expect(broken.seen.map((c) => [c.kind, c.privateKey.extractable])).toEqual([["root", false], ["signing", false]]);
    const loaded = await storage.load();
    expect([...loaded!.keys.values()].map((k) => k.extractable)).toEqual([false, false]);
  });

  test("init refuses storage that holds a CA: ca_exists, nothing overwritten", async () => {
    const { storage } = await fresh();
    const text = storage.text;
    const keys = [...storage.keyPems.keys()];
    const err = await CaManager.init({ trustDomain: TD, settings: SMALL, storage, now: at(1) }).catch((e) => e);
    expect(codeOf(err)).toBe("ca_exists");
    expect(storage.text).toBe(text);
    expect([...storage.keyPems.keys()]).toEqual(keys);
  });

  test("init refuses storage with a corrupt CA too (ca_corrupt), never re-initialising", async () => {
    const storage = new MemoryCaStorage();
    storage.text = "{";
    expect(codeOf(await CaManager.init({ trustDomain: TD, settings: SMALL, storage, now: at(0) }).catch((e) => e))).toBe("ca_corrupt");
    expect(storage.text).toBe("{");
  });

  test("load of empty storage: ca_missing", async () => {
    const err = await CaManager.load({ settings: SMALL, storage: new MemoryCaStorage(), now: at(0) }).catch((e) => e);
    expect(codeOf(err)).toBe("ca_missing");
  });

  test("load with a missing key: ca_corrupt naming it", async () => {
    const { ca, storage } = await fresh();
    storage.keyPems.delete(ca.status().signing.serial);
    const err = await CaManager.load({ settings: SMALL, storage, now: at(0) }).catch((e) => e);
    expect(codeOf(err)).toBe("ca_corrupt");
    expect(err.message).toContain(`${ca.status().signing.serial}.key`);
  });

  test("load with the signing key swapped for another key: ca_self_check_failed", async () => {
    const { ca, storage } = await fresh();
    const st = ca.status();
    storage.keyPems.set(st.signing.serial, storage.keyPems.get(st.roots[0]!.serial)!);
    const err = await CaManager.load({ settings: SMALL, storage, now: at(0) }).catch((e) => e);
    expect(codeOf(err)).toBe("ca_self_check_failed");
    expect(err.message).toContain(st.signing.serial);
  });

  test("init with a new key that fails its self-check stores nothing", async () => {
    const { broken, hooks } = breakable();
    broken.on = true;
    const storage = new MemoryCaStorage();
    const err = await CaManager.init({ trustDomain: TD, settings: SMALL, storage, now: at(0), hooks }).catch((e) => e);
    expect(codeOf(err)).toBe("ca_self_check_failed");
    expect(storage.text).toBeNull();
    expect(storage.keyPems.size).toBe(0);
  });
});

describe("settings", () => {
  const bad: [string, Partial<typeof SMALL>][] = [
    ["zero root ttl", { rootTtlSeconds: 0 }],
    ["fractional signing ttl", { signingTtlSeconds: 1.5 }],
    ["signing longer than root", { signingTtlSeconds: 20_000 }],
    ["negative refresh hint", { refreshHintSeconds: -1 }],
    ["refresh hint not below the root ttl", { refreshHintSeconds: 10_000, rootRotateBeforeSeconds: 0 }],
    ["rotate-before not above the refresh hint", { rootRotateBeforeSeconds: 300 }],
    ["rotate-before not below the root ttl", { rootRotateBeforeSeconds: 10_000 }],
  ];
  for (const [name, change] of bad) {
    test(`${name}: ca_bad_settings`, async () => {
      const err = await CaManager.init({ trustDomain: TD, settings: { ...SMALL, ...change }, storage: new MemoryCaStorage(), now: at(0) }).catch((e) => e);
      expect(codeOf(err)).toBe("ca_bad_settings");
    });
  }
});

describe("minting", () => {
  test("an ID of another trust domain: ca_foreign_id", async () => {
    const { ca } = await fresh();
    const err = await ca.mintForKey({ id: SpiffeId.parse("spiffe://other.org/w"), publicKey: (await generateKeyPair()).publicKey, ttlSeconds: 60, now: at(1) }).catch((e) => e);
    expect(codeOf(err)).toBe("ca_foreign_id");
  });

  test("past the signing CA's end without a tick: ca_expired", async () => {
    const { ca } = await fresh();
    expect(codeOf(await mintQuick(ca, at(1_001), 60).catch((e) => e))).toBe("ca_expired");
  });

  test("a leaf is capped at the signing CA's end; the signing CA at its root's", async () => {
    const { ca } = await fresh({ ...SMALL, rootRotateBeforeSeconds: 0 });
    expect((await mintQuick(ca, at(900), 500)).notAfter.getTime()).toBe(T0 + 1_000_000);
    await ca.rotateSigning(at(9_500));
    expect(ca.status().signing.notAfter.getTime()).toBe(T0 + 10_000_000);
  });

  test("csr errors pass through (csr_malformed and friends)", async () => {
    const { ca } = await fresh();
    const err = await ca.mintFromCsr({ csr: new Uint8Array([1, 2, 3]), id: WORKLOAD, ttlSeconds: 60, now: at(1) }).catch((e) => e);
    expect(codeOf(err)).toMatch(/^csr_/);
  });
});
