import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { memoryLogger } from "../runtime/log.ts";
import { createTestCa } from "../../test/helpers/test-ca.ts";
import { AgentCore } from "./agent-core.ts";
import { bootstrap } from "./bootstrap.ts";
import { statusOf } from "./health.ts";
import { StateFiles } from "./state-files.ts";
import { startStandIn, type StandIn } from "./test-stand-in.ts";
import { fixedRandom, tempPlaces, type TempPlaces } from "./test-support.ts";
import { loadSvids } from "./workload-svid.ts";

let s: StandIn;
let t: TempPlaces;
let log: ReturnType<typeof memoryLogger>;

beforeEach(async () => {
  s = await startStandIn();
  s.tokens.set("tok", "node-1");
  t = tempPlaces();
  log = memoryLogger();
});
afterEach(async () => {
  await s.close();
  t.cleanup();
});

/** A joined agent core on the stand-in's clock; random 0.5 puts rotations exactly at half life. */
async function joined(opts: { random?: () => number; syncIntervalMs?: number } = {}): Promise<AgentCore> {
  const files = new StateFiles(t.places.stateDir);
  const random = opts.random ?? (() => 0.5);
  const identity = await bootstrap({ files, serverUrl: s.publicUrl, joinToken: "tok", fingerprint: s.fingerprint, now: () => s.clock.now, logger: log, random });
  const core = new AgentCore({ files, identity, syncIntervalMs: opts.syncIntervalMs ?? 5000, retryMaxMs: 60_000, now: () => s.clock.now, logger: log, random });
  await core.init();
  return core;
}

const events = () => log.lines.map((l) => l.event);
const svidFile = (id: string, ext: string) => join(t.places.stateDir, "agent", "svids", `${id}.${ext}`);

describe("sync and workload SVIDs", () => {
  test("mints an SVID per entry, keys 0600, and says when it next needs to run", async () => {
    s.addEntry("e1", "/web");
    s.addEntry("e2", "/db");
    s.addEntry("other", "/x", "node-2");
    const core = await joined();
    expect(statusOf(core, s.clock.now).problems).toEqual(["not synced with the server yet"]);
    const next = await core.tick();
    expect([...core.svids.keys()].sort()).toEqual(["e1", "e2"]);
    expect(core.svids.get("e1")!.spiffeId).toBe("spiffe://example.org/web");
    expect(statSync(svidFile("e1", "key")).mode & 0o777).toBe(0o600);
    expect(statSync(svidFile("e1", "pem")).mode & 0o777).toBe(0o644);
    expect(next).toBe(s.clock.now + 5000);
    expect(statusOf(core, s.clock.now)).toMatchObject({ healthy: true, problems: [] });
    expect(events().filter((e) => e === "svid_issued")).toHaveLength(2);
    // the CSRs name the entry's SPIFFE ID; no key was sent
    const csrBodies = s.bodies.filter((b) => (b as { entry_id?: string }).entry_id !== undefined);
    for (const b of csrBodies) expect(Object.keys(b as object).sort()).toEqual(["csr", "entry_id"]);
  });

  test("rotates at half life (random 0.5) and not before", async () => {
    s.svidTtl = 100;
    s.addEntry("e1", "/web");
    const core = await joined({ syncIntervalMs: 3600_000 });
    await core.tick();
    const first = core.svids.get("e1")!;
    // notBefore is backdated 10 s by the minting code: lifetime 110 s, half life 55 s
    expect(first.rotateAt).toBe(first.notBefore + (first.notAfter - first.notBefore) / 2);
    expect(await core.tick()).toBe(first.rotateAt);
    s.clock.now = first.rotateAt - 1;
    await core.tick();
    expect(core.svids.get("e1")!.serial).toBe(first.serial);
    s.clock.now = first.rotateAt;
    await core.tick();
    expect(core.svids.get("e1")!.serial).not.toBe(first.serial);
    expect(events()).toContain("svid_rotated");
  });

  test("drops the SVID of an entry that is gone, files included", async () => {
    s.addEntry("e1", "/web");
    s.addEntry("e2", "/db");
    const core = await joined();
    await core.tick();
    s.entries.delete("e2");
    s.clock.now += 5000;
    await core.tick();
    expect([...core.svids.keys()]).toEqual(["e1"]);
    expect(existsSync(svidFile("e2", "pem")) || existsSync(svidFile("e2", "key"))).toBe(false);
    expect(events()).toContain("svid_dropped");
  });

  test("an entry whose SPIFFE ID changes is reissued at once", async () => {
    s.addEntry("e1", "/web");
    const core = await joined();
    await core.tick();
    s.entries.get("e1")!.spiffe_id = "spiffe://example.org/web2";
    s.clock.now += 5000;
    await core.tick();
    expect(core.svids.get("e1")!.spiffeId).toBe("spiffe://example.org/web2");
  });

  test("syncSoon: an entry the server gained is synced and issued at the next round, not at the interval's end", async () => {
    s.addEntry("e1", "/web");
    const core = await joined({ syncIntervalMs: 3600_000 });
    await core.tick();
    s.addEntry("e2", "/db");
    s.clock.now += 1000;
    await core.tick();
    expect(core.lastSync.nextAt).toBe(s.clock.now - 1000 + 3600_000);
    expect([...core.svids.keys()]).toEqual(["e1"]);
    core.syncSoon();
    expect(core.nextWake()).toBe(s.clock.now);
    await core.tick();
    expect([...core.svids.keys()].sort()).toEqual(["e1", "e2"]);
    expect(core.lastSync.nextAt).toBe(s.clock.now + 3600_000);
  });

  test("syncSoon during a sync: its answer may predate the change, so another sync follows at once", async () => {
    s.addEntry("e1", "/web");
    const core = await joined({ syncIntervalMs: 3600_000 });
    const round = core.tick(); // the sync's request is on its way
    core.syncSoon();
    expect(await round).toBe(s.clock.now);
    expect(core.lastSync.nextAt).toBe(s.clock.now);
    await core.tick();
    expect(core.lastSync.nextAt).toBe(s.clock.now + 3600_000);
  });

  test("syncSoon while syncs fail keeps their backoff", async () => {
    const core = await joined({ random: () => 0.5 });
    await core.tick();
    await s.down();
    s.clock.now += 5000;
    await core.tick();
    const retryAt = core.lastSync.nextAt;
    expect(retryAt).toBeGreaterThan(s.clock.now);
    core.syncSoon();
    expect(core.lastSync.nextAt).toBe(retryAt);
    await s.up();
  });

  test("403, 404 and 429 answers: the entry waits (Retry-After for 429), the others go on", async () => {
    s.addEntry("e1", "/web");
    s.addEntry("e2", "/db");
    const core = await joined({ random: () => 0.5 });
    s.faults.set("/v1/svid", { status: 429, code: "rate_limited", retryAfter: 7 });
    await core.tick();
    expect(core.svids.size).toBe(1);
    const waiting = [...core.entryRetry.entries()];
    expect(waiting).toHaveLength(1);
    expect(waiting[0]![1].at).toBe(s.clock.now + 7000);
    expect(waiting[0]![1].error).toStartWith("rate_limited");
    expect(statusOf(core, s.clock.now).healthy).toBe(false);
    s.faults.set("/v1/svid", { status: 403, code: "entry_not_for_node" });
    s.clock.now += 7000;
    await core.tick();
    expect(waiting[0]![1].error).toStartWith("entry_not_for_node");
    expect(waiting[0]![1].at).toBe(s.clock.now + 1000); // backoff: 0.5 * 2 s (second failure)
    s.faults.set("/v1/svid", { status: 404, code: "entry_unknown" });
    s.clock.now += 1000;
    await core.tick();
    expect(waiting[0]![1].error).toStartWith("entry_unknown");
    s.clock.now += 2000;
    await core.tick();
    expect(core.svids.size).toBe(2);
    expect(statusOf(core, s.clock.now).healthy).toBe(true);
  });
});

describe("server down", () => {
  test("keeps the SVIDs until they expire, backs off, then reports unhealthy", async () => {
    s.svidTtl = 120;
    s.addEntry("e1", "/web");
    const core = await joined({ random: () => 0.999 });
    await core.tick();
    const held = core.svids.get("e1")!;
    await s.down();
    s.clock.now += 5000;
    await core.tick();
    expect(core.lastSync.error).toStartWith("server_unreachable");
    const waits = log.lines.filter((l) => l.event === "sync_failed").map((l) => l.retry_in_ms as number);
    // keep failing: the waits grow (full jitter with random ~1) and stop at --retry-max
    for (let i = 0; i < 8; i++) {
      s.clock.now = core.lastSync.nextAt;
      await core.tick();
    }
    const all = log.lines.filter((l) => l.event === "sync_failed").map((l) => l.retry_in_ms as number);
    expect(all.slice(0, 5)).toEqual([999, 1998, 3996, 7992, 15984]);
    expect(Math.max(...all)).toBeLessThanOrEqual(60_000);
    expect(waits).toHaveLength(1);
    expect(core.svids.get("e1")!.serial).toBe(held.serial);
    s.clock.now = held.notAfter - 1;
    expect(statusOf(core, s.clock.now).healthy).toBe(true);
    s.clock.now = held.notAfter;
    const st = statusOf(core, s.clock.now);
    expect(st.healthy).toBe(false);
    expect(st.problems).toEqual([expect.stringContaining("entry e1 (spiffe://example.org/web): SVID expired at")]);
    expect(st.sync.error).toStartWith("server_unreachable");
    // back up: the next sync reissues and health returns
    await s.up();
    s.clock.now = core.lastSync.nextAt;
    await core.tick();
    expect(statusOf(core, s.clock.now).healthy).toBe(true);
    expect(core.lastSync.failures).toBe(0);
  });

  test("a node SVID that expires while the server is down: unhealthy, needs a token", async () => {
    s.nodeTtl = 60;
    const core = await joined();
    await s.down();
    s.clock.now = core.identity.node.notAfter;
    await core.tick();
    const st = statusOf(core, s.clock.now);
    expect(st.healthy).toBe(false);
    expect(st.problems[0]).toContain("node SVID expired");
  });
});

describe("the node SVID", () => {
  test("is renewed at half life over mutual TLS, and kept on disk", async () => {
    s.nodeTtl = 100;
    const core = await joined({ syncIntervalMs: 3600_000 });
    await core.tick();
    const before = core.identity.node;
    expect(await core.tick()).toBe(before.rotateAt);
    s.clock.now = before.rotateAt;
    await core.tick();
    expect(core.identity.node.serial).not.toBe(before.serial);
    expect(s.requests).toContain("POST /v1/node/renew");
    expect(events()).toContain("node_renewed");
    const files = new StateFiles(t.places.stateDir);
    expect(files.read("node.pem")).toContain("CERTIFICATE");
    expect(statSync(files.path("node.key")).mode & 0o777).toBe(0o600);
  });

  test("an impostor after the join is refused at the node's renewal, both ways: nothing reaches a handler, the node SVID is kept and retried", async () => {
    s.nodeTtl = 100;
    const core = await joined({ syncIntervalMs: 3600_000 });
    await core.tick();
    const before = core.identity.node;
    const onDisk = new StateFiles(t.places.stateDir).read("node.pem");
    const stranger = await createTestCa({ trustDomain: "example.org" });
    const impostors: [string, () => Promise<void>, RegExp][] = [
      // a server SVID from another root of the same trust-domain name
      ["another root", async () => s.present(await stranger.mintIntermediate()), /server_untrusted/],
      // a genuine SVID of the trust domain that is not the server's
      ["another ID", async () => s.present(s.signing, "spiffe://example.org/web"), /server_spiffe_id_mismatch/],
    ];
    for (const [what, present, code] of impostors) {
      await present();
      const reached = s.requests.length;
      s.clock.now = Math.max(s.clock.now, before.rotateAt, core.nextWake());
      await core.tick();
      expect([what, s.requests.length]).toEqual([what, reached]);
      expect(core.identity.node.serial).toBe(before.serial);
      const failed = log.lines.filter((l) => l.event === "node_renew_failed").at(-1);
      expect(String(failed?.error)).toMatch(code);
    }
    expect(events()).not.toContain("node_renewed");
    expect(new StateFiles(t.places.stateDir).read("node.pem")).toBe(onDisk);
    // the real server again: the renewal that was due goes through
    await s.present(s.signing);
    s.clock.now = Math.max(s.clock.now, core.nextWake());
    await core.tick();
    expect(events()).toContain("node_renewed");
    expect(core.identity.node.serial).not.toBe(before.serial);
  });

  test("a server that lost the node (404 node_unknown on sync) gets a renewal, which re-attests", async () => {
    s.addEntry("e1", "/web");
    const core = await joined();
    s.nodes.clear();
    await core.tick();
    expect(core.nodeUnknown).toBe(true);
    expect(core.svids.size).toBe(0);
    await core.tick();
    expect(events()).toContain("node_reattested");
    expect(core.svids.size).toBe(1);
    expect(s.nodes.has("node-1")).toBe(true);
  });
});

describe("bundle updates", () => {
  test("a new root from sync is trusted from then on: the server may switch to it", async () => {
    s.addEntry("e1", "/web");
    const core = await joined();
    await core.tick();
    const next = await createTestCa({ trustDomain: "example.org" });
    const nextSigning = await next.mintIntermediate();
    s.roots = [s.ca.root.der, next.root.der];
    s.sequence = 2;
    s.clock.now += 5000;
    await core.tick();
    expect(core.bundle.sequence).toBe(2);
    expect(core.bundleRoots).toHaveLength(2);
    expect(events()).toContain("bundle_updated");
    // the server switches to the new root: only an agent that took the new bundle still connects
    s.ca = next;
    s.signing = nextSigning;
    await s.present(nextSigning);
    s.entries.get("e1")!.spiffe_id = "spiffe://example.org/web-v2";
    s.clock.now += 5000;
    await core.tick();
    expect(core.lastSync.error).toBeNull();
    expect(core.svids.get("e1")!.spiffeId).toBe("spiffe://example.org/web-v2");
    const files = new StateFiles(t.places.stateDir);
    expect(JSON.parse(files.read("bundle.json")!).spiffe_sequence).toBe(2);
  });
});

describe("the SVIDs of an earlier run", () => {
  test("are loaded; a pair whose key does not match is dropped", async () => {
    s.addEntry("e1", "/web");
    s.addEntry("e2", "/db");
    const core = await joined();
    await core.tick();
    const files = new StateFiles(t.places.stateDir);
    files.writeKey("svids/e2.key", core.svids.get("e1")!.keyPem);
    const { svids, dropped } = await loadSvids(files);
    expect([...svids.keys()]).toEqual(["e1"]);
    expect(dropped).toEqual(["e2"]);
    expect(existsSync(svidFile("e2", "pem"))).toBe(false);
  });
});
