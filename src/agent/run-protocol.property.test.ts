// Property tests of run.sock's line protocol (../shared/STYLE.md point 6): a caller of run.sock is
// any member of the run group, so every line is untrusted. Any line gives a request that keeps
// the protocol's rules, or run_bad_request whose message names what is wrong (and never anything
// else); a valid request with one member replaced is accepted or refused naming that member;
// valid requests round-trip through their line, split anywhere, through the line reader; the line
// reader agrees with a byte-by-byte model for any chunks and caps; signal lines and answers never
// throw anything but the protocol's error, and answers round-trip. The handler on a real socket:
// run-service.property.test.ts.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { fuzzRuns } from "../../test/fuzz-runs.ts";
import { editedText, hostileJson, hostileObject, mutatedJson } from "../../test/helpers/json-mutations.ts";
import { encodeLine, encodeRequest, LineReader, parseAnswer, parseRequest, parseSignalLine, RUN_SIGNALS, RunProtocolError, MAX_NOTICE, type RunAnswer, type RunNotice, type RunRequest } from "./run-protocol.ts";

const RUNS = fuzzRuns(300);
const FIELDS = ["workload", "user", "allow_root", "command", "env", "cwd", "mcp_stdio"] as const;

/** Every message parseRequest may refuse with, after "run: bad request: ". */
const REFUSAL =
  /^run: bad request: (not JSON|not an object|unknown field "[^]{0,400}"|workload must be 1 to 255 characters|user is empty|command is empty|cwd is not an absolute path|(workload|user|cwd|command\[\d+\]|env\[\d+\]) (is not a string|contains a NUL)|(command|env) is not a list of strings|env\[\d+\] is not NAME=VALUE|(allow_root|mcp_stdio) is not a boolean)$/;

/** Characters a careless line protocol trips on, and any code point. */
const unit = fc.oneof(
  fc.constantFrom("\n", "\r", '"', "\\", "=", "/", " ", "\u2028", "\u2029", "\ud800", "\udfff", "\u{1F600}", "é", "\u007f"),
  fc.string({ unit: "binary", minLength: 1, maxLength: 1 }),
);
/** Any string without NUL (the protocol refuses NUL everywhere). */
const text = fc.string({ unit, maxLength: 24 }).map((s) => s.replaceAll("\0", ""));
const nonEmpty = text.filter((s) => s.length > 0);

const validRequest: fc.Arbitrary<RunRequest> = fc
  .record({
    workload: fc.oneof(nonEmpty, fc.constant("w".repeat(255))),
    user: fc.option(nonEmpty, { nil: null }),
    allowRoot: fc.boolean(),
    command: fc.tuple(nonEmpty, fc.array(text, { maxLength: 5 })).map(([head, rest]) => [head, ...rest]),
    env: fc.array(fc.tuple(nonEmpty.filter((n) => !n.startsWith("=")), text).map(([n, v]) => `${n}=${v}`), { maxLength: 6 }),
    cwd: text.map((s) => `/${s}`),
    mcpStdio: fc.boolean(),
  })
  .map(({ mcpStdio, ...r }) => (mcpStdio ? { ...r, mcpStdio: true } : r));

/** The request as the JSON object on the wire. */
function wire(r: RunRequest): Record<string, unknown> {
  return JSON.parse(new TextDecoder().decode(encodeRequest(r))) as Record<string, unknown>;
}

/** `bytes` cut at the given points (taken modulo its length), in order. */
function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let from = 0;
  for (const c of [...at, bytes.length]) {
    out.push(bytes.subarray(from, c));
    from = c;
  }
  return out;
}

/** parseRequest's result, or its RunProtocolError; anything else thrown fails the property. */
function parsed(line: string): { ok: RunRequest } | { error: RunProtocolError } {
  try {
    return { ok: parseRequest(line) };
  } catch (e) {
    if (e instanceof RunProtocolError) return { error: e };
    throw e;
  }
}

/** What the protocol promises of an accepted request. */
function keepsTheRules(r: RunRequest): void {
  const strings = [r.workload, r.cwd, ...r.command, ...r.env, ...(r.user === null ? [] : [r.user])];
  expect(strings.every((s) => typeof s === "string" && !s.includes("\0"))).toBe(true);
  expect(r.workload.length >= 1 && r.workload.length <= 255).toBe(true);
  expect(r.user === null || r.user.length > 0).toBe(true);
  expect(typeof r.allowRoot).toBe("boolean");
  expect(r.command.length > 0 && r.command[0] !== "").toBe(true);
  expect(r.env.every((e) => e.indexOf("=") >= 1)).toBe(true);
  expect(r.cwd.startsWith("/")).toBe(true);
  expect(r.mcpStdio === undefined || r.mcpStdio === true).toBe(true);
  // what is accepted once is accepted again, the same, from its own line
  expect(parseRequest(new TextDecoder().decode(encodeRequest(r)).slice(0, -1))).toEqual(r);
}

describe("run.sock request lines", () => {
  test("a valid request round-trips: one line, split anywhere, through the line reader and the parser", () => {
    fc.assert(
      fc.property(validRequest, fc.array(fc.nat(), { maxLength: 6 }), (r, cuts) => {
        const bytes = encodeRequest(r);
        const line = new TextDecoder().decode(bytes);
        expect(line.indexOf("\n")).toBe(line.length - 1);
        const reader = new LineReader();
        const lines = split(bytes, cuts).flatMap((chunk) => reader.push(chunk));
        expect(lines).toEqual([line.slice(0, -1)]);
        expect(reader.pending).toBe(0);
        expect(parseRequest(lines[0]!)).toEqual(r);
      }),
      { numRuns: RUNS },
    );
  });

  test("any line: a request that keeps the rules, or run_bad_request naming what is wrong, never another error", () => {
    const valid = validRequest.map(wire);
    const line = fc.oneof(
      fc.string({ unit: "binary", maxLength: 200 }),
      fc.string({ unit, maxLength: 60 }),
      fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
      hostileObject.map((o) => JSON.stringify(o)),
      fc.dictionary(fc.constantFrom(...FIELDS, "__proto__", "constructor", "uid"), hostileJson, { maxKeys: 8 }).map((o) => JSON.stringify(o)),
      valid.chain((w) => mutatedJson(w)).map((v) => JSON.stringify(v) ?? ""),
      valid.chain((w) => editedText(JSON.stringify(w))),
      fc.constantFrom("", "{}", "null", "[]", '"x"', "1", '{"__proto__":{"workload":"w"}}', `{"workload":"w","command":["a"],"env":[],"cwd":"/","${"k".repeat(5000)}":1}`),
    );
    fc.assert(
      fc.property(line, (l) => {
        const p = parsed(l);
        if ("ok" in p) return keepsTheRules(p.ok);
        expect(p.error.code).toBe("run_bad_request");
        expect(p.error.message).toMatch(REFUSAL);
        expect(p.error.message.length).toBeLessThanOrEqual(512); // a huge member name is not echoed whole
      }),
      { numRuns: RUNS },
    );
  });

  test("a valid request with one member replaced by any JSON: accepted, or refused naming that member", () => {
    const member = fc.oneof(hostileJson, text, fc.array(fc.oneof(text, hostileJson), { maxLength: 3 }), fc.constantFrom("\0", "a\0", ["a\0"], ["=x"], [""], "relative/dir"));
    fc.assert(
      fc.property(validRequest, fc.constantFrom(...FIELDS), member, (r, field, value) => {
        const w = { ...wire(r), [field]: value };
        const p = parsed(JSON.stringify(w));
        if ("ok" in p) return keepsTheRules(p.ok);
        expect(p.error.code).toBe("run_bad_request");
        expect(p.error.message).toMatch(REFUSAL);
        expect(p.error.message.slice("run: bad request: ".length).startsWith(field)).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });
});

/** The line reader's contract, one byte at a time: what each push returns, or the push that throws. */
function model(chunks: Uint8Array[], firstMax: number, laterMax: number): { outs: string[][]; pending: number; throwsAt: number | null } {
  const outs: string[][] = [];
  let line: number[] = [];
  let lines = 0;
  let dropping = false;
  for (const [k, chunk] of chunks.entries()) {
    const out: string[] = [];
    for (const b of chunk) {
      if (b === 10) {
        if (!dropping) out.push(new TextDecoder().decode(Uint8Array.from(line)));
        [line, dropping] = [[], false];
        lines++;
      } else if (!dropping) {
        if (line.length + 1 > (lines === 0 ? firstMax : laterMax)) {
          if (lines === 0) return { outs, pending: line.length, throwsAt: k };
          [line, dropping] = [[], true];
        } else line.push(b);
      }
    }
    outs.push(out);
  }
  return { outs, pending: line.length, throwsAt: null };
}

describe("run.sock line reader", () => {
  test("any chunks, any caps: the lines of a byte-by-byte model, run_request_too_large at the push that passes the first cap", () => {
    const byte = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(10, 0x61, 0x7b, 0, 0xc3, 0xa9, 0xff, 0xe2, 0x80) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) });
    const chunk = fc.array(byte, { maxLength: 40 }).map((b) => Uint8Array.from(b));
    fc.assert(
      fc.property(fc.array(chunk, { maxLength: 8 }), fc.nat({ max: 40 }), fc.nat({ max: 20 }), (chunks, firstMax, laterMax) => {
        const want = model(chunks, firstMax, laterMax);
        const reader = new LineReader(firstMax, laterMax);
        for (const [k, c] of chunks.entries()) {
          if (k === want.throwsAt) {
            let error: unknown = null;
            try {
              reader.push(c);
            } catch (e) {
              error = e;
            }
            expect(error).toBeInstanceOf(RunProtocolError);
            expect((error as RunProtocolError).code).toBe("run_request_too_large");
            expect((error as Error).message).toBe(`run: the request is larger than ${firstMax} bytes`);
            return;
          }
          expect(reader.push(c)).toEqual(want.outs[k]!);
        }
        expect(reader.pending).toBe(want.pending);
        expect(reader.bytesSeen).toBe(chunks.reduce((n, c) => n + c.length, 0));
      }),
      { numRuns: RUNS },
    );
  });
});

describe("run.sock signal lines and answers", () => {
  test("a signal line: one of the four it names, else null; never a throw", () => {
    const line = fc.oneof(
      fc.string({ unit: "binary", maxLength: 80 }),
      fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)),
      fc.record({ signal: fc.oneof(fc.constantFrom(...RUN_SIGNALS, "SIGKILL", "SIGSTOP", "sigint", "SIGINT ", "INT", "2"), hostileJson) }).map((o) => JSON.stringify(o)),
      fc.tuple(fc.constantFrom(...RUN_SIGNALS), hostileObject).map(([s, o]) => JSON.stringify({ ...o, signal: s })),
    );
    fc.assert(
      fc.property(line, (l) => {
        const s = parseSignalLine(l);
        if (s === null) return;
        expect(RUN_SIGNALS).toContain(s);
        expect((JSON.parse(l) as { signal: unknown }).signal).toBe(s);
      }),
      { numRuns: RUNS },
    );
    for (const s of RUN_SIGNALS) expect(parseSignalLine(new TextDecoder().decode(encodeLine({ signal: s })).slice(0, -1))).toBe(s);
  });

  test("any answer line: an answer, or run_bad_answer quoting at most its first 100 characters", () => {
    const line = fc.oneof(
      fc.string({ unit: "binary", maxLength: 300 }),
      fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
      fc.dictionary(fc.constantFrom("error", "exit", "signal", "notice", "code", "message"), hostileJson, { maxKeys: 4 }).map((o) => JSON.stringify(o)),
      fc.record({ error: fc.dictionary(fc.constantFrom("code", "message"), hostileJson, { maxKeys: 2 }) }).map((o) => JSON.stringify(o)),
    );
    fc.assert(
      fc.property(line, (l) => {
        let a: RunAnswer | RunNotice;
        try {
          a = parseAnswer(l);
        } catch (e) {
          if (!(e instanceof RunProtocolError)) throw e;
          expect(e.code).toBe("run_bad_answer");
          expect(e.message.startsWith("run: the agent's answer is not understood: ")).toBe(true);
          expect(e.message.length).toBeLessThanOrEqual(50 + 6 * 100);
          return;
        }
        if ("error" in a) expect([typeof a.error.code, typeof a.error.message]).toEqual(["string", "string"]);
        else if ("exit" in a) expect(Number.isInteger(a.exit) && a.exit >= 0 && a.exit <= 255).toBe(true);
        else if ("notice" in a) expect(a.notice.length <= MAX_NOTICE && !/[\u0000-\u001f\u007f-\u009f]/.test(a.notice)).toBe(true);
        else expect(a.signal).toMatch(/^SIG[A-Z0-9]{1,12}$/);
      }),
      { numRuns: RUNS },
    );
  });

  test("every answer the agent can send round-trips through its line", () => {
    const answer: fc.Arbitrary<RunAnswer> = fc.oneof(
      fc.record({ error: fc.record({ code: fc.string({ unit, maxLength: 30 }), message: fc.string({ unit, maxLength: 200 }) }) }),
      fc.record({ exit: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ signal: fc.stringMatching(/^SIG[A-Z0-9]{1,12}$/) }),
    );
    fc.assert(
      fc.property(answer, (a) => {
        const line = new TextDecoder().decode(encodeLine(a));
        expect(line.indexOf("\n")).toBe(line.length - 1);
        expect(parseAnswer(line.slice(0, -1))).toEqual(a);
      }),
      { numRuns: RUNS },
    );
  });
});
