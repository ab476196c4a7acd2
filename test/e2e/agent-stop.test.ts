// Issue 13, stopping the agent under load, end to end (root; CI runs it): the built server and
// agent under instance e2e-stop, workloads started with `tidegate run` streaming through a
// passthrough rule to this process's upstream on 127.0.0.71.
// - SIGTERM drains: a long transfer in flight completes whole; a new connection from the
//   workload's cgroup meanwhile is refused (the capture stays pinned: nothing reaches the
//   upstream directly); a connection still open at agent.drain_timeout is reset and recorded
//   (`drain_timeout`); agent_stop counts what finished and what was cut; the agent exits 0.
// - kill -9 fails closed: a connection in flight is reset, and a new connect from the workload's
//   cgroup during the outage is refused, not sent direct.
// Addresses: 127.0.0.71 only.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tidegate } from "../helpers/binary.ts";
import { startTidegate, waitFor, type Running } from "../helpers/processes.ts";
import { readAudit, srcOf } from "../helpers/audit-files.ts";
import { cliOk, parseLog } from "../helpers/e2e-kit.ts";
import { callUnix } from "../../src/runtime/unix-http.ts";
import { probeHost } from "../../src/runtime/host.ts";

const T = 60_000;
const mount = probeHost().cgroup2;
const can = process.getuid?.() === 0 && mount !== null;
if (!can && process.env.CI) throw new Error("agent-stop.test.ts: CI must run as root with cgroup v2");
if (!can) console.warn("e2e agent-stop: skipped (needs root and cgroup v2)");
const INSTANCE = "e2e-stop";
const UPSTREAM = "127.0.0.71";
const DRAIN_MS = 4000;
const root = mkdtempSync(join(tmpdir(), "tidegate-e2e-stop-"));
const dirs = { state: join(root, "state"), run: join(root, "run"), etc: join(root, "etc"), node: join(root, "node"), noderun: join(root, "node-run"), audit: join(root, "audit") };
const serverFlags = ["--instance", INSTANCE, "--state-dir", dirs.state, "--run-dir", dirs.run, "--server-config", join(dirs.etc, "server.yaml"), "--audit-dir", join(root, "server-audit")];
const nodeFlags = ["--instance", INSTANCE, "--state-dir", dirs.node, "--run-dir", dirs.noderun, "--config", join(dirs.etc, "tidegate.yaml"), "--audit-dir", dirs.audit];
const cgroupProcs = join(mount ?? "/nonexistent", `tidegate-${INSTANCE}`, "workloads", "w1", "cgroup.procs");
const WORKLOAD_ENV = { PATH: "/usr/local/bin:/usr/bin:/bin" };
let server: Running | undefined;
let agent: Running | undefined;
const workloads: Running[] = [];

/**
 * The upstream. A connection's first line says what it gets:
 * - `stream N`: N chunks of 64 KiB, 50 ms apart, then the end;
 * - `hold`: a line every 200 ms, forever; it reads nothing after the first line, so what the
 *   workload keeps sending piles up in the agent's socket.
 */
const upstream = { accepted: 0 };
let upstreamPort = 0;
let listener: { stop(force?: boolean): void } | null = null;
const CHUNK = 64 * 1024;

interface UpConn {
  line: string;
  timer: ReturnType<typeof setInterval> | null;
  /** Bytes the socket did not take yet (written on drain). */
  pending: Uint8Array | null;
  /** Chunks still to queue; the end follows the last. */
  left: number;
}

function flush(s: Socket<UpConn>): void {
  const p = s.data.pending;
  if (p === null) return;
  const n = Math.max(0, s.write(p));
  s.data.pending = n < p.length ? p.subarray(n) : null;
  if (s.data.pending === null && s.data.left === 0) s.end();
}

function startUpstream(): void {
  const chunk = new Uint8Array(CHUNK).fill(0x61);
  const l = Bun.listen<UpConn>({
    hostname: UPSTREAM,
    port: 0,
    socket: {
      open(s) {
        upstream.accepted++;
        s.data = { line: "", timer: null, pending: null, left: 0 };
      },
      data(s, d) {
        if (s.data.timer !== null) return;
        s.data.line += new TextDecoder().decode(d);
        const nl = s.data.line.indexOf("\n");
        if (nl < 0) return;
        const [what, n] = s.data.line.slice(0, nl).split(" ");
        if (what === "hold") {
          s.pause();
          s.data.timer = setInterval(() => void s.write("still here\n"), 200);
          return;
        }
        s.data.left = Number(n);
        s.data.timer = setInterval(() => {
          if (s.data.pending !== null || s.data.left === 0) return;
          s.data.left--;
          if (s.data.left === 0) clearInterval(s.data.timer!);
          s.data.pending = chunk;
          flush(s);
        }, 50);
      },
      drain: (s) => flush(s),
      close(s) {
        if (s.data?.timer) clearInterval(s.data.timer);
      },
      error() {},
    },
  });
  listener = l;
  upstreamPort = l.port;
}

/**
 * The workload's client: connects, sends `what`, prints `flowing` at the first bytes back, and at
 * the end `eof BYTES` or `error CODE BYTES`. With `push`, a thread keeps sending meanwhile; the
 * kernel reports a reset to one call only, so the error the sending thread saw counts too.
 */
const CLIENT = `
import socket, sys, errno, threading
host, port, what, push = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == 'push'
s = socket.create_connection((host, port), timeout=30)
s.sendall((what + '\\n').encode())
pushed = []
def pusher():
    blob = b'x' * 65536
    try:
        while True: s.sendall(blob)
    except OSError as e:
        pushed.append(errno.errorcode.get(e.errno, str(e)))
t = threading.Thread(target=pusher, daemon=True)
if push: t.start()
got = 0
try:
    while True:
        d = s.recv(65536)
        if not d:
            if push: t.join(5)
            print('error', pushed[0], got, flush=True) if pushed else print('eof', got, flush=True)
            break
        if got == 0: print('flowing', flush=True)
        got += len(d)
except OSError as e:
    print('error', errno.errorcode.get(e.errno, str(e)), got, flush=True)
`;

/** `python3 -c CLIENT` in workload w1, started with `tidegate run` as nobody. */
function client(what: string, push = false): Running {
  const r = startTidegate(["run", ...nodeFlags, "--workload", "w1", "--user", "nobody", "--", "python3", "-c", CLIENT, UPSTREAM, String(upstreamPort), what, push ? "push" : "read"], WORKLOAD_ENV);
  workloads.push(r);
  return r;
}

const PY_CONNECT = `
import socket, sys, errno
s = socket.socket(); s.settimeout(3)
try:
    s.connect((sys.argv[1], int(sys.argv[2]))); print('connected')
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e)))
`;

/** A connect from a process put straight into w1's cgroup (no agent needed to start it). */
async function connectFromW1(): Promise<string> {
  const p = Bun.spawn(["sh", "-c", `echo $$ > ${cgroupProcs} && exec python3 -c "$0" ${UPSTREAM} ${upstreamPort}`, PY_CONNECT], { stdout: "pipe", stderr: "pipe" });
  const out = await new Response(p.stdout).text();
  await p.exited;
  return out.trim();
}

const audit = () => readAudit(dirs.audit);

/** Bytes the agent's accepted egress sockets hold unread (ss's Recv-Q): what makes the kernel reset them when it dies. */
function unreadAtAgent(egressPort: number): number {
  const out = Bun.spawnSync(["ss", "-Htn", "state", "established", `( sport = :${egressPort} )`]).stdout.toString();
  return out.split("\n").filter(Boolean).reduce((n, l) => n + Number(l.trim().split(/\s+/)[0] ?? 0), 0);
}

async function agentStatus(): Promise<{ capture?: { egress_port?: number }; entries?: unknown[] } | undefined> {
  return (await callUnix(join(dirs.noderun, "agent.sock"), "the agent", "GET", "/v1/status").catch(() => undefined))?.body as never;
}

async function startAgent(args: string[]): Promise<Running> {
  const a = startTidegate(["agent", ...nodeFlags, "--sync-interval", "1s", ...args]);
  await waitFor("the agent to capture, with an identity for w1", async () => {
    const s = await agentStatus();
    return s?.capture?.egress_port && (s.entries?.length ?? 0) > 0 ? s : undefined;
  }, 30_000, 100, a);
  return a;
}

describe.skipIf(!can)("stopping the agent under load", () => {
  beforeAll(async () => {
    for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
    await tidegate(["agent", "--uninstall", ...nodeFlags]);
    startUpstream();
    writeFileSync(join(dirs.etc, "server.yaml"), "svid:\n  default_ttl: 1h\n");
    writeFileSync(
      join(dirs.etc, "tidegate.yaml"),
      `trust_domain: example.org
agent: { drain_timeout: ${DRAIN_MS}ms }
workloads:
  - { name: w1, id: spiffe://example.org/w1 }
egress:
  - name: upstream
    from: spiffe://example.org/w1
    to: { cidr: ${UPSTREAM}/32, port: any }
    action: passthrough
`,
    );
    await cliOk(["server", "init", "--trust-domain", "example.org", ...serverFlags]);
    server = startTidegate(["server", ...serverFlags]);
    const info = await waitFor("server.json", () => (existsSync(join(dirs.run, "server.json")) ? JSON.parse(readFileSync(join(dirs.run, "server.json"), "utf8")) : undefined));
    const tokenOut = await cliOk(["token", "create", "--node", "node1", ...serverFlags]);
    writeFileSync(join(root, "token"), /token:\s*(\S+)/.exec(tokenOut)![1]!, { mode: 0o600 });
    const fingerprint = /fingerprint[^:]*:\s*([0-9a-fA-F:]+)/.exec(tokenOut)![1]!;
    await cliOk(["entry", "create", "--spiffe-id", "spiffe://example.org/w1", "--node", "node1", "--selector", "tidegate:workload:w1", ...serverFlags]);
    agent = await startAgent(["--server", `https://${info.public}`, "--join-token-file", join(root, "token"), "--server-fingerprint", fingerprint]);
  }, T);

  afterAll(async () => {
    for (const w of workloads) await w.stop("SIGKILL");
    await agent?.stop();
    await server?.stop();
    await tidegate(["agent", "--uninstall", ...nodeFlags]);
    listener?.stop(true);
    rmSync(root, { recursive: true, force: true });
  }, T);

  test("SIGHUP to tidegate server is logged and ignored: it keeps serving", async () => {
    server!.proc.kill("SIGHUP");
    await waitFor("the server's note", () => (server!.output().includes('"server_sighup_ignored"') ? true : undefined), 10_000, 20);
    const out = await cliOk(["token", "create", "--node", "node-after-hup", ...serverFlags]);
    expect(out).toMatch(/token:\s*\S+/);
  }, T);

  test("SIGTERM drains: a transfer in flight completes, a new connection is refused, one open at the deadline is cut and recorded", async () => {
    const CHUNKS = 40; // 2.5 MiB over 2 s
    const long = client(`stream ${CHUNKS}`);
    const held = client("hold");
    await waitFor("both transfers flowing", () => (long.output().includes("flowing") && held.output().includes("flowing") ? true : undefined), 15_000, 50);
    const accepted = upstream.accepted;
    const a = agent!;
    const stopped = performance.now();
    a.proc.kill("SIGTERM");
    await waitFor("the agent draining", () => parseLog(a).find((l) => l.event === "agent_draining"), 5000, 20);

    // Meanwhile a new connection from the workload's cgroup is refused, and nothing reaches the upstream.
    expect(await connectFromW1()).toBe("ECONNREFUSED");
    expect(upstream.accepted).toBe(accepted);

    // The long transfer completes whole, before the deadline.
    expect(await long.ended()).toBe(0);
    expect(long.output()).toContain(`eof ${CHUNKS * CHUNK}`);
    expect(performance.now() - stopped).toBeLessThan(DRAIN_MS);

    // The held connection is cut at the deadline; the agent then exits 0.
    expect(await a.proc.exited).toBe(0);
    expect(performance.now() - stopped).toBeGreaterThanOrEqual(DRAIN_MS - 100);
    await held.ended(); // the workload prints its reset after the agent cut it: it can outlive tidegate run
    expect(held.output()).toMatch(/error ECONNRESET \d+/);
    expect(parseLog(a).find((l) => l.event === "agent_draining")).toMatchObject({ in_flight: 2, drain_timeout_ms: DRAIN_MS });

    const lines = audit();
    const closes = lines.filter((l) => l.type === "conn_close" && l.rule === "upstream");
    const whole = closes.find((l) => l.outcome === "forwarded" && l.bytes_down === CHUNKS * CHUNK);
    expect(whole).toBeDefined();
    const cut = closes.filter((l) => l.reason === "drain_timeout");
    expect(cut).toHaveLength(1);
    expect(cut[0]).toMatchObject({ outcome: "terminated", reason: "drain_timeout", src: { workload: "w1", spiffe_id: "spiffe://example.org/w1" }, upstream: `${UPSTREAM}:${upstreamPort}` });
    expect(srcOf(cut[0]!).pid).not.toBe(srcOf(whole!).pid);
    expect(lines.filter((l) => l.type === "conn_open").length).toBe(lines.filter((l) => l.type === "conn_close").length); // every connection the listener took is recorded closed
    const stop = lines.filter((l) => l.type === "agent_stop").at(-1);
    expect(stop).toMatchObject({ reason: "stopped", in_flight: 2, finished: 1, cut: 1, drain_timeout_ms: DRAIN_MS });
    expect(stop!.drain_ms as number).toBeGreaterThanOrEqual(DRAIN_MS - 100);
    const v = await tidegate(["audit", "verify", ...nodeFlags]);
    expect([v.code, v.stderr]).toEqual([0, ""]);

    agent = await startAgent([]); // it rejoins from its state: for the next test
  }, T);

  test("kill -9 fails closed: a connection in flight is reset; a new connect meanwhile is refused, not sent direct", async () => {
    const egressPort = (await agentStatus())!.capture!.egress_port!;
    const busy = client("hold", true);
    await waitFor("the transfer flowing", () => (busy.output().includes("flowing") ? true : undefined), 15_000, 50);
    // The upstream reads nothing: the agent stops reading the workload (backpressure), so its socket holds unread bytes.
    // (A few KiB may sit there for a moment while it reads; paused, it holds megabytes.)
    await waitFor("the agent holding bytes it does not read", () => (unreadAtAgent(egressPort) >= 256 * 1024 ? true : undefined), 10_000, 50);
    const accepted = upstream.accepted;
    agent!.proc.kill("SIGKILL");
    await agent!.proc.exited;
    await busy.ended();
    expect(busy.output()).toMatch(/error ECONNRESET \d+/);
    expect(await connectFromW1()).toBe("ECONNREFUSED");
    expect(upstream.accepted).toBe(accepted);
  }, T);
});
