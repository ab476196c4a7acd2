// run.sock end to end within one process, with a stand-in launcher (a shell that records its
// arguments and execs the command; the real launcher and cgroups are in test/e2e/capture.test.ts):
// the caller's descriptors, environment and cwd reach the command, exit codes and signals come
// back, refusals are logged and answered, and the socket's access follows the run group. Callers
// other than root are real processes run as nobody (setpriv), so SO_PEERCRED names them. Needs
// root (chown, setpriv); skipped with a message otherwise, except under CI.
import { afterAll, beforeAll, describe, expect, setSystemTime, test } from "bun:test";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readSync, rmSync, statSync, writeSync } from "node:fs";
import { holders } from "../../test/helpers/fds.ts";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadPolicy } from "../policy/load.ts";
import { memoryLogger } from "../runtime/log.ts";
import * as u from "../runtime/unix-fds.ts";
import { Errno } from "../runtime/libc.ts";
import { MAX_CONNECTIONS, MAX_CONNECTIONS_PER_USER, RunService, type RunHost } from "./run-service.ts";
import { noIdentityNotice } from "./run-protocol.ts";
import { parseStartTime } from "../attest/proc-text.ts";
import { openPseudoTerminal } from "../runtime/pty.ts";
import { CLONE3_PY_DEF } from "../../test/helpers/processes.ts";

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
  - { name: w1, id: spiffe://example.org/w1, user: www-data, run_by: { users: [nobody, www-data] } }
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

/** Opens N connections to PATH and holds them; prints the answer the last one got; ends when stdin closes. */
const HOLD_PY = `
import socket, sys
path, n = sys.argv[1], int(sys.argv[2])
held = []
for i in range(n):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    held.append(s)
sys.stdout.write(held[-1].makefile("rb").readline().decode())
sys.stdout.flush()
sys.stdin.read()
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
/** The gate kills its caller and waits for it to be reaped before it answers. */
let killCallerInGate = false;
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
    if (killCallerInGate) {
      process.kill(pid, "SIGKILL");
      await until(() => (existsSync(`/proc/${pid}`) ? null : true)); // reaped (by Bun: our child)
    }
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

async function asNobody(body: unknown, mode: "fds" | "nofds" | "big" = "fds", uid = 65534) {
  const p = Bun.spawn(["setpriv", `--reuid=${uid}`, "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", PY_CLIENT, socketPath, JSON.stringify(body), mode], { stdout: "pipe", stderr: "pipe", stdin: "ignore", cwd: "/" });
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  const answer = /ANSWER (.*)/.exec(out)?.[1];
  const notices = [...out.matchAll(/^NOTICE (.*)$/gm)].map((m) => JSON.parse(m[1]!));
  return { pid: p.pid, out, err, answer: answer ? JSON.parse(answer) : null, notices };
}

/**
 * A caller that is gone before the agent accepts its connection, made certain: run with spawnSync,
 * which holds this process's event loop (so the service cannot accept meanwhile) until the driver
 * has exited. The driver (root) forks the caller, which becomes nobody, connects, sends BODY with
 * its descriptors 0, 1, 2, leaves its connection to a child of its own (which writes the answer to
 * the file on descriptor 3) and exits; the driver reaps it. With "reuse", the driver then starts a
 * process of nobody's at the caller's very pid (clone3 set_tid, CLONE3_PY_DEF of test/helpers/processes.ts)
 * that sleeps: the pid the kernel recorded at connect() is another process's when the agent reads
 * /proc. Writes {"caller", "reuser"} as JSON to OUT.
 */
const GONE_PY = `${CLONE3_PY_DEF}
import json, socket
path, body, mode, out = sys.argv[1], sys.argv[2].encode() + b"\\n", sys.argv[3], sys.argv[4]
def nobody():
    os.setgroups([])
    os.setresgid(65534, 65534, 65534)
    os.setresuid(65534, 65534, 65534)
def quiet():
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
answer = os.open(out + ".answer", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
caller = os.fork()
if caller == 0:
    nobody()
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    socket.send_fds(s, [body[:1]], [0, 1, 2])
    s.sendall(body[1:])
    if os.fork() == 0:
        quiet()
        os.write(answer, s.makefile("rb").readline())
        os._exit(0)
    os._exit(0)
os.waitpid(caller, 0)
result = {"caller": caller, "reuser": None}
if mode == "reuse":
    r, e = clone3(caller)
    if r == 0:
        nobody()
        quiet()
        os.execv("/bin/sleep", ["sleep", "300"])
    result["reuser"] = r if r > 0 else "clone3: " + os.strerror(e)
open(out, "w").write(json.dumps(result))
`;

/** clone3 with set_tid works here (Linux 5.5+, CAP_CHECKPOINT_RESTORE): asked for this very pid, EEXIST. */
const canChoosePid =
  isRoot &&
  Bun.spawnSync(["/usr/bin/python3", "-c", "import ctypes,os,struct\nl=ctypes.CDLL(None,use_errno=True)\nl.syscall.restype=ctypes.c_long\nt=(ctypes.c_int*1)(os.getpid())\na=struct.pack('=11Q',0,0,0,0,17,0,0,0,ctypes.addressof(t),1,0)\nb=ctypes.create_string_buffer(a,len(a))\nr=l.syscall(ctypes.c_long(435),b,ctypes.c_size_t(len(a)))\nos._exit(0) if r==0 else print(ctypes.get_errno())"], { stdout: "pipe" }).stdout.toString().trim() === "17";

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

  /** Runs GONE_PY (see there) to its end, then waits for the answer its caller's child got. */
  async function gone(body: unknown, mode: "exit" | "reuse") {
    const out = join(dir, `gone-${mode}.json`);
    // No pipe: the caller's descriptors wait in the socket with its request, and a pipe among them
    // would never end while the service, held by spawnSync, cannot take them.
    const r = Bun.spawnSync(["/usr/bin/python3", "-c", GONE_PY, socketPath, JSON.stringify(body), mode, out], { stdin: "ignore", stdout: "ignore", stderr: Bun.file(`${out}.err`), cwd: "/" });
    if (r.exitCode !== 0) throw new Error(`the driver failed: ${readFileSync(`${out}.err`, "utf8")}`);
    const result = JSON.parse(readFileSync(out, "utf8")) as { caller: number; reuser: number | string | null };
    const answer = await until(() => {
      const text = readFileSync(`${out}.answer`, "utf8");
      return text.endsWith("\n") ? JSON.parse(text) : null;
    });
    return { ...result, answer };
  }

  test("a caller that exits after connecting, before its connection is accepted, is refused (run_caller_exited), not served", async () => {
    const g = await gone({ workload: "w1", command: ["true"], env: [], cwd: "/" }, "exit");
    expect(g.answer).toEqual({ error: { code: "run_caller_exited", message: `run: the calling process (pid ${g.caller}) exited before its connection was accepted` } });
    expect(logs("run_refused").at(-1)).toMatchObject({ caller_pid: g.caller, caller_uid: 65534, code: "run_caller_exited" });
    expect(logs("run_started").some((l) => l.caller_pid === g.caller)).toBe(false);
  }, 20_000);

  test.skipIf(!canChoosePid)("--mcp-stdio: a caller whose pid another process of its uid holds when its connection is accepted (clone3 set_tid) is refused, never attested in its place", async () => {
    const asked = mcpAsked.length;
    const g = await gone({ workload: "w1", command: ["true"], env: [], cwd: "/", mcp_stdio: true }, "reuse");
    try {
      expect(typeof g.reuser).toBe("number");
      expect(g.reuser).toBe(g.caller); // the very pid SO_PEERCRED names
      expect(g.answer?.error?.code).toBe("run_caller_exited");
      expect(mcpAsked.slice(asked)).toEqual([]); // the gate never saw the process at that pid
    } finally {
      if (typeof g.reuser === "number") process.kill(g.reuser, "SIGKILL");
    }
  }, 20_000);

  test("a kernel without SO_PEERPIDFD: callers are served as before (start time unpinned), and the agent says so once", async () => {
    const path = join(runDir, "unpinned.sock");
    const before = logs("run_caller_unpinned").length;
    const old = new RunService({ socketPath: path, host, logger, peerPidfd: () => null, binary: () => ["/usr/bin/python3", "-c", STAND_IN, launcher] });
    try {
      for (let i = 0; i < 2; i++) {
        const c = u.connectUnix(path);
        u.sendWithFds(c, enc(`${JSON.stringify({ workload: "w1", command: ["true"], env: ["PATH=/usr/bin:/bin"], cwd: "/" })}\n`), [0, 1, 2]);
        expect(await answerOf(c)).toEqual({ exit: 0 });
        u.closeFd(c);
      }
    } finally {
      old.stop();
    }
    expect(logs("run_caller_unpinned").length - before).toBe(1);
    expect(logs("run_caller_unpinned").at(-1)).toMatchObject({ level: "warn" });
  }, 20_000);

  test(`one user at its cap (${MAX_CONNECTIONS_PER_USER} connections held) is refused the next (run_busy_user); another uid and root are still served`, async () => {
    expect(service!.connections).toBe(0);
    const holder = Bun.spawn(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", HOLD_PY, socketPath, String(MAX_CONNECTIONS_PER_USER + 1)], { stdin: "pipe", stdout: "pipe", stderr: "pipe", cwd: "/" });
    try {
      const reader = holder.stdout.getReader();
      let text = "";
      while (!text.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`the holder ended: ${text}`);
        text += new TextDecoder().decode(value);
      }
      expect(JSON.parse(text)).toEqual({ error: { code: "run_busy_user", message: `run: uid 65534 has ${MAX_CONNECTIONS_PER_USER} run connections open (at most ${MAX_CONNECTIONS_PER_USER} per user); end one and try again` } });
      expect(logs("run_refused").at(-1)).toMatchObject({ caller_pid: holder.pid, caller_uid: 65534, code: "run_busy_user" });
      expect(service!.connections).toBe(MAX_CONNECTIONS_PER_USER); // the first ones still held
      const other = await asNobody({ workload: "w1", command: ["sh", "-c", "exit 5"], env: ["PATH=/usr/bin:/bin"], cwd: "/" }, "fds", 33);
      expect(other.answer).toEqual({ exit: 5 });
      expect(logs("run_started").at(-1)).toMatchObject({ caller_pid: other.pid, caller_uid: 33 });
      const c = u.connectUnix(socketPath);
      u.sendWithFds(c, enc(`${JSON.stringify({ workload: "w1", command: ["true"], env: ["PATH=/usr/bin:/bin"], cwd: "/" })}\n`), [0, 1, 2]);
      expect(await answerOf(c)).toEqual({ exit: 0 });
      u.closeFd(c);
    } finally {
      holder.stdin.end();
      await holder.exited;
    }
    await until(() => (service!.connections === 0 ? true : null));
  }, 20_000);

  test("--mcp-stdio: a caller that exits while it is attested is refused (run_caller_exited): what the gate read may be of another process", async () => {
    killCallerInGate = true;
    try {
      const r = await asNobody({ workload: "w1", command: ["true"], env: [], cwd: "/", mcp_stdio: true });
      expect(r.answer).toBeNull(); // killed before any answer
      expect(mcpAsked.at(-1)?.pid).toBe(r.pid);
      const refused = await until(() => logs("run_refused").find((l) => l.caller_pid === r.pid));
      expect(refused).toMatchObject({ code: "run_caller_exited", reason: `run: the calling process (pid ${r.pid}) exited while it was attested` });
    } finally {
      killCallerInGate = false;
    }
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

  test("the wall clock stepped back an hour: the socket's mode is still re-checked within seconds", async () => {
    await until(() => ((statSync(socketPath).mode & 0o777) === 0o660 ? true : null));
    setSystemTime(new Date(Date.now() - 3_600_000)); // Date only; the system clock is untouched
    try {
      chmodSync(socketPath, 0o666); // changed by hand: the next re-check (every 5 s) narrows it again
      await until(() => ((statSync(socketPath).mode & 0o777) === 0o660 ? true : null), 12_000);
    } finally {
      setSystemTime();
    }
  }, 20_000);

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
