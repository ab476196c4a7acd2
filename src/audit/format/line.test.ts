// The line format (docs/audit.md, "Line format"): formatLine's exact bytes, parseLine's
// acceptance of them and its rejections, sha256Hex against the FIPS 180-2 vectors.
import { assert, codeOf, describe, test } from "../../../test/shim.ts";
import { AuditError } from "./errors.ts";
import { GENESIS_PREV, formatLine, parseLine, sha256Hex } from "./line.ts";

const T = new Date("2026-11-26T17:00:00.123Z");
const H = "ab".repeat(32);

describe("formatLine", () => {
  test("seq, time, type first, fields in order, prev last, no spaces", () => {
    const line = formatLine(7, T, "conn_close", { conn_id: "c1", side: "egress", outcome: "ok", bytes_up: 1, bytes_down: 2, duration_ms: 3.5 }, H);
    assert.equal(line, `{"seq":7,"time":"2026-11-26T17:00:00.123Z","type":"conn_close","conn_id":"c1","side":"egress","outcome":"ok","bytes_up":1,"bytes_down":2,"duration_ms":3.5,"prev":"${H}"}`);
  });

  test("no fields", () => {
    assert.equal(formatLine(1, T, "agent_stop", {}, GENESIS_PREV), `{"seq":1,"time":"2026-11-26T17:00:00.123Z","type":"agent_stop","prev":"${GENESIS_PREV}"}`);
  });

  test("GENESIS_PREV is 64 zeros", () => {
    assert.equal(GENESIS_PREV, "0".repeat(64));
  });

  test("strings are JSON-escaped, non-ASCII kept, lone surrogates escaped; one line always", () => {
    const line = formatLine(2, T, "admin", { action: "a\nb\"c\\\u0000\u2028é\ud800", actor: null, detail: null }, H);
    assert.ok(!line.includes("\n"));
    assert.ok(line.includes(String.raw`"action":"a\nb\"c\\\u0000` + "\u2028é" + String.raw`\ud800"`));
    assert.equal(parseLine(line).event.action, "a\nb\"c\\\u0000\u2028é\ud800");
  });

  test("undefined fields are left out", () => {
    assert.equal(formatLine(3, T, "agent_stop", { reason: "x", detail: undefined }, H), `{"seq":3,"time":"2026-11-26T17:00:00.123Z","type":"agent_stop","reason":"x","prev":"${H}"}`);
  });

  const bad: [string, () => string][] = [
    ["seq 0", () => formatLine(0, T, "agent_stop", {}, H)],
    ["seq 1.5", () => formatLine(1.5, T, "agent_stop", {}, H)],
    ["seq beyond 2^53", () => formatLine(2 ** 53, T, "agent_stop", {}, H)],
    ["an invalid date", () => formatLine(1, new Date(Number.NaN), "agent_stop", {}, H)],
    ["a year past 9999", () => formatLine(1, new Date("+010000-01-01T00:00:00.000Z"), "agent_stop", {}, H)],
    ["a year before 0", () => formatLine(1, new Date("-000001-01-01T00:00:00.000Z"), "agent_stop", {}, H)],
    ["an unknown type", () => formatLine(1, T, "nope" as "agent_stop", {}, H)],
    ["prev in uppercase", () => formatLine(1, T, "agent_stop", {}, H.toUpperCase())],
    ["prev too short", () => formatLine(1, T, "agent_stop", {}, "00")],
    ["a field named seq", () => formatLine(1, T, "agent_stop", { seq: 2 }, H)],
    ["a field named prev", () => formatLine(1, T, "agent_stop", { prev: H }, H)],
    ["a field named type", () => formatLine(1, T, "agent_stop", { type: "deny" }, H)],
    ["a field named time", () => formatLine(1, T, "agent_stop", { time: "x" }, H)],
    ["an integer-like field name", () => formatLine(1, T, "agent_stop", { "12": 1 }, H)],
  ];
  for (const [name, fn] of bad) test(`rejects ${name}`, () => assert.equal(codeOf(fn, AuditError), "audit_bad_event"));
});

describe("parseLine", () => {
  test("gives back what formatLine wrote", () => {
    const line = formatLine(42, T, "secret_changed", { name: "github_token", change: "set", instance: "a" }, H);
    const p = parseLine(line);
    assert.equal(p.seq, 42);
    assert.equal(p.time, "2026-11-26T17:00:00.123Z");
    assert.equal(p.type, "secret_changed");
    assert.equal(p.prev, H);
    assert.deepEqual(p.event, { seq: 42, time: "2026-11-26T17:00:00.123Z", type: "secret_changed", name: "github_token", change: "set", instance: "a", prev: H });
  });

  const base = (over: string) => `{"seq":1,"time":"2026-11-26T17:00:00.123Z","type":"agent_stop",${over}"prev":"${H}"}`;
  const bad: [string, string][] = [
    ["not JSON", "{"],
    ["empty", ""],
    ["an array", "[1]"],
    ["null", "null"],
    ["a number", "1"],
    ["no seq", `{"time":"2026-11-26T17:00:00.123Z","type":"agent_stop","prev":"${H}"}`],
    ["seq 0", base("").replace('"seq":1', '"seq":0')],
    ["seq negative", base("").replace('"seq":1', '"seq":-1')],
    ["seq as a string", base("").replace('"seq":1', '"seq":"1"')],
    ["seq fractional", base("").replace('"seq":1', '"seq":1.5')],
    ["seq past 2^53", base("").replace('"seq":1', '"seq":9007199254740993')],
    ["time without milliseconds", base("").replace(".123Z", "Z")],
    ["time with an offset", base("").replace(".123Z", ".123+00:00")],
    ["time on February 30", base("").replace("11-26", "02-30")],
    ["time as a number", base("").replace('"2026-11-26T17:00:00.123Z"', "1")],
    ["an unknown type", base("").replace("agent_stop", "agent_stopped")],
    ["type as a number", base("").replace('"agent_stop"', "3")],
    ["prev in uppercase", base("").replace(H, H.toUpperCase())],
    ["prev short", base("").replace(H, "00")],
    ["prev not last", `{"seq":1,"time":"2026-11-26T17:00:00.123Z","type":"agent_stop","prev":"${H}","reason":"x"}`],
    ["a field before seq", `{"reason":"x","time":"2026-11-26T17:00:00.123Z","type":"agent_stop","seq":1,"prev":"${H}"}`],
    ["seq not first", `{"time":"2026-11-26T17:00:00.123Z","seq":1,"type":"agent_stop","prev":"${H}"}`],
    ["type before time", `{"seq":1,"type":"agent_stop","time":"2026-11-26T17:00:00.123Z","prev":"${H}"}`],
    ["a space after a colon", base("").replace('"seq":1', '"seq": 1')],
    ["a trailing space", `${base("")} `],
    ["a trailing CR", `${base("")}\r`],
    ["a BOM", `\ufeff${base("")}`],
    ["a needless escape", base('"reason":"\\u0061",')],
    ["an escaped slash", base('"reason":"a\\/b",')],
    ["a number written 1.0", base('"n":1.0,')],
    ["a number written 1e3", base('"n":1e3,')],
    ["a key given twice", base('"reason":"a","reason":"b",')],
    ["seq given twice", `{"seq":1,"time":"2026-11-26T17:00:00.123Z","type":"agent_stop","seq":2,"prev":"${H}"}`],
    ["an integer-like key", base('"7":1,')],
  ];
  for (const [name, text] of bad) {
    test(`rejects ${name}`, () => assert.equal(codeOf(() => parseLine(text), AuditError), "audit_malformed_line"));
  }

  test("the message names the seq once it is known, not the line's values", () => {
    try {
      parseLine(base('"reason":"s3cr3t","reason":"b",'));
      assert.fail("accepted");
    } catch (e) {
      assert.ok(e instanceof AuditError);
      assert.match(e.message, /^audit: seq 1: /);
      assert.ok(!e.message.includes("s3cr3t"));
    }
  });
});

describe("sha256Hex", () => {
  test("FIPS 180-2 vectors, strings as UTF-8", async () => {
    assert.equal(await sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert.equal(await sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert.equal(await sha256Hex(new Uint8Array([0x61, 0x62, 0x63])), await sha256Hex("abc"));
    assert.equal(await sha256Hex("é"), await sha256Hex(new Uint8Array([0xc3, 0xa9])));
  });
});
