// Every kind of tampering verifyAudit finds, each reported as the first broken link with its file,
// line, seq and code (docs/audit.md, "Verification"). The chain of test-helpers.ts: lines 1-5
// events, 6 checkpoint, 7-9 events, 10 checkpoint.
import { assert, describe, test } from "../../../test/shim.ts";
import { createTestCa } from "../../../test/helpers/test-ca.ts";
import { ChainBuilder, subtleSigner } from "./chain-builder.ts";
import { buildCheckpointFields, checkpointPayload } from "./checkpoint.ts";
import { formatLine, GENESIS_PREV, parseLine, sha256Hex } from "./line.ts";
import { SAMPLE_EVENTS } from "./samples.ts";
import { at, breakOf, fileText, pki, sampleChain, SIGNER_PATH, T0, verify } from "./test-helpers.ts";
import type { AuditEventType } from "./schema.ts";
import { subtle } from "../../x509/engine.ts";
import { ECDSA_SHA256 } from "../../x509/keys.ts";

const F = "audit.jsonl";
const one = (lines: readonly string[]) => [{ name: F, text: fileText(lines) }];

/** The line with `edit` applied to its parsed object, re-serialised in place (prev kept). */
function edited(line: string, edit: (o: Record<string, unknown>) => void): string {
  const o = JSON.parse(line) as Record<string, unknown>;
  edit(o);
  return JSON.stringify(o);
}

/** Lines re-chained from index `from` on: seq renumbered, prev recomputed, as an attacker would. */
async function rechain(lines: string[], from: number): Promise<string[]> {
  const out = lines.slice(0, from);
  for (let i = from; i < lines.length; i++) {
    const prev = i === 0 ? GENESIS_PREV : await sha256Hex(out[i - 1]!);
    const p = parseLine(lines[i]!);
    const { seq: _s, time: _t, type: _y, prev: _p, ...rest } = p.event;
    const fields = p.type === "checkpoint" ? { ...rest, covers: { seq: i, hash: prev } } : rest;
    out.push(formatLine(i + 1, new Date(p.time), p.type as AuditEventType, fields, prev));
  }
  return out;
}

/** A checkpoint line after `b`'s head, with any field or signed value overridden. */
async function craftCheckpoint(
  b: ChainBuilder,
  o: { covers?: { seq: number; hash: string }; events?: number; signedEvents?: number; signer?: string; key?: CryptoKey; chain?: Uint8Array[]; time?: Date } = {},
): Promise<string> {
  const p = await pki();
  const time = o.time ?? at(20);
  const signer = o.signer ?? p.signer.id;
  const events = o.events ?? b.sinceCheckpoint;
  const payload = checkpointPayload(b.seq + 1, time, b.head, signer, o.signedEvents ?? events);
  const sig = new Uint8Array(await subtle.sign(ECDSA_SHA256, o.key ?? p.leaf.privateKey, payload as Uint8Array<ArrayBuffer>));
  const fields = buildCheckpointFields({ signer, chain: o.chain ?? p.leaf.chain, sig, covers: o.covers ?? { seq: b.seq, hash: b.head }, events });
  return formatLine(b.seq + 1, time, "checkpoint", fields, b.head);
}

describe("lines changed, removed, added or moved", () => {
  test("a field edited: the next line's prev no longer matches", async () => {
    const b = await sampleChain();
    const lines = [...b.lines];
    lines[2] = edited(lines[2]!, (o) => (o.decision = "deny"));
    assert.deepEqual(breakOf(await verify(one(lines))), [F, 4, 4, "audit_prev_mismatch"]);
  });

  test("the whitespace of a line edited: not canonical", async () => {
    const b = await sampleChain();
    const lines = [...b.lines];
    lines[4] = lines[4]!.replace('"seq":5', '"seq": 5');
    assert.deepEqual(breakOf(await verify(one(lines))), [F, 5, null, "audit_malformed_line"]);
  });

  test("a line deleted", async () => {
    const b = await sampleChain();
    const lines = b.lines.filter((_, i) => i !== 2);
    assert.deepEqual(breakOf(await verify(one(lines))), [F, 3, 4, "audit_seq_gap"]);
  });

  test("a line inserted with the right seq and prev: the line after it repeats its seq", async () => {
    const b = await sampleChain();
    const lines = [...b.lines];
    lines.splice(3, 0, formatLine(4, at(3.5), "admin", SAMPLE_EVENTS.admin, await sha256Hex(lines[2]!)));
    assert.deepEqual(breakOf(await verify(one(lines))), [F, 5, 4, "audit_seq_gap"]);
  });

  test("a line inserted and every later line re-chained: the checkpoint's count", async () => {
    const b = await sampleChain();
    const lines = [...b.lines];
    lines.splice(3, 0, formatLine(4, at(3.5), "admin", SAMPLE_EVENTS.admin, GENESIS_PREV));
    assert.deepEqual(breakOf(await verify(one(await rechain(lines, 3)))), [F, 7, 7, "audit_checkpoint_count"]);
  });

  test("a line deleted, the rest re-chained and the count fixed: the signature", async () => {
    const b = await sampleChain();
    let lines = await rechain(b.lines.filter((_, i) => i !== 2), 2);
    assert.deepEqual(breakOf(await verify(one(lines))), [F, 5, 5, "audit_checkpoint_count"]);
    lines[4] = edited(lines[4]!, (o) => (o.events = 4));
    lines = await rechain(lines, 5);
    assert.deepEqual(breakOf(await verify(one(lines))), [F, 5, 5, "audit_checkpoint_signature"]);
  });

  test("two lines swapped", async () => {
    const b = await sampleChain();
    const lines = [...b.lines];
    [lines[2], lines[3]] = [lines[3]!, lines[2]!];
    assert.deepEqual(breakOf(await verify(one(lines))), [F, 3, 4, "audit_seq_gap"]);
  });

  test("not JSON, not UTF-8, empty, or failing its schema", async () => {
    const b = await sampleChain();
    const cases: [string, string | Uint8Array][] = [
      ["not JSON", fileText([...b.lines.slice(0, 2), "{oops", ...b.lines.slice(3)])],
      ["empty", fileText([...b.lines.slice(0, 2), "", ...b.lines.slice(3)])],
      ["not UTF-8", new Uint8Array([...new TextEncoder().encode(b.text(0, 2)), 0x7b, 0xff, 0x7d, 0x0a, ...new TextEncoder().encode(b.text(3))])],
    ];
    const messages = ["audit: line is not JSON", "audit: empty line", "audit: line is not UTF-8"];
    for (const [i, [name, text]] of cases.entries()) {
      const r = await verify([{ name: F, text }]);
      assert.deepEqual(breakOf(r), [F, 3, null, "audit_malformed_line"], name);
      assert.equal(r.firstBreak?.message, messages[i]);
    }
    const schemaFail = formatLine(3, at(3), "conn_open", { ...SAMPLE_EVENTS.conn_open, decision: "perhaps" }, await sha256Hex(b.lines[1]!));
    const r = await verify(one([...b.lines.slice(0, 2), schemaFail]));
    assert.deepEqual(breakOf(r), [F, 3, 3, "audit_malformed_line"]);
    assert.equal(r.firstBreak?.message, "audit: seq 3: conn_open event: field decision is not (\"allow\" | \"deny\")");
  });

  test("a first line with seq 1 and a prev that is not zeros", async () => {
    const lines = [formatLine(1, at(1), "agent_start", SAMPLE_EVENTS.agent_start, "1".repeat(64))];
    assert.deepEqual(breakOf(await verify(one(lines))), [F, 1, 1, "audit_bad_genesis"]);
  });
});

describe("checkpoints", () => {
  async function withCheckpoint(o: Parameters<typeof craftCheckpoint>[1]) {
    const b = await sampleChain({ tail: 2 });
    return breakOf(await verify(one([...b.lines, await craftCheckpoint(b, o)])));
  }

  test("the crafting helper makes a valid one", async () => assert.equal(await withCheckpoint({}), "ok"));
  test("covers another seq", async () => assert.deepEqual(await withCheckpoint({ covers: { seq: 10, hash: GENESIS_PREV } }), [F, 13, 13, "audit_checkpoint_covers"]));
  test("covers another hash", async () => assert.deepEqual(await withCheckpoint({ covers: { seq: 12, hash: GENESIS_PREV } }), [F, 13, 13, "audit_checkpoint_covers"]));
  test("a count too low, signed", async () => assert.deepEqual(await withCheckpoint({ events: 1 }), [F, 13, 13, "audit_checkpoint_count"]));
  test("a count too high, signed", async () => assert.deepEqual(await withCheckpoint({ events: 3 }), [F, 13, 13, "audit_checkpoint_count"]));
  test("a signature over another count", async () => assert.deepEqual(await withCheckpoint({ signedEvents: 3 }), [F, 13, 13, "audit_checkpoint_signature"]));

  test("a signature by another key than the leaf's", async () => {
    const other = await (await pki()).ca.mintLeaf(SIGNER_PATH, { now: T0 });
    assert.deepEqual(await withCheckpoint({ key: other.privateKey }), [F, 13, 13, "audit_checkpoint_signature"]);
  });

  test("a signature with a bit flipped, or non-zero padding bits", async () => {
    const b = await sampleChain();
    for (const flip of [(s: string) => (s[0] === "A" ? "B" : "A") + s.slice(1), (s: string) => s.slice(0, 85) + (s[85] === "A" ? "B" : "C")]) {
      const lines = [...b.lines];
      lines[9] = edited(lines[9]!, (o) => (o.sig = flip(o.sig as string)));
      assert.deepEqual(breakOf(await verify(one(lines))), [F, 10, 10, "audit_checkpoint_signature"]);
    }
  });

  test("the checkpoint's time edited (signed)", async () => {
    const b = await sampleChain();
    const lines = [...b.lines];
    lines[9] = edited(lines[9]!, (o) => (o.time = at(11).toISOString()));
    assert.deepEqual(breakOf(await verify(one(lines))), [F, 10, 10, "audit_checkpoint_signature"]);
  });

  test("a leaf with a P-384 key", async () => {
    const keyPair = (await subtle.generateKey({ name: "ECDSA", namedCurve: "P-384" }, true, ["sign", "verify"])) as CryptoKeyPair;
    const id = `spiffe://example.org${SIGNER_PATH}`;
    const leaf = await (await pki()).ca.mintCustom({ uris: [id], keyPair });
    const c = new ChainBuilder({ signer: { id, chain: leaf.chain, sign: async () => new Uint8Array(64) } });
    await c.append("agent_start", SAMPLE_EVENTS.agent_start, at(1));
    await c.checkpoint(at(2));
    const r = await verify(one(c.lines));
    assert.deepEqual(breakOf(r), [F, 2, 2, "audit_checkpoint_signature"]);
    assert.equal(r.firstBreak?.message, "audit: the leaf certificate's key is not EC P-256, as ES256 needs");
  });

  test("a signer other than the leaf's SPIFFE ID, with a trust bundle or without", async () => {
    const b = await sampleChain({ tail: 2 });
    const lines = [...b.lines, await craftCheckpoint(b, { signer: "spiffe://example.org/tidegate/agent/node-2" })];
    assert.deepEqual(breakOf(await verify(one(lines))), [F, 13, 13, "audit_checkpoint_chain"]);
    const r = await verify(one(lines), { bundles: null });
    assert.deepEqual(breakOf(r), [F, 13, 13, "audit_checkpoint_chain"]);
    assert.equal(r.firstBreak?.message, 'audit: signer "spiffe://example.org/tidegate/agent/node-2" is not the leaf certificate\'s SPIFFE ID');
  });

  test("a chain from another CA of the same trust domain", async () => {
    const other = await createTestCa({ now: new Date(T0.getTime() - 3600_000) });
    const leaf = await other.mintLeaf(SIGNER_PATH, { now: T0 });
    const b = await sampleChain({ signer: subtleSigner(leaf.id.toString(), leaf.chain, leaf.privateKey) });
    const r = await verify(one(b.lines));
    assert.deepEqual(breakOf(r), [F, 6, 6, "audit_checkpoint_chain"]);
    assert.match(r.firstBreak!.message, /^audit: chain does not verify against the trust bundle at 2026-11-26T17:00:06\.000Z: x509svid: /);
    assert.equal(breakOf(await verify(one(b.lines), { bundles: null })), "ok");
  });

  test("a checkpoint dated after the leaf expired: checked at its own time", async () => {
    assert.deepEqual(await withCheckpoint({ time: at(2 * 3600) }), [F, 13, 13, "audit_checkpoint_chain"]);
  });

  test("a checkpoint dated before the one before it: signed properly, within the leaf's validity", async () => {
    // As a key whose certificate expired could sign: only the order of the two times is wrong.
    const c = await sampleChain({ tail: 2 });
    const lines = [...c.lines, await craftCheckpoint(c, { time: at(9) })];
    const r = await verify(one(lines));
    assert.deepEqual(breakOf(r), [F, 13, 13, "audit_checkpoint_time_reversed"]);
    assert.equal(r.firstBreak?.message, "audit: checkpoint at seq 13 is dated 2026-11-26T17:00:09.000Z, before the previous checkpoint (seq 10, 2026-11-26T17:00:10.000Z)");
    // the same instant as the one before it passes (the writer clamps to it), as do events dated earlier
    assert.equal(await withCheckpoint({ time: at(10) }), "ok");
    const b = await sampleChain();
    await b.append("admin", SAMPLE_EVENTS.admin, at(3));
    await b.checkpoint(at(10));
    assert.equal(breakOf(await verify(one(b.lines))), "ok");
    // across files too, and only against checkpoints of the files given
    assert.deepEqual(breakOf(await verify([{ name: "audit-000000000001.jsonl", text: fileText(lines.slice(0, 11)) }, { name: F, text: fileText(lines.slice(11)) }])), [F, 2, 13, "audit_checkpoint_time_reversed"]);
    assert.equal(breakOf(await verify([{ name: F, text: fileText(lines.slice(10)) }])), "ok");
  });

  test("chain entries that are not certificates", async () => {
    assert.deepEqual(await withCheckpoint({ chain: [new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01])] }), [F, 13, 13, "audit_checkpoint_chain"]);
    const b = await sampleChain();
    const lines = [...b.lines];
    lines[9] = edited(lines[9]!, (o) => (o.chain = [(o.chain as string[])[0], "A"]));
    assert.deepEqual(breakOf(await verify(one(lines))), [F, 10, 10, "audit_checkpoint_chain"]);
  });
});

describe("the tail, and the agent's state", () => {
  test("cut before the last checkpoint", async () => {
    const b = await sampleChain();
    const r = await verify(one(b.lines.slice(0, 8)), { state: b.lastCheckpoint });
    assert.deepEqual(breakOf(r), [F, 9, 9, "audit_tail_cut"]);
  });

  test("cut exactly at an earlier checkpoint: ok without the state, cut with it", async () => {
    const b = await sampleChain();
    assert.equal(breakOf(await verify(one(b.lines.slice(0, 6)))), "ok");
    assert.deepEqual(breakOf(await verify(one(b.lines.slice(0, 6)), { state: b.lastCheckpoint })), [F, 7, 7, "audit_tail_cut"]);
  });

  test("the line at the state's seq with another hash, or not a checkpoint", async () => {
    const b = await sampleChain({ tail: 1 });
    assert.deepEqual(breakOf(await verify(one(b.lines), { state: { seq: 10, hash: GENESIS_PREV } })), [F, 10, 10, "audit_state_mismatch"]);
    const hash9 = await sha256Hex(b.lines[8]!);
    assert.deepEqual(breakOf(await verify(one(b.lines), { state: { seq: 9, hash: hash9 } })), [F, 9, 9, "audit_state_mismatch"]);
  });
});

describe("files", () => {
  test("a middle file deleted", async () => {
    const b = await sampleChain({ tail: 2 });
    const r = await verify([
      { name: "a", text: b.text(0, 4) },
      { name: "c", text: b.text(8) },
    ]);
    assert.deepEqual(breakOf(r), ["c", 1, 9, "audit_seq_gap"]);
  });

  test("files given out of order", async () => {
    const b = await sampleChain();
    assert.deepEqual(breakOf(await verify([{ name: "b", text: b.text(5) }, { name: "a", text: b.text(0, 5) }])), ["a", 1, 1, "audit_seq_gap"]);
  });

  async function torn(opts: { bytes?: (n: number) => number; file?: string; recover?: boolean } = {}) {
    const b = await sampleChain();
    const a = b.text(0, 7);
    const whole = formatLine(8, at(8), "admin", { ...SAMPLE_EVENTS.admin, actor: "zoë" }, b.head);
    const cut = new TextEncoder().encode(whole).subarray(0, whole.indexOf("ë") + 1);
    const head = new Uint8Array([...new TextEncoder().encode(a), ...cut]);
    const c = new ChainBuilder({ signer: (await pki()).signer, start: { seq: 7, hash: await sha256Hex(b.lines[6]!) } });
    if (opts.recover ?? true) await c.append("audit_recovered", { torn_bytes: (opts.bytes ?? ((n) => n))(cut.length), file: opts.file ?? "audit-1.jsonl" }, at(9));
    await c.append("agent_start", SAMPLE_EVENTS.agent_start, at(9));
    const r = await verify([
      { name: "/var/log/tidegate/audit-1.jsonl", text: head },
      { name: "/var/log/tidegate/audit-2.jsonl", text: c.text() },
    ]);
    return Object.assign(r, { tornBytes: cut.length });
  }

  test("a torn last line (cut inside a UTF-8 character) recovered in the next file: a warning, the chain goes on", async () => {
    const r = await torn();
    assert.equal(breakOf(r), "ok");
    assert.equal(r.events, 9);
    assert.equal(r.warnings[0], `"/var/log/tidegate/audit-1.jsonl" ends with a torn line of ${r.tornBytes} bytes, recovered in "/var/log/tidegate/audit-2.jsonl"`);
  });

  test("a torn line not recovered, recovered with another count, or naming another file", async () => {
    const where = ["/var/log/tidegate/audit-1.jsonl", 8, null, "audit_torn_line"];
    assert.deepEqual(breakOf(await torn({ recover: false })), where);
    assert.deepEqual(breakOf(await torn({ bytes: (n) => n + 1 })), where);
    assert.deepEqual(breakOf(await torn({ file: "audit-0.jsonl" })), where);
  });

  test("a torn line in a file given as text: measured in UTF-8 bytes", async () => {
    const b = await sampleChain();
    const tornLine = '{"seq":11,"time":"2026-11-26T17:00:11.000Z","type":"admin","action":"é☃';
    const c = new ChainBuilder({ signer: (await pki()).signer, start: { seq: b.seq, hash: b.head } });
    await c.append("audit_recovered", { torn_bytes: new TextEncoder().encode(tornLine).length, file: "a" }, at(12));
    assert.equal(breakOf(await verify([{ name: "a", text: b.text() + tornLine }, { name: "b", text: c.text() }])), "ok");
  });

  test("a torn line followed by a file holding only a torn line", async () => {
    const b = await sampleChain();
    const r = await verify([
      { name: "a", text: `${b.text(0, 3)}{"seq":4` },
      { name: "b", text: '{"seq":4' },
    ]);
    assert.deepEqual(breakOf(r), ["a", 4, null, "audit_torn_line"]);
  });

  test("a torn line in the last file", async () => {
    const b = await sampleChain();
    const text = b.text().slice(0, -1);
    const r = await verify([{ name: F, text }]);
    assert.deepEqual(breakOf(r), [F, 10, null, "audit_torn_line"]);
    assert.equal(r.firstBreak?.message, `audit: "${F}" ends with a line of ${new TextEncoder().encode(b.lines[9]!).length} bytes without its newline`);
  });
});
