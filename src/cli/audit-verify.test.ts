// `tidegate audit verify` on logs the real sink wrote, then tampered with on disk: each kind of
// tampering exits 1 and names the first broken link (file, line, seq, code).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { appendFileSync, copyFileSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createTestCa } from "../../test/helpers/test-ca.ts";
import { encodePem } from "../x509/pem.ts";
import { formatJwksBundle } from "../spiffe/index.ts";
import { Bundle } from "../spiffe/index.ts";
import { buildCheckpointFields, checkpointPayload, formatLine, sha256Hex } from "../audit/format/index.ts";
import { subtle } from "../x509/engine.ts";
import { ECDSA_SHA256, exportPkcs8Pem } from "../x509/keys.ts";
import { toArrayBuffer } from "../x509/encoding.ts";
import { svidSigner } from "../audit/sink/signer.ts";
import type { AuditSigner } from "../audit/sink/audit-log.ts";
import { listLogFiles } from "../audit/sink/files.ts";
import { verifyFiles } from "./audit-verify.ts";
import { connClose, linesOf, makeKit, run, writeLines, type Kit, type Place } from "./audit-testkit.ts";

let kit: Kit;
const NODE_1 = "spiffe://example.org/tidegate/agent/node-1";
/** The identity server's own SVID, which signs its log. */
let serverSigner: AuditSigner;
beforeAll(async () => {
  kit = await makeKit("verify");
  const leaf = await kit.ca.mintLeaf("/tidegate/server");
  serverSigner = svidSigner({ spiffeId: leaf.id.toString(), chain: leaf.chain, keyPem: await exportPkcs8Pem(leaf.privateKey) });
});
afterAll(() => kit.cleanup());

/**
 * The standard log, one file: seq 1-5 conn_close, 6 checkpoint, 7-11 conn_close, 12 checkpoint,
 * 13-14 conn_close, 15 checkpoint (at close); the state records seq 15.
 */
function standard(): Place {
  const p = kit.place();
  const log = p.open();
  for (let i = 1; i <= 12; i++) log.emit("conn_close", connClose(i));
  log.close();
  return p;
}

async function verify(p: Place, more: string[] = []) {
  return run(["audit", "verify", ...p.flags, "--bundle", kit.rootsPem, ...more]);
}

function breakOf(out: string): string | undefined {
  return /^BROKEN: (.*)$/m.exec(out)?.[1];
}

async function brokenJson(p: Place, more: string[] = []): Promise<[number, unknown]> {
  const r = await verify(p, [...more, "--json"]);
  const j = JSON.parse(r.out) as { firstBreak: { file: string; line: number; seq: number | null; code: string } | null };
  const b = j.firstBreak;
  return [r.code, b === null ? null : [b.file.slice(b.file.lastIndexOf("/") + 1), b.line, b.seq, b.code]];
}

describe("audit verify: an intact log", () => {
  test("exit 0 with the summary: files, events, checkpoints, last seq, signer, bundle, state", async () => {
    const p = standard();
    const r = await verify(p);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`files        1 file in ${p.dir}\n`);
    expect(r.out).toContain("events       15 (seq 1 to 15)\n");
    expect(r.out).toContain("checkpoints  3, the last at seq 15\n");
    expect(r.out).toContain("unsealed     none: every event is under a signed checkpoint\n");
    expect(r.out).toContain("signers      spiffe://example.org/tidegate/agent/node-1\n");
    expect(r.out).toContain(`trust bundle ${kit.rootsPem} (example.org)\n`);
    expect(r.out).toContain(`state        ${p.statePath}: the checkpoint at seq 15\n`);
    expect(r.out).toEndWith("ok: the chain is intact up to seq 15\n");
    expect(r.err).toBe("");
  });

  test("checkpoints must be signed by the node whose log it is: agent.json's ID by default, or --signer", async () => {
    const p = standard();
    expect((await verify(p, ["--signer", "spiffe://example.org/tidegate/agent/node-1"])).code).toBe(0);
    const other = await verify(p, ["--signer", "spiffe://example.org/tidegate/agent/node-2"]);
    expect(other.code).toBe(1);
    expect(other.out).toContain("is signed by spiffe://example.org/tidegate/agent/node-1, not by spiffe://example.org/tidegate/agent/node-2");
    writeFileSync(join(p.stateDir, "agent", "agent.json"), JSON.stringify({ server: "https://127.0.0.1:1", api_port: 2, trust_domain: "example.org", node: "node-9", spiffe_id: "spiffe://example.org/tidegate/agent/node-9" }));
    try {
      const byState = await verify(p);
      expect(byState.code).toBe(1);
      expect(byState.out).toContain("not by spiffe://example.org/tidegate/agent/node-9");
      writeFileSync(join(p.stateDir, "agent", "agent.json"), "{}");
      expect((await verify(p)).code).toBe(2); // a damaged agent.json never turns the pin off
    } finally {
      rmSync(join(p.stateDir, "agent", "agent.json"));
    }
  });

  test("a log with no checkpoint at all: the summary and the verdict say its events are unsigned; still exit 0", async () => {
    const p = standard();
    writeLines(p.active, linesOf(p.active).slice(0, 5));
    const r = await verify(p, ["--no-state"]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("checkpoints  none\n");
    expect(r.out).toContain("unsealed     5 events, none under a signed checkpoint\n");
    expect(r.out).toEndWith("ok: the chain is intact up to seq 5, but unsigned: no checkpoint vouches for these events, and anyone able to write the log could have rebuilt the chain\n");
    expect(r.err).toContain("no checkpoint: 5 events are not signed");
  });

  test("a log broken at its first line claims nothing about checkpoints", async () => {
    const garbage = join(kit.root, "garbage.jsonl");
    writeFileSync(garbage, Buffer.from([0xff, 0xfe, 0x80, 0x0a]));
    const r = await run(["audit", "verify", "--bundle", kit.rootsPem, garbage]);
    expect(r.code).toBe(1);
    expect(r.out).toContain("events       0, verified before the break\n");
    expect(r.out).toContain("unsealed     0 events, none under a signed checkpoint\n");
    expect(r.out).not.toContain("every event");
    expect(breakOf(r.out)).toStartWith(`${garbage} line 1: audit_malformed_line: `);
  });

  test("an event with a field of 70,000 characters, written by the real sink: cut to fit, saying so, and the log verifies", async () => {
    const p = kit.place();
    const log = p.open({ base: { instance: "i".repeat(70_000) } });
    const long = "d".repeat(70_000);
    log.emit("admin", { action: "mcp approve", actor: null, detail: long });
    log.emit("deny", { side: "egress", conn_id: null, src: { spiffe_id: null, pid: 1, uid: 0, cgroup_id: 1, workload: null, exe: long, peer: null }, dst: { addr: "10.0.0.1", port: 22, name: null }, rule: null, reason: "no rule" });
    log.emit("conn_close", { ...connClose(1), instance: "own", detail: long }); // a base field named: the path through formatLine
    log.emit("conn_close", connClose(2));
    log.close();
    const events = linesOf(p.active).map((l) => JSON.parse(l) as Record<string, unknown> & { src?: { exe: string } });
    const note = " [cut: 70000 characters in all]";
    for (const text of [events[0]!.detail, events[1]!.src!.exe, events[2]!.detail, events[0]!.instance] as string[]) {
      expect(text.length).toBe(65_536);
      expect(text.endsWith(note)).toBe(true);
    }
    expect(events[3]!.detail).toBeUndefined();
    const r = await verify(p);
    expect(r.err).toBe("");
    expect([r.code, /^events .*$/m.exec(r.out)?.[0], r.out.trimEnd().split("\n").at(-1)]).toEqual([0, "events       5 (seq 1 to 5)", "ok: the chain is intact up to seq 5"]);
  });

  test("--json prints the VerifyReport", async () => {
    const p = standard();
    const r = await verify(p, ["--json"]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j).toMatchObject({ ok: true, events: 15, checkpoints: 3, lastSeq: 15, lastCheckpointSeq: 15, unsealedTail: 0, firstBreak: null, warnings: [] });
    expect(j.signers).toEqual(["spiffe://example.org/tidegate/agent/node-1"]);
    expect(j.state).toMatchObject({ path: p.statePath, seq: 15 });
  });

  test("rotated files verify as one chain; FILES given in any order are sorted by their first seq", async () => {
    const p = kit.place();
    const log = p.open({ maxFileBytes: 2048, checkpointEvery: 1000 });
    for (let i = 1; i <= 40; i++) log.emit("conn_close", connClose(i));
    log.close();
    const files = listLogFiles(p.dir).map((f) => f.path);
    expect(files.length).toBeGreaterThan(2);
    const dirRun = await verify(p);
    expect(dirRun.code).toBe(0);
    expect(dirRun.out).toContain(`files        ${files.length} files in ${p.dir}\n`);
    const given = await run(["audit", "verify", "--bundle", kit.rootsPem, "--state", p.stateDir, ...[...files].reverse()]);
    expect(given.out).toContain(`files        ${files.length} files given\n`);
    expect([given.code, breakOf(given.out)]).toEqual([0, undefined]);
  });

  test("the agent's own trust bundle from <state-dir>/agent/ is used without --bundle", async () => {
    const p = standard();
    mkdirSync(join(p.stateDir, "agent"), { recursive: true });
    writeFileSync(join(p.stateDir, "agent", "agent.json"), JSON.stringify({ server: "https://127.0.0.1:1", api_port: 2, trust_domain: "example.org", node: "node-1", spiffe_id: "spiffe://example.org/tidegate/agent/node-1" }));
    writeFileSync(join(p.stateDir, "agent", "bundle.json"), await formatJwksBundle(Bundle.create(kit.ca.trustDomain, { x509Authorities: [kit.ca.root.der] })));
    const r = await run(["audit", "verify", ...p.flags]);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`trust bundle ${join(p.stateDir, "agent", "bundle.json")} (example.org)\n`);
    expect(r.err).toBe("");
  });

  test("without any bundle: exit 0, checked against the leaf keys, with a warning", async () => {
    const p = standard();
    const r = await run(["audit", "verify", ...p.flags]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("trust bundle none: checkpoint certificates checked against their own keys only\n");
    expect(r.err).toContain("warning: checkpoint chains were not checked against a trust bundle\n");
  });

  test("a log rotated between listing and reading is read again: no false break", async () => {
    const p = kit.place();
    const log = p.open({ maxFileBytes: 2048, checkpointEvery: 1000 });
    for (let i = 1; i <= 30; i++) log.emit("conn_close", connClose(i));
    let passes = 0;
    // now() is asked once per pass, after the files are listed: the first time, the agent writes
    // on and rotates, so the listing is stale when the files are read.
    const now = () => {
      if (++passes === 1) {
        const files = listLogFiles(p.dir).length;
        for (let i = 31; listLogFiles(p.dir).length === files; i++) log.emit("conn_close", connClose(i));
      }
      return new Date();
    };
    const trust = { bundles: kit.ca.bundle, bundleFrom: null, trustDomains: [] };
    const r = await verifyFiles({ dir: p.dir, explicit: null, trust, state: null, now });
    const written = log.seq;
    log.close();
    expect(r.report.firstBreak).toBeNull();
    expect(passes).toBe(2);
    expect(r.report.lastSeq).toBe(written);
  });

  test("100,000 events verify in seconds", async () => {
    const p = kit.place();
    const log = p.open({ checkpointEvery: 1000, maxFileBytes: 4 * 1024 * 1024 });
    for (let i = 1; i <= 100_000; i++) log.emit("conn_close", connClose(i));
    log.close();
    const t0 = performance.now();
    const r = await verify(p, ["--json"]);
    const ms = performance.now() - t0;
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out).events).toBeGreaterThan(100_000);
    expect(ms).toBeLessThan(20_000);
  }, 60_000);
});

describe("audit verify: tampering exits 1 and names the first broken link", () => {
  test("an edited field: the next line's prev no longer matches", async () => {
    const p = standard();
    const lines = linesOf(p.active);
    lines[2] = lines[2]!.replace('"bytes_up":3,', '"bytes_up":9,');
    writeLines(p.active, lines);
    expect(await brokenJson(p)).toEqual([1, ["audit.jsonl", 4, 4, "audit_prev_mismatch"]]);
    const r = await verify(p);
    expect(r.code).toBe(1);
    expect(breakOf(r.out)).toBe(`${p.active} line 4 (seq 4): audit_prev_mismatch: seq 4: prev is not the hash of the line before it (seq 3): that line or this one was edited`);
  });

  /** The standard log with an event and a checkpoint signed by a workload's SVID (of the same CA) appended; `decoy`: the checkpoint names node-1 in a field of its own. */
  async function forgedTail(p: Place, decoy: boolean): Promise<string> {
    const evil = await kit.ca.mintLeaf("/workload/evil");
    const lines = linesOf(p.active);
    const line16 = formatLine(16, new Date(), "admin", { action: "nothing happened", actor: null, detail: null }, await sha256Hex(lines.at(-1)!));
    const h16 = await sha256Hex(line16);
    const time = new Date();
    const sig = new Uint8Array(await subtle.sign(ECDSA_SHA256, evil.privateKey, toArrayBuffer(checkpointPayload(17, time, h16, evil.id.toString(), 1))));
    const own = buildCheckpointFields({ signer: evil.id.toString(), chain: evil.chain, sig, covers: { seq: 16, hash: h16 }, events: 1 });
    writeLines(p.active, [...lines, line16, formatLine(17, time, "checkpoint", decoy ? { x: { signer: NODE_1 }, ...own } : own, h16)]);
    return evil.id.toString();
  }

  test("a checkpoint signed by another SVID cannot pass the signer pin by naming the pinned ID in a field of its own", async () => {
    // Objects are open, so a forged checkpoint may carry {"x":{"signer":"<the node>"}} before its
    // real signer; the pin must read the signer the verifier checked, not the first "signer" text.
    const p = standard();
    const evil = await forgedTail(p, true);
    const r = await verify(p, ["--signer", NODE_1, "--no-state"]);
    expect(r.out).toContain(`is signed by ${evil}, not by ${NODE_1}`);
    expect(r.code).toBe(1);
  });

  test("the audit directory's own files named as FILES are pinned to the node's ID as the directory is", async () => {
    const p = standard();
    const evil = await forgedTail(p, false);
    writeFileSync(join(p.stateDir, "agent", "agent.json"), JSON.stringify({ server: "https://127.0.0.1:1", api_port: 2, trust_domain: "example.org", node: "node-1", spiffe_id: NODE_1 }));
    const byDir = await verify(p, ["--no-state"]);
    expect(byDir.out).toContain(`is signed by ${evil}, not by ${NODE_1}`);
    const byFiles = await verify(p, ["--no-state", p.active]);
    expect(byFiles.out).toContain(`is signed by ${evil}, not by ${NODE_1}`);
    expect(byFiles.code).toBe(1);
  });

  test("the signers listed are those of the checkpoints verified: a line after the break names none, nor drives the terminal", async () => {
    const p = standard();
    const lines = linesOf(p.active);
    const bogus = JSON.parse(lines[5]!) as Record<string, unknown>; // the checkpoint at seq 6
    writeLines(p.active, [...lines, JSON.stringify({ ...bogus, signer: "spiffe://example.org/\u001b]0;owned\u0007\u009b2J" })]);
    for (const more of [[], ["--json"]]) {
      const r = await verify(p, ["--no-state", ...more]);
      expect(r.code).toBe(1);
      expect(r.out + r.err).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
      expect(r.out).not.toContain("owned");
    }
  });

  test("a deleted line", async () => {
    const p = standard();
    const lines = linesOf(p.active);
    lines.splice(2, 1);
    writeLines(p.active, lines);
    expect(await brokenJson(p)).toEqual([1, ["audit.jsonl", 3, 4, "audit_seq_gap"]]);
  });

  test("an inserted line, even one chained to the line before it", async () => {
    const p = standard();
    const lines = linesOf(p.active);
    const forged = formatLine(3, new Date(), "admin", { action: "nothing happened", actor: null, detail: null }, await sha256Hex(lines[1]!));
    lines.splice(2, 0, forged);
    writeLines(p.active, lines);
    expect(await brokenJson(p)).toEqual([1, ["audit.jsonl", 4, 3, "audit_seq_gap"]]);
  });

  test("two lines swapped", async () => {
    const p = standard();
    const lines = linesOf(p.active);
    [lines[2], lines[3]] = [lines[3]!, lines[2]!];
    writeLines(p.active, lines);
    expect(await brokenJson(p)).toEqual([1, ["audit.jsonl", 3, 4, "audit_seq_gap"]]);
  });

  test("the tail cut before the last checkpoint: found with the state, given or the instance's; a warning with --no-state", async () => {
    const p = standard();
    writeLines(p.active, linesOf(p.active).slice(0, 13)); // ends at seq 13, the checkpoint at 15 gone
    const cut: [number, unknown] = [1, ["audit.jsonl", 14, 14, "audit_tail_cut"]];
    expect(await brokenJson(p)).toEqual(cut);
    expect(await brokenJson(p, ["--state", p.stateDir])).toEqual(cut);
    expect(await brokenJson(p, ["--state", p.statePath])).toEqual(cut);
    const backup = join(kit.root, `backup-${Date.now()}`);
    mkdirSync(backup);
    copyFileSync(p.statePath, join(backup, "audit-checkpoint.json"));
    expect(await brokenJson(p, ["--state", backup])).toEqual(cut);
    const none = await verify(p, ["--no-state"]);
    expect(none.code).toBe(0);
    expect(none.out).toContain("unsealed     1 event after the last checkpoint\n");
    expect(none.err).toContain("1 events after the last checkpoint: the agent is running, crashed, or the tail was cut; give --state to tell");
  });

  test("the tail cut exactly at a checkpoint: only the state tells", async () => {
    const p = standard();
    writeLines(p.active, linesOf(p.active).slice(0, 12)); // ends with the checkpoint at seq 12
    expect(await brokenJson(p)).toEqual([1, ["audit.jsonl", 13, 13, "audit_tail_cut"]]);
    const none = await verify(p, ["--no-state"]);
    expect([none.code, none.err]).toEqual([0, ""]);
  });

  test("a state whose checkpoint is another line: audit_state_mismatch", async () => {
    const p = standard();
    writeFileSync(p.statePath, JSON.stringify({ seq: 12, hash: "0".repeat(64), time: new Date().toISOString() }));
    expect(await brokenJson(p)).toEqual([1, ["audit.jsonl", 12, 12, "audit_state_mismatch"]]);
  });

  test("a bad checkpoint signature", async () => {
    const p = standard();
    const lines = linesOf(p.active);
    lines[5] = lines[5]!.replace(/"sig":"(.)/, (_, c: string) => `"sig":"${c === "A" ? "B" : "A"}`);
    writeLines(p.active, lines);
    expect(await brokenJson(p)).toEqual([1, ["audit.jsonl", 6, 6, "audit_checkpoint_signature"]]);
  });

  test("a checkpoint dated before the one before it, signed with the node's own key: audit_checkpoint_time_reversed", async () => {
    // As a leaked key of an expired certificate would date one inside its validity; here the key is valid, only the order is wrong.
    const p = standard();
    const lines = linesOf(p.active);
    const last = JSON.parse(lines.at(-1)!) as { seq: number; time: string };
    const line16 = formatLine(16, new Date(), "admin", { action: "nothing happened", actor: null, detail: null }, await sha256Hex(lines.at(-1)!));
    const h16 = await sha256Hex(line16);
    const time = new Date(Date.parse(last.time) - 1000);
    const sig = kit.signer.sign(checkpointPayload(17, time, h16, NODE_1, 1));
    const fields = buildCheckpointFields({ signer: NODE_1, chain: kit.signer.chain, sig, covers: { seq: 16, hash: h16 }, events: 1 });
    writeLines(p.active, [...lines, line16, formatLine(17, time, "checkpoint", fields, h16)]);
    expect(await brokenJson(p, ["--no-state"])).toEqual([1, ["audit.jsonl", 17, 17, "audit_checkpoint_time_reversed"]]);
    const r = await verify(p, ["--no-state"]);
    expect(breakOf(r.out)).toBe(`${p.active} line 17 (seq 17): audit_checkpoint_time_reversed: checkpoint at seq 17 is dated ${time.toISOString()}, before the previous checkpoint (seq 15, ${last.time})`);
  });

  test("a --bundle of another CA: audit_checkpoint_chain", async () => {
    const p = standard();
    const other = await createTestCa();
    const pem = join(kit.root, "other-roots.pem");
    writeFileSync(pem, encodePem("CERTIFICATE", other.root.der));
    const r = await run(["audit", "verify", ...p.flags, "--bundle", pem, "--json"]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.out).firstBreak).toMatchObject({ line: 6, seq: 6, code: "audit_checkpoint_chain" });
  });

  test("a rotated file in the middle deleted", async () => {
    const p = kit.place();
    const log = p.open({ maxFileBytes: 2048, checkpointEvery: 1000 });
    for (let i = 1; i <= 40; i++) log.emit("conn_close", connClose(i));
    log.close();
    const files = listLogFiles(p.dir);
    expect(files.length).toBeGreaterThan(2);
    rmSync(files[1]!.path);
    const [code, b] = await brokenJson(p);
    expect(code).toBe(1);
    expect(b).toEqual([files[2]!.name, 1, files[2]!.firstSeq, "audit_seq_gap"]);
  });

  test("a torn line at the end of a rotated file, not recovered", async () => {
    const p = kit.place();
    const log = p.open({ maxFileBytes: 2048, checkpointEvery: 1000 });
    for (let i = 1; i <= 30; i++) log.emit("conn_close", connClose(i));
    log.close();
    const first = listLogFiles(p.dir)[0]!;
    appendFileSync(first.path, '{"seq":99,"ti');
    const [code, b] = await brokenJson(p);
    expect(code).toBe(1);
    expect((b as unknown[])[3]).toBe("audit_torn_line");
  });

  test("an audit directory without a log file: audit_empty", async () => {
    const p = kit.place();
    mkdirSync(p.dir);
    const r = await verify(p, ["--no-state"]);
    expect(r.code).toBe(1);
    expect(breakOf(r.out)).toBe(`in ${p.dir}: audit_empty: no line in the files given`);
  });
});

describe("audit verify --server: the identity server's log and state", () => {
  test("<audit-dir>/server with <state-dir>/server/audit-checkpoint.json; a cut tail is found", async () => {
    const p = kit.place({ server: true });
    expect(p.dir).toEndWith("/log/server");
    const log = p.open({ signer: () => serverSigner });
    for (let i = 1; i <= 12; i++) log.emit("admin", { action: `entry create ${i}`, actor: "root", detail: null });
    log.close();
    const ok = await verify(p);
    expect(ok.code).toBe(0);
    expect(ok.out).toContain(`files        1 file in ${p.dir}\n`);
    expect(ok.out).toContain(`state        ${p.statePath}: the checkpoint at seq 15\n`);
    writeLines(p.active, linesOf(p.active).slice(0, 12));
    expect(await brokenJson(p)).toEqual([1, ["audit.jsonl", 13, 13, "audit_tail_cut"]]);
    const tail = await run(["audit", "tail", ...p.flags, "-n", "1"]);
    expect(tail.out).toMatch(/ checkpoint #12 /);
  });

  test("checkpoints must be signed by the server's own ID (spiffe://TD/tidegate/server of the bundle's trust domain), or --signer's", async () => {
    const p = kit.place({ server: true });
    const log = p.open(); // signed by a node's SVID, which chains to the same bundle
    for (let i = 1; i <= 3; i++) log.emit("admin", { action: `entry create ${i}`, actor: "root", detail: null });
    log.close();
    const r = await verify(p);
    expect(r.code).toBe(1);
    expect(r.out).toContain(`is signed by ${NODE_1}, not by spiffe://example.org/tidegate/server`);
    expect((await verify(p, ["--signer", NODE_1])).code).toBe(0);
  });
});

describe("audit verify: usage and inputs", () => {
  test("exit 2: a FILE, a --state or a --bundle that cannot be read, a bad state, conflicting flags, a --signer that is not a SPIFFE ID", async () => {
    const p = standard();
    const cases: [string[], string][] = [
      [["audit", "verify", join(p.dir, "nope.jsonl")], "no such file"],
      [["audit", "verify", mkdirSync(join(kit.root, "unreadable-dir.jsonl"), { recursive: true }) ?? join(kit.root, "unreadable-dir.jsonl")], "not a regular file"],
      [["audit", "verify", ...p.flags, "--state", join(kit.root, "none")], "does not exist"],
      [["audit", "verify", ...p.flags, "--bundle", join(kit.root, "none.pem")], "no such file"],
      [["audit", "verify", ...p.flags, "--state", p.stateDir, "--no-state"], "not both"],
      [["audit", "verify", ...p.flags, "--trust-domain", "example.org"], "--trust-domain goes with --bundle"],
      // a typo in --signer is not a tampered log (exit 1 BROKEN): it is refused before anything is read
      [["audit", "verify", ...p.flags, "--signer", "notanid"], '--signer: spiffeid: "notanid" does not start with "spiffe://"'],
      [["audit", "verify", ...p.flags, "--signer", ""], "--signer: spiffeid: the SPIFFE ID is empty"],
      [["audit", "verify", ...p.flags, "--signer", "spiffe://example.org/tidegate/agent/node-1/"], "--signer: spiffeid: "],
    ];
    for (const [args, text] of cases) {
      const r = await run(args);
      expect([r.code, r.err.includes(text)]).toEqual([2, true]);
    }
    writeFileSync(p.statePath, "{}");
    const bad = await run(["audit", "verify", ...p.flags]);
    expect([bad.code, bad.err.includes("is not {\"seq\": N")]).toEqual([2, true]);
  });

  test("exit 2 naming the path when --audit-dir is a file", async () => {
    const r = await run(["audit", "verify", "--audit-dir", kit.rootsPem]);
    expect(r.code).toBe(2);
    expect(r.err).toStartWith(`tidegate audit verify: ${JSON.stringify(kit.rootsPem)} is not a directory: give the audit log's folder (--audit-dir DIR or --instance NAME), or log files as FILES\n`);
  });

  test("exit 1 audit_no_log when the audit directory does not exist", async () => {
    const p = kit.place();
    const r = await run(["audit", "verify", ...p.flags]);
    expect(r.code).toBe(1);
    expect(r.err).toContain("[audit_no_log]");
  });

  test("the instance's state is not applied to FILES from elsewhere", async () => {
    const p = standard();
    const q = standard();
    // q's state says seq 15: verifying p's files with q's state dir as the instance's would be
    // a false alarm only if applied; p's files are not in q's audit dir, so it is not.
    const r = await run(["audit", "verify", ...q.flags, "--bundle", kit.rootsPem, ...readdirSync(p.dir).map((n) => join(p.dir, n))]);
    expect(r.out).toContain("state        none\n");
    expect(r.code).toBe(0);
  });
});
