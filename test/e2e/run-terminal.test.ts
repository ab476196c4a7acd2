// `tidegate run` from a terminal (docs/capture.md, "`tidegate run`"): the built binary driven
// under a real pseudo-terminal (python3's os.openpty, the "caller's terminal" here), on both paths:
// root's (against a stand-in agent.sock that grants a real cgroup of this test's; the real
// launcher joins it and drops to nobody) and a run-group member's (nobody, through a real
// RunService on run.sock in this process, which starts the real launcher as www-data). Shown:
// a process the command leaves holding its stdin no longer reads what is typed at the caller's
// terminal after `tidegate run` returned; output, exit code, Ctrl-C and the window size pass and the
// command sees a terminal of its own (test -t 0, tty names a /dev/pts, /dev/tty opens); with
// stdin not a terminal, stdout and stderr still get one (not a controlling terminal), so a
// leftover holding stdout neither reads nor writes the caller's terminal afterwards; the
// caller's terminal modes (stty -g) are the same afterwards, after a signal exit and a SIGTERM
// to `tidegate run` too. Needs root and cgroup v2.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { removeUserBinary, requireBinary, userBinary } from "../helpers/binary.ts";
import { serveUnix, type UnixServer } from "../../src/runtime/unix-http.ts";
import { probeHost } from "../../src/runtime/host.ts";
import { RunService } from "../../src/agent/run-service.ts";
import { loadPolicy } from "../../src/policy/load.ts";
import { memoryLogger } from "../../src/runtime/log.ts";

const T = 60_000;
const cgroup2 = probeHost().cgroup2;
const can = process.getuid?.() === 0 && cgroup2 !== null && Bun.which("python3") !== null && Bun.which("setpriv") !== null;
if (!can && !process.env.CI) console.warn("e2e run-terminal: skipped (needs root, cgroup v2, python3 and setpriv)");

const root = mkdtempSync(join(tmpdir(), "tidegate-e2e-pty-"));
const rootRunDir = join(root, "run-root");
const memberRunDir = join(root, "run-member");
/** Where workloads (nobody, www-data) write what their leftovers read. */
const shared = join(root, "shared");
const cgroupTop = join(cgroup2 ?? "/nonexistent", `tidegate-test-pty-${process.pid}`);
const PATH = "/usr/local/bin:/usr/bin:/bin";

/**
 * Runs ARGV with the slave of a fresh pty as its stdout and stderr, and as its stdin unless
 * `stdin` is "null"; copies what comes out of the master; takes `steps` in order, each once its
 * `when` has come out since the last step: types `send`, records stty -g of the caller's terminal
 * (`stty`), resizes it and sends SIGWINCH (`size`: rows, columns; 40x120 at first), or sends
 * SIGTERM to ARGV's process;
 * after it exits, types `typeAfter` and waits. Prints JSON: code (negative: the signal), out,
 * stty -g before and after, the slave's name (the caller's terminal).
 */
const DRIVER = `
import fcntl, json, os, select, signal, struct, subprocess, sys, termios, time
spec = json.loads(sys.argv[1])
m, s = os.openpty()
name = os.ttyname(s)
fcntl.ioctl(s, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
def stty():
    return subprocess.run(["stty", "-g"], stdin=s, capture_output=True, text=True).stdout.strip()
before = stty()
stdin = s if spec.get("stdin") != "null" else subprocess.DEVNULL
p = subprocess.Popen(spec["argv"], stdin=stdin, stdout=s, stderr=s, start_new_session=True, cwd="/", env={"PATH": "${PATH}", "LANG": "C", "TERM": "xterm"})
out = b""
steps = list(spec.get("steps", []))
mark = 0
during = None
deadline = time.time() + 40
def take(wait):
    global out
    if select.select([m], [], [], wait)[0]:
        try:
            out += os.read(m, 65536)
        except OSError:
            pass
while p.poll() is None and time.time() < deadline:
    take(0.02)
    if steps and steps[0]["when"].encode() in out[mark:]:
        step = steps.pop(0)
        mark = len(out)
        if "send" in step:
            os.write(m, step["send"].encode())
        elif "stty" in step:
            during = stty()
        elif "size" in step:
            fcntl.ioctl(s, termios.TIOCSWINSZ, struct.pack("HHHH", step["size"][0], step["size"][1], 0, 0))
            os.kill(p.pid, signal.SIGWINCH)
        else:
            os.kill(p.pid, signal.SIGTERM)
if p.poll() is None:
    p.kill()
code = p.wait()
for _ in range(10):
    take(0.05)
after = stty()
if spec.get("typeAfter"):
    os.write(m, spec["typeAfter"].encode())
    time.sleep(1.5)
    take(0.1)
print(json.dumps({"code": code, "out": out.decode("utf-8", "replace"), "before": before, "during": during, "after": after, "tty": name}))
`;

interface Driven {
  code: number;
  out: string;
  before: string;
  /** stty -g of the caller's terminal at a `stty` step. */
  during: string | null;
  after: string;
  tty: string;
}

type Step = { when: string; send: string } | { when: string; term: true } | { when: string; stty: true } | { when: string; size: [number, number] };

async function drive(argv: string[], o: { stdin?: "tty" | "null"; steps?: Step[]; typeAfter?: string } = {}): Promise<Driven> {
  const p = Bun.spawn(["python3", "-c", DRIVER, JSON.stringify({ argv, ...o })], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`pty driver exited ${code}: ${err}`);
  return JSON.parse(out) as Driven;
}

/** `tidegate run` as root (the launcher drops to nobody), through the stand-in agent.sock. */
const asRoot = (command: string[]) => [requireBinary(), "run", "--instance", "e2e-pty", "--run-dir", rootRunDir, "--workload", "w1", "--", ...command];
/** `tidegate run` as nobody, through run.sock (the command runs as www-data). */
const asMember = (command: string[]) => ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", userBinary(), "run", "--instance", "e2e-pty", "--run-dir", memberRunDir, "--workload", "w1", "--", ...command];

let agent: UnixServer | undefined;
let service: RunService | undefined;
let cgroups = 0;
const released: string[] = [];

function newCgroup(): string {
  const dir = join(cgroupTop, `run${cgroups++}`);
  mkdirSync(dir);
  return dir;
}

/** Kills what is left in the test's cgroups and removes them (`stale`: a top left by an earlier run, killed too). */
async function removeCgroups(dir: string, stale = false): Promise<void> {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) await removeCgroups(join(dir, e.name));
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      if (stale || dir !== cgroupTop) writeFileSync(join(dir, "cgroup.kill"), "1");
      rmdirSync(dir);
      return;
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await Bun.sleep(20);
    }
  }
}

/**
 * The leftover the reviewer showed: detached, in a session of its own, reading the command's
 * stdin. The command waits until the leftover has made its file (it is in its own session by then),
 * else the hang-up of the command's terminal when the command ends could reach it first.
 */
const leftover = (file: string) => ["sh", "-c", `exec 3<&0; (setsid sh -c "head -n 1 <&3 > ${file}" &); while [ ! -e ${file} ]; do sleep 0.05; done; echo started`];

describe.skipIf(!can)("tidegate run from a terminal", () => {
  beforeAll(async () => {
    chmodSync(root, 0o711);
    mkdirSync(shared, { mode: 0o777 });
    chmodSync(shared, 0o777);
    // what an earlier run of this file left (killed mid-run): its cgroups and what runs in them
    for (const e of readdirSync(cgroup2!)) if (/^tidegate-test-pty-\d+$/.test(e)) await removeCgroups(join(cgroup2!, e), true);
    mkdirSync(cgroupTop);
    agent = serveUnix(join(rootRunDir, "agent.sock"), async (req) => {
      const path = new URL(req.url).pathname;
      if (path === "/v1/run") return Response.json({ cgroup_dir: newCgroup(), spiffe_id: "spiffe://example.org/w1", no_identity: null, user: "nobody", workloads: ["w1"], ca_bundle: null });
      if (path === "/v1/run/release") {
        released.push(((await req.json()) as { workload: string }).workload);
        return Response.json({ removed: true });
      }
      return Response.json({ error: { code: "not_found", message: "no" } }, { status: 404 });
    });
    mkdirSync(memberRunDir, { mode: 0o711 });
    const policy = loadPolicy("trust_domain: example.org\nagent: { run_group: nogroup }\nworkloads:\n  - { name: w1, id: spiffe://example.org/w1, user: www-data, run_by: { users: [nobody] } }\n", "test.yaml");
    service = new RunService({
      socketPath: join(memberRunDir, "run.sock"),
      logger: memoryLogger(),
      binary: () => requireBinary(),
      host: {
        policy: () => policy,
        generation: () => 1,
        prepareRun: () => ({ cgroup_dir: newCgroup(), spiffe_id: "spiffe://example.org/w1", no_identity: null, ca_bundle: null }),
        release: (w) => void released.push(w),
      },
    });
  }, T);

  afterAll(async () => {
    service?.stop();
    await agent?.stop();
    await removeCgroups(cgroupTop);
    rmSync(root, { recursive: true, force: true });
    removeUserBinary();
  }, T);

  test("a run that fails before the command starts leaves the caller's terminal as it was (root: no such user; run.sock: a workload the config does not have)", async () => {
    const rootRun = await drive([requireBinary(), "run", "--instance", "e2e-pty", "--run-dir", rootRunDir, "--workload", "w1", "--user", "no-such-user-tg", "--", "true"]);
    expect(rootRun.code).toBe(1);
    expect(rootRun.out).toContain("no such user");
    expect(rootRun.before).toBe(rootRun.after);
    const member = await drive(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", userBinary(), "run", "--instance", "e2e-pty", "--run-dir", memberRunDir, "--workload", "nope", "--", "true"]);
    expect(member.code).toBe(1);
    expect(member.out).toContain("the agent refused");
    expect(member.before).toBe(member.after);
  }, T);

  test("the relay puts the caller's terminal modes back itself, while its process still runs (Bun resets stdin's modes at exit as well)", async () => {
    const script = `
      import { RunTerminal } from ${JSON.stringify(join(import.meta.dir, "../../src/runtime/pty.ts"))};
      const stty = () => Bun.spawnSync(["stty", "-g"], { stdin: "inherit" }).stdout.toString().trim();
      const before = stty();
      const t = RunTerminal.open();
      t.closeSlave();
      t.start();
      const during = stty();
      await t.finish();
      console.log("MODES " + JSON.stringify({ before, during, after: stty() }));`;
    const r = await drive([process.execPath, "--no-env-file", "-e", script]);
    const modes = JSON.parse(/MODES (\{.*\})/.exec(r.out)![1]!) as { before: string; during: string; after: string };
    expect(modes.during).not.toBe(modes.before);
    expect(modes.after).toBe(modes.before);
    expect(r.after).toBe(r.before);
  }, T);

  for (const [path, runArgv] of [["root's launch", asRoot], ["run.sock (a run-group member)", asMember]] as const) {
    describe(path, () => {
      test("a process the command leaves holding its stdin does not read what is typed after tidegate run returned", async () => {
        const file = join(shared, `leftover-${path.length}`);
        const r = await drive(runArgv(leftover(file)), { typeAfter: "typed-after-the-run\n" });
        expect(r.out).toContain("started");
        expect(r.code).toBe(0);
        // the leftover ran (its redirection made the file) and read nothing typed afterwards
        expect(existsSync(file)).toBe(true);
        expect(readFileSync(file, "utf8")).toBe("");
      }, T);

      test("output and the exit code pass through; the command has a terminal of its own as stdin, stdout and controlling terminal", async () => {
        const r = await drive(runArgv(["sh", "-c", "test -t 0 && echo stdin-is-a-terminal; test -t 1 && echo stdout-is-a-terminal; tty; echo via-dev-tty > /dev/tty; exit 7"]));
        expect(r.code).toBe(7);
        expect(r.out).toContain("stdin-is-a-terminal");
        expect(r.out).toContain("stdout-is-a-terminal");
        expect(r.out).toContain("via-dev-tty");
        const named = /\/dev\/pts\/\d+/.exec(r.out)?.[0];
        expect(named).toBeDefined();
        expect(named).not.toBe(r.tty); // not the caller's terminal: its own
        expect(r.before).toBe(r.after);
      }, T);

      test("what the command writes just before it exits all reaches the caller's terminal", async () => {
        const r = await drive(runArgv(["sh", "-c", "seq 1 20000; exit 0"]));
        expect(r.code).toBe(0);
        expect(r.out).toEndWith("19999\r\n20000\r\n");
        expect(r.out.split("\r\n").length).toBe(20001);
      }, T);

      test("stdout redirected to a file stays that file; stdin and stderr get the run's terminal", async () => {
        const file = join(shared, `stdout-${path.length}`);
        const r = await drive(["sh", "-c", `exec "$@" > ${file}`, "sh", ...runArgv(["sh", "-c", "echo to-the-file; tty; test -t 1 || echo stdout-not-a-terminal >&2; exit 6"])]);
        expect(r.code).toBe(6);
        const written = readFileSync(file, "utf8");
        expect(written).toMatch(/^to-the-file\n\/dev\/pts\/\d+\n$/);
        expect(r.out).toContain("stdout-not-a-terminal");
        expect(r.out).not.toContain("to-the-file");
        expect(r.before).toBe(r.after);
      }, T);

      test("the window size is the caller's terminal's, and follows it on SIGWINCH", async () => {
        const r = await drive(runArgv(["sh", "-c", 'echo "size $(stty size)"; echo waiting; i=0; while [ $i -lt 200 ] && [ "$(stty size)" != "33 101" ]; do sleep 0.05; i=$((i+1)); done; echo "now $(stty size)"']), {
          steps: [{ when: "waiting", size: [33, 101] }],
        });
        expect(r.out).toContain("size 40 120");
        expect(r.out).toContain("now 33 101");
        expect(r.code).toBe(0);
      }, T);

      test("what is typed reaches the command, and Ctrl-C interrupts it through its terminal", async () => {
        const r = await drive(runArgv(["sh", "-c", 'trap "echo interrupted; exit 3" INT; echo ready; read line; echo "got [$line]"; echo waiting; while :; do sleep 0.1; done']), {
          steps: [{ when: "ready", send: "hello\r" }, { when: "waiting", send: "\x03" }],
        });
        expect(r.out).toContain("got [hello]");
        expect(r.out).toContain("interrupted");
        expect(r.code).toBe(3);
        expect(r.before).toBe(r.after);
      }, T);

      test("SIGTERM to tidegate run reaches the command; the caller's terminal modes are put back", async () => {
        const r = await drive(runArgv(["sh", "-c", 'trap "echo terminated; exit 4" TERM; echo waiting; while :; do sleep 0.1; done']), { steps: [{ when: "waiting", term: true }] });
        expect(r.out).toContain("terminated");
        expect(r.code).toBe(4);
        expect(r.before).toBe(r.after);
      }, T);

      test("the caller's terminal is raw during the run and has its modes back after a signal exit of the command", async () => {
        const r = await drive(runArgv(["sh", "-c", "echo waiting; read x; kill -TERM $$"]), { steps: [{ when: "waiting", stty: true }, { when: "", send: "go\r" }] });
        expect(r.code).toBe(128 + 15);
        expect(r.during).not.toBeNull();
        expect(r.during).not.toBe(r.before);
        expect(r.before).toBe(r.after);
      }, T);

      test("in the background of the caller's terminal (a job not in its foreground) it is not stopped: output and exit code pass, the modes stay", async () => {
        // a session whose controlling terminal is the pty, and tidegate run in a process group of its own, not the foreground one
        const bg = "import os, sys\npid = os.fork()\nif pid == 0:\n    os.setpgid(0, 0)\n    os.execvp(sys.argv[1], sys.argv[1:])\n_, status = os.waitpid(pid, os.WUNTRACED)\nsys.exit(99 if os.WIFSTOPPED(status) else os.waitstatus_to_exitcode(status))\n";
        const r = await drive(["setsid", "--ctty", "--wait", "python3", "-c", bg, ...runArgv(["sh", "-c", "echo background-output; exit 9"])]);
        expect(r.out).toContain("background-output");
        expect(r.code).toBe(9); // 99: stopped (SIGTTOU)
        expect(r.before).toBe(r.after);
      }, T);

      test("with stdin not a terminal, stdout and stderr get a terminal of its own, not a controlling one; the modes stay", async () => {
        const r = await drive(runArgv(["sh", "-c", "test -t 0 || echo stdin-not-a-terminal; tty; echo \"fd1 $(readlink /proc/$$/fd/1)\"; echo to-stderr >&2; (: </dev/tty) 2>/dev/null || echo no-controlling-terminal; exit 5"]), { stdin: "null" });
        expect(r.code).toBe(5);
        expect(r.out).toContain("stdin-not-a-terminal");
        expect(r.out).toContain("not a tty");
        expect(r.out).toContain("to-stderr");
        expect(r.out).toContain("no-controlling-terminal");
        const fd1 = /fd1 (\S+)/.exec(r.out)?.[1];
        expect(fd1).toMatch(/^\/dev\/pts\/\d+$/);
        expect(fd1).not.toBe(r.tty); // its own terminal, not the caller's
        expect(r.before).toBe(r.after);
      }, T);

      test("with stdin not a terminal, a process the command leaves holding its stdout neither reads what is typed nor writes to the caller's terminal afterwards", async () => {
        const file = join(shared, `leftover-out-${path.length}`);
        // the caller's terminal is open for reading and writing: stdout alone let a leftover read it
        const command = ["sh", "-c", `exec 3<&1; (setsid sh -c "head -n 1 <&3 > ${file}; sleep 0.3; echo late-leftover-write >&3" &); while [ ! -e ${file} ]; do sleep 0.05; done; echo started`];
        const r = await drive(runArgv(command), { stdin: "null", typeAfter: "typed-after-the-run\n" });
        expect(r.out).toContain("started");
        expect(r.code).toBe(0);
        expect(existsSync(file)).toBe(true);
        expect(readFileSync(file, "utf8")).toBe("");
        expect(r.out).not.toContain("late-leftover-write");
      }, T);
    });
  }
});
