// init, start, stop and restart of the server on a temporary state directory: nothing is
// overwritten, an uninitialised or locked state is refused with a clear error, stop cleans up,
// and a restart keeps the CA, the entries and the nodes.
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect } from "node:net";
import { memoryLogger } from "../runtime/log.ts";
import { parseServerConfig } from "./config.ts";
import { initServer, serverPaths } from "./init.ts";
import { startServer } from "./server.ts";
import { joinNode, tempPlaces, TEST_TD, TEST_YAML, tlsFetch, type TestServer } from "./test-server.ts";
import { callUnix } from "../runtime/unix-http.ts";

const T = 20_000;

async function rejection(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return e as { code?: string; message: string };
  }
  throw new Error("expected a rejection");
}

describe("server lifecycle", () => {
  test("init creates a 0700 state directory and refuses to run twice", async () => {
    const { dir, places } = tempPlaces();
    try {
      const settings = parseServerConfig(TEST_YAML, "t.yaml", places);
      const { paths, fingerprint } = await initServer({ places, settings, trustDomain: TEST_TD });
      expect(fingerprint).toMatch(/^[0-9a-f]{64}$/);
      expect(statSync(paths.dir).mode & 0o777).toBe(0o700);
      expect(existsSync(paths.datastore)).toBe(true);
      const again = await rejection(initServer({ places, settings, trustDomain: TEST_TD }));
      expect(again.code).toBe("server_exists");
      rmSync(paths.datastore);
      const caOnly = await rejection(initServer({ places, settings, trustDomain: TEST_TD }));
      expect(caOnly.code).toBe("server_exists");
      expect(caOnly.message).toContain("CA");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, T);

  test("an init cut between the CA and the datastore is made again by the next init, and is never served", async () => {
    const { dir, places } = tempPlaces();
    try {
      const settings = parseServerConfig(TEST_YAML, "t.yaml", places);
      const paths = serverPaths(places);
      // A folder where SQLite wants its WAL file: the CA is written, then opening the datastore
      // fails, as a kill or a power loss at that moment would leave it.
      mkdirSync(`${paths.datastore}-wal`, { recursive: true });
      expect((await rejection(initServer({ places, settings, trustDomain: TEST_TD }))).code).toBe("store_io");
      rmSync(`${paths.datastore}-wal`, { recursive: true });
      const cutRoot = readdirSync(paths.caDir).sort();
      expect(cutRoot).toContain("ca.json");
      const served = await rejection(startServer({ places, settings, logger: memoryLogger() }));
      expect(served.code).toBe("server_init_incomplete");
      expect(served.message).toContain(paths.dir);
      const { fingerprint } = await initServer({ places, settings, trustDomain: TEST_TD });
      expect(readdirSync(paths.caDir).sort()).not.toEqual(cutRoot); // new keys: the cut ones were never used
      expect(existsSync(join(paths.dir, "init-incomplete"))).toBe(false);
      const server = await startServer({ places, settings, logger: memoryLogger() });
      expect(server.trustDomain).toBe(TEST_TD);
      await server.stop();
      expect(fingerprint).toMatch(/^[0-9a-f]{64}$/);
      // Finished, it is never made again.
      expect((await rejection(initServer({ places, settings, trustDomain: TEST_TD }))).code).toBe("server_exists");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, T);

  test("an instance's free ports are chosen once and kept across restarts", async () => {
    const { dir, places } = tempPlaces();
    try {
      const settings = parseServerConfig(TEST_YAML, "t.yaml", places);
      expect(settings.listen.public.port).toBe(0);
      await initServer({ places, settings, trustDomain: TEST_TD });
      const first = await startServer({ places, settings, logger: memoryLogger() });
      const ports = [first.public.port, first.api.port];
      expect(ports.every((p) => p > 0)).toBe(true);
      await first.stop();
      const second = await startServer({ places, settings, logger: memoryLogger() });
      expect([second.public.port, second.api.port]).toEqual(ports);
      await second.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, T);

  test("serving a state directory that was never initialised is refused, and creates nothing", async () => {
    const { dir, places } = tempPlaces();
    try {
      const settings = parseServerConfig(TEST_YAML, "t.yaml", places);
      const err = await rejection(startServer({ places, settings, logger: memoryLogger() }));
      expect(err.code).toBe("server_not_initialised");
      expect(existsSync(join(places.stateDir, "server", "datastore.db"))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, T);

  test("a datastore of another trust domain than the CA's is refused: server_state_mismatch", async () => {
    const a = tempPlaces();
    const b = tempPlaces();
    try {
      const settings = parseServerConfig(TEST_YAML, "t.yaml", a.places);
      const pa = await initServer({ places: a.places, settings, trustDomain: "a.example" });
      const pb = await initServer({ places: b.places, settings, trustDomain: "b.example" });
      rmSync(pa.paths.datastore);
      Bun.spawnSync(["cp", pb.paths.datastore, pa.paths.datastore]);
      const err = await rejection(startServer({ places: a.places, settings, logger: memoryLogger() }));
      expect(err.code).toBe("server_state_mismatch");
    } finally {
      rmSync(a.dir, { recursive: true, force: true });
      rmSync(b.dir, { recursive: true, force: true });
    }
  }, T);

  test("a corrupt datastore stops the start with store_corrupt", async () => {
    const { dir, places } = tempPlaces();
    try {
      const settings = parseServerConfig(TEST_YAML, "t.yaml", places);
      const { paths } = await initServer({ places, settings, trustDomain: TEST_TD });
      writeFileSync(paths.datastore, "this is not sqlite, and it is long enough to have a header of sorts..........................................");
      const err = await rejection(startServer({ places, settings, logger: memoryLogger() }));
      expect(err.code).toBe("store_corrupt");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, T);

  test("a second server on the same state gets store_locked; the first keeps serving; stop cleans up; a restart keeps everything", async () => {
    const { dir, places } = tempPlaces();
    try {
      const settings = parseServerConfig(TEST_YAML, "t.yaml", places);
      await initServer({ places, settings, trustDomain: TEST_TD });
      const first = await startServer({ places, settings, logger: memoryLogger() });
      const t = { server: first, admin: (m: string, u: string, b?: unknown) => callUnix(first.socketPath, "the server", m, u, b) } as unknown as TestServer;
      await joinNode(t, "keep");
      const entry = await callUnix(first.socketPath, "the server", "POST", "/v1/entries", { spiffe_id: `spiffe://${TEST_TD}/w`, parent_id: `spiffe://${TEST_TD}/tidegate/agent/keep`, selectors: ["unix:uid:1000"] });
      const fingerprint = first.ca.activeRootFingerprint();
      const err = await rejection(startServer({ places, settings, logger: memoryLogger() }));
      expect(err.code).toBe("store_locked");
      expect((await tlsFetch(`${first.publicUrl}/.well-known/spiffe-bundle`, { caPem: first.rootsPem() })).status).toBe(200);
      await first.stop();
      expect(existsSync(first.socketPath)).toBe(false);
      expect(existsSync(first.paths.serverJson)).toBe(false);
      const second = await startServer({ places, settings, logger: memoryLogger() });
      try {
        expect(second.ca.activeRootFingerprint()).toBe(fingerprint);
        expect((await second.store.getEntry((entry.body as { id: string }).id))?.spiffeId).toBe(`spiffe://${TEST_TD}/w`);
        expect(await second.store.getNode("keep")).not.toBeNull();
      } finally {
        await second.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, T);

  test("stop finishes when server.json was removed under it: listeners, socket and datastore released", async () => {
    const { dir, places } = tempPlaces();
    try {
      const settings = parseServerConfig(TEST_YAML, "t.yaml", places);
      await initServer({ places, settings, trustDomain: TEST_TD });
      const first = await startServer({ places, settings, logger: memoryLogger() });
      const port = first.public.port;
      rmSync(first.paths.serverJson);
      await first.stop();
      expect(existsSync(first.socketPath)).toBe(false);
      const refused = await new Promise<boolean>((resolve) => {
        const s = connect({ host: "127.0.0.1", port }, () => resolve(false));
        s.on("error", () => resolve(true));
        s.on("connect", () => s.destroy());
      });
      expect(refused).toBe(true);
      const second = await startServer({ places, settings, logger: memoryLogger() }); // the datastore's lock was released
      await second.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, T);

  test("a listener that cannot bind undoes the start: socket and datastore released", async () => {
    const { dir, places } = tempPlaces();
    try {
      const base = parseServerConfig(TEST_YAML, "t.yaml", places);
      await initServer({ places, settings: base, trustDomain: TEST_TD });
      const blocker = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
      try {
        const settings = { ...base, listen: { ...base.listen, public: { host: "127.0.0.1", port: blocker.port } } };
        const err = await rejection(startServer({ places, settings, logger: memoryLogger() }));
        expect(err.message).toMatch(/EADDRINUSE|in use/i);
      } finally {
        blocker.stop(true);
      }
      mkdirSync(places.runDir, { recursive: true });
      const ok = await startServer({ places, settings: base, logger: memoryLogger() });
      await ok.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, T);
});
