/**
 * Guarantees that only show across processes: the exclusive hold keeps a second server out, a
 * join token is consumed once however many processes race for it, and a recorded certificate
 * survives SIGKILL of the process that recorded it.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, statSync } from "node:fs";
import { SqliteDatastore } from "./sqlite.ts";
import { runChild, sha256Hex, tempDir } from "./test-support.ts";

let tmp: ReturnType<typeof tempDir>;
beforeEach(() => {
  tmp = tempDir();
});
afterEach(() => tmp.cleanup());

describe("two processes", () => {
  test("a second process's open is store_locked while the first holds the file, and succeeds after close", async () => {
    const path = tmp.path("server.db");
    const first = await SqliteDatastore.open(path);
    const refused = await runChild(["open", path]);
    expect(refused.stdout.trim()).toBe("store_locked");
    await first.close();
    const allowed = await runChild(["open", path]);
    expect(allowed.stdout.trim()).toBe("ok");
  });

  test("racing to consume the same 40 tokens: each is won by exactly one process", async () => {
    const path = tmp.path("server.db");
    const store = await SqliteDatastore.open(path, { exclusive: false });
    const now = new Date();
    const hashes: string[] = [];
    for (let i = 0; i < 40; i++) {
      const h = sha256Hex(`token-${i}`);
      hashes.push(h);
      await store.createJoinToken({ tokenHash: h, nodeName: `node-${i}`, expiresAt: new Date(now.getTime() + 60_000), now });
    }
    await store.close();
    const startAt = String(Date.now() + 400);
    const children = await Promise.all([0, 1].map(() => runChild(["consume", path, startAt, hashes.join(",")])));
    const results = children.map((c) => {
      expect(c.stderr).toBe("");
      return JSON.parse(c.stdout) as string[];
    });
    for (let i = 0; i < hashes.length; i++) {
      const outcomes = results.map((r) => r[i]).sort();
      expect(outcomes).toEqual([`node-${i}`, "store_token_used"]);
    }
    const after = await SqliteDatastore.open(path);
    for (const h of hashes) expect((await after.getJoinToken(h))?.usedAt).not.toBeNull();
    await after.close();
  });

  test("a certificate recorded just before SIGKILL is there on reopen", async () => {
    const path = tmp.path("server.db");
    await (await SqliteDatastore.open(path)).close();
    const child = await runChild(["record", path, "c0ffee"]);
    expect(child.stdout).toBe("done\n");
    expect(child.signalCode).toBe("SIGKILL");
    // The record is in the WAL only: the killed process never checkpointed it into the file.
    expect(existsSync(`${path}-wal`)).toBe(true);
    expect(statSync(`${path}-wal`).size).toBeGreaterThan(0);
    const store = await SqliteDatastore.open(path);
    expect((await store.getIssued("c0ffee"))?.spiffeId).toBe("spiffe://example.org/crash");
    await store.close();
    expect(existsSync(`${path}-wal`)).toBe(false);
  });
});
