// The operator verbs against a real server in this process: server init / rotate-ca, entry
// create|list|show|delete, token create; usage errors exit 2, server errors exit 1 with the code.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { main } from "./main.ts";
import { startTestServer, tempPlaces, TEST_TD, type TestServer } from "../server/test-server.ts";
import type { Places } from "../runtime/instance.ts";

const T = 20_000;

async function run(places: Places, args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const flags = ["--state-dir", places.stateDir, "--run-dir", places.runDir, "--server-config", places.serverConfig, "--audit-dir", places.auditDir];
  const code = await main([...args, ...flags], { out: (t) => void (out += t), err: (t) => void (err += t) }, {});
  return { code, out, err };
}

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
}, T);
afterAll(async () => t?.close());

describe("tidegate server", () => {
  test("init prints the root fingerprint; a second init refuses with server_exists; --trust-domain is required", async () => {
    const { dir, places } = tempPlaces();
    try {
      const ok = await run(places, ["server", "init", "--trust-domain", "corp.example"]);
      expect(ok.code).toBe(0);
      expect(ok.out).toMatch(/root fingerprint \(sha256\): [0-9a-f]{64}\n/);
      const again = await run(places, ["server", "init", "--trust-domain", "corp.example"]);
      expect(again.code).toBe(1);
      expect(again.err).toContain("[server_exists]");
      expect((await run(places, ["server", "init"])).code).toBe(2);
      const bad = await run(places, ["server", "init", "--trust-domain", "Bad_TD"]);
      expect(bad.code).toBe(2);
      expect(bad.err).toContain("--trust-domain");
      expect(bad.err).toContain("Bad_TD");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, T);

  test("verbs say the server is not running when its socket is not there", async () => {
    const { dir, places } = tempPlaces();
    try {
      for (const args of [["entry", "list"], ["token", "create", "--node", "n"], ["server", "rotate-ca"]]) {
        const r = await run(places, args);
        expect(r.code).toBe(1);
        expect(r.err).toContain("the server is not running");
        expect(r.err).toContain("[server_not_running]");
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("an unknown sub-command is a usage error", async () => {
    expect((await run(t.places, ["server", "start"])).code).toBe(2);
  });

  test("rotate-ca prints the new signing CA", async () => {
    const before = t.server.ca.status().signing.serial;
    const r = await run(t.places, ["server", "rotate-ca"]);
    expect(r.code).toBe(0);
    const after = t.server.ca.status().signing.serial;
    expect(after).not.toBe(before);
    expect(r.out).toContain(`signing  ${after}`);
  }, T);
});

describe("tidegate token create", () => {
  test("prints the token, the fingerprint, and the commands that put the token in a 0600 file and join with it", async () => {
    const r = await run(t.places, ["token", "create", "--node", "edge-1", "--ttl", "2m"]);
    expect(r.code).toBe(0);
    const token = /^token: ([A-Za-z0-9_-]{43})$/m.exec(r.out)?.[1];
    const fp = /^server fingerprint \(sha256\): ([0-9a-f]{64})$/m.exec(r.out)?.[1];
    expect(token).toBeDefined();
    expect(fp).toBe(t.server.ca.activeRootFingerprint());
    expect(r.out).toContain(`\n  (umask 077 && printf '%s\\n' '${token}' > /root/tidegate-join-token)\n`);
    expect(r.out).toContain(`\n  tidegate agent --server https://127.0.0.1:${t.server.public.port} --join-token-file /root/tidegate-join-token --server-fingerprint ${fp}\n`);
    expect(r.out).not.toContain("--join-token ");
  });

  test("usage errors: no --node, a bad --ttl; a bad node name is the server's 400", async () => {
    expect((await run(t.places, ["token", "create"])).code).toBe(2);
    const ttl = await run(t.places, ["token", "create", "--node", "n", "--ttl", "soon"]);
    expect([ttl.code, ttl.err.includes('"soon"')]).toEqual([2, true]);
    const name = await run(t.places, ["token", "create", "--node", "a/b"]);
    expect([name.code, name.err.includes("[bad_node_name]")]).toEqual([1, true]);
  });
});

describe("tidegate entry", () => {
  test("create --node, list, show, delete", async () => {
    const c = await run(t.places, ["entry", "create", "--spiffe-id", `spiffe://${TEST_TD}/cli/web`, "--node", "edge-1", "--selector", "unix:uid:1000", "--selector", "tidegate:workload:web", "--ttl", "10m", "--dns", "web.example", "--json"]);
    expect(c.code).toBe(0);
    const entry = JSON.parse(c.out);
    expect(entry).toMatchObject({ parent_id: `spiffe://${TEST_TD}/tidegate/agent/edge-1`, ttl_seconds: 600, dns_names: ["web.example"] });
    const listed = await run(t.places, ["entry", "list", "--node", "edge-1"]);
    expect(listed.out).toContain(entry.id);
    expect(listed.out).toMatch(/^ID\s+SPIFFE ID\s+PARENT\s+TTL\s+SELECTORS/);
    expect((await run(t.places, ["entry", "list", "--node", "nobody"])).out).toBe("no entries\n");
    const shown = await run(t.places, ["entry", "show", entry.id]);
    expect(shown.out).toContain(`spiffe id  spiffe://${TEST_TD}/cli/web`);
    expect(shown.out).toContain("ttl        10m");
    expect((await run(t.places, ["entry", "delete", entry.id])).out).toBe(`deleted ${entry.id}\n`);
    const gone = await run(t.places, ["entry", "show", entry.id]);
    expect([gone.code, gone.err.includes("[entry_unknown]")]).toEqual([1, true]);
  });

  test("create --ttl under 20 s: created, with a warning that its SVIDs turn over at once", async () => {
    const c = await run(t.places, ["entry", "create", "--spiffe-id", `spiffe://${TEST_TD}/cli/fast`, "--node", "edge-1", "--selector", "unix:uid:1000", "--ttl", "8s", "--json"]);
    expect(c.code).toBe(0);
    expect(JSON.parse(c.out)).toMatchObject({ ttl_seconds: 8 });
    expect(c.err).toBe("tidegate entry create: warning: --ttl 8s is under 20s: SVIDs are backdated 10s for clock skew and renewed at half their whole lifetime, so these are renewed as soon as they are issued, again and again\n");
    const slow = await run(t.places, ["entry", "create", "--spiffe-id", `spiffe://${TEST_TD}/cli/slow`, "--node", "edge-1", "--selector", "unix:uid:1000", "--ttl", "20s"]);
    expect([slow.code, slow.err]).toEqual([0, ""]);
  });

  test("create --parent with a parent that is not a node: the server's bad_parent_id", async () => {
    const r = await run(t.places, ["entry", "create", "--spiffe-id", `spiffe://${TEST_TD}/x`, "--parent", `spiffe://${TEST_TD}/x`, "--selector", "unix:uid:1000"]);
    expect(r.code).toBe(1);
    expect(r.err).toContain("[bad_parent_id]");
  });

  test("create with a selector no attestor gives: a usage error naming it, with what it probably is; nothing created", async () => {
    const before = await t.server.store.countEntries();
    const base = ["entry", "create", "--spiffe-id", `spiffe://${TEST_TD}/x`, "--node", "edge-1", "--selector", "unix:uid:1000", "--selector"];
    for (const [selector, why] of [
      ["unix:uid:abc", 'tidegate entry create: --selector: selector "unix:uid:abc": the value of unix:uid must be a decimal id'],
      ["bogus:thing", 'selector "bogus:thing" has type "bogus", which no attestor gives (types: unix, cgroup, container, k8s, tidegate)'],
      ["tidgate:workload:x", "did you mean tidegate?"],
      ["unix:ud:1000", "did you mean unix:uid?"],
      ["a:b", 'selector "a:b" has type "a"'],
    ]) {
      const r = await run(t.places, [...base, selector!]);
      expect({ selector, code: r.code, says: r.err.includes(why!) }).toEqual({ selector, code: 2, says: true });
    }
    expect(await t.server.store.countEntries()).toBe(before);
  });

  test("usage errors exit 2", async () => {
    const base = ["entry", "create", "--spiffe-id", `spiffe://${TEST_TD}/x`];
    for (const args of [
      [...base, "--selector", "unix:uid:1000"], // neither --node nor --parent
      [...base, "--node", "n", "--parent", `spiffe://${TEST_TD}/tidegate/agent/n`, "--selector", "unix:uid:1000"],
      [...base, "--node", "n"], // no selector
      [...base, "--node", "n", "--selector", "unix:uid:1000", "--ttl", "1.5h"],
      ["entry", "show"],
      ["entry", "delete", "a", "b"],
    ]) {
      const r = await run(t.places, args);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
    }
  });
});
