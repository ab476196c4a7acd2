import { Database } from "bun:sqlite";
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, fdatasync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { APPLICATION_ID, LATEST_VERSION, MIGRATIONS } from "./migrations.ts";
import { SqliteDatastore } from "./sqlite.ts";
import { StoreError, type StoreErrorCode } from "./errors.ts";
import { fileHash, tempDir } from "./test-support.ts";
import { rejectionCode } from "../../../test/shim.ts";

let tmp: ReturnType<typeof tempDir>;
beforeEach(() => {
  tmp = tempDir();
});
afterEach(() => tmp.cleanup());

const T0 = new Date("2030-01-01T00:00:00Z");

const codeOf = (p: Promise<unknown>) => rejectionCode(p, StoreError);

/** A tidegate store with a few hundred rows, closed, so the file has many pages. */
async function filledStore(path: string): Promise<void> {
  const s = await SqliteDatastore.open(path);
  for (let i = 0; i < 300; i++) {
    await s.recordIssued({
      serial: (i + 1).toString(16),
      spiffeId: `spiffe://example.org/w/${"x".repeat(200)}/${i}`,
      kind: "workload",
      nodeName: "n",
      entryId: null,
      notBefore: T0,
      notAfter: T0,
      issuedAt: T0,
    });
  }
  await s.close();
}

describe("migrations", () => {
  test("are numbered 1..n in order", () => {
    expect(MIGRATIONS.map((m) => m.version)).toEqual(MIGRATIONS.map((_, i) => i + 1));
    expect(LATEST_VERSION).toBe(MIGRATIONS.length);
  });

  test("a new file is created 0600 (directory 0700), marked, and migrated to the latest version", async () => {
    const path = tmp.path("state/server.db");
    const s = await SqliteDatastore.open(path);
    await s.close();
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(tmp.path("state")).mode & 0o777).toBe(0o700);
    const db = new Database(path, { readonly: true });
    expect(db.query("PRAGMA user_version").get()).toEqual({ user_version: LATEST_VERSION });
    expect(db.query("PRAGMA application_id").get()).toEqual({ application_id: APPLICATION_ID });
    expect(db.query("PRAGMA journal_mode").get()).toEqual({ journal_mode: "wal" });
    const tables = db.query("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").all();
    expect(tables.map((t) => (t as { name: string }).name)).toEqual([
      "attested_nodes",
      "bundle_history",
      "issued_certificates",
      "join_tokens",
      "registration_entries",
      "server_state",
    ]);
    db.close();
  });

  test("an empty existing file is initialised (SQLite reads it as an empty database)", async () => {
    const path = tmp.path("empty.db");
    writeFileSync(path, "");
    const s = await SqliteDatastore.open(path);
    expect(await s.countEntries()).toBe(0);
    await s.close();
  });

  test("reopening keeps the data and does not migrate again", async () => {
    const path = tmp.path("s.db");
    const a = await SqliteDatastore.open(path);
    const e = await a.createEntry({ spiffeId: "spiffe://td/w", parentId: "spiffe://td/tidegate/agent/n", selectors: ["unix:uid:1"], ttlSeconds: 60, createdAt: T0 });
    await a.setState("ca", "v1");
    await a.close();
    const b = await SqliteDatastore.open(path);
    expect(await b.getEntry(e.id)).toEqual(e);
    expect(await b.getState("ca")).toBe("v1");
    await b.close();
  });

  test("close is idempotent and a closed store rejects with store_closed", async () => {
    const s = await SqliteDatastore.open(tmp.path("s.db"));
    await s.close();
    await s.close();
    expect(await codeOf(s.countEntries())).toBe("store_closed");
  });
});

describe("read-only", () => {
  test("reads a current store and refuses writes with store_readonly", async () => {
    const path = tmp.path("s.db");
    const rw = await SqliteDatastore.open(path);
    await rw.setState("k", "v");
    await rw.close();
    const ro = await SqliteDatastore.open(path, { readonly: true });
    expect(await ro.getState("k")).toBe("v");
    expect(await codeOf(ro.setState("k", "w"))).toBe("store_readonly");
    await ro.close();
  });

  test.each([
    ["a missing file", "store_missing", () => {}],
    ["an empty file (schema 0)", "store_outdated", (p: string) => writeFileSync(p, "")],
  ])("refuses %s with %s and creates nothing", async (_name, code, setup) => {
    const path = tmp.path("s.db");
    setup(path);
    expect(await codeOf(SqliteDatastore.open(path, { readonly: true }))).toBe(code);
    expect(existsSync(path)).toBe(code !== "store_missing");
  });
});

describe("refused files are left byte for byte as they were", () => {
  const cases: [string, StoreErrorCode, (path: string) => Promise<void> | void][] = [
    ["random bytes", "store_corrupt", (p) => writeFileSync(p, crypto.getRandomValues(new Uint8Array(8192)))],
    ["a file shorter than the SQLite header", "store_corrupt", (p) => writeFileSync(p, "SQLite format 3\0abc")],
    ["a text file", "store_corrupt", (p) => writeFileSync(p, "trust_domain: example.org\n")],
    [
      "a truncated tidegate store",
      "store_corrupt",
      async (p) => {
        await filledStore(p);
        truncateSync(p, Math.floor(statSync(p).size / 2));
      },
    ],
    [
      "a tidegate store with its pages overwritten after the header",
      "store_corrupt",
      async (p) => {
        await filledStore(p);
        const bytes = readFileSync(p);
        bytes.fill(0xa5, 4096 * 2);
        writeFileSync(p, bytes);
      },
    ],
    [
      "a SQLite database of another application",
      "store_foreign",
      (p) => {
        const db = new Database(p);
        db.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('hello')");
        db.close();
      },
    ],
    [
      "another application's database with its own application id",
      "store_foreign",
      (p) => {
        const db = new Database(p);
        db.exec("PRAGMA application_id = 1; PRAGMA user_version = 1");
        db.close();
      },
    ],
    [
      "a tidegate store with a newer schema",
      "store_too_new",
      async (p) => {
        await (await SqliteDatastore.open(p)).close();
        const db = new Database(p);
        db.exec(`PRAGMA user_version = ${LATEST_VERSION + 1}`);
        db.exec("PRAGMA journal_mode = DELETE");
        db.close();
      },
    ],
  ];

  test.each(cases)("%s: %s", async (_name, code, make) => {
    const path = tmp.path("server.db");
    await make(path);
    const before = fileHash(path);
    let error: unknown;
    try {
      await SqliteDatastore.open(path);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).code).toBe(code);
    expect((error as StoreError).message).toContain(JSON.stringify(path));
    expect(fileHash(path)).toBe(before);
    expect(existsSync(`${path}-wal`)).toBe(false);
  });

  test("a directory in the file's place: store_io", async () => {
    const path = tmp.path("server.db");
    mkdirSync(path);
    expect(await codeOf(SqliteDatastore.open(path))).toBe("store_io");
  });

  test("a copy of a good store still opens (the refusals above are not about copying)", async () => {
    const path = tmp.path("a.db");
    await filledStore(path);
    copyFileSync(path, tmp.path("b.db"));
    const s = await SqliteDatastore.open(tmp.path("b.db"));
    expect(await s.countIssued()).toBe(300);
    await s.close();
  });
});

describe("exclusive hold within one process", () => {
  test("a second open of the same file is refused with store_locked until the first closes", async () => {
    const path = tmp.path("s.db");
    const first = await SqliteDatastore.open(path);
    let error: unknown;
    try {
      await SqliteDatastore.open(path, { busyTimeoutMs: 10 });
    } catch (e) {
      error = e;
    }
    expect((error as StoreError).code).toBe("store_locked");
    expect((error as StoreError).message).toBe(
      `store: ${JSON.stringify(path)} is locked by another process (is another tidegate server running?)`,
    );
    expect(await codeOf(SqliteDatastore.open(path, { readonly: true, busyTimeoutMs: 10 }))).toBe("store_locked");
    await first.close();
    const second = await SqliteDatastore.open(path);
    await second.close();
  });
});

describe("background WAL sync", () => {
  async function until(ok: () => boolean): Promise<void> {
    for (const deadline = Date.now() + 5000; !ok(); await Bun.sleep(5)) if (Date.now() > deadline) throw new Error("timed out");
  }
  const issued = (i: number) => ({ serial: (i + 1).toString(16), spiffeId: `spiffe://example.org/w/${i}`, kind: "workload" as const, nodeName: "n", entryId: null, notBefore: T0, notAfter: T0, issuedAt: T0 });
  /** A store whose background syncs are recorded: the path each fd names, at the time of the sync. */
  async function recorded(options: { walSyncMs?: number; synchronous?: "normal" | "full"; readonly?: boolean } = {}) {
    const synced: string[] = [];
    const path = tmp.path("s.db");
    const store = await SqliteDatastore.open(path, {
      walSyncMs: 5,
      ...options,
      syncFile: (fd, done) => {
        synced.push(readlinkSync(`/proc/self/fd/${fd}`));
        fdatasync(fd, done);
      },
    });
    return { store, path, synced };
  }

  test("after writes, the WAL file is fdatasync'd in the background, at most once per interval", async () => {
    const { store, path, synced } = await recorded();
    try {
      await Bun.sleep(30);
      expect(synced).toEqual([]); // opening wrote nothing since: no sync
      const t0 = performance.now();
      await Promise.all(Array.from({ length: 50 }, (_, i) => store.recordIssued(issued(i))));
      await store.setState("k", "v");
      await until(() => synced.length >= 1);
      await Bun.sleep(30);
      // not one sync per write (51 of them), and at most one per 5 ms interval since the first
      // (a loaded machine spreads the writes over more than one interval)
      expect(synced.length).toBeLessThanOrEqual(Math.min(25, Math.ceil((performance.now() - t0) / 5) + 1));
      expect(new Set(synced)).toEqual(new Set([`${path}-wal`]));
      const before = synced.length;
      await store.getState("k"); // a read dirties nothing
      await Bun.sleep(30);
      expect(synced.length).toBe(before);
    } finally {
      await store.close();
    }
  });

  test("pruning that removes nothing (the server's every second) syncs nothing; pruning that removes rows does", async () => {
    const { store, synced } = await recorded();
    try {
      const now = new Date("2026-01-01T00:00:00Z");
      await store.createJoinToken({ tokenHash: "ab".repeat(32), nodeName: "node-1", expiresAt: new Date(now.getTime() + 60_000), now });
      await until(() => synced.length >= 1);
      await Bun.sleep(30);
      const before = synced.length;
      for (let i = 0; i < 5; i++) expect(await store.pruneJoinTokens(now)).toBe(0);
      expect(await store.pruneIssued(now)).toBe(0);
      await Bun.sleep(50);
      expect(synced.length).toBe(before);
      expect(await store.pruneJoinTokens(new Date(now.getTime() + 120_000))).toBe(1);
      await until(() => synced.length > before);
    } finally {
      await store.close();
    }
  });

  test("close stops it and closes the WAL's descriptor; the data is all there after reopening", async () => {
    const { store, path, synced } = await recorded();
    await store.recordIssued(issued(1));
    await until(() => synced.length === 1);
    const walFds = () => readdirSync("/proc/self/fd").filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`).startsWith(`${path}-wal`);
      } catch {
        return false;
      }
    });
    expect(walFds().length).toBeGreaterThanOrEqual(1);
    await store.recordIssued(issued(2));
    await store.close();
    await Bun.sleep(30);
    expect(synced.length).toBe(1); // the write before close armed a sync that close cancelled
    expect(walFds()).toEqual([]);
    const again = await SqliteDatastore.open(path, { walSyncMs: 0 });
    expect(await again.countIssued()).toBe(2);
    await again.close();
  });

  test("off with walSyncMs 0, with synchronous full (SQLite syncs every commit), and read-only", async () => {
    for (const [i, options] of [{ walSyncMs: 0 }, { synchronous: "full" as const }].entries()) {
      const { store, synced } = await recorded(options);
      await store.recordIssued(issued(i));
      await store.setState("k", "v");
      await Bun.sleep(30);
      expect(synced).toEqual([]);
      await store.close();
    }
    const { store, synced } = await recorded({ readonly: true });
    await store.getState("k");
    await Bun.sleep(30);
    expect(synced).toEqual([]);
    await store.close();
  });
});
