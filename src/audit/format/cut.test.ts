// Strings cut to what a text field holds (cut.ts): what is cut, how a reader sees it, what is
// left as it is, and that a cut event passes its schema.
import { assert, describe, test } from "../../../test/shim.ts";
import { CUT_NOTE, cutLongText, cutText } from "./cut.ts";
import { TEXT_MAX } from "./fields.ts";
import { validateEvent } from "./schema.ts";
import { SAMPLE_EVENTS } from "./samples.ts";

describe("cutText", () => {
  test("a string of up to TEXT_MAX characters is returned as it is", () => {
    for (const n of [0, 1, TEXT_MAX - 1, TEXT_MAX]) {
      const s = "x".repeat(n);
      assert.equal(cutText(s), s);
    }
  });

  test("a longer one: its first characters and a note of its length, TEXT_MAX characters in all", () => {
    for (const n of [TEXT_MAX + 1, 70_000, 10 * TEXT_MAX]) {
      const s = "ab".repeat(n).slice(0, n);
      const cut = cutText(s);
      assert.equal(cut.length, TEXT_MAX);
      assert.ok(cut.endsWith(CUT_NOTE(n)));
      assert.ok(s.startsWith(cut.slice(0, -CUT_NOTE(n).length)));
    }
    assert.equal(CUT_NOTE(70_000), " [cut: 70000 characters in all]");
  });

  test("never ends in half a surrogate pair", () => {
    const note = CUT_NOTE(70_000).length;
    for (const offset of [0, 1]) {
      // a pair straddling the cut point (offset 0) or just inside it (offset 1)
      const s = "x".repeat(TEXT_MAX - note - 1 - offset) + "\u{1F600}".repeat(2) + "y".repeat(70_000);
      const cut = cutText(s.slice(0, 70_000));
      const kept = cut.slice(0, -note);
      const last = kept.charCodeAt(kept.length - 1);
      assert.ok(!(last >= 0xd800 && last <= 0xdbff), `offset ${offset}`);
      assert.ok(cut.length <= TEXT_MAX);
      assert.doesNotThrow(() => encodeURIComponent(cut)); // throws URIError on a lone surrogate
    }
  });
});

describe("cutLongText", () => {
  test("an event with no long string is returned itself, not copied", () => {
    for (const ev of Object.values(SAMPLE_EVENTS)) assert.equal(cutLongText(ev), ev);
    const nested = { a: [{ b: "x".repeat(TEXT_MAX) }], n: Number.NaN, z: null, t: true };
    assert.equal(cutLongText(nested), nested);
  });

  test("long strings at any depth are cut in a copy; the emitter's object is untouched, key order kept", () => {
    const long = "q".repeat(70_000);
    const ev = { ...SAMPLE_EVENTS.deny, src: { ...SAMPLE_EVENTS.deny.src, exe: long }, reason: long, extra: [1, long, { k: long }] };
    const cut = cutLongText(ev);
    assert.notEqual(cut, ev);
    assert.deepEqual(Object.keys(cut), Object.keys(ev));
    assert.equal(ev.reason, long);
    assert.equal(ev.src.exe, long);
    assert.equal(cut.reason, cutText(long));
    assert.equal(cut.src.exe, cutText(long));
    assert.deepEqual(cut.extra, [1, cutText(long), { k: cutText(long) }]);
    assert.equal(cut.dst, ev.dst); // what holds nothing long is shared
    assert.equal(validateEvent({ ...cut, type: "deny" }).type, "deny");
    assert.throws(() => validateEvent({ ...ev, type: "deny" }));
  });

  test("a key named __proto__ stays an own field, in its place", () => {
    const ev = JSON.parse(`{"a":1,"__proto__":"${"p".repeat(70_000)}","b":2}`) as Record<string, unknown>;
    const cut = cutLongText(ev);
    assert.deepEqual(Object.keys(cut), ["a", "__proto__", "b"]);
    assert.equal(JSON.stringify(cut), `{"a":1,"__proto__":"${cutText("p".repeat(70_000))}","b":2}`);
  });
});
