import { describe, expect, test } from "bun:test";
import { StoreError } from "./errors.ts";
import { sha256Hex, storePerTest } from "./test-support.ts";
import { rejectionOf } from "../../../test/shim.ts";

const t = storePerTest();

const T0 = new Date("2030-01-01T00:00:00Z");
const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);
const TOKEN = "tdjt_Secret-Token-Value-0123456789";
const HASH = sha256Hex(TOKEN);

const rejection = (p: Promise<unknown>) => rejectionOf(p, StoreError);

describe("join tokens", () => {
  test("stored by hash with node, times and no use", async () => {
    await t.store.createJoinToken({ tokenHash: HASH, nodeName: "node-1", expiresAt: at(600), now: T0 });
    expect(await t.store.getJoinToken(HASH)).toEqual({ tokenHash: HASH, nodeName: "node-1", createdAt: T0, expiresAt: at(600), usedAt: null });
    expect((await rejection(t.store.createJoinToken({ tokenHash: HASH, nodeName: "node-2", expiresAt: at(600), now: T0 }))).code).toBe(
      "store_token_exists",
    );
  });

  test("consumed once: the node name, then store_token_used (also after expiry)", async () => {
    await t.store.createJoinToken({ tokenHash: HASH, nodeName: "node-1", expiresAt: at(600), now: T0 });
    expect(await t.store.consumeJoinToken(HASH, at(10))).toBe("node-1");
    expect((await t.store.getJoinToken(HASH))?.usedAt).toEqual(at(10));
    const again = await rejection(t.store.consumeJoinToken(HASH, at(11)));
    expect(again.code).toBe("store_token_used");
    expect(again.message).toBe('store: the join token for node "node-1" was already used at 2030-01-01T00:00:10.000Z');
    expect((await rejection(t.store.consumeJoinToken(HASH, at(601)))).code).toBe("store_token_used");
  });

  test("expired from expiresAt on, and an expired token stays unused", async () => {
    await t.store.createJoinToken({ tokenHash: HASH, nodeName: "node-1", expiresAt: at(600), now: T0 });
    const err = await rejection(t.store.consumeJoinToken(HASH, at(600)));
    expect(err.code).toBe("store_token_expired");
    expect(err.message).toBe('store: the join token for node "node-1" expired at 2030-01-01T00:10:00.000Z');
    expect((await t.store.getJoinToken(HASH))?.usedAt).toBeNull();
    expect(await t.store.consumeJoinToken(HASH, at(599.999))).toBe("node-1");
  });

  test("unknown", async () => {
    expect((await rejection(t.store.consumeJoinToken(sha256Hex("other"), T0))).code).toBe("store_token_unknown");
  });

  test("prune deletes the tokens expired at now, used or not", async () => {
    for (const [name, expires] of [["a", 10], ["b", 20], ["c", 30]] as const) {
      await t.store.createJoinToken({ tokenHash: sha256Hex(name), nodeName: name, expiresAt: at(expires), now: T0 });
    }
    await t.store.consumeJoinToken(sha256Hex("a"), at(1));
    expect(await t.store.pruneJoinTokens(at(20))).toBe(2);
    expect(await t.store.getJoinToken(sha256Hex("a"))).toBeNull();
    expect(await t.store.getJoinToken(sha256Hex("b"))).toBeNull();
    expect(await t.store.consumeJoinToken(sha256Hex("c"), at(21))).toBe("c");
  });

  test("a raw token passed where a hash belongs is refused, and never appears in the error", async () => {
    const hexToken = "ab".repeat(40); // hex-looking but not 64 digits
    for (const secret of [TOKEN, hexToken, HASH.toUpperCase()]) {
      for (const p of [
        t.store.createJoinToken({ tokenHash: secret, nodeName: "node-1", expiresAt: at(600), now: T0 }),
        t.store.consumeJoinToken(secret, T0),
        t.store.getJoinToken(secret),
      ]) {
        const err = await rejection(p);
        expect(err.code).toBe("store_invalid_record");
        expect(err.message).not.toContain(secret);
        expect(err.message.toLowerCase()).not.toContain(HASH);
      }
    }
  });

  test("no token error message contains the token's hash", async () => {
    await t.store.createJoinToken({ tokenHash: HASH, nodeName: "node-1", expiresAt: at(600), now: T0 });
    const errors = [
      await rejection(t.store.createJoinToken({ tokenHash: HASH, nodeName: "node-1", expiresAt: at(600), now: T0 })),
      await rejection(t.store.consumeJoinToken(HASH, at(700))),
    ];
    await t.store.consumeJoinToken(HASH, at(1));
    errors.push(await rejection(t.store.consumeJoinToken(HASH, at(2))));
    for (const e of errors) expect(e.message).not.toContain(HASH);
  });
});
