// Property tests of the run.sock handler (RunService) on a real socket, with a stand-in launcher
// (a shell that records its arguments and its environment descriptor): any bytes a caller sends,
// cut anywhere, with zero to four descriptors, then the end of its stream, get exactly one answer
// line that parses as an answer and then the end of the connection; a refusal is the parser's own
// (code and message) when the first line is not a request; nothing is thrown out of the handler
// (no run_failed answer, no run_service_failed log), nothing hangs, and every descriptor it
// received is closed. Valid requests round-trip through the handler: the workload reaches the
// host, the command, the working directory, --allow-root and the environment reach the launcher
// byte for byte. The caller is this process (root): SO_PEERCRED gives uid 0, so a valid request
// reaches the launcher with no policy at all. Needs root; skipped with a message otherwise,
// except under CI. The protocol's own properties: run-protocol.property.test.ts.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { holders } from "../../test/helpers/fds.ts";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FUZZ_FACTOR, fuzzRuns } from "../../test/fuzz-runs.ts";
import { editedText, mutatedJson } from "../../test/helpers/json-mutations.ts";
import { waitFor } from "../../test/helpers/processes.ts";
import { memoryLogger } from "../runtime/log.ts";
import * as u from "../runtime/unix-fds.ts";
import { decideRun } from "./run-decision.ts";
import { encodeRequest, parseAnswer, parseRequest, RunProtocolError, type RunAnswer, type RunRequest } from "./run-protocol.ts";
import { RunService, type RunHost } from "./run-service.ts";

const isRoot = process.getuid?.() === 0;
if (!isRoot && process.env.CI) throw new Error("run-service.property.test.ts: CI must run as root");
if (!isRoot) console.warn("run-service.property.test.ts: skipped (needs root: a root caller's requests reach the launcher, the socket is chowned)");

const RUNS = fuzzRuns(60);
const TIMEOUT_MS = Math.round(120_000 * Math.max(1, FUZZ_FACTOR));
/** Far beyond any answer's time: a connection without one by then hangs. */
const ANSWER_DEADLINE_MS = 30_000;

const ACCOUNTS = {
  passwd: "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
  group: "root:x:0:\nnogroup:x:65534:\n",
};
const CALLER = { pid: process.pid, uid: 0, gid: 0 };
/** The stand-in launcher: its environment descriptor and its arguments, NUL-separated, into files named by $0. */
const STAND_IN = `cat <&3 > "$0.env" && printf '%s\\0' "$@" > "$0.argv"`;

let dir: string;
let launches: string;
let socketPath: string;
let service: RunService | undefined;
let launched = 0;
const logger = memoryLogger();
const prepared: string[] = [];
const mcpAsked: { pid: number; uid: number; workload: string }[] = [];
const host: RunHost = {
  policy: () => null,
  generation: () => 1,
  prepareRun: (workload) => {
    prepared.push(workload);
    return { cgroup_dir: "/cgroups/test", spiffe_id: null };
  },
  release: () => {},
  mcpStdioGate: async (pid, uid, workload) => {
    mcpAsked.push({ pid, uid, workload });
    return { refused: { code: "test_mcp_refused", message: "run: this test's host relays no MCP" } };
  },
};

beforeAll(() => {
  if (!isRoot) return;
  dir = mkdtempSync(join(tmpdir(), "tidegate-test-run-service-property-"));
  mkdirSync(join(dir, "run"), { mode: 0o700 });
  launches = join(dir, "launches");
  mkdirSync(launches, { mode: 0o700 });
  socketPath = join(dir, "run", "run.sock");
  service = new RunService({ socketPath, host, logger, accounts: () => ACCOUNTS, binary: () => ["/bin/sh", "-c", STAND_IN, join(launches, String(++launched))] });
});

afterAll(() => {
  service?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/** `bytes` cut at the given points (modulo its length), empty pieces dropped. */
function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let from = 0;
  for (const c of [...at, bytes.length]) {
    if (c > from) out.push(bytes.subarray(from, c));
    from = c;
  }
  return out;
}

/**
 * One connection: the chunks (the first carrying `fds`), then the end of the stream when `shut`;
 * resolves to everything the agent sent until it closed. A send or shutdown after the agent has
 * answered and closed may fail: that is the agent's right.
 */
async function exchange(chunks: Uint8Array[], fds: number[], shut: boolean): Promise<string> {
  const c = u.connectUnix(socketPath);
  try {
    for (const [i, chunk] of chunks.entries()) {
      try {
        if (i === 0) u.sendWithFds(c, chunk, fds);
        else u.sendAll(c, chunk);
      } catch (e) {
        if (i === 0) throw e;
      }
    }
    if (shut) {
      try {
        u.shutdownWrite(c);
      } catch {
        // closed by the agent already
      }
    }
    let text = "";
    await waitFor("the agent's answer and its end of the connection", () => {
      for (;;) {
        const got = u.receive(c, 65536);
        if (got === null) return undefined;
        for (const fd of got.fds) u.closeFd(fd);
        if (got.bytes.length === 0) return true;
        text += new TextDecoder().decode(got.bytes);
      }
    }, ANSWER_DEADLINE_MS, 5);
    return text;
  } finally {
    u.closeFd(c);
  }
}

/** The one answer line of `text`, parsed; fails unless there is exactly one, newline-ended. */
function oneAnswer(text: string): RunAnswer {
  expect(text.endsWith("\n")).toBe(true);
  expect(text.indexOf("\n")).toBe(text.length - 1);
  const a = parseAnswer(text.slice(0, -1));
  if ("notice" in a) throw new Error(`a notice where the answer was due: ${a.notice}`);
  return a;
}

/** Any string of code points (well-formed UTF-16: argv and files carry UTF-8), no NUL. */
const unit = fc.oneof(fc.constantFrom("\n", "\r", '"', "\\", "=", "/", " ", "-", "\u2028", "\u{1F600}", "é"), fc.string({ unit: "binary", minLength: 1, maxLength: 1 }));
const text = fc.string({ unit, maxLength: 16 }).map((s) => s.replaceAll("\0", "")).filter((s) => new TextDecoder().decode(new TextEncoder().encode(s)) === s);
const nonEmpty = text.filter((s) => s.length > 0);

/** A request the root caller's path accepts: the target is nobody, never root. */
const runnable: fc.Arbitrary<RunRequest> = fc.record({
  workload: nonEmpty,
  user: fc.constantFrom("nobody", "65534"),
  allowRoot: fc.boolean(),
  command: fc.tuple(nonEmpty, fc.array(text, { maxLength: 4 })).map(([head, rest]) => [head, ...rest]),
  env: fc.array(fc.tuple(nonEmpty.filter((n) => !n.startsWith("=")), text).map(([n, v]) => `${n}=${v}`), { maxLength: 5 }),
  cwd: text.map((s) => `/${s}`),
});

const wireOf = (r: RunRequest) => JSON.parse(new TextDecoder().decode(encodeRequest(r))) as unknown;
const enc = (s: string) => new TextEncoder().encode(s);

describe.skipIf(!isRoot)("run.sock handler", () => {
  test("any bytes, cut anywhere, with 0 to 4 descriptors: one well-formed answer, then the end; never a throw, a hang or a kept descriptor", async () => {
    const anyRequest = fc.tuple(runnable, fc.boolean(), fc.boolean()).map(([r, mcp, otherUser]) => ({ ...r, ...(otherUser ? { user: "root" } : {}), ...(mcp ? { mcpStdio: true } : {}) }));
    const payload = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.uint8Array({ maxLength: 60 }).map((b) => Uint8Array.from([...b, 10, ...b])),
      fc.string({ unit: "binary", maxLength: 120 }).map((s) => enc(`${s}\n`)),
      anyRequest.map((r) => encodeRequest(r)),
      anyRequest.chain((r) => mutatedJson(wireOf(r))).map((v) => enc(`${JSON.stringify(v) ?? ""}\n`)),
      anyRequest.chain((r) => editedText(JSON.stringify(wireOf(r)))).map((t) => enc(`${t}\n`)),
      anyRequest.map((r) => encodeRequest(r).subarray(0, -1)), // no newline: truncated
    );
    const [r, w] = u.pipe();
    const before = [holders(r), holders(w)];
    try {
      await fc.assert(
        fc.asyncProperty(payload, fc.array(fc.nat(), { maxLength: 4 }), fc.constantFrom(0, 1, 3, 3, 3, 4), async (bytes, cuts, nfds) => {
          const chunks = split(bytes, cuts);
          const fds = chunks.length === 0 ? [] : [r, w, w, w].slice(0, nfds);
          const answer = oneAnswer(await exchange(chunks, fds, true));
          expect("error" in answer && answer.error.code === "run_failed").toBe(false);
          const newline = bytes.indexOf(10);
          if (fds.length > 3) expect(answer).toMatchObject({ error: { code: "run_bad_fds" } });
          else if (newline === -1) expect(answer).toMatchObject({ error: { code: "run_request_truncated" } });
          else {
            let req: RunRequest | null = null;
            try {
              req = parseRequest(new TextDecoder().decode(bytes.subarray(0, newline)));
            } catch (e) {
              if (!(e instanceof RunProtocolError)) throw e;
              expect(answer).toEqual({ error: { code: e.code, message: e.message } }); // the parser's refusal, as it is
            }
            if (req !== null && fds.length !== 3) expect(answer).toMatchObject({ error: { code: "run_bad_fds" } });
            else if (req !== null) {
              const d = decideRun({ caller: CALLER, request: req, policy: null, files: ACCOUNTS });
              if (!d.ok) expect(answer).toEqual({ error: { code: d.code, message: d.message } });
              else if (req.mcpStdio === true) expect(answer).toMatchObject({ error: { code: d.target.uid === 0 ? "run_mcp_same_user" : "test_mcp_refused" } });
              // started: it ends by itself, or by the SIGHUP its caller's end of stream sends
              else expect<RunAnswer[]>([{ exit: 0 }, { signal: "SIGHUP" }]).toContainEqual(answer);
            }
          }
          expect([holders(r), holders(w)]).toEqual(before); // what the agent received is closed
        }),
        { numRuns: RUNS },
      );
      await waitFor("the agent to close every connection", () => (service!.connections === 0 ? true : undefined), 30_000, 10);
      expect(logger.lines.filter((l) => l.event === "run_service_failed")).toEqual([]);
      expect(mcpAsked.every((a) => a.pid === process.pid && a.uid === 0)).toBe(true); // SO_PEERCRED's, whatever was sent
    } finally {
      u.closeFd(r);
      u.closeFd(w);
    }
  }, TIMEOUT_MS);

  test("a valid request, cut anywhere, round-trips: the workload to the host; command, cwd, --allow-root and environment to the launcher", async () => {
    const [r, w] = u.pipe();
    try {
      await fc.assert(
        fc.asyncProperty(runnable, fc.array(fc.nat(), { maxLength: 4 }), async (req, cuts) => {
          const n = launched + 1;
          const answer = oneAnswer(await exchange(split(encodeRequest(req), cuts), [r, w, w], false));
          expect(answer).toEqual({ exit: 0 });
          expect(launched).toBe(n);
          expect(prepared.at(-1)).toBe(req.workload);
          const argv = readFileSync(join(launches, `${n}.argv`), "utf8").split("\0").slice(0, -1);
          const flags = argv.slice(0, argv.indexOf("--"));
          expect(argv.slice(argv.indexOf("--") + 1)).toEqual([...req.command]);
          expect(flags).toContain("--uid=65534");
          expect(flags).toContain(`--cwd=${req.cwd}`);
          expect(flags.includes("--allow-root")).toBe(req.allowRoot);
          expect(readFileSync(join(launches, `${n}.env`), "utf8")).toBe(req.env.map((e) => `${e}\0`).join(""));
        }),
        { numRuns: RUNS },
      );
    } finally {
      u.closeFd(r);
      u.closeFd(w);
    }
  }, TIMEOUT_MS);
});
