import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { memoryLogger } from "../runtime/log.ts";
import { callUnix } from "../runtime/unix-http.ts";
import { main } from "../cli/main.ts";
import { startAgent, type RunningAgent } from "./agent.ts";
import { startStandIn, type StandIn } from "./test-stand-in.ts";
import { tempPlaces, type TempPlaces } from "./test-support.ts";

let s: StandIn;
let t: TempPlaces;
let agent: RunningAgent | null = null;

beforeEach(async () => {
  s = await startStandIn();
  s.tokens.set("tok-secret-value", "node-1");
  s.addEntry("e1", "/web");
  t = tempPlaces();
});
afterEach(async () => {
  await agent?.stop();
  agent = null;
  await s.close();
  t.cleanup();
});

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main([...args, "--state-dir", t.places.stateDir, "--run-dir", t.places.runDir, "--audit-dir", t.places.auditDir], { out: (x) => void (out += x), err: (x) => void (err += x) }, {});
  return { code, out, err };
}

describe("startAgent and agent.sock", () => {
  test("serves status, chains (never keys) and the bundle; tidegate status shows them", async () => {
    const logger = memoryLogger();
    agent = await startAgent({ places: t.places, serverUrl: s.publicUrl, joinToken: "tok-secret-value", fingerprint: s.fingerprint, logger });
    await agent.ready;
    const st = await callUnix(agent.socketPath, "the agent", "GET", "/v1/status");
    expect(st.status).toBe(200);
    expect(st.body).toMatchObject({ healthy: true, problems: [], node: "node-1", trust_domain: "example.org", server: s.publicUrl, bundle: { sequence: 1 } });
    expect((st.body as { svids: unknown[] }).svids).toEqual([expect.objectContaining({ entry_id: "e1", spiffe_id: "spiffe://example.org/web" })]);
    const chain = await callUnix(agent.socketPath, "the agent", "GET", "/v1/svids/e1");
    expect(chain.body).toMatchObject({ entry_id: "e1", spiffe_id: "spiffe://example.org/web" });
    expect((chain.body as { chain_pem: string }).chain_pem).toContain("BEGIN CERTIFICATE");
    expect(JSON.stringify(chain.body)).not.toContain("PRIVATE KEY");
    const none = await callUnix(agent.socketPath, "the agent", "GET", "/v1/svids/nope");
    expect(none.status).toBe(404);
    expect((none.body as { error: { code: string } }).error.code).toBe("svid_unknown");
    const bundle = await callUnix(agent.socketPath, "the agent", "GET", "/v1/bundle");
    expect((bundle.body as { keys: unknown[]; spiffe_sequence: number }).spiffe_sequence).toBe(1);

    const screen = await cli("status");
    expect(screen.code).toBe(0);
    expect(screen.out).toContain("health         healthy");
    expect(screen.out).toContain("node           node-1 (spiffe://example.org/tidegate/agent/node-1)");
    expect(screen.out).toContain("spiffe://example.org/web");
    expect(screen.out).toMatch(/rotates \S+ \(in /);
    const json = await cli("status", "--json");
    expect(JSON.parse(json.out).healthy).toBe(true);

    expect(logger.lines.map((l) => l.event)).toEqual(expect.arrayContaining(["agent_start", "node_attested", "agent_ready", "svid_issued"]));
    expect(JSON.stringify(logger.lines)).not.toContain("tok-secret-value");
    expect(JSON.stringify(logger.lines)).not.toContain("PRIVATE KEY");

    await agent.stop();
    agent = null;
    expect(existsSync(`${t.places.runDir}/agent.sock`)).toBe(false);
    const down = await cli("status");
    expect(down.code).toBe(1);
    expect(down.err).toContain("the agent is not running");
  });

  test("restarts from its state without a token, with the SVIDs it held", async () => {
    agent = await startAgent({ places: t.places, serverUrl: s.publicUrl, joinToken: "tok-secret-value", fingerprint: s.fingerprint, logger: memoryLogger() });
    await agent.ready;
    const serial = agent.status().svids[0]!.serial;
    await agent.stop();
    await s.down();
    const logger = memoryLogger();
    agent = await startAgent({ places: t.places, logger });
    await agent.ready;
    expect(logger.lines.find((l) => l.event === "agent_ready")).toMatchObject({ svids_cached: 1 });
    const st = agent.status();
    expect(st.healthy).toBe(true);
    expect(st.svids[0]!.serial).toBe(serial);
    expect(st.sync.error).toStartWith("server_unreachable");
  });

  test("without capture, POST /v1/run is refused with the reason and tidegate run says it", async () => {
    agent = await startAgent({ places: t.places, serverUrl: s.publicUrl, joinToken: "tok-secret-value", fingerprint: s.fingerprint, logger: memoryLogger() });
    await agent.ready;
    const r = await callUnix(agent.socketPath, "the agent", "POST", "/v1/run", { workload: "w1" });
    expect(r.status).toBe(503);
    expect(r.body).toEqual({ error: { code: "capture_unavailable", message: "agent: no kernel capture: the agent runs without capture (--no-capture)" } });
    expect(agent.captureUnavailable).toBeNull();
    expect(agent.enforcer).toBeNull();
  });

  test("unhealthy status exits 1 and lists the problem", async () => {
    s.faults.set("/v1/svid", { status: 403, code: "entry_not_for_node" });
    agent = await startAgent({ places: t.places, serverUrl: s.publicUrl, joinToken: "tok-secret-value", fingerprint: s.fingerprint, logger: memoryLogger() });
    await agent.ready;
    const screen = await cli("status");
    expect(screen.code).toBe(1);
    expect(screen.out).toContain("UNHEALTHY (1 problem)");
    expect(screen.out).toContain("entry e1 (spiffe://example.org/web) has no SVID yet: entry_not_for_node");
  });
});

describe("tidegate agent flags", () => {
  test("usage errors exit 2 without contacting anyone", async () => {
    expect((await cli("agent", "--join-token", "a", "--join-token-file", "/x")).code).toBe(2);
    expect((await cli("agent", "--server-fingerprint", "ab", "--trust-bundle", "/x")).code).toBe(2);
    expect((await cli("agent", "--sync-interval", "soon")).code).toBe(2);
    expect((await cli("agent", "--retry-max", "0s")).code).toBe(2);
    expect((await cli("agent", "--server-fingerprint", "xyz")).code).toBe(2);
    expect(s.requests).toEqual([]);
  });

  test("a wrong fingerprint: exit 1 with the code, the token in neither output", async () => {
    const r = await cli("agent", "--server", s.publicUrl, "--join-token", "tok-secret-value", "--server-fingerprint", "00".repeat(32));
    expect(r.code).toBe(1);
    expect(r.err).toContain("[server_fingerprint_mismatch]");
    expect(r.err + r.out).not.toContain("tok-secret-value");
    expect(s.requests).toEqual(["GET /.well-known/spiffe-bundle"]);
  });
});

describe("tidegate agent as a process", () => {
  test("joins with --join-token-file, serves agent.sock, stops on SIGTERM and removes it", async () => {
    const tokenFile = `${t.dir}/token`;
    await Bun.write(tokenFile, "tok-secret-value\n");
    const sock = `${t.places.runDir}/agent.sock`;
    const child = Bun.spawn(
      ["bun", `${import.meta.dir}/../cli/main.ts`, "agent", "--server", s.publicUrl, "--join-token-file", tokenFile, "--server-fingerprint", s.fingerprint, "--state-dir", t.places.stateDir, "--run-dir", t.places.runDir, "--audit-dir", t.places.auditDir, "--no-capture", "--config", `${t.dir}/absent.yaml`],
      { stdout: "pipe", stderr: "pipe" },
    );
    try {
      const end = Date.now() + 10_000;
      while (!(existsSync(sock) && (await cli("status")).code === 0)) {
        if (Date.now() > end || child.exitCode !== null) throw new Error(`agent did not become healthy: ${await new Response(child.stderr).text()}`);
        await Bun.sleep(25);
      }
      child.kill("SIGTERM");
      expect(await child.exited).toBe(0);
      expect(existsSync(sock)).toBe(false);
      const logs = await new Response(child.stderr).text();
      const events = logs.trim().split("\n").map((l) => JSON.parse(l).event);
      expect(events).toEqual(expect.arrayContaining(["agent_start", "node_attested", "svid_issued", "agent_stopped"]));
      expect(logs).not.toContain("tok-secret-value");
    } finally {
      child.kill();
    }
  }, 20_000);
});

// --trust-bundle (agent.trust_bundle) was read with readFileSync: a FIFO there kept the agent
// from ever starting, /dev/zero was read until memory ran out.
describe("the trust bundle file", () => {
  for (const [what, path] of [["a FIFO", "fifo"], ["/dev/zero", "/dev/zero"]] as const) {
    test(`${what} is refused at once, trust_bundle_bad`, async () => {
      const file = path === "fifo" ? `${t.dir}/bundle.fifo` : path;
      if (path === "fifo") expect(Bun.spawnSync(["mkfifo", file]).exitCode).toBe(0);
      const t0 = performance.now();
      await expect(startAgent({ places: t.places, serverUrl: s.publicUrl, joinToken: "tok-secret-value", trustBundle: file, logger: memoryLogger() })).rejects.toMatchObject({
        code: "trust_bundle_bad",
        message: expect.stringContaining("is not a regular file"),
      });
      expect(performance.now() - t0).toBeLessThan(2000);
    });
  }
});
