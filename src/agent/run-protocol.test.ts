// run.sock's line protocol: what a request may hold, the 1 MiB cap, signal lines, answers.
import { describe, expect, test } from "bun:test";
import { encodeRequest, LineReader, MAX_NOTICE, MAX_REQUEST, noIdentityNotice, parseAnswer, parseRequest, parseSignalLine, RunProtocolError } from "./run-protocol.ts";

const ok = { workload: "w1", user: null, command: ["id", "-u"], env: ["PATH=/usr/bin", "EMPTY="], cwd: "/tmp" };

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof RunProtocolError) return `${e.code}: ${e.message}`;
    throw e;
  }
  return "accepted";
}

describe("run protocol", () => {
  test("a request round-trips through its line", () => {
    const line = new TextDecoder().decode(encodeRequest({ ...ok, allowRoot: false }));
    expect(line.endsWith("\n")).toBe(true);
    expect(line.slice(0, -1).includes("\n")).toBe(false);
    expect(parseRequest(line.slice(0, -1))).toEqual({ ...ok, allowRoot: false });
    expect(parseRequest(JSON.stringify({ ...ok, user: "www-data", allow_root: true }))).toMatchObject({ user: "www-data", allowRoot: true });
  });

  test("tty (descriptor 0 is the caller's pseudo-terminal for the run) round-trips, and is left out when false", () => {
    const line = new TextDecoder().decode(encodeRequest({ ...ok, allowRoot: false, tty: true })).slice(0, -1);
    expect(JSON.parse(line).tty).toBe(true);
    expect(parseRequest(line)).toEqual({ ...ok, allowRoot: false, tty: true });
    expect("tty" in JSON.parse(new TextDecoder().decode(encodeRequest({ ...ok, allowRoot: false, tty: false })))).toBe(false);
    expect(parseRequest(JSON.stringify({ ...ok, tty: false }))).toEqual({ ...ok, allowRoot: false });
  });

  const bad: [string, unknown, RegExp][] = [
    ["not JSON", "{", /not JSON/],
    ["an array", [], /not an object/],
    ["an unknown field", { ...ok, uid: 0 }, /unknown field "uid"/],
    ["no workload", { ...ok, workload: undefined }, /workload is not a string/],
    ["an empty workload", { ...ok, workload: "" }, /1 to 255/],
    ["a user that is a number", { ...ok, user: 0 }, /user is not a string/],
    ["an empty user", { ...ok, user: "" }, /user is empty/],
    ["allow_root not boolean", { ...ok, allow_root: "yes" }, /allow_root/],
    ["an empty command", { ...ok, command: [] }, /command is empty/],
    ["a command of numbers", { ...ok, command: [1] }, /command\[0\] is not a string/],
    ["a NUL in an argument", { ...ok, command: ["a\0b"] }, /command\[0\] contains a NUL/],
    ["env not a list", { ...ok, env: "A=1" }, /env is not a list/],
    ["an env entry without =", { ...ok, env: ["A"] }, /env\[0\] is not NAME=VALUE/],
    ["an env entry with an empty name", { ...ok, env: ["=x"] }, /env\[0\] is not NAME=VALUE/],
    ["a relative cwd", { ...ok, cwd: "tmp" }, /cwd is not an absolute path/],
    ["tty not boolean", { ...ok, tty: 1 }, /tty is not a boolean/],
  ];
  for (const [name, value, message] of bad) {
    test(`refused: ${name}`, () => {
      const text = typeof value === "string" ? value : JSON.stringify(value);
      const got = code(() => parseRequest(text));
      expect(got.startsWith("run_bad_request: run: bad request: ")).toBe(true);
      expect(got).toMatch(message);
    });
  }

  test("the first line may be 1 MiB; one byte more is refused, even before its newline", () => {
    const r = new LineReader();
    expect(r.push(new Uint8Array(MAX_REQUEST).fill(0x61))).toEqual([]);
    expect(code(() => r.push(new Uint8Array([0x61])))).toMatch(/^run_request_too_large: run: the request is larger than 1048576 bytes/);
    const exact = new LineReader();
    expect(exact.push(new Uint8Array([...new Uint8Array(MAX_REQUEST).fill(0x61), 10]))[0]).toHaveLength(MAX_REQUEST);
  });

  test("lines split anywhere come out whole; a later line over its cap is dropped, the next ones are not", () => {
    const r = new LineReader(100, 30);
    const enc = (t: string) => new TextEncoder().encode(t);
    expect(r.push(enc('{"a"'))).toEqual([]);
    expect(r.push(enc(':1}\n{"signal":"SIGINT"}\nxy'))).toEqual(['{"a":1}', '{"signal":"SIGINT"}']);
    expect(r.pending).toBe(2);
    expect(r.push(enc(`${"z".repeat(40)}\n{"signal":"SIGHUP"}\n`))).toEqual(['{"signal":"SIGHUP"}']);
    expect(r.push(enc("z".repeat(20)))).toEqual([]);
    expect(r.push(enc(`${"z".repeat(20)}\nok\n`))).toEqual(["ok"]);
  });

  test("signal lines name one of four signals; anything else is ignored", () => {
    expect(["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"].map((s) => parseSignalLine(JSON.stringify({ signal: s })))).toEqual(["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"]);
    for (const line of ['{"signal":"SIGKILL"}', '{"signal":"SIGSTOP"}', '{"signal":9}', "SIGINT", "null", "{"]) expect(parseSignalLine(line)).toBeNull();
  });

  test("answers: an error, an exit code, a signal; anything else is refused", () => {
    expect(parseAnswer('{"exit":5}')).toEqual({ exit: 5 });
    expect(parseAnswer('{"signal":"SIGTERM"}')).toEqual({ signal: "SIGTERM" });
    expect(parseAnswer('{"error":{"code":"c","message":"m"}}')).toEqual({ error: { code: "c", message: "m" } });
    for (const line of ['{"exit":256}', '{"exit":-1}', '{"exit":"0"}', '{"signal":"kill"}', "{}", "x"]) expect(code(() => parseAnswer(line))).toMatch(/^run_bad_answer/);
    // notices, for the caller's terminal: text only, bounded, no control characters
    const notice = noIdentityNotice("w", "no registration entry has the selector tidegate:workload:w");
    expect(parseAnswer(JSON.stringify({ notice }))).toEqual({ notice });
    expect(notice).toBe("workload w has no identity (no registration entry has the selector tidegate:workload:w): its connections are refused until the agent holds one");
    expect(parseAnswer(JSON.stringify({ notice: "x".repeat(MAX_NOTICE) }))).toEqual({ notice: "x".repeat(MAX_NOTICE) });
    for (const bad of [{ notice: 1 }, { notice: "x".repeat(MAX_NOTICE + 1) }, { notice: "a\u001b[2Jb" }, { notice: "a\nb" }, { notice: "a\u009bb" }]) expect(code(() => parseAnswer(JSON.stringify(bad)))).toMatch(/^run_bad_answer/);
  });
});
