// Properties of the chain (docs/audit.md, "Verification"): random event lists make chains that
// verify; any single-byte edit of a sealed log is found; the parsers of untrusted lines return
// or throw AuditError, never anything else, and verifyAudit never throws on a bad log.
import fc from "fast-check";
import { fuzzRuns } from "../../../test/fuzz-runs.ts";
import { assert, describe, test } from "../../../test/shim.ts";
import { auditEvent } from "./arbitraries.ts";
import { ChainBuilder } from "./chain-builder.ts";
import { AuditError } from "./errors.ts";
import { formatLine, GENESIS_PREV, parseLine } from "./line.ts";
import { validateEvent } from "./schema.ts";
import { at, pki, verify } from "./test-helpers.ts";

/** An event, or a checkpoint in the middle of the list. */
const item = fc.oneof({ weight: 6, arbitrary: auditEvent }, { weight: 1, arbitrary: fc.constant("checkpoint" as const) });

/** A chain of `items`, sealed by a final checkpoint; times a second apart. */
async function build(items: (typeof item extends fc.Arbitrary<infer T> ? T : never)[]): Promise<ChainBuilder> {
  const b = new ChainBuilder({ signer: (await pki()).signer });
  let s = 0;
  for (const it of items) {
    s += 1;
    if (it === "checkpoint") await b.checkpoint(at(s));
    else await b.append(it.type, it.fields, at(s));
  }
  await b.checkpoint(at(s + 1));
  return b;
}

describe("chains of random events", () => {
  test("verify, with the counts they were built with, across a rotation anywhere", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(item, { minLength: 0, maxLength: 25 }), fc.nat(), async (items, cutAt) => {
        const b = await build(items);
        const cut = cutAt % (b.lines.length + 1);
        const r = await verify(
          [
            { name: "a", text: new TextEncoder().encode(b.text(0, cut)) },
            { name: "b", text: b.text(cut) },
          ],
          { state: b.lastCheckpoint },
        );
        assert.equal(r.firstBreak, null, JSON.stringify(r.firstBreak));
        assert.equal(r.events, items.length + 1);
        assert.equal(r.checkpoints, items.filter((i) => i === "checkpoint").length + 1);
        assert.deepEqual(r.warnings, cut === 0 || cut === b.lines.length ? [cut === 0 ? 'file "a" is empty' : 'file "b" is empty'] : []);
      }),
      { numRuns: fuzzRuns(60) },
    );
  });

  test("any single-byte edit of a sealed log is found", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(item, { minLength: 0, maxLength: 8 }), fc.nat(), fc.integer({ min: 1, max: 255 }), async (items, at_, delta) => {
        const b = await build(items);
        const bytes = new TextEncoder().encode(b.text());
        const i = at_ % bytes.length;
        bytes[i] = (bytes[i]! + delta) & 0xff;
        const r = await verify([{ name: "a", text: bytes }], { state: b.lastCheckpoint });
        assert.equal(r.ok, false, `edit at byte ${i} not found`);
      }),
      { numRuns: fuzzRuns(300) },
    );
  });

  test("any edit of a character of a sealed log given as text is found", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(item, { minLength: 0, maxLength: 8 }), fc.nat(), fc.string({ minLength: 1, maxLength: 2, unit: "binary" }), async (items, at_, repl) => {
        const b = await build(items);
        const text = b.text();
        const i = at_ % text.length;
        fc.pre(text.slice(i, i + repl.length) !== repl);
        const r = await verify([{ name: "a", text: text.slice(0, i) + repl + text.slice(i + repl.length) }], { state: b.lastCheckpoint });
        assert.equal(r.ok, false, `edit at character ${i} not found`);
      }),
      { numRuns: fuzzRuns(200) },
    );
  });
});

/** Runs `fn`; an AuditError gives null, anything else thrown fails the property. */
function attempt<T>(fn: () => T): T | null {
  try {
    return fn();
  } catch (e) {
    if (e instanceof AuditError) return null;
    throw e;
  }
}

describe("untrusted input returns or throws AuditError", () => {
  const line = formatLine(3, at(1), "conn_close", { conn_id: "c", side: "egress", outcome: "ok", bytes_up: 1, bytes_down: 2, duration_ms: 3 }, GENESIS_PREV);
  const mutated = fc.tuple(fc.nat(), fc.nat(4), fc.string({ maxLength: 4, unit: fc.constantFrom(..."{}[]\":,0119e.-\\ntu\u0000é") })).map(([i, del, ins]) => {
    const at_ = i % (line.length + 1);
    return line.slice(0, at_) + ins + line.slice(at_ + del);
  });

  test("parseLine, then validateEvent on what it accepts", () => {
    fc.assert(
      fc.property(fc.oneof(mutated, fc.string({ unit: "binary", maxLength: 80 }), fc.json()), (s) => {
        const p = attempt(() => parseLine(s));
        if (p !== null) {
          assert.equal(JSON.stringify(p.event), s);
          attempt(() => validateEvent(p.event));
        }
      }),
      { numRuns: fuzzRuns(2000) },
    );
  });

  test("validateEvent on any JSON value, with a known type or not", () => {
    const typed = fc.tuple(fc.constantFrom("conn_open", "checkpoint", "http_request", "audit_gap", "nope"), fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 3 }))).map(([type, o]) => ({ ...o, type }));
    fc.assert(fc.property(fc.oneof(fc.jsonValue(), typed), (v) => void attempt(() => validateEvent(v))), { numRuns: fuzzRuns(1000) });
  });

  test("verifyAudit on random bytes and mutated lines returns a report, a break only with a code", async () => {
    const content = fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.array(mutated, { maxLength: 3 }).map((ls) => ls.map((l) => `${l}\n`).join("")));
    await fc.assert(
      fc.asyncProperty(content, async (text) => {
        const r = await verify([{ name: "a", text }], { state: { seq: 3, hash: GENESIS_PREV } });
        assert.equal(r.ok, r.firstBreak === null);
        if (r.firstBreak !== null) assert.ok(r.firstBreak.message.startsWith("audit: "), r.firstBreak.message);
      }),
      { numRuns: fuzzRuns(300) },
    );
  });
});
