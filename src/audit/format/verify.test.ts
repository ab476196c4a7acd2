// verifyAudit on intact logs (docs/audit.md, "Verification"): what it counts, the warnings it
// gives, rotation across files, files given as bytes, and the state argument.
import { assert, describe, rejectionOf, test } from "../../../test/shim.ts";
import { ChainBuilder, subtleSigner } from "./chain-builder.ts";
import { AuditError } from "./errors.ts";
import { sha256Hex } from "./line.ts";
import { SAMPLE_EVENTS } from "./samples.ts";
import { at, breakOf, fileText, pki, sampleChain, SIGNER_PATH, T0, verify } from "./test-helpers.ts";
import { verifyAudit } from "./verify.ts";

const UNSEALED = /^(\d+) events after the last checkpoint: the agent is running, crashed, or the tail was cut; give --state to tell$/;

describe("an intact log verifies", () => {
  test("counts, the last checkpoint and the unsealed tail, with its warning", async () => {
    const b = await sampleChain({ tail: 3 });
    const r = await verify([{ name: "audit.jsonl", text: b.text() }]);
    assert.deepEqual(r, {
      ok: true,
      events: 13,
      checkpoints: 2,
      lastSeq: 13,
      lastCheckpointSeq: 10,
      unsealedTail: 3,
      firstBreak: null,
      warnings: ["3 events after the last checkpoint: the agent is running, crashed, or the tail was cut; give --state to tell"],
      signers: ["spiffe://example.org/tidegate/agent/node-1"],
    });
  });

  test("ending at a checkpoint, with the state: no warning", async () => {
    const b = await sampleChain();
    const r = await verify([{ name: "audit.jsonl", text: b.text() }], { state: b.lastCheckpoint });
    assert.equal(r.ok, true);
    assert.equal(r.unsealedTail, 0);
    assert.deepEqual(r.warnings, []);
  });

  test("with the state and a tail after it: the tail is still called unsealed", async () => {
    const b = await sampleChain({ tail: 2 });
    const r = await verify([{ name: "audit.jsonl", text: b.text() }], { state: b.lastCheckpoint });
    assert.equal(r.ok, true);
    assert.deepEqual(r.warnings, ["2 events after the last checkpoint: the agent is running or crashed, or lines after it were cut"]);
  });

  test("rotated: the chain continues across files, split anywhere", async () => {
    const b = await sampleChain({ tail: 2 });
    for (const cut of [1, 5, 6, 7, 10, 11]) {
      const r = await verify([
        { name: "audit-1.jsonl", text: b.text(0, cut) },
        { name: "audit-2.jsonl", text: b.text(cut) },
      ]);
      assert.equal(breakOf(r), "ok", `cut after line ${cut}`);
      assert.equal(r.events, 12);
    }
  });

  test("three files and an empty one (a file just opened): a warning for the empty one", async () => {
    const b = await sampleChain();
    const r = await verify([
      { name: "a", text: b.text(0, 3) },
      { name: "b", text: b.text(3, 6) },
      { name: "c", text: "" },
      { name: "d", text: b.text(6) },
    ]);
    assert.equal(breakOf(r), "ok");
    assert.deepEqual(r.warnings, ['file "c" is empty']);
  });

  test("bytes give the same report as text", async () => {
    const b = await sampleChain({ tail: 1 });
    const bytes = new TextEncoder().encode(b.text());
    assert.deepEqual(await verify([{ name: "a", text: bytes }]), await verify([{ name: "a", text: b.text() }]));
  });

  test("non-ASCII fields hash as UTF-8", async () => {
    const b = new ChainBuilder({ signer: (await pki()).signer });
    await b.append("admin", { action: "policy reload", actor: "zoë ☃ 𝄞", detail: "\u2028" }, at(1));
    await b.checkpoint(at(2));
    assert.equal(breakOf(await verify([{ name: "a", text: new TextEncoder().encode(b.text()) }], { state: b.lastCheckpoint })), "ok");
  });

  test("without a trust bundle: the signatures are checked, a warning says the chains are not", async () => {
    const b = await sampleChain();
    const r = await verify([{ name: "a", text: b.text() }], { bundles: null });
    assert.equal(r.ok, true);
    assert.deepEqual(r.warnings, ["checkpoint chains were not checked against a trust bundle"]);
  });

  test("a leaf under an intermediate CA, the chain carrying the intermediate", async () => {
    const { ca } = await pki();
    const inter = await ca.mintIntermediate({ now: T0 });
    const leaf = await inter.mintLeaf(SIGNER_PATH, { now: T0 });
    assert.equal(leaf.chain.length, 2);
    const b = await sampleChain({ signer: subtleSigner(leaf.id.toString(), leaf.chain, leaf.privateKey) });
    assert.equal(breakOf(await verify([{ name: "a", text: b.text() }], { state: b.lastCheckpoint })), "ok");
  });

  test("no checkpoint at all: ok, every event unsealed", async () => {
    const b = new ChainBuilder();
    await b.append("agent_start", SAMPLE_EVENTS.agent_start, at(1));
    await b.append("agent_stop", SAMPLE_EVENTS.agent_stop, at(2));
    const r = await verify([{ name: "a", text: b.text() }]);
    assert.equal(r.ok, true);
    assert.equal(r.unsealedTail, 2);
    assert.equal(r.lastCheckpointSeq, null);
    assert.deepEqual(r.warnings, ["no checkpoint: 2 events are not signed: the agent is running, crashed, or the tail was cut; give --state to tell"]);
  });

  test("the later files alone: a warning that earlier files are missing; the first count may include unseen lines", async () => {
    const b = await sampleChain({ tail: 1 });
    const r = await verify([{ name: "audit-2.jsonl", text: b.text(7) }]);
    assert.equal(breakOf(r), "ok");
    assert.equal(r.events, 4);
    assert.equal(r.warnings[0], "starts at seq 8: earlier files not given");
    assert.match(r.warnings[1]!, UNSEALED);
  });

  test("files that begin after the state's checkpoint: a break (the lines up to it are missing)", async () => {
    const b = await sampleChain();
    const state = { seq: 6, hash: await sha256Hex(b.lines[5]!) };
    const r = await verify([{ name: "a", text: b.text(7) }], { state });
    assert.equal(r.ok, false);
    assert.equal(r.firstBreak?.code, "audit_state_mismatch");
    assert.equal(r.firstBreak?.seq, 8);
  });

  test("a rotated file whose name is not its first seq: a break", async () => {
    const b = await sampleChain();
    const r = await verify([{ name: "audit-000000000001.jsonl", text: b.text(4) }], {});
    assert.equal(r.firstBreak?.code, "audit_seq_gap");
    assert.match(r.firstBreak?.message ?? "", /named for seq 1 but begins at seq 5/);
  });

  test("a checkpoint dated after now: a warning", async () => {
    const b = await sampleChain();
    const r = await verify([{ name: "a", text: b.text() }], { state: b.lastCheckpoint, now: at(7) });
    assert.deepEqual(r.warnings, ["1 checkpoints are dated after 2026-11-26T17:00:07.000Z"]);
  });

  test("a long log with checkpoints every 500 lines verifies (its speed is bench material, not asserted here)", async () => {
    const b = new ChainBuilder({ signer: (await pki()).signer });
    for (let i = 1; i <= 3000; i++) {
      if (i % 500 === 0) await b.checkpoint(at(i / 1000));
      else await b.append("conn_close", { ...SAMPLE_EVENTS.conn_close, conn_id: `c-${i}` }, at(i / 1000));
    }
    const r = await verify([{ name: "a", text: b.text() }], { state: b.lastCheckpoint });
    assert.equal(breakOf(r), "ok");
    assert.equal(r.checkpoints, 6);
    assert.equal(r.events, 3000);
  });
});

describe("arguments", () => {
  const bad = [
    { seq: 0, hash: "0".repeat(64) },
    { seq: 1.5, hash: "0".repeat(64) },
    { seq: 1, hash: "0".repeat(63) },
    { seq: 1, hash: "A".repeat(64) },
  ];
  for (const state of bad) {
    test(`a state of ${JSON.stringify(state).slice(0, 40)}: audit_bad_state`, async () => {
      const e = await rejectionOf(verifyAudit({ files: [], bundles: null, state, now: T0 }), AuditError);
      assert.equal(e.code, "audit_bad_state");
    });
  }

  test("no file at all, or only empty ones: audit_empty", async () => {
    assert.deepEqual(breakOf(await verify([])), ["", 0, null, "audit_empty"]);
    assert.deepEqual(breakOf(await verify([{ name: "a", text: "" }, { name: "b", text: new Uint8Array() }])), ["b", 0, null, "audit_empty"]);
  });

  test("a Bad line's message starts with 'audit: '", async () => {
    const r = await verify([{ name: "a", text: "{\n" }]);
    assert.equal(r.firstBreak?.code, "audit_malformed_line");
    assert.equal(r.firstBreak?.message, "audit: line is not JSON");
  });
});
