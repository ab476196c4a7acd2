// The agent's audit log and its continuous export, in process: a real agent (against the stand-in
// server) writes agent_start, checkpoints and agent_stop to its audit folder, and with
// audit.export.otlp delivers them, in order, to a real OTLP/HTTP receiver that fails at times.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { memoryLogger } from "../runtime/log.ts";
import { DEFAULT_AUDIT_SETTINGS } from "../policy/model.ts";
import { TestCollector, until } from "../audit/export/test-collector.ts";
import { listLogFiles, AUDIT_STATE_FILE } from "../audit/sink/files.ts";
import { verifyAudit } from "../audit/format/index.ts";
import { startAgent, type RunningAgent } from "./agent.ts";
import { startStandIn, type StandIn } from "./test-stand-in.ts";
import { tempPlaces, type TempPlaces } from "./test-support.ts";

let s: StandIn;
let t: TempPlaces;
let agent: RunningAgent | null = null;
let collector: TestCollector | null = null;

beforeEach(async () => {
  s = await startStandIn();
  s.tokens.set("tok-audit", "node-1");
  t = tempPlaces();
});
afterEach(async () => {
  await agent?.stop();
  agent = null;
  await collector?.close();
  collector = null;
  await s.close();
  t.cleanup();
});

const lines = () => listLogFiles(t.places.auditDir).flatMap((f) => readFileSync(f.path, "utf8").trimEnd().split("\n").filter((l) => l !== ""));

describe("the agent's audit log", () => {
  test("agent_start and, at stop, agent_stop and a checkpoint signed by the node SVID; the state holds it", async () => {
    agent = await startAgent({ places: t.places, serverUrl: s.publicUrl, joinToken: "tok-audit", fingerprint: s.fingerprint, logger: memoryLogger() });
    await agent.ready;
    expect((agent.status() as { audit: unknown }).audit).toMatchObject({ healthy: true, dir: t.places.auditDir, on_failure: "refuse" });
    await agent.stop();
    agent = null;
    const events = lines().map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.map((e) => e.type)).toEqual(["agent_start", "agent_stop", "checkpoint"]);
    expect(events[0]).toMatchObject({ instance: "test", node_id: "spiffe://example.org/tidegate/agent/node-1", pid: process.pid });
    expect(events[2]).toMatchObject({ signer: "spiffe://example.org/tidegate/agent/node-1", events: 2 });
    const state = JSON.parse(readFileSync(join(t.places.stateDir, "agent", AUDIT_STATE_FILE), "utf8"));
    expect(state.seq).toBe(3);
    const files = listLogFiles(t.places.auditDir).map((f) => ({ name: f.name, text: readFileSync(f.path) }));
    const r = await verifyAudit({ files, bundles: s.ca.bundle, state, now: new Date() });
    expect(r.firstBreak).toBeNull();
  });

  test("audit.export.otlp: every event reaches the receiver once and in order, through 503s, across a restart of the agent", async () => {
    let n = 0;
    collector = TestCollector.start(() => (++n % 2 === 1 ? new Response("busy", { status: 503 }) : null));
    const audit = { ...DEFAULT_AUDIT_SETTINGS, exportOtlp: collector.url };
    agent = await startAgent({ places: t.places, serverUrl: s.publicUrl, joinToken: "tok-audit", fingerprint: s.fingerprint, logger: memoryLogger(), audit });
    await agent.ready;
    await until(() => collector!.seqs.length >= 1, 5000, "agent_start at the receiver");
    await agent.stop();
    agent = null;
    agent = await startAgent({ places: t.places, logger: memoryLogger(), audit });
    await agent.ready;
    await agent.stop();
    agent = null;
    const written = lines().length;
    agent = await startAgent({ places: t.places, logger: memoryLogger(), audit });
    await until(() => collector!.seqs.length >= written, 10_000, "every event at the receiver");
    expect(collector.seqs.slice(0, written)).toEqual(Array.from({ length: written }, (_, i) => i + 1));
    expect(collector.received.slice(0, written).map((r) => r.line)).toEqual(lines().slice(0, written));
    expect(existsSync(join(t.places.stateDir, "agent", "audit-export.json"))).toBe(true);
  });
});
