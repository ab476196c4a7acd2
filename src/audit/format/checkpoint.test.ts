// Checkpoints (docs/audit.md, "Checkpoints"): the signed bytes, the field order, and the chain
// builder that the sink's and exporter's tests use.
import { assert, describe, rejectionOf, test } from "../../../test/shim.ts";
import { subtle } from "../../x509/engine.ts";
import { fromBase64, fromBase64Url } from "../../x509/encoding.ts";
import { ECDSA_SHA256 } from "../../x509/keys.ts";
import { ChainBuilder } from "./chain-builder.ts";
import { buildCheckpointFields, checkpointPayload } from "./checkpoint.ts";
import { AuditError } from "./errors.ts";
import { GENESIS_PREV, formatLine, parseLine, sha256Hex } from "./line.ts";
import { SAMPLE_EVENTS } from "./samples.ts";
import { at, pki } from "./test-helpers.ts";

const H = "cd".repeat(32);

describe("checkpointPayload", () => {
  test("the context, seq, time, prev, signer and count, one per line, no final newline", () => {
    const p = checkpointPayload(42, new Date("2026-11-26T17:00:00.123Z"), H, "spiffe://example.org/tidegate/agent/n1", 41);
    assert.equal(new TextDecoder().decode(p), `tidegate-audit-checkpoint-v1\n42\n2026-11-26T17:00:00.123Z\n${H}\nspiffe://example.org/tidegate/agent/n1\n41`);
  });

  test("a time given as its text gives the same bytes", () => {
    const d = new Date("2026-11-26T17:00:00.000Z");
    assert.deepEqual(checkpointPayload(1, d, H, "spiffe://a/b", 0), checkpointPayload(1, d.toISOString(), H, "spiffe://a/b", 0));
  });
});

describe("buildCheckpointFields", () => {
  test("fields in order, chain as base64, sig as base64url; the line formatLine makes of them", () => {
    const sig = new Uint8Array(64).fill(0xfb);
    const f = buildCheckpointFields({ signer: "spiffe://a/b", chain: [new Uint8Array([1, 2, 3]), new Uint8Array([0xff])], sig, covers: { seq: 4, hash: H }, events: 4 });
    assert.deepEqual(Object.keys(f), ["signer", "alg", "covers", "events", "chain", "sig"]);
    const line = formatLine(5, new Date("2026-11-26T17:00:00.000Z"), "checkpoint", f, H);
    assert.equal(line, `{"seq":5,"time":"2026-11-26T17:00:00.000Z","type":"checkpoint","signer":"spiffe://a/b","alg":"ES256","covers":{"seq":4,"hash":"${H}"},"events":4,"chain":["AQID","/w=="],"sig":"${"-_v7".repeat(21)}-w","prev":"${H}"}`);
  });
});

describe("ChainBuilder", () => {
  test("tracks seq, head, the count since the checkpoint and the last checkpoint", async () => {
    const b = new ChainBuilder({ signer: (await pki()).signer });
    assert.equal(b.seq, 0);
    assert.equal(b.head, GENESIS_PREV);
    const l1 = await b.append("agent_start", SAMPLE_EVENTS.agent_start, at(1));
    assert.equal(parseLine(l1).prev, GENESIS_PREV);
    const l2 = await b.append("policy_loaded", SAMPLE_EVENTS.policy_loaded, at(2));
    assert.equal(parseLine(l2).prev, await sha256Hex(l1));
    assert.equal(b.sinceCheckpoint, 2);
    const cp = await b.checkpoint(at(3));
    assert.deepEqual(b.lines, [l1, l2, cp]);
    assert.equal(b.seq, 3);
    assert.equal(b.head, await sha256Hex(cp));
    assert.deepEqual(b.lastCheckpoint, { seq: 3, hash: b.head });
    assert.equal(b.sinceCheckpoint, 0);
    assert.equal(b.text(), `${l1}\n${l2}\n${cp}\n`);
    assert.equal(b.text(1, 2), `${l2}\n`);
  });

  test("the checkpoint's signature verifies over checkpointPayload with the leaf's key", async () => {
    const { leaf, signer } = await pki();
    const b = new ChainBuilder({ signer });
    await b.append("agent_start", SAMPLE_EVENTS.agent_start, at(1));
    const p = parseLine(await b.checkpoint(at(2)));
    const ev = p.event as { signer: string; events: number; covers: unknown; chain: string[]; sig: string };
    assert.equal(ev.signer, leaf.id.toString());
    assert.equal(ev.events, 1);
    assert.deepEqual(ev.covers, { seq: 1, hash: p.prev });
    assert.deepEqual(ev.chain.map((c) => fromBase64(c)), leaf.chain);
    const sig = fromBase64Url(ev.sig)!;
    assert.equal(sig.length, 64);
    const payload = checkpointPayload(2, p.time, p.prev, ev.signer, 1);
    assert.ok(await subtle.verify(ECDSA_SHA256, leaf.publicKey, sig as Uint8Array<ArrayBuffer>, payload as Uint8Array<ArrayBuffer>));
  });

  test("continues a chain from a given line", async () => {
    const b = new ChainBuilder({ start: { seq: 41, hash: H } });
    assert.equal(parseLine(await b.append("agent_stop", SAMPLE_EVENTS.agent_stop, at(1))).seq, 42);
    assert.equal(parseLine(b.lines[0]!).prev, H);
  });

  test("refuses an invalid event, and a checkpoint without a signer", async () => {
    const b = new ChainBuilder();
    await rejectionOf(b.append("agent_start", { version: "1" }, at(1)), AuditError).then((e) => assert.equal(e.code, "audit_bad_event"));
    assert.equal(b.seq, 0);
    await rejectionOf(b.checkpoint(at(1)), AuditError).then((e) => assert.equal(e.code, "audit_no_signer"));
  });
});
