import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SecretStore, secretsDir } from "./store.ts";
import { SecretError } from "./errors.ts";

const root = mkdtempSync(join(tmpdir(), "tidegate-test-secrets-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = () => secretsDir(join(root, `state-${++n}`));
const mode = (p: string) => statSync(p).mode & 0o777;

async function codeOf(f: () => unknown): Promise<string> {
  try {
    await f();
  } catch (e) {
    return e instanceof SecretError ? e.code : `not a SecretError: ${String(e)}`;
  }
  return "no error";
}

describe("SecretStore", () => {
  test("a missing folder is an empty store, and reading it creates nothing", () => {
    const dir = freshDir();
    const s = SecretStore.open(dir);
    expect(s.get("github_token")).toBeNull();
    expect(s.names()).toEqual([]);
    expect(s.list()).toEqual([]);
    expect(existsSync(dir)).toBe(false);
  });

  test("round trip: set, get, replace, list, remove", async () => {
    const dir = freshDir();
    let clock = Date.parse("2025-03-01T10:00:00Z");
    const s = SecretStore.open(dir, { now: () => new Date(clock) });
    expect(await s.set("github_token", "ghp_first value")).toBe("created");
    expect(await s.set("other.key-1", "x")).toBe("created");
    expect(s.get("github_token")).toBe("ghp_first value");
    clock += 60_000;
    expect(await s.set("github_token", "ghp_second\tvalue")).toBe("replaced");
    expect(s.get("github_token")).toBe("ghp_second\tvalue");
    expect(s.names()).toEqual(["github_token", "other.key-1"]);
    expect(s.list()).toEqual([
      { name: "github_token", changedAt: "2025-03-01T10:01:00.000Z" },
      { name: "other.key-1", changedAt: "2025-03-01T10:00:00.000Z" },
    ]);
    expect(await s.remove("github_token")).toBe(true);
    expect(await s.remove("github_token")).toBe(false);
    expect(s.get("github_token")).toBeNull();
    expect(s.names()).toEqual(["other.key-1"]);
    expect(SecretStore.open(dir).get("other.key-1")).toBe("x");
  });

  test("modes: folder 0700, key and secrets.json 0600, key 32 bytes; no temporary or lock file left", async () => {
    const dir = freshDir();
    await SecretStore.open(dir).set("a", "v");
    expect(mode(dir)).toBe(0o700);
    expect(mode(join(dir, "key"))).toBe(0o600);
    expect(mode(join(dir, "secrets.json"))).toBe(0o600);
    expect(statSync(join(dir, "key")).size).toBe(32);
    expect(readdirSync(dir).sort()).toEqual(["key", "secrets.json"]);
  });

  test("a folder made too open is set back to 0700 by the next write", async () => {
    const dir = freshDir();
    const s = SecretStore.open(dir);
    await s.set("a", "v");
    require("node:fs").chmodSync(dir, 0o755);
    await s.set("b", "v");
    expect(mode(dir)).toBe(0o700);
  });

  test("values are encrypted at rest, with a fresh nonce each time", async () => {
    const dir = freshDir();
    const s = SecretStore.open(dir);
    const value = "plain-text-canary-0123456789";
    await s.set("a", value);
    await s.set("b", value);
    const raw = readFileSync(join(dir, "secrets.json"));
    expect(raw.toString("latin1")).not.toContain(value);
    expect(raw.toString("latin1")).not.toContain(Buffer.from(value).toString("base64").slice(0, 12));
    const doc = JSON.parse(raw.toString("utf8"));
    expect(doc.version).toBe(1);
    expect(doc.secrets.a.nonce).not.toBe(doc.secrets.b.nonce);
    expect(doc.secrets.a.ciphertext).not.toBe(doc.secrets.b.ciphertext);
    expect(Buffer.from(doc.secrets.a.ciphertext, "base64").length).toBe(value.length + 16);
  });

  test("a set by another store (the CLI) is seen by an open one (the agent) on its next get", async () => {
    const dir = freshDir();
    const agent = SecretStore.open(dir);
    expect(agent.get("api")).toBeNull();
    const cli = SecretStore.open(dir);
    await cli.set("api", "one");
    expect(agent.get("api")).toBe("one");
    for (let i = 0; i < 20; i++) {
      await cli.set("api", `value-${i}`);
      expect(agent.get("api")).toBe(`value-${i}`);
    }
    await cli.remove("api");
    expect(agent.get("api")).toBeNull();
  });

  describe("recheckMs: the file looked at most once per window, invalidate() forcing a look", () => {
    const agentOn = (dir: string) => {
      const clock = { t: 1000 };
      return { clock, agent: SecretStore.open(dir, { recheckMs: 1000, clockMs: () => clock.t }) };
    };
    /** A store holding api = "one", written by `cli`; `agent` has read it. */
    const withOne = async () => {
      const dir = freshDir();
      const cli = SecretStore.open(dir);
      await cli.set("api", "one");
      const { clock, agent } = agentOn(dir);
      expect(agent.get("api")).toBe("one");
      return { dir, cli, clock, agent };
    };

    test("inside the window a change is not seen; at its end it is", async () => {
      const { cli, clock, agent } = await withOne();
      await cli.set("api", "two");
      clock.t += 999;
      expect(agent.get("api")).toBe("one");
      clock.t += 1;
      expect(agent.get("api")).toBe("two");
    });

    test("invalidate(): the next get sees the change at once (what agent.sock's POST /v1/secrets/changed does)", async () => {
      const { cli, clock, agent } = await withOne();
      await cli.set("api", "two");
      agent.invalidate();
      expect(agent.get("api")).toBe("two");
      await cli.remove("api");
      clock.t += 10;
      expect(agent.get("api")).toBe("two"); // inside the window again
      agent.invalidate();
      expect(agent.get("api")).toBeNull();
    });

    test("a clock that went back is not inside the window: the file is looked at", async () => {
      const { cli, clock, agent } = await withOne();
      await cli.set("api", "two");
      clock.t -= 1;
      expect(agent.get("api")).toBe("two");
    });

    test("a store's own set and remove are seen by its next get, inside the window", async () => {
      const dir = freshDir();
      const { agent } = agentOn(dir);
      expect(agent.get("api")).toBeNull();
      await agent.set("api", "mine");
      expect(agent.get("api")).toBe("mine");
      await agent.remove("api");
      expect(agent.get("api")).toBeNull();
    });

    test("a file that no longer parses throws on every get, inside the window too: nothing from the older reading", async () => {
      const { dir, clock, agent } = await withOne();
      writeFileSync(join(dir, "secrets.json"), "not json", { mode: 0o600 });
      agent.invalidate();
      const first = await codeOf(() => agent.get("api"));
      expect(first).not.toBe("no error");
      clock.t += 1;
      expect(await codeOf(() => agent.get("api"))).toBe(first);
    });
  });

  test("values are decrypted once per reading of the file", async () => {
    const dir = freshDir();
    const s = SecretStore.open(dir);
    await s.set("api", "cached");
    expect(s.get("api")).toBe("cached");
    // The key file is not read again while secrets.json is unchanged.
    writeFileSync(join(dir, "key"), new Uint8Array(32).fill(9), { mode: 0o600 });
    expect(s.get("api")).toBe("cached");
    expect(await codeOf(() => SecretStore.open(dir).get("api"))).toBe("secret_decrypt_failed");
  });

  test("concurrent writers lose nothing", async () => {
    const dir = freshDir();
    const stores = [SecretStore.open(dir), SecretStore.open(dir), SecretStore.open(dir)];
    await Promise.all(Array.from({ length: 30 }, (_, i) => stores[i % 3]!.set(`k${i}`, `v${i}`)));
    const s = SecretStore.open(dir);
    expect(s.names().length).toBe(30);
    for (let i = 0; i < 30; i++) expect(s.get(`k${i}`)).toBe(`v${i}`);
  });

  test("a bad name or value is refused before anything is written", async () => {
    const dir = freshDir();
    const s = SecretStore.open(dir);
    expect(await codeOf(() => s.set("bad name", "v"))).toBe("secret_bad_name");
    expect(await codeOf(() => s.set("ok", ""))).toBe("secret_bad_value");
    expect(await codeOf(() => s.set("ok", "a\r\nX-Injected: 1"))).toBe("secret_bad_value");
    expect(await codeOf(() => s.get("../key"))).toBe("secret_bad_name");
    expect(await codeOf(() => s.remove("a/b"))).toBe("secret_bad_name");
    expect(existsSync(dir)).toBe(false);
  });
});

describe("the writers' lock", () => {
  test("a lock left by a process that is gone is taken over", async () => {
    const dir = freshDir();
    const s = SecretStore.open(dir);
    await s.set("a", "1");
    const dead = Bun.spawnSync(["true"]).pid;
    writeFileSync(join(dir, "lock"), `${dead} stale\n`, { mode: 0o600 });
    await s.set("b", "2");
    expect(s.names()).toEqual(["a", "b"]);
    expect(existsSync(join(dir, "lock"))).toBe(false);
  });

  test("a lock held by a live process: secret_store_busy after the wait, and nothing written", async () => {
    const dir = freshDir();
    const s = SecretStore.open(dir, { lockWaitMs: 100 });
    await s.set("a", "1");
    writeFileSync(join(dir, "lock"), `${process.pid} someone-else\n`, { mode: 0o600 });
    const started = Date.now();
    expect(await codeOf(() => s.set("b", "2"))).toBe("secret_store_busy");
    expect(await codeOf(() => s.remove("a"))).toBe("secret_store_busy");
    expect(Date.now() - started).toBeGreaterThanOrEqual(200);
    expect(s.names()).toEqual(["a"]);
    expect(readFileSync(join(dir, "lock"), "utf8")).toBe(`${process.pid} someone-else\n`);
  });
});
