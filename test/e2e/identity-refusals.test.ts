// The egress listener's identity refusals end to end (root; CI runs it): the built server and an
// agent joined to it under instance e2e-idr, real eBPF on the instance's cgroup tree, and real
// python3, curl and node started with `tidegate run`. One passthrough rule lets every identity in
// play reach a TCP server at 127.0.0.76, so the only reason a connection is refused is who made it:
// - workload `pinned`'s entry requires python3's executable (`unix:path`): python3 passes;
// - the same process, once it has exec'd curl, attests to another entry's identity and is refused
//   (`identity_mismatch`), as is a shell of the workload that execs node (no identity at all);
// - workload `orphan` is in the config's `workloads:` with an ID but has no registration entry, and
//   workload `split`'s two entries name two identities: both refused (`no_identity`).
// A refused connection never reaches the server: no connection, no byte.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tidegate } from "../helpers/binary.ts";
import { waitFor, type Running } from "../helpers/processes.ts";
import { readAudit, srcOf, type AuditLine } from "../helpers/audit-files.ts";
import { cleanupStack, cliOk, parseLog, startJoinedAgent, startServer } from "../helpers/e2e-kit.ts";
import { probeHost } from "../../src/runtime/host.ts";

const isRoot = process.getuid?.() === 0;
if (!isRoot && process.env.CI) throw new Error("identity-refusals.test.ts: CI must run as root");
const can = isRoot && probeHost().cgroup2 !== null;
if (!can) console.warn("identity-refusals.test.ts: skipped (needs root and cgroup v2: cgroups, eBPF)");

const T = 60_000;
const INSTANCE = "e2e-idr";
const SERVER_ADDR = "127.0.0.76";
const NODE = "idr-node";
const TD = "spiffe://example.org";
const ID = { pinned: `${TD}/pinned`, curlAny: `${TD}/curl-any`, orphan: `${TD}/orphan`, splitA: `${TD}/split-a`, splitB: `${TD}/split-b` } as const;
/** Workloads run as nobody: a PATH of system folders only (root's may name folders nobody cannot enter). */
const WORKLOAD_ENV = { PATH: "/usr/local/bin:/usr/bin:/bin" };
const PYTHON = realpathSync("/usr/bin/python3");
const CURL = realpathSync("/usr/bin/curl");

/**
 * argv: HOST PORT PATH [EXEC...]. Prints its pid, sends `GET PATH` and prints what came back
 * (`reply BODY`, `closed` when the connection ended with no answer, or the errno's name); then,
 * with EXEC, replaces itself with that program (same pid).
 */
const PY_CLIENT = `
import errno, os, socket, sys
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
print('pid', os.getpid(), flush=True)
try:
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(('GET %s HTTP/1.1\\r\\nHost: %s\\r\\nConnection: close\\r\\n\\r\\n' % (path, host)).encode())
    data = b''
    while True:
        chunk = s.recv(4096)
        if not chunk: break
        data += chunk
    s.close()
    print('reply ' + data.split(b'\\r\\n\\r\\n', 1)[1].decode() if data else 'closed', flush=True)
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e)), flush=True)
if len(sys.argv) > 4:
    os.execv(sys.argv[4], sys.argv[4:])
`;

/** The same in node, for the shell that execs it: `node -e SCRIPT HOST PORT PATH`. */
const NODE_CLIENT = `
const [host, port, path] = process.argv.slice(1);
const s = require("net").connect(Number(port), host, () => s.write("GET " + path + " HTTP/1.1\\r\\nHost: " + host + "\\r\\nConnection: close\\r\\n\\r\\n"));
let got = "";
let error = null;
s.on("data", (d) => (got += d));
s.on("error", (e) => (error = e.code));
s.on("close", () => console.log(got !== "" ? "reply " + got.split("\\r\\n\\r\\n")[1] : (error ?? "closed")));
`;

const cleanups = cleanupStack("identity-refusals");
const root = can ? mkdtempSync(join(tmpdir(), "tidegate-e2e-idr-")) : "/nonexistent/tidegate-e2e-idr";
cleanups.push(() => rmSync(root, { recursive: true, force: true }));
const dirs = { serverState: join(root, "server-state"), serverRun: join(root, "server-run"), serverAudit: join(root, "server-audit"), node: join(root, "node-state"), nodeRun: join(root, "node-run"), audit: join(root, "node-audit") };
const serverFlags = ["--instance", INSTANCE, "--state-dir", dirs.serverState, "--run-dir", dirs.serverRun, "--server-config", join(root, "server.yaml"), "--audit-dir", dirs.serverAudit];
const nodeFlags = ["--instance", INSTANCE, "--state-dir", dirs.node, "--run-dir", dirs.nodeRun, "--config", join(root, "node.yaml"), "--audit-dir", dirs.audit];

/** The server every rule allows: connections it accepted and the request lines it was sent. */
const reached = { conns: 0, requests: [] as string[] };
let serverPort = 0;
let agent: Running | undefined;

const closes = (): AuditLine[] => readAudit(dirs.audit).filter((l) => l.type === "conn_close");

/** `tidegate run --workload W --user nobody -- ARGS`, and the pid it printed first. */
async function run(workload: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string; pid: number }> {
  const r = await tidegate(["run", ...nodeFlags, "--workload", workload, "--user", "nobody", "--", ...args], { env: WORKLOAD_ENV });
  const pid = /^pid[= ](\d+)$/m.exec(r.stdout)?.[1];
  if (pid === undefined) throw new Error(`tidegate run --workload ${workload} printed no pid (exit ${r.code}): ${r.stdout} ${r.stderr}`);
  return { ...r, pid: Number(pid) };
}

/**
 * What a client printed after its pid when the listener refused it: the connection ended with no
 * answer (reset if the client's bytes were unread; its write failing if the reset came first).
 */
const noReply = (stdout: string, pidLine: string) => expect(stdout).toMatch(new RegExp(`^${pidLine}\\n(closed|ECONNRESET|EPIPE)\\n$`));

/** The listener's conn_close events for the run's pid, once `count` are written (what the run printed, if not). */
async function closesOf(r: { pid: number; code: number; stdout: string; stderr: string }, count = 1): Promise<AuditLine[]> {
  try {
    return await waitFor(`${count} conn_close for pid ${r.pid}`, () => {
      const lines = closes().filter((l) => srcOf(l).pid === r.pid);
      return lines.length >= count ? lines : undefined;
    }, 15_000, 100, agent);
  } catch (e) {
    throw new Error(`${String(e)}; the run exited ${r.code}, stdout ${JSON.stringify(r.stdout)}, stderr ${JSON.stringify(r.stderr)}`);
  }
}

describe.skipIf(!can)("the egress listener refuses a caller by its identity", () => {
  beforeAll(async () => {
    try {
      await setUp();
    } catch (e) {
      await cleanups.run();
      throw e;
    }
  }, T);

  afterAll(() => cleanups.run(), T);

  async function setUp(): Promise<void> {
    for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
    await tidegate(["agent", "--uninstall", ...nodeFlags]); // leftovers of an earlier run
    cleanups.push(() => tidegate(["agent", "--uninstall", ...nodeFlags]));

    const listener = Bun.listen<{ got: string }>({
      hostname: SERVER_ADDR,
      port: 0,
      socket: {
        open(s) {
          reached.conns++;
          s.data = { got: "" };
        },
        data(s, d) {
          s.data.got += d.toString("latin1");
          if (!s.data.got.includes("\r\n\r\n")) return;
          reached.requests.push(s.data.got.split("\r\n")[0]!);
          s.write("HTTP/1.1 200 OK\r\ncontent-length: 7\r\nconnection: close\r\n\r\nreached");
          s.end();
        },
      },
    });
    serverPort = listener.port;
    cleanups.push(() => listener.stop(true));

    const info = await startServer(root, serverFlags);
    cleanups.push(() => info.server.stop());
    const entryIds: string[] = [];
    const entry = async (id: string, ...selectors: string[]) => {
      const out = await cliOk(["entry", "create", "--spiffe-id", id, "--node", NODE, ...selectors.flatMap((s) => ["--selector", s]), "--json", ...serverFlags]);
      entryIds.push((JSON.parse(out) as { id: string }).id);
    };
    await entry(ID.pinned, "tidegate:workload:pinned", `unix:path:${PYTHON}`);
    await entry(ID.curlAny, `unix:path:${CURL}`);
    await entry(ID.splitA, "tidegate:workload:split");
    await entry(ID.splitB, "tidegate:workload:split");
    // no entry for orphan

    writeFileSync(
      join(root, "node.yaml"),
      `trust_domain: example.org
workloads:
  - { name: pinned, id: ${ID.pinned}, user: nobody }
  - { name: orphan, id: ${ID.orphan}, user: nobody }
  - { name: split, id: ${ID.splitA}, user: nobody }
egress:
  - name: reach
    from: [${Object.values(ID).join(", ")}]
    to: { cidr: ${SERVER_ADDR}/32, port: ${serverPort} }
    action: passthrough
`,
    );
    const held = () => entryIds.every((id) => existsSync(join(dirs.node, "agent", "svids", `${id}.key`)));
    agent = await startJoinedAgent({ dir: root, serverFlags, server: info.public, key: "node", node: NODE, flags: nodeFlags, what: "the agent to capture, holding the four SVIDs", ready: held });
    cleanups.push(() => agent?.stop());
  }

  test("the pinned binary (python3) reaches the server through the listener as its workload's identity", async () => {
    const before = { ...reached, requests: [...reached.requests] };
    const r = await run("pinned", [PYTHON, "-c", PY_CLIENT, SERVER_ADDR, String(serverPort), "/pinned"]);
    const [line] = await closesOf(r);
    expect(line).toMatchObject({ side: "egress", decision: "allow", action: "passthrough", rule: "reach", outcome: "forwarded", src: { workload: "pinned", spiffe_id: ID.pinned, uid: 65534 }, dst: { addr: SERVER_ADDR, port: serverPort } });
    expect(r.stdout).toBe(`pid ${r.pid}\nreply reached\n`);
    expect(r.code).toBe(0);
    expect(reached.conns).toBe(before.conns + 1);
    expect(reached.requests.slice(before.requests.length)).toEqual(["GET /pinned HTTP/1.1"]);
  }, T);

  test("the same process, once it has exec'd curl, attests to curl's identity and is refused (identity_mismatch); the server gets nothing", async () => {
    const before = { ...reached, requests: [...reached.requests] };
    const r = await run("pinned", [PYTHON, "-c", PY_CLIENT, SERVER_ADDR, String(serverPort), "/before-exec", CURL, "-sS", "--max-time", "5", `http://${SERVER_ADDR}:${serverPort}/after-exec`]);
    const lines = await closesOf(r, 2);
    const first = lines.find((l) => l.outcome === "forwarded");
    const second = lines.find((l) => l.outcome !== "forwarded");
    expect(first).toMatchObject({ decision: "allow", outcome: "forwarded", src: { workload: "pinned", spiffe_id: ID.pinned } });
    expect(second).toMatchObject({
      side: "egress",
      decision: "deny",
      outcome: "refused",
      reason: "identity_mismatch",
      detail: `the process attests to ${ID.curlAny}, its cgroup's workload is ${ID.pinned}`,
      rule: null,
      src: { pid: r.pid, workload: "pinned", spiffe_id: null, uid: 65534 },
      dst: { addr: SERVER_ADDR, port: serverPort },
    });
    expect(second!.bytes_up ?? 0).toBe(0);
    expect(second!.bytes_down ?? 0).toBe(0);
    // python3 was served; curl, the same pid after exec, got no answer
    expect(r.stdout).toBe(`pid ${r.pid}\nreply reached\n`);
    expect(r.code).not.toBe(0);
    expect(reached.conns).toBe(before.conns + 1);
    expect(reached.requests.slice(before.requests.length)).toEqual(["GET /before-exec HTTP/1.1"]);
  }, T);

  test("a shell of the pinned workload that execs node attests to no identity and is refused (identity_mismatch)", async () => {
    const before = { ...reached, requests: [...reached.requests] };
    const r = await run("pinned", ["sh", "-c", `echo pid=$$; exec node -e "$0" ${SERVER_ADDR} ${serverPort} /node`, NODE_CLIENT]);
    const [line] = await closesOf(r);
    expect(line).toMatchObject({
      decision: "deny",
      outcome: "refused",
      reason: "identity_mismatch",
      detail: `the process attests to no identity, its cgroup's workload is ${ID.pinned}`,
      src: { pid: r.pid, workload: "pinned", spiffe_id: null },
    });
    noReply(r.stdout, `pid=${r.pid}`);
    expect(reached.conns).toBe(before.conns);
    expect(reached.requests.slice(before.requests.length)).toEqual([]);
  }, T);

  test("a workload with an ID in the config but no registration entry is refused (no_identity), though a rule names that ID", async () => {
    const before = { ...reached, requests: [...reached.requests] };
    const r = await run("orphan", [PYTHON, "-c", PY_CLIENT, SERVER_ADDR, String(serverPort), "/orphan"]);
    const [line] = await closesOf(r);
    expect(line).toMatchObject({
      side: "egress",
      decision: "deny",
      outcome: "refused",
      reason: "no_identity",
      detail: "no registration entry has the selector tidegate:workload:orphan",
      rule: null,
      src: { pid: r.pid, workload: "orphan", spiffe_id: null, uid: 65534 },
      dst: { addr: SERVER_ADDR, port: serverPort },
    });
    // tidegate run said so before the command ran
    expect(r.stderr).toContain("tidegate run: warning: workload orphan has no identity (no registration entry has the selector tidegate:workload:orphan): its connections are refused until the agent holds one\n");
    const warned = await waitFor("workload_without_identity for orphan", () => parseLog(agent).find((l) => l.event === "workload_without_identity" && l.workload === "orphan"));
    expect(warned).toMatchObject({ reason: "no registration entry has the selector tidegate:workload:orphan" });
    // the cgroup has no kernel share: TCP goes to the listener, which closes it
    noReply(r.stdout, `pid ${r.pid}`);
    expect(reached.conns).toBe(before.conns);
    expect(reached.requests.slice(before.requests.length)).toEqual([]);
  }, T);

  test("a workload whose entries name two identities is refused (no_identity)", async () => {
    const before = { ...reached, requests: [...reached.requests] };
    const r = await run("split", [PYTHON, "-c", PY_CLIENT, SERVER_ADDR, String(serverPort), "/split"]);
    const [line] = await closesOf(r);
    expect(line).toMatchObject({ decision: "deny", outcome: "refused", reason: "no_identity", src: { pid: r.pid, workload: "split", spiffe_id: null } });
    expect(line!.detail).toMatch(/^entries with the selector tidegate:workload:split name 2 identities: /);
    expect(String(line!.detail).split(": ")[1]!.split(", ").sort()).toEqual([ID.splitA, ID.splitB]);
    noReply(r.stdout, `pid ${r.pid}`);
    expect(reached.conns).toBe(before.conns);
    expect(reached.requests.slice(before.requests.length)).toEqual([]);
  }, T);
});
