import { describe, expect, test } from "bun:test";
import { generateKeyPair } from "../x509/keys.ts";
import type { Candidate } from "./authority.ts";
import { CaManager, type CaEvent } from "./manager.ts";
import { MemoryCaStorage } from "./storage.ts";
import { SMALL, T0, TD, at, codeOf, mintAt, serialOf, verifyNow } from "./test-support.ts";

async function fresh(hooks?: { candidate(c: Candidate): Promise<Candidate> }, settings = SMALL) {
  const storage = new MemoryCaStorage();
  const ca = await CaManager.init({ trustDomain: TD, settings, storage, now: at(0), ...(hooks ? { hooks } : {}) });
  return { ca, storage };
}

const types = (events: CaEvent[]) => events.map((e) => e.type);

/** The root a chain verified to (the last element of the verified path). */
async function rootOf(ca: CaManager, svid: Awaited<ReturnType<typeof mintAt>>, s: number): Promise<string> {
  const v = await verifyNow(ca, svid, at(s));
  return serialOf(v.chain[v.chain.length - 1]!);
}

describe("signing CA rotation", () => {
  test("nothing is due before half life; at half life a new signing CA, and old chains still verify", async () => {
    const { ca, storage } = await fresh();
    const first = ca.status().signing;
    const old = await mintAt(ca, at(100), 400);
    expect(await ca.tick(at(400))).toEqual([]);
    expect(ca.nextTickAt(at(400))!.getTime()).toBe(first.notBefore.getTime() + (first.notAfter.getTime() - first.notBefore.getTime()) / 2);
    const events = await ca.tick(at(495));
    expect(types(events)).toEqual(["ca_rotated"]);
    expect(events[0]).toMatchObject({ reason: "half_life", root: ca.status().roots[0]!.serial });
    const second = ca.status().signing;
    expect(second.serial).not.toBe(first.serial);
    expect(ca.bundleSequence()).toBe(1);
    expect(storage.keyPems.has(first.serial)).toBe(false);
    expect(storage.keyPems.has(second.serial)).toBe(true);
    const now = await mintAt(ca, at(496));
    expect(serialOf(now.chain[1]!)).toBe(second.serial);
    await verifyNow(ca, now, at(496));
    await verifyNow(ca, old, at(499));
  });

  test("rotate-ca rotates now, whatever the half life", async () => {
    const { ca } = await fresh();
    const first = ca.status().signing.serial;
    expect(types(await ca.rotateSigning(at(10)))).toEqual(["ca_rotated"]);
    expect(ca.status().signing.serial).not.toBe(first);
  });

  test("a new signing key that fails its self-check is never used: the old CA stays, rotate-ca throws", async () => {
    const broken = { on: false };
    const { ca, storage } = await fresh({
      async candidate(c) {
        return broken.on ? { ...c, privateKey: (await generateKeyPair()).privateKey } : c;
      },
    });
    const before = ca.status();
    const text = storage.text;
    broken.on = true;
    const err = await ca.rotateSigning(at(10)).catch((e) => e);
    expect(codeOf(err)).toBe("ca_self_check_failed");
    expect(err.message).toContain("new signing CA");
    expect(ca.status()).toEqual(before);
    expect(storage.text).toBe(text);
    // tick reports it and keeps the old CA; the next tick, with a good key, rotates
    const events = await ca.tick(at(600));
    expect(events).toEqual([expect.objectContaining({ type: "ca_rotation_failed", what: "signing", code: "ca_self_check_failed" })]);
    expect(ca.status().signing.serial).toBe(before.signing.serial);
    await verifyNow(ca, await mintAt(ca, at(600)), at(600));
    broken.on = false;
    expect(types(await ca.tick(at(601)))).toEqual(["ca_rotated"]);
  });

  test("a failed self-check of a new root leaves the bundle and its sequence alone", async () => {
    const broken = { on: false };
    const { ca } = await fresh({
      async candidate(c) {
        return broken.on && c.kind === "root" ? { ...c, privateKey: (await generateKeyPair()).privateKey } : c;
      },
    });
    broken.on = true;
    expect(codeOf(await ca.rotateRoot(at(10)).catch((e) => e))).toBe("ca_self_check_failed");
    expect(ca.bundleSequence()).toBe(1);
    expect(ca.bundle().x509Authorities).toHaveLength(1);
    expect(ca.status().roots).toHaveLength(1);
  });
});

describe("root rotation", () => {
  test("published at once, used only from one refresh hint later; old chains verify until the old root ends", async () => {
    const { ca, storage } = await fresh();
    const oldRoot = ca.status().roots[0]!.serial;
    const oldFingerprint = ca.activeRootFingerprint();
    const before = await mintAt(ca, at(90), 1_000);

    const published = await ca.rotateRoot(at(100));
    expect(types(published)).toEqual(["root_published", "bundle_updated"]);
    expect(published[0]).toMatchObject({ reason: "manual", activateAt: at(400) });
    expect(published[1]).toEqual({ type: "bundle_updated", sequence: 2 });
    expect(ca.bundle().x509Authorities).toHaveLength(2);
    expect(ca.bundle().sequence).toBe(2);
    const newRoot = ca.status().roots.find((r) => r.state === "pending")!;
    expect(newRoot.activateAt).toEqual(at(400));
    expect(codeOf(await ca.rotateRoot(at(150)).catch((e) => e))).toBe("ca_root_pending");

    // nothing is signed under the pending root before its activation time
    expect(types(await ca.tick(at(399)))).toEqual([]);
    expect(await rootOf(ca, await mintAt(ca, at(399)), 399)).toBe(oldRoot);
    expect(ca.activeRootFingerprint()).toBe(oldFingerprint);

    const activated = await ca.tick(at(400));
    expect(types(activated)).toEqual(["root_activated", "ca_rotated"]);
    expect(activated[0]).toEqual({ type: "root_activated", serial: newRoot.serial, previous: oldRoot });
    expect(ca.bundleSequence()).toBe(2);
    expect(ca.activeRootFingerprint()).toBe(newRoot.sha256);
    expect(ca.status().roots.map((r) => [r.serial, r.state])).toEqual([
      [oldRoot, "retiring"],
      [newRoot.serial, "active"],
    ]);
    expect(storage.keyPems.has(oldRoot)).toBe(false);
    expect(await rootOf(ca, await mintAt(ca, at(401)), 401)).toBe(newRoot.serial);
    expect(await rootOf(ca, before, 401)).toBe(oldRoot);
  });

  test("the pending root survives a restart and is activated by the loaded CA", async () => {
    const { ca, storage } = await fresh();
    await ca.rotateRoot(at(100));
    const again = await CaManager.load({ settings: SMALL, storage, now: at(200) });
    expect(again.status()).toEqual(ca.status());
    expect(again.nextTickAt(at(200))).toEqual(at(400));
    expect(types(await again.tick(at(400)))).toEqual(["root_activated", "ca_rotated"]);
    const pending = ca.status().roots.find((r) => r.state === "pending")!;
    expect(await rootOf(again, await mintAt(again, at(401)), 401)).toBe(pending.serial);
  });

  test("the root rotates by itself root_rotate_before its end", async () => {
    const { ca } = await fresh();
    const end = ca.status().roots[0]!.notAfter.getTime();
    const due = (end - T0) / 1000 - SMALL.rootRotateBeforeSeconds;
    for (let s = 500; s < due; s += 500) {
      expect(types(await ca.tick(at(s))).filter((t) => t !== "ca_rotated")).toEqual([]);
    }
    const events = await ca.tick(at(due));
    expect(events.find((e) => e.type === "root_published")).toMatchObject({ reason: "auto", activateAt: at(due + 300) });
  });

  test("an expired retiring root leaves the bundle (sequence + 1); an unexpired one stays", async () => {
    const { ca } = await fresh(undefined, { ...SMALL, rootRotateBeforeSeconds: 0 });
    const oldRoot = ca.status().roots[0]!;
    await ca.rotateRoot(at(100));
    await ca.tick(at(400));
    const endS = (oldRoot.notAfter.getTime() - T0) / 1000;
    const atEnd = await ca.tick(at(endS));
    expect(types(atEnd)).not.toContain("ca_expired_dropped");
    expect(ca.bundle().x509Authorities).toHaveLength(2);
    const events = await ca.tick(at(endS + 1));
    expect(events.filter((e) => e.type !== "ca_rotated")).toEqual([
      { type: "ca_expired_dropped", serial: oldRoot.serial, notAfter: oldRoot.notAfter },
      { type: "bundle_updated", sequence: 3 },
    ]);
    expect(ca.bundle().x509Authorities).toHaveLength(1);
    expect(ca.bundle().sequence).toBe(3);
    expect(ca.status().roots.map((r) => r.state)).toEqual(["active"]);
    expect(serialOf(ca.bundle().x509Authorities[0]!)).toBe(ca.status().roots[0]!.serial);
  });

  test("with root_rotate_before 0 the root never rotates itself; once it ends the CA mints nothing (ca_expired)", async () => {
    const storage = new MemoryCaStorage();
    const ca = await CaManager.init({ trustDomain: TD, settings: { ...SMALL, rootRotateBeforeSeconds: 0 }, storage, now: at(0) });
    for (let s = 400; s <= 10_400; s += 400) {
      expect(types(await ca.tick(at(s))).filter((t) => t !== "ca_rotated")).toEqual([]);
      const due = ca.nextTickAt(at(s));
      expect(due === null || due > at(s)).toBe(true); // a signing CA capped by the root is not "due" again and again
    }
    expect(ca.status().roots).toHaveLength(1);
    expect(ca.nextTickAt(at(10_400))).toBeNull();
    expect(codeOf(await mintAt(ca, at(10_400)).catch((e) => e))).toBe("ca_expired");
    expect(codeOf(await ca.rotateSigning(at(10_400)).catch((e) => e))).toBe("ca_expired");
    // rotate-ca --root recovers after one refresh hint
    await ca.rotateRoot(at(10_400));
    await ca.tick(at(10_700));
    await verifyNow(ca, await mintAt(ca, at(10_701)), at(10_701));
  });
});

describe("failures and concurrency", () => {
  test("a state that cannot be saved keeps the old CA in use; the next rotation succeeds", async () => {
    class FailingOnce extends MemoryCaStorage {
      fail = false;
      override async save(state: Parameters<MemoryCaStorage["save"]>[0]): Promise<void> {
        if (this.fail) {
          this.fail = false;
          throw new Error("disk full");
        }
        return super.save(state);
      }
    }
    const storage = new FailingOnce();
    const ca = await CaManager.init({ trustDomain: TD, settings: SMALL, storage, now: at(0) });
    const before = ca.status();
    storage.fail = true;
    expect(String(await ca.rotateRoot(at(10)).catch((e) => e))).toContain("disk full");
    expect(ca.status()).toEqual(before);
    expect(ca.bundleSequence()).toBe(1);
    await verifyNow(ca, await mintAt(ca, at(11)), at(11));
    expect((await CaManager.load({ settings: SMALL, storage, now: at(11) })).status()).toEqual(before);
    expect(types(await ca.rotateRoot(at(12)))).toEqual(["root_published", "bundle_updated"]);
  });

  test("changes asked for at once run one after the other; minting goes on meanwhile", async () => {
    const { ca, storage } = await fresh();
    const first = ca.status().signing.serial;
    const [a, b, c, minted] = await Promise.all([ca.rotateSigning(at(10)), ca.rotateRoot(at(10)), ca.rotateSigning(at(10)), mintAt(ca, at(10))]);
    expect([a, b, c].map(types)).toEqual([["ca_rotated"], ["root_published", "bundle_updated"], ["ca_rotated"]]);
    const serial = (events: CaEvent[]) => (events[0] as { serial: string }).serial;
    expect(new Set([first, serial(a), serial(c)]).size).toBe(3);
    expect(ca.status().signing.serial).toBe(serial(c));
    await verifyNow(ca, minted, at(10));
    expect(storage.keyPems.size).toBe(3); // active root, pending root, the last signing CA
    expect((await CaManager.load({ settings: SMALL, storage, now: at(10) })).status()).toEqual(ca.status());
  });
});
