// run.sock end to end within one process, with a stand-in launcher (a shell that records its
// arguments and execs the command; the real launcher and cgroups are in test/e2e/capture.test.ts):
// the caller's descriptors, environment and cwd reach the command, exit codes and signals come
// back, refusals are logged and answered, and the socket's access follows the run group. Callers
// other than root are real processes run as nobody (setpriv), so SO_PEERCRED names them. Needs
// root (chown, setpriv); skipped with a message otherwise, except under CI.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readSync, rmSync, statSync, writeSync } from "node:fs";
import { holders } from "../../test/helpers/fds.ts";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadPolicy } from "../policy/load.ts";
import { memoryLogger } from "../runtime/log.ts";
import * as u from "../runtime/unix-fds.ts";
import { Errno } from "../runtime/libc.ts";
import { MAX_CONNECTIONS, RunService, type RunHost } from "./run-service.ts";
import { noIdentityNotice } from "./run-protocol.ts";
import { parseStartTime } from "../attest/proc-text.ts";
import { openPseudoTerminal } from "../runtime/pty.ts";

const isRoot = process.getuid?.() === 0;
if (!isRoot && !process.env.CI) console.warn("run-service: skipped (needs root: chown of the socket, callers run as nobody)");
const NOGROUP = 65534;

/** The socket's mode and group changes, in the order the service made them. */
const accessOps: { path: string; mode?: number; gid?: number }[] = [];

/** The socket's (mode, group) after each of `ops` that touched it, from `from`. */
function steps(ops: readonly { path: string; mode?: number; gid?: number }[], from: { mode: number; gid: number }) {
  const out: { mode: number; gid: number }[] = [];
  let at = from;
  for (const op of ops) {
    if (op.path !== socketPath) continue;
    at = { mode: op.mode ?? at.mode, gid: op.gid ?? at.gid };
    out.push(at);
  }
  return out;
}

const POLICY = (group: string) => `trust_domain: example.org
agent: { run_group: ${group} }
workloads:
  - { name: w1, id: spiffe://example.org/w1, user: www-data, run_by: { users: [nobody] } }
  - { name: w2, id: spiffe://example.org/w2, user: www-data, run_by: { users: [root] } }
`;

/** A caller as a separate process: sends BODY with its fds 0, 1, 2 (or none), prints the answer. */
const PY_CLIENT = `
import socket, sys, json
path, body, mode = sys.argv[1], sys.argv[2].encode() + b"\\n", sys.argv[3]
s = socket.socket(socket.AF_UNIX)
s.connect(path)
if mode == "big":
    body = b'{"workload":"w1","command":["true"],"env":["A=' + b"x" * (1024 * 1024) + b'"],"cwd":"/"}\\n'
try:
    if mode == "nofds":
        s.sendall(body)
    else:
        socket.send_fds(s, [body[:1]], [0, 1, 2])
        s.sendall(body[1:])
except OSError as e:
    pass
f = s.makefile("rb")
line = f.readline().decode()
while line.startswith('{"notice"'):
    sys.stdout.write("NOTICE " + line)
    line = f.readline().decode()
sys.stdout.write("ANSWER " + line)
`;

const dir = mkdtempSync(join(tmpdir(), "tidegate-test-run-service-"));
const runDir = join(dir, "run");
const socketPath = join(runDir, "run.sock");
const launcher = join(dir, "launcher");
const STAND_IN = `
import os, sys
me, args = sys.argv[1], sys.argv[2:]
open(me + ".argv", "w").write("\\n".join(args) + "\\n")
open(me + ".env", "w").write("\\n".join(sorted(os.environ)))
opts = dict(a[2:].split("=", 1) for a in args[:args.index("--")] if "=" in a)
env = dict(e.split("=", 1) for e in os.read(int(opts["env-fd"]), 1 << 20).decode().split("\\0") if e)
os.chdir(opts["cwd"])
cmd = args[args.index("--") + 1:]
os.execvpe(cmd[0], cmd, env)
`;
const logger = memoryLogger();
const released: string[] = [];
let group = "nogroup";
/** Why the next runs' workload has no identity; null: it has one. */
let noIdentity: string | null = null;
/** What the --mcp-stdio gate was asked, with the caller's start time as /proc said while it waited. */
const mcpAsked: { pid: number; startTime: number | null; actual: number | null }[] = [];
const host: RunHost = {
  policy: () => loadPolicy(POLICY(group), "test.yaml"),
  generation: () => (group === "nogroup" ? 1 : 2),
  prepareRun: (w) => ({ cgroup_dir: `/cgroups/${w}`, spiffe_id: noIdentity === null ? `spiffe://example.org/${w}` : null, no_identity: noIdentity, ca_bundle: "/run/t/intercept-ca-bundle.pem" }),
  release: (w) => void released.push(w),
  mcpStdioGate: async (pid, _uid, _workload, startTime) => {
    let actual: number | null = null;
    try {
      actual = parseStartTime(readFileSync(`/proc/${pid}/stat`, "utf8"));
    } catch {
      // gone
    }
    mcpAsked.push({ pid, startTime: startTime ?? null, actual });
    return { refused: { code: "test_mcp_refused", message: "run: this test's host relays no MCP" } };
  },
};
let service: RunService | undefined;

const enc = (s: string) => new TextEncoder().encode(s);
const logs = (event: string) => logger.lines.filter((l) => l.event === event);

/** Polls `fn` (which must not block) until it returns a value. */
async function until<T>(fn: () => T | null | undefined, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== null && v !== undefined) return v;
    if (Date.now() > end) throw new Error("timed out");
    await Bun.sleep(10);
  }
}

/** Reads one answer line from a connection made in this process. */
async function answerOf(fd: number): Promise<Record<string, unknown>> {
  let text = "";
  await until(() => {
    const got = u.receive(fd, 4096);
    if (got === null) return null;
    if (got.bytes.length === 0) throw new Error(`connection ended after ${JSON.stringify(text)}`);
    text += new TextDecoder().decode(got.bytes);
    return text.includes("\n") ? true : null;
  });
  return JSON.parse(text.split("\n")[0]!);
}

function readAll(fd: number): string {
  const buf = Buffer.alloc(65536);
  let out = "";
  for (let n = readSync(fd, buf); n > 0; n = readSync(fd, buf)) out += buf.toString("utf8", 0, n);
  return out;
}

async function asNobody(body: unknown, mode: "fds" | "nofds" | "big" = "fds") {
  const p = Bun.spawn(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", PY_CLIENT, socketPath, JSON.stringify(body), mode], { stdout: "pipe", stderr: "pipe", stdin: "ignore", cwd: "/" });
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  const answer = /ANSWER (.*)/.exec(out)?.[1];
  const notices = [...out.matchAll(/^NOTICE (.*)$/gm)].map((m) => JSON.parse(m[1]!));
  return { pid: p.pid, out, err, answer: answer ? JSON.parse(answer) : null, notices };
}

describe.skipIf(!isRoot && !process.env.CI)("run.sock", () => {
  beforeAll(async () => {
    chmodSync(dir, 0o755);
    mkdirSync(runDir, { mode: 0o700 });
    service = new RunService({
      socketPath,
      host,
      logger,
      // the stand-in does what the launcher does with --cwd and --env-fd, without cgroups or users
      binary: () => ["/usr/bin/python3", "-c", STAND_IN, launcher],
      fileOps: {
        chmod: (p, mode) => void (accessOps.push({ path: p, mode }), chmodSync(p, mode)),
        chown: (p, uid, gid) => void (accessOps.push({ path: p, gid }), chownSync(p, uid, gid)),
      },
    });
  });
  afterAll(() => {
    service?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("the socket is 0660 root:<run group>, its folder 0711 (traverse only) and root:<run group>", () => {
    expect(statSync(socketPath)).toMatchObject({ uid: 0, gid: NOGROUP });
    expect(statSync(socketPath).mode & 0o777).toBe(0o660);
    expect(statSync(runDir).mode & 0o777).toBe(0o711);
    expect(statSync(runDir).gid).toBe(NOGROUP);
    expect(logs("run_socket")[0]).toMatchObject({ mode: "0660", group: "nogroup", gid: NOGROUP });
  });

  test("root: the caller's descriptors, environment and cwd reach the command; the exit code comes back", async () => {
    const [inR, inW] = u.pipe();
    const [outR, outW] = u.pipe();
    const [errR, errW] = u.pipe();
    const mine = holders(outW); // both ends of the pipe
    const c = u.connectUnix(socketPath);
    const body = { workload: "w1", command: ["sh", "-c", 'echo out; echo err >&2; echo "$FOO"; pwd; read x; echo "in=$x"; exit 3'], env: ["FOO=bar baz", "PATH=/usr/bin:/bin", "BUN_OPTIONS=--preload /nonexistent.js"], cwd: dir };
    u.sendWithFds(c, enc(`${JSON.stringify(body)}\n`), [inR, outW, errW]);
    await until(() => (logs("run_started").length > 0 ? true : null));
    expect(holders(outW)).toBe(mine); // the agent's copies are closed once the child has them
    writeSync(inW, "hello\n");
    for (const fd of [inR, inW, outW, errW]) u.closeFd(fd);
    expect(await answerOf(c)).toEqual({ exit: 3 });
    u.closeFd(c);
    expect(readAll(outR)).toBe(`out\nbar baz\n${dir}\nin=hello\n`);
    expect(readAll(errR)).toBe("err\n");
    u.closeFd(outR);
    u.closeFd(errR);
    // the launcher itself (root) got a fixed environment, never the caller's (BUN_OPTIONS, LD_PRELOAD...)
    // (python, the stand-in, adds LC_CTYPE itself: PEP 538)
    expect(readFileSync(`${launcher}.env`, "utf8").split("\n").filter((n) => n !== "LC_CTYPE")).toEqual(["PATH"]);
    const argv = readFileSync(`${launcher}.argv`, "utf8").split("\n");
    expect(argv.slice(0, 5)).toEqual(["__launch", "--cgroup-dir=/cgroups/w1", "--uid=33", "--gid=33", "--groups=33"]);
    expect(argv).toContain("--ca-bundle=/run/t/intercept-ca-bundle.pem"); // the grant's bundle: the launcher sets the CA variables
    expect(logs("run_started").at(-1)).toMatchObject({ caller_pid: process.pid, caller_uid: 0, workload: "w1", user: "www-data", uid: 33, spiffe_id: "spiffe://example.org/w1" });
    expect(logs("run_ended").at(-1)).toMatchObject({ caller_pid: process.pid, workload: "w1", exit: 3, signal: null });
    expect(released).toContain("w1");
  }, 20_000);

  test("tty: the launcher gets --tty only when descriptor 0 really is a terminal", async () => {
    const pty = openPseudoTerminal();
    const [inR, inW] = u.pipe();
    try {
      for (const [stdin, want] of [[pty.slave, true], [inR, false]] as const) {
        const c = u.connectUnix(socketPath);
        u.sendWithFds(c, enc(`${JSON.stringify({ workload: "w1", command: ["true"], env: ["PATH=/usr/bin:/bin"], cwd: "/", tty: true })}\n`), [stdin, 1, 2]);
        expect(await answerOf(c)).toEqual({ exit: 0 });
        u.closeFd(c);
        expect(readFileSync(`${launcher}.argv`, "utf8").split("\n").includes("--tty")).toBe(want);
      }
      // without tty in the request, a terminal on descriptor 0 is not made the controlling terminal
      const c = u.connectUnix(socketPath);
      u.sendWithFds(c, enc(`${JSON.stringify({ workload: "w1", command: ["true"], env: ["PATH=/usr/bin:/bin"], cwd: "/" })}\n`), [pty.slave, 1, 2]);
      expect(await answerOf(c)).toEqual({ exit: 0 });
      u.closeFd(c);
      expect(readFileSync(`${launcher}.argv`, "utf8").split("\n").includes("--tty")).toBe(false);
    } finally {
      for (const fd of [pty.master, pty.slave, inR, inW]) u.closeFd(fd);
    }
  }, 20_000);

  test("an idle service takes a connection when it arrives (SIGIO), not at its next poll", async () => {
    const path = join(runDir, "idle.sock");
    const idle = new RunService({ socketPath: path, host, logger, idlePollMs: 600_000, binary: () => ["/usr/bin/python3", "-c", STAND_IN, launcher] });
    try {
      await Bun.sleep(50); // its first look is behind it: the next is ten minutes away
      const c = u.connectUnix(path);
      u.sendWithFds(c, enc(`${JSON.stringify({ workload: "w1", command: ["true"], env: ["PATH=/usr/bin:/bin"], cwd: "/" })}\n`), [0, 1, 2]);
      expect(await answerOf(c)).toEqual({ exit: 0 });
      u.closeFd(c);
    } finally {
      idle.stop();
    }
    expect(existsSync(path)).toBe(false);
  }, 20_000);

  test("root: signal lines reach the command (only the four, after any junk), its end by a signal comes back", async () => {
    const c = u.connectUnix(socketPath);
    u.sendWithFds(c, enc(`${JSON.stringify({ workload: "w1", command: ["sleep", "30"], env: ["PATH=/usr/bin:/bin"], cwd: "/" })}\n`), [0, 1, 2]);
    await until(() => (logs("run_started").filter((l) => l.command === "sleep").length === 1 ? true : null));
    u.sendAll(c, enc('{"signal":"SIGKILL"}\n{"signal":"SIGSTOP"}\n'));
    await Bun.sleep(100);
    expect(u.receive(c, 100)).toBeNull(); // still running
    u.sendAll(c, enc(`${"x".repeat(10_000)}\n{"signal":"SIGTERM"}\n`)); // an over-long line is dropped, not the next
    expect(await answerOf(c)).toEqual({ signal: "SIGTERM" });
    u.closeFd(c);
  }, 20_000);

  test("a caller that goes away has its command sent SIGHUP", async () => {
    const c = u.connectUnix(socketPath);
    u.sendWithFds(c, enc(`${JSON.stringify({ workload: "w1", command: ["sleep", "31"], env: ["PATH=/usr/bin:/bin"], cwd: "/" })}\n`), [0, 1, 2]);
    await until(() => (logs("run_started").some((l) => l.command === "sleep" && l.caller_pid === process.pid && logs("run_ended").every((e) => e.pid !== l.pid)) ? true : null));
    u.closeFd(c);
    const gone = await until(() => logs("run_caller_gone").at(-1));
    const ended = await until(() => logs("run_ended").find((l) => l.pid === gone.pid));
    expect(ended.signal).toBe("SIGHUP");
  }, 20_000);

  test("nobody, named by run_by: runs as the workload's user, exit code back", async () => {
    const r = await asNobody({ workload: "w1", command: ["sh", "-c", "echo from-workload; exit 4"], env: ["PATH=/usr/bin:/bin"], cwd: dir });
    expect(r.answer).toEqual({ exit: 4 });
    expect(r.notices).toEqual([]);
    expect(r.out).toContain("from-workload");
    expect(readFileSync(`${launcher}.argv`, "utf8")).toContain("--uid=33\n");
    expect(logs("run_started").at(-1)).toMatchObject({ caller_pid: r.pid, caller_uid: 65534, caller_gid: NOGROUP, workload: "w1", user: "www-data" });
  }, 20_000);

  test("a workload without an identity still runs, and its caller is told first that its connections are refused", async () => {
    noIdentity = "no registration entry has the selector tidegate:workload:w1";
    try {
      const r = await asNobody({ workload: "w1", command: ["sh", "-c", "exit 3"], env: ["PATH=/usr/bin:/bin"], cwd: dir });
      expect(r.notices).toEqual([{ notice: noIdentityNotice("w1", noIdentity) }]);
      expect(r.answer).toEqual({ exit: 3 });
      expect(logs("run_started").at(-1)).toMatchObject({ caller_pid: r.pid, workload: "w1", spiffe_id: null });
    } finally {
      noIdentity = null;
    }
  }, 20_000);

  const refusals: [string, unknown, "fds" | "nofds" | "big", string][] = [
    ["a workload whose run_by names someone else", { workload: "w2", command: ["true"], env: [], cwd: "/" }, "fds", "run_not_in_run_by"],
    ["another user", { workload: "w1", user: "root", command: ["true"], env: [], cwd: "/" }, "fds", "run_user_not_allowed"],
    ["--allow-root", { workload: "w1", allow_root: true, command: ["true"], env: [], cwd: "/" }, "fds", "run_root_refused"],
    ["a cwd the user cannot enter", { workload: "w1", command: ["true"], env: [], cwd: "/root" }, "fds", "run_cwd_unreachable"],
    ["a request without descriptors", { workload: "w1", command: ["true"], env: [], cwd: "/" }, "nofds", "run_bad_fds"],
    ["a request over 1 MiB", null, "big", "run_request_too_large"],
    ["a request that is not one", { workload: "w1" }, "fds", "run_bad_request"],
  ];
  for (const [name, body, mode, code] of refusals) {
    test(`nobody: refused, logged and answered: ${name}`, async () => {
      const r = await asNobody(body, mode);
      expect(r.answer?.error?.code).toBe(code);
      expect(logs("run_refused").at(-1)).toMatchObject({ caller_pid: r.pid, caller_uid: 65534, code });
    }, 20_000);
  }

  test("--mcp-stdio: the gate gets the caller's start time, read when its connection was accepted, so a pid reused later is not attested in its place", async () => {
    const r = await asNobody({ workload: "w1", command: ["true"], env: [], cwd: "/", mcp_stdio: true });
    expect(r.answer?.error?.code).toBe("test_mcp_refused");
    const asked = mcpAsked.at(-1)!;
    expect(asked.pid).toBe(r.pid);
    expect(asked.actual).not.toBeNull();
    expect(asked.startTime).toBe(asked.actual);
  }, 20_000);

  test("a truncated request is refused", async () => {
    const c = u.connectUnix(socketPath);
    u.sendWithFds(c, enc('{"workload":"w1","comm'), [0, 1, 2]);
    u.shutdownWrite(c);
    expect(await answerOf(c)).toMatchObject({ error: { code: "run_request_truncated" } });
    u.closeFd(c);
  });

  test("descriptors sent again after the first bytes refuse the connection and are closed at once", async () => {
    const [r, w] = u.pipe();
    const before = holders(r);
    const c = u.connectUnix(socketPath);
    u.sendWithFds(c, enc("{"), [r, r, r]);
    for (let i = 0; i < 20; i++) {
      try {
        u.sendWithFds(c, enc(" "), [r, r, r, r, r, r, r, r]);
      } catch {
        break; // refused and closed meanwhile
      }
    }
    expect(await answerOf(c)).toMatchObject({ error: { code: "run_bad_fds" } });
    await until(() => (holders(r) === before ? true : null));
    u.closeFd(c);
    u.closeFd(r);
    u.closeFd(w);
  });

  test(`more than ${MAX_CONNECTIONS} connections at once: the next is refused`, async () => {
    expect(service!.connections).toBe(0);
    const open: number[] = [];
    try {
      for (let i = 0; i <= MAX_CONNECTIONS; i++) {
        open.push(u.connectUnix(socketPath));
        if (i % 32 === 31) await until(() => (service!.connections >= i + 1 ? true : null)); // the backlog is 64
      }
      expect(await answerOf(open.at(-1)!)).toMatchObject({ error: { code: "run_busy" } });
    } finally {
      for (const fd of open) u.closeFd(fd);
    }
    await until(() => (service!.connections === 0 ? true : null));
  }, 20_000);

  test("without the run group the socket is root's alone (its folder stays traverse-only); nobody cannot connect", async () => {
    accessOps.length = 0;
    group = "no-such-group-tidegate-test";
    await until(() => ((statSync(socketPath).mode & 0o777) === 0o600 ? true : null));
    // narrowed before its group changed: never 0660 with the new group (root's, gid 0)
    expect(steps(accessOps, { mode: 0o660, gid: NOGROUP })).toEqual([
      { mode: 0o600, gid: NOGROUP },
      { mode: 0o600, gid: 0 },
    ]);
    expect(statSync(runDir).mode & 0o777).toBe(0o711);
    expect(logs("run_socket").at(-1)).toMatchObject({ level: "warn", mode: "0600" });
    const r = await asNobody({ workload: "w1", command: ["true"], env: [], cwd: "/" });
    expect(r.err).toMatch(/PermissionError/);
    accessOps.length = 0;
    group = "nogroup";
    await until(() => ((statSync(socketPath).mode & 0o777) === 0o660 ? true : null));
    // the group given before the mode is widened: never 0660 with root's group
    expect(steps(accessOps, { mode: 0o600, gid: 0 })).toEqual([
      { mode: 0o600, gid: NOGROUP },
      { mode: 0o660, gid: NOGROUP },
    ]);
  });

  test("stop removes the socket", () => {
    service!.stop();
    expect(existsSync(socketPath)).toBe(false);
    let errno = 0;
    try {
      u.connectUnix(socketPath);
    } catch (e) {
      errno = (e as u.UnixFdError).errno;
    }
    expect(errno).toBe(Errno.ENOENT);
  });
});
