// verifyAudit over what an OTLP collector received (docs/security-review.md, "Root on the host"):
// a real agent (against the stand-in server) exports its audit log with audit.export.otlp to a
// real OTLP/HTTP receiver across three runs; the receiver's copy is rebuilt as JSON Lines from the
// records' bodies alone (each body is the line's exact text, encode.ts) and verified like the
// host's file: the whole copy passes, with every checkpoint's signature checked against the trust
// bundle; one received event altered or dropped, or a checkpoint's signature changed, is the first
// break reported, at its line and seq.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { memoryLogger } from "../runtime/log.ts";
import { DEFAULT_AUDIT_SETTINGS } from "../policy/model.ts";
import { TestCollector, until } from "../audit/export/test-collector.ts";
import type { DecodedRecord } from "../audit/otlp/decode.ts";
import { listLogFiles, AUDIT_STATE_FILE } from "../audit/sink/files.ts";
import { verifyAudit, type AuditState, type VerifyReport } from "../audit/format/index.ts";
import { startAgent } from "./agent.ts";
import { startStandIn, type StandIn } from "./test-stand-in.ts";
import { tempPlaces, type TempPlaces } from "./test-support.ts";

let s: StandIn;
let t: TempPlaces;
let collector: TestCollector;
/** The host's lines, as the agent wrote them, once every one of them was delivered. */
let written: string[] = [];
/** The agent's state (its last checkpoint) when `written` was read. */
let state: AuditState;
/** The receiver's records, one per line written, in the order they arrived. */
let received: DecodedRecord[] = [];

const hostLines = () => listLogFiles(t.places.auditDir).flatMap((f) => readFileSync(f.path, "utf8").trimEnd().split("\n").filter((l) => l !== ""));

beforeAll(async () => {
  s = await startStandIn();
  s.tokens.set("tok-export", "node-1");
  t = tempPlaces();
  collector = TestCollector.start();
  const audit = { ...DEFAULT_AUDIT_SETTINGS, exportOtlp: collector.url };
  // three runs: agent_start, agent_stop and a signed checkpoint each
  for (let run = 0; run < 3; run++) {
    const agent = await startAgent({ places: t.places, logger: memoryLogger(), audit, ...(run === 0 ? { serverUrl: s.publicUrl, joinToken: "tok-export", fingerprint: s.fingerprint } : {}) });
    await agent.ready;
    await agent.stop();
  }
  written = hostLines();
  state = JSON.parse(readFileSync(join(t.places.stateDir, "agent", AUDIT_STATE_FILE), "utf8")) as AuditState;
  // the last run's checkpoint is written at its stop: a fourth start delivers what is left
  const agent = await startAgent({ places: t.places, logger: memoryLogger(), audit });
  try {
    await until(() => collector.seqs.length >= written.length, 15_000, "every written event at the receiver");
  } finally {
    await agent.stop();
  }
  received = collector.received.slice(0, written.length);
}, 60_000);

afterAll(async () => {
  await collector?.close();
  await s?.close();
  t?.cleanup();
});

/** The receiver's copy as one JSON Lines file: each record's body, then "\n". */
const rebuilt = (records: readonly DecodedRecord[]) => records.map((r) => `${r.line}\n`).join("");

const verifyCopy = (text: string, st: AuditState | null = null): Promise<VerifyReport> => verifyAudit({ files: [{ name: "collector.jsonl", text }], bundles: s.ca.bundle, state: st, now: new Date() });

/** The index of the first record of `type` that is neither the first nor the last. */
function middle(type: string): number {
  const i = received.findIndex((r, k) => k > 0 && k < received.length - 1 && r.type === type);
  expect(i).toBeGreaterThan(0);
  return i;
}

describe("verifyAudit over the events an OTLP collector received", () => {
  test("the receiver got every line once, in order; rebuilt from the bodies it is the host's file byte for byte", () => {
    expect(written.length).toBeGreaterThanOrEqual(9);
    expect(received.map((r) => r.seq)).toEqual(written.map((_, i) => i + 1));
    expect(received.filter((r) => r.type === "checkpoint").length).toBeGreaterThanOrEqual(3);
    expect(rebuilt(received)).toBe(`${written.join("\n")}\n`);
  });

  test("the whole copy verifies: chain, counts and every checkpoint's signature against the bundle; with the agent's state too", async () => {
    const r = await verifyCopy(rebuilt(received));
    expect(r).toMatchObject({ ok: true, firstBreak: null, events: written.length, lastSeq: written.length });
    expect(r.checkpoints).toBe(received.filter((x) => x.type === "checkpoint").length);
    expect(r.warnings.filter((w) => /bundle/.test(w))).toEqual([]);
    const withState = await verifyCopy(rebuilt(received), state);
    expect(withState).toMatchObject({ ok: true, firstBreak: null });
  });

  test("one received event altered: the break is named at the line after it (its prev no longer matches)", async () => {
    const i = middle("agent_start");
    const line = received[i]!.line;
    const altered = line.replace(/"pid":(\d+)/, (_m, pid: string) => `"pid":${Number(pid) + 1}`);
    expect(altered).not.toBe(line);
    const copy = received.map((r, k) => (k === i ? { ...r, line: altered } : r));
    const r = await verifyCopy(rebuilt(copy));
    expect(r.ok).toBe(false);
    expect(r.firstBreak).toMatchObject({ file: "collector.jsonl", line: i + 2, seq: i + 2, code: "audit_prev_mismatch" });
  });

  test("one received event dropped: the break is the seq gap at the line where it is missing", async () => {
    const i = middle("agent_stop");
    const copy = received.filter((_, k) => k !== i);
    const r = await verifyCopy(rebuilt(copy));
    expect(r.ok).toBe(false);
    expect(r.firstBreak).toMatchObject({ file: "collector.jsonl", line: i + 1, seq: i + 2, code: "audit_seq_gap" });
  });

  test("a received checkpoint's signature changed: the break names that checkpoint", async () => {
    const i = received.findIndex((r) => r.type === "checkpoint");
    const line = received[i]!.line;
    const altered = line.replace(/"sig":"(.)/, (_m, c: string) => `"sig":"${c === "A" ? "B" : "A"}`);
    expect(altered).not.toBe(line);
    const copy = received.map((r, k) => (k === i ? { ...r, line: altered } : r));
    const r = await verifyCopy(rebuilt(copy));
    expect(r.ok).toBe(false);
    expect(r.firstBreak).toMatchObject({ line: i + 1, seq: i + 1, code: "audit_checkpoint_signature" });
  });

  test("the copy's last event dropped: found only with the agent's state (the collector alone cannot tell a cut tail)", async () => {
    const copy = rebuilt(received.slice(0, -1));
    const alone = await verifyCopy(copy);
    expect(alone.ok).toBe(true);
    const r = await verifyCopy(copy, state);
    expect(r.ok).toBe(false);
    expect(r.firstBreak?.code).toBe("audit_tail_cut");
  });
});
