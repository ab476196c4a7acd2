// `tidegate attest --pid N` from the built binary: selectors alone with no agent; with a stand-in
// agent on agent.sock, the matching entry, a tie refused, the near misses; bad input.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tidegate } from "../helpers/binary.ts";
import { serveUnix } from "../../src/runtime/unix-http.ts";
import { probeHost } from "../../src/runtime/host.ts";

const T = 20_000;
const dir = mkdtempSync(join(tmpdir(), "tidegate-attest-cli-"));
const child = Bun.spawn(["sleep", "60"], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
const uid = process.getuid?.() ?? 0;
const hasCgroup2 = probeHost().cgroup2 !== null;

afterAll(async () => {
  child.kill("SIGKILL");
  await child.exited;
  rmSync(dir, { recursive: true, force: true });
});

const entry = (id: string, ...selectors: string[]) => ({ id, spiffe_id: `spiffe://example.org/${id}`, parent_id: "spiffe://example.org/tidegate/agent/n1", selectors, ttl_seconds: 3600, dns_names: [], revision: 1 });

async function withAgent<T>(entries: unknown[], fn: (runDir: string) => Promise<T>): Promise<T> {
  const runDir = join(dir, `run-${Math.random().toString(16).slice(2)}`);
  const server = serveUnix(join(runDir, "agent.sock"), (req) =>
    new URL(req.url).pathname === "/v1/status" ? Response.json({ healthy: true, entries }) : new Response("no", { status: 404 }),
  );
  try {
    return await fn(runDir);
  } finally {
    await server.stop();
  }
}

async function sleepRunning(): Promise<void> {
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    const r = await tidegate(["attest", "--pid", String(child.pid), "--run-dir", join(dir, "none")]);
    if (r.stdout.includes("unix:path:/usr/bin/sleep")) return;
    await Bun.sleep(10);
  }
  throw new Error("sleep never started");
}

describe.skipIf(!hasCgroup2)("tidegate attest", () => {
  test("with no agent: the selectors alone, saying so", async () => {
    await sleepRunning();
    const r = await tidegate(["attest", "--pid", String(child.pid), "--run-dir", join(dir, "none")]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`pid ${child.pid} (start time `);
    expect(r.stdout).toContain(`  unix:uid:${uid}\n`);
    expect(r.stdout).toContain("  unix:path:/usr/bin/sleep\n");
    expect(r.stdout).toMatch(/ {2}unix:sha256:[0-9a-f]{64}\n/);
    expect(r.stdout).toMatch(/ {2}cgroup:path:\/.*\n/);
    expect(r.stdout).toContain("no agent: selectors only");
  }, T);

  test("with an agent: the entry with the most selectors, and the near misses", async () => {
    const entries = [
      entry("uid-only", `unix:uid:${uid}`),
      entry("sleep", `unix:uid:${uid}`, "unix:path:/usr/bin/sleep"),
      entry("other-uid", "unix:uid:4242", "unix:path:/usr/bin/sleep"),
      entry("far", "unix:uid:4242", "unix:path:/bin/nothing"),
      entry("listener", "tidegate:inbound:tools"), // up's entry for an inbound listener: no process carries it
    ];
    await withAgent(entries, async (runDir) => {
      const r = await tidegate(["attest", "--pid", String(child.pid), "--run-dir", runDir]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain("match          spiffe://example.org/sleep (entry sleep, 2 selectors)");
      expect(r.stdout).toContain("spiffe://example.org/other-uid (entry other-uid) needs unix:uid:4242");
      expect(r.stdout).not.toContain("entry far");
      expect(r.stdout).not.toContain("entry listener");
      const j = JSON.parse((await tidegate(["attest", "--pid", String(child.pid), "--run-dir", runDir, "--json"])).stdout);
      expect(j.match.id).toBe("sleep");
      expect(j.entries).toBe(5);
      expect(j.error).toBeNull();
      expect(j.near_misses).toEqual([{ entry_id: "other-uid", spiffe_id: "spiffe://example.org/other-uid", missing: "unix:uid:4242" }]);
    });
  }, T);

  test("a match on one selector says so in the singular", async () => {
    await withAgent([entry("uid-only", `unix:uid:${uid}`)], async (runDir) => {
      const r = await tidegate(["attest", "--pid", String(child.pid), "--run-dir", runDir]);
      expect(r.stdout).toContain("match          spiffe://example.org/uid-only (entry uid-only, 1 selector)\n");
    });
  }, T);

  test("no entry matches: no identity, default deny", async () => {
    await withAgent([entry("far", "unix:uid:4242")], async (runDir) => {
      const r = await tidegate(["attest", "--pid", String(child.pid), "--run-dir", runDir]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain("none of the agent's 1 entries: no identity (default deny)");
    });
  }, T);

  test("a tie at the top: exit 1, attest_ambiguous naming both entries", async () => {
    const entries = [entry("a", `unix:uid:${uid}`, "unix:path:/usr/bin/sleep"), entry("b", `unix:uid:${uid}`, `unix:gid:${process.getgid?.() ?? 0}`)];
    await withAgent(entries, async (runDir) => {
      const r = await tidegate(["attest", "--pid", String(child.pid), "--run-dir", runDir]);
      expect(r.code).toBe(1);
      expect(r.stdout).toContain("ERROR [attest_ambiguous]");
      expect(r.stdout).toContain("a (spiffe://example.org/a)");
      expect(r.stdout).toContain("b (spiffe://example.org/b)");
    });
  }, T);

  test("a process that does not exist: exit 1, attest_no_process", async () => {
    const gone = Bun.spawn(["true"]);
    await gone.exited;
    const r = await tidegate(["attest", "--pid", String(gone.pid), "--run-dir", join(dir, "none")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("[attest_no_process]");
  }, T);

  test("usage errors: no --pid, a --pid that is no pid, an argument, a kubelet flag without --kubelet (exit 2)", async () => {
    for (const args of [["attest"], ["attest", "--pid", "abc"], ["attest", "--pid", "0"], ["attest", "--pid", "1", "extra"], ["attest", "--pid", "1", "--kubelet-url", "https://x:10250"]]) {
      const r = await tidegate(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain("run 'tidegate attest --help' for usage");
    }
  }, T);
});
