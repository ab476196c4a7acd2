// Enforcement without a kernel (a recording fake capture): workload identities from entries, what
// the maps get on reload and on entry changes, nothing touched before the first sync, a rejected
// reload keeping the maps, and who a redirected caller is. Who a `--mcp-stdio` caller is
// (identifyPid): over a fake /proc, and, as root, with real processes: a caller's pid that comes
// to belong to another uid (the caller dropping to it, or the pid reused with clone3's set_tid by
// a process of that uid) is refused as `caller_changed`, though that uid has an identity.
import { memoryAudit } from "../audit/sink/memory-audit.ts";
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Enforcement, type KernelCapture } from "./enforcement.ts";
import { PolicyHolder } from "../policy/holder.ts";
import { parseIp } from "../policy/address.ts";
import { decideConnection, identifyCaller, type EgressDeps } from "../proxy/egress-listener.ts";
import { createLogger } from "../runtime/log.ts";
import { AttestError } from "../attest/errors.ts";
import { Attestation } from "../attest/attestation.ts";
import { FakeProcFs } from "../attest/fake-proc-fs.ts";
import { UnixAttestor } from "../attest/unix.ts";
import { createAttestation } from "../attest/system.ts";
import * as u from "../runtime/unix-fds.ts";
import { CLONE3_PY_DEF, waitFor } from "../../test/helpers/processes.ts";
import type { LpmEntry } from "../bpf/lpm-entries.ts";
import type { Entry } from "./wire.ts";
import { DEFAULT_MAX_OPEN } from "../policy/model.ts";

const isRoot = process.getuid?.() === 0;
if (!isRoot && process.env.CI) throw new Error("enforcement.test.ts: CI must run as root");
if (!isRoot) console.warn("enforcement.test.ts: the real-process caller_changed tests are skipped (need root: callers of other uids)");

const dir = mkdtempSync(join(tmpdir(), "tidegate-enforcement-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const config = join(dir, "tidegate.yaml");
const POLICY = `trust_domain: example.org
egress:
  - { name: no-meta, from: spiffe://example.org/w1, to: { cidr: 10.9.0.0/16, port: any }, action: deny }
  - { name: web, from: spiffe://example.org/w1, to: { cidr: 10.1.0.0/16, port: 80 }, action: passthrough }
`;

const entry = (id: string, spiffe: string, ...selectors: string[]): Entry =>
  ({ id, spiffe_id: spiffe, parent_id: "spiffe://example.org/tidegate/agent/n1", selectors, ttl_seconds: 3600, dns_names: [], revision: 1 }) as Entry;

function setup(entries: Entry[] | null, cgroups = new Map([["w1", 101n]])) {
  const synced = new Map<bigint, readonly LpmEntry[]>();
  const removed: bigint[] = [];
  const maxOpen: number[] = [];
  const lines: string[] = [];
  const audit = memoryAudit();
  const capture: KernelCapture = {
    syncCgroup: (id, e) => void synced.set(id, e),
    removeCgroup: (id) => void removed.push(id),
    setMaxOpen: (n) => void maxOpen.push(n),
    lookupPeer: () => null,
  };
  const state = { entries, selectors: ["tidegate:workload:w1"] as string[], attestError: null as Error | null, attested: [] as [number, number | undefined][] };
  const holder = new PolicyHolder();
  const enforcement = new Enforcement({
    configPath: config,
    holder,
    capture,
    cgroups: { workloads: () => cgroups },
    entries: () => state.entries,
    attest: async (pid, startTime) => {
      state.attested.push([pid, startTime]);
      if (state.attestError !== null) throw state.attestError;
      return state.selectors;
    },
    logger: createLogger({ write: (l) => void lines.push(l) }),
    audit,
  });
  return { enforcement, holder, synced, removed, maxOpen, lines, state, cgroups };
}

const rulesOf = (entries: readonly LpmEntry[] | undefined) => (entries ?? []).map((e) => `${e.cidr.text}:${e.rules.map((r) => `${r.action}/${r.ruleId}`).join(",")}`);

describe("enforcement", () => {
  test("a workload's identity is the one entry with its tidegate:workload selector", () => {
    const { enforcement, state } = setup([entry("e1", "spiffe://example.org/w1", "tidegate:workload:w1", "unix:uid:65534")]);
    expect(enforcement.identityOf("w1").id?.toString()).toBe("spiffe://example.org/w1");
    expect(enforcement.identityOf("w2")).toEqual({ id: null, why: "no registration entry has the selector tidegate:workload:w2" });
    state.entries = [entry("e1", "spiffe://example.org/c", "tidegate:workload:client"), entry("e2", "spiffe://example.org/s", "tidegate:workload:server")];
    expect(enforcement.identityOf("clent")).toEqual({ id: null, why: "no registration entry has the selector tidegate:workload:clent; did you mean client?" });
  });

  test("stillIdentifies follows the entries: the same answer while they stay, another once a sync changes them", () => {
    const { enforcement, state } = setup([entry("e1", "spiffe://example.org/w1", "tidegate:workload:w1")]);
    expect([enforcement.stillIdentifies("w1", "spiffe://example.org/w1"), enforcement.stillIdentifies("w1", "spiffe://example.org/other"), enforcement.stillIdentifies("w2", "spiffe://example.org/w1")]).toEqual([true, false, false]);
    state.entries = [entry("e2", "spiffe://example.org/w1-new", "tidegate:workload:w1")];
    expect(enforcement.stillIdentifies("w1", "spiffe://example.org/w1")).toBe(false);
    expect(enforcement.stillIdentifies("w1", "spiffe://example.org/w1-new")).toBe(true);
    state.entries = [];
    expect(enforcement.stillIdentifies("w1", "spiffe://example.org/w1-new")).toBe(false);
    state.entries = [entry("e1", "spiffe://example.org/a", "tidegate:workload:w1"), entry("e2", "spiffe://example.org/b", "tidegate:workload:w1")];
    expect(enforcement.identityOf("w1").id).toBeNull();
    state.entries = null;
    expect(enforcement.identityOf("w1").id).toBeNull();
  });

  test("a good load writes each workload's share; a rejected reload keeps maps and policy", () => {
    writeFileSync(config, POLICY);
    const t = setup([entry("e1", "spiffe://example.org/w1", "tidegate:workload:w1")]);
    expect(t.enforcement.reload()).toBe(true);
    expect(rulesOf(t.synced.get(101n))).toEqual(["0.0.0.0/0:", "10.9.0.0/16:1/0", "::/0:"]);
    writeFileSync(config, POLICY.replace("action: deny", "action: dney"));
    t.synced.clear();
    expect(t.enforcement.reload()).toBe(false);
    expect(t.synced.size).toBe(0);
    expect(t.holder.policy?.egress[0]?.action).toBe("deny");
    expect(t.lines.some((l) => l.includes('"policy_rejected"') && l.includes("egress[0].action"))).toBe(true);
    // remembered for status until a good load
    expect(t.enforcement.rejected?.error).toMatch(/egress\[0\]\.action/);
    expect(Date.parse(t.enforcement.rejected!.at)).toBeGreaterThan(Date.now() - 60_000);
    writeFileSync(config, POLICY);
    expect(t.enforcement.reload()).toBe(true);
    expect(t.enforcement.rejected).toBeNull();
  });

  // `tidegate agent` refuses a config over 4 MiB at start (cli/files.ts); a reload read any size.
  test("a reload reads at most 4 MiB, as the start does: a larger file is rejected and the policy kept", () => {
    writeFileSync(config, POLICY);
    const t = setup([entry("e1", "spiffe://example.org/w1", "tidegate:workload:w1")]);
    expect(t.enforcement.reload()).toBe(true);
    writeFileSync(config, `${POLICY.replace("action: deny", "action: passthrough")}# ${"x".repeat(4 * 1024 * 1024)}\n`);
    expect(t.enforcement.reload()).toBe(false);
    expect(t.holder.policy?.egress[0]?.action).toBe("deny");
    expect(t.enforcement.rejected?.error).toContain("input_too_large");
    writeFileSync(config, POLICY);
  });

  test("the kernel's bound on a workload's open connections follows the policy in force, the default without one, even before the first sync", () => {
    writeFileSync(config, `${POLICY}agent: { max_connections_per_workload: 7 }\n`);
    const t = setup(null);
    t.enforcement.resync();
    expect(t.maxOpen).toEqual([DEFAULT_MAX_OPEN]);
    expect(t.enforcement.reload()).toBe(true);
    expect(t.maxOpen).toEqual([DEFAULT_MAX_OPEN, 7]);
    expect(t.synced.size).toBe(0); // no entries yet: no shares written
    writeFileSync(config, POLICY);
    expect(t.enforcement.reload()).toBe(true);
    expect(t.maxOpen).toEqual([DEFAULT_MAX_OPEN, 7, DEFAULT_MAX_OPEN]);
  });

  test("before the first sync nothing is written; a workload without identity gets only the /0 entries", () => {
    writeFileSync(config, POLICY);
    const t = setup(null);
    t.enforcement.reload();
    expect(t.synced.size).toBe(0);
    t.state.entries = [];
    t.enforcement.resync();
    expect(rulesOf(t.synced.get(101n))).toEqual(["0.0.0.0/0:", "::/0:"]);
    expect(t.lines.some((l) => l.includes('"workload_without_identity"'))).toBe(true);
  });

  test("an unchanged resync writes nothing; a cgroup that went away is removed from the maps", () => {
    writeFileSync(config, POLICY);
    const t = setup([entry("e1", "spiffe://example.org/w1", "tidegate:workload:w1")]);
    t.enforcement.reload();
    t.synced.clear();
    t.enforcement.resync();
    expect(t.synced.size).toBe(0);
    t.cgroups.delete("w1");
    t.enforcement.resync();
    expect(t.removed).toEqual([101n]);
  });

  test("the listener's verdicts: no record, unknown cgroup, identity mismatch, then the policy's decision", async () => {
    writeFileSync(config, POLICY);
    const t = setup([entry("e1", "spiffe://example.org/w1", "tidegate:workload:w1"), entry("e2", "spiffe://example.org/other", "unix:uid:7")]);
    t.enforcement.reload();
    const record = { address: parseIp("10.1.2.3"), port: 80, proto: "tcp" as const, pid: 42, tgid: 42, uid: 65534, gid: 65534, cgroupId: 101n };
    const deps = (r: typeof record | null): EgressDeps => ({
      lookupRecord: () => r,
      identify: (x) => t.enforcement.identify(x),
      engine: () => t.holder.engine,
      names: () => ({ resolve: async () => [] }),
      logger: createLogger({ write: () => {} }),
      audit: memoryAudit(),
    });
    const peer = { address: parseIp("127.0.0.1"), port: 40000 };
    const local = { address: parseIp("127.0.0.1"), port: 1001 };
    const who = async (r: typeof record | null) => identifyCaller(peer, local, deps(r));
    expect((await who(null)).fields).toMatchObject({ outcome: "refused", reason: "no_record" });
    expect((await who({ ...record, cgroupId: 999n })).fields).toMatchObject({ reason: "unknown_cgroup" });
    t.state.selectors = ["unix:uid:7"];
    expect((await who(record)).fields).toMatchObject({ reason: "identity_mismatch", workload: "w1" });
    t.state.selectors = ["tidegate:workload:w1"];
    t.state.attestError = new AttestError("attest_no_process", "attest: no process with pid 42");
    expect((await who(record)).fields).toMatchObject({ outcome: "refused", reason: "caller_exited" });
    t.state.attestError = new AttestError("attest_bad_proc", "attest: /proc/42/stat has an unexpected shape");
    expect((await who(record)).fields).toMatchObject({ outcome: "refused", reason: "attestation_failed" });
    t.state.attestError = null;
    const caller = await who(record);
    if ("refused" in caller) throw new Error("refused");
    expect(caller.fields).toMatchObject({ spiffe_id: "spiffe://example.org/w1", dst: "10.1.2.3", dst_port: 80, pid: 42, uid: 65534 });
    const ok = await decideConnection(caller, null, deps(record));
    expect(ok.fields).toMatchObject({ decision: "allow", rule: "web", action: "passthrough" });
    expect(ok.upstream?.address.text).toBe("10.1.2.3");
    const denied = await decideConnection({ ...caller, record: { ...record, port: 81 } }, null, deps(record));
    expect(denied.fields).toMatchObject({ decision: "deny", rule: null, outcome: "refused", reason: "no_rule" });
    expect(denied.upstream).toBeNull();
  });

  test("the caller is attested bound to the start time the kernel recorded with its pid", async () => {
    writeFileSync(config, POLICY);
    const t = setup([entry("e1", "spiffe://example.org/w1", "tidegate:workload:w1")]);
    t.enforcement.reload();
    const record = { address: parseIp("10.1.2.3"), port: 80, proto: "tcp" as const, pid: 43, tgid: 42, uid: 65534, gid: 65534, cgroupId: 101n };
    expect(await t.enforcement.identify({ ...record, startTime: 31337 })).toMatchObject({ ok: true });
    expect(await t.enforcement.identify(record)).toMatchObject({ ok: true });
    expect(t.state.attested).toEqual([[42, 31337], [42, undefined]]);
  });
});

/** An Enforcement whose `attest` is `attest` (the agent's: enforcer.ts), with nothing else of use. */
function callerIdentity(entries: Entry[] | (() => Entry[]), attest: (pid: number, startTime?: number) => Promise<readonly string[]>): Enforcement {
  return new Enforcement({
    configPath: config,
    holder: new PolicyHolder(),
    capture: { syncCgroup: () => {}, removeCgroup: () => {}, setMaxOpen: () => {}, lookupPeer: () => null },
    cgroups: { workloads: () => new Map() },
    entries: typeof entries === "function" ? entries : () => entries,
    attest,
    logger: createLogger({ write: () => {} }),
    audit: memoryAudit(),
  });
}

/** An MCP host's identity for uid 1000, and one for nobody: a process of nobody's has an identity of its own. */
const CALLER_ENTRIES = [entry("host", "spiffe://example.org/mcp-host", "unix:uid:1000"), entry("nobody", "spiffe://example.org/nobody", "unix:uid:65534")];
const changed = (pid: number, uid: number) => ({ ok: false as const, reason: "caller_changed", detail: `process ${pid} no longer runs as uid ${uid}` });

describe("a --mcp-stdio caller's identity held under the entries in force (holdsIdentity)", () => {
  test("held while an entry of that identity matches its selectors; not once the entries change so none does, or two do", () => {
    let entries: Entry[] = [...CALLER_ENTRIES];
    const e = callerIdentity(() => entries, async () => []);
    const held = e.holdsIdentity(["unix:uid:1000", "unix:gid:1000"], "spiffe://example.org/mcp-host");
    expect(held()).toBe(true);
    entries = [entry("other", "spiffe://example.org/other-host", "unix:uid:1000"), CALLER_ENTRIES[1]!]; // its uid now gives another identity
    expect(held()).toBe(false);
    entries = [...CALLER_ENTRIES];
    expect(held()).toBe(true);
    entries = [CALLER_ENTRIES[1]!]; // its entry deleted
    expect(held()).toBe(false);
    entries = [...CALLER_ENTRIES, entry("also", "spiffe://example.org/also", "unix:gid:1000")]; // ambiguous: fail closed
    expect(held()).toBe(false);
  });
});

describe("a --mcp-stdio caller's identity over a fake /proc (identifyPid)", () => {
  test("its pid now a process of another uid (the pid reused): caller_changed, though that uid has an identity", async () => {
    const fs = new FakeProcFs().addProcess({ pid: 4242, startTime: 100, uids: [1000, 1000, 1000, 1000] });
    const attestation = new Attestation(fs, [new UnixAttestor(fs)]);
    const e = callerIdentity(CALLER_ENTRIES, async (pid) => (await attestation.attest(pid)).selectors);
    expect(await e.identifyPid(4242, 1000)).toMatchObject({ ok: true, id: "spiffe://example.org/mcp-host" });
    fs.removeProcess(4242);
    fs.addProcess({ pid: 4242, startTime: 900, uids: [65534, 65534, 65534, 65534], gids: [65534, 65534, 65534, 65534] });
    expect(await e.identifyPid(4242, 1000)).toEqual(changed(4242, 1000));
    // the process at the pid does have an identity: only the uid the kernel gave with the pid refuses it
    expect(await e.identifyPid(4242, 65534)).toMatchObject({ ok: true, id: "spiffe://example.org/nobody" });
  });

  test("its pid now another process of the same uid: refused by the start time run.sock read at accept (caller_changed)", async () => {
    const fs = new FakeProcFs().addProcess({ pid: 4242, startTime: 100, uids: [1000, 1000, 1000, 1000] });
    const attestation = new Attestation(fs, [new UnixAttestor(fs)]);
    const e = callerIdentity(CALLER_ENTRIES, async (pid, startTime) => (await attestation.attest(pid, startTime)).selectors);
    expect(await e.identifyPid(4242, 1000, 100)).toMatchObject({ ok: true, id: "spiffe://example.org/mcp-host" });
    fs.removeProcess(4242);
    fs.addProcess({ pid: 4242, startTime: 900, uids: [1000, 1000, 1000, 1000] });
    expect(await e.identifyPid(4242, 1000, 100)).toMatchObject({ ok: false, reason: "caller_changed" });
  });

  // Uid: real, effective, saved, filesystem (proc(5)); SO_PEERCRED gives the effective uid.
  const rows: [string, [number, number, number, number], ReturnType<typeof changed> | { ok: true; id: string }][] = [
    ["the same uid throughout", [1000, 1000, 1000, 1000], { ok: true, id: "spiffe://example.org/mcp-host" }],
    ["another effective uid (a setuid program exec'd at the pid)", [1000, 65534, 65534, 65534], changed(4242, 1000)],
    ["root now at the pid", [0, 0, 0, 0], changed(4242, 1000)],
    ["another real uid, the caller's effective uid", [65534, 1000, 1000, 1000], { ok: true, id: "spiffe://example.org/mcp-host" }],
  ];
  for (const [name, uids, want] of rows) {
    test(`caller of uid 1000, ${name}`, async () => {
      const fs = new FakeProcFs().addProcess({ pid: 4242, uids });
      const attestation = new Attestation(fs, [new UnixAttestor(fs)]);
      const e = callerIdentity([...CALLER_ENTRIES, entry("root", "spiffe://example.org/root", "unix:uid:0")], async (pid) => (await attestation.attest(pid)).selectors);
      expect(await e.identifyPid(4242, 1000)).toMatchObject(want);
    });
  }
});

/** A caller: connects to the socket, says so, and stays until its stdin closes; with "drop", becomes nobody (same pid) when told. */
const CALLER_PY = `
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
print("connected", flush=True)
if sys.argv[2] == "drop":
    sys.stdin.readline()
    os.setgroups([])
    os.setresgid(65534, 65534, 65534)
    os.setresuid(65534, 65534, 65534)
    print("dropped", flush=True)
sys.stdin.read()
`;

/**
 * clone3(2) with set_tid: "probe" asks for this process's own pid (EEXIST when the kernel and our
 * capabilities allow choosing a pid); "reuse PID" starts a child at PID that becomes nobody and
 * execs sleep, and waits for it.
 */
const CLONE3_PY = `${CLONE3_PY_DEF}
if sys.argv[1] == "probe":
    r, e = clone3(os.getpid())
    if r == 0:
        os._exit(0)
    print("errno", e, flush=True)
    sys.exit(0)
r, e = clone3(int(sys.argv[2]))
if r < 0:
    print("error", os.strerror(e), flush=True)
    sys.exit(1)
if r == 0:
    os.setgroups([])
    os.setresgid(65534, 65534, 65534)
    os.setresuid(65534, 65534, 65534)
    os.execv("/bin/sleep", ["sleep", "300"])
print("child", r, flush=True)
os.waitpid(r, 0)
`;

const EEXIST = 17;
const canChoosePid = isRoot && (() => {
  const p = Bun.spawnSync(["/usr/bin/python3", "-c", CLONE3_PY, "probe"], { stdout: "pipe", stderr: "pipe" });
  return p.stdout.toString().trim() === `errno ${EEXIST}`;
})();
if (isRoot && !canChoosePid) console.warn("enforcement.test.ts: the pid-reuse test is skipped (clone3 with set_tid unavailable: Linux 5.5+ and CAP_CHECKPOINT_RESTORE)");

/** The uid line of /proc/PID/status: real, effective, saved, filesystem. */
function uidsOf(pid: number): number[] | undefined {
  try {
    return /^Uid:\s+(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]?.split(/\s+/).map(Number);
  } catch {
    return undefined;
  }
}

describe.skipIf(!isRoot)("a --mcp-stdio caller's identity with real processes (SO_PEERCRED, /proc)", () => {
  const entries = [...CALLER_ENTRIES, entry("root", "spiffe://example.org/root-host", "unix:uid:0")];
  // The agent's attestation, its per-pid cache included: a reused pid has another start time.
  const attestation = isRoot ? createAttestation({ cgroupName: "tidegate-test-enforcement" }) : null;
  const e = callerIdentity(entries, async (pid) => (await attestation!.attest(pid)).selectors);
  // A process that changes its own uid keeps its start time and executable; the cache sees the
  // change in the owner of /proc/PID, which is the effective uid and gid even once the process is
  // no longer dumpable (attestation.ts), so the caller that drops its uid is asked through it.

  /** A listener another user can reach, the caller's connection accepted and its peer credentials. */
  async function connected(caller: { setpriv: string[]; mode: "stay" | "drop" }) {
    const folder = mkdtempSync(join(tmpdir(), "tidegate-enforcement-caller-"));
    chmodSync(folder, 0o755);
    const path = join(folder, "caller.sock");
    const listener = u.listenUnix(path);
    chmodSync(path, 0o666);
    const proc = Bun.spawn([...caller.setpriv, "/usr/bin/python3", "-c", CALLER_PY, path, caller.mode], { stdin: "pipe", stdout: "pipe", stderr: "pipe", cwd: "/" });
    const fd = await waitFor("the caller's connection", () => u.acceptConnection(listener) ?? undefined, 30_000, 10);
    const cleanup = async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
      await proc.exited;
      u.closeFd(fd);
      u.closeFd(listener);
      rmSync(folder, { recursive: true, force: true });
    };
    return { proc, peer: u.peerCredentials(fd), cleanup };
  }

  test("the caller becomes nobody at its pid after connecting as root: caller_changed", async () => {
    const c = await connected({ setpriv: [], mode: "drop" });
    try {
      expect(c.peer).toMatchObject({ pid: c.proc.pid, uid: 0 });
      expect(await e.identifyPid(c.peer.pid, c.peer.uid)).toMatchObject({ ok: true, id: "spiffe://example.org/root-host" });
      expect((await attestation!.attest(c.peer.pid)).cached).toBe(true);
      c.proc.stdin.write("drop\n");
      c.proc.stdin.flush();
      await waitFor("the caller to run as nobody", () => (uidsOf(c.peer.pid)?.[1] === 65534 ? true : undefined), 30_000, 10);
      // no longer dumpable: its files show root, the directory its effective uid
      expect(statSync(`/proc/${c.peer.pid}/status`).uid).toBe(0);
      expect(statSync(`/proc/${c.peer.pid}`).uid).toBe(65534);
      expect(await e.identifyPid(c.peer.pid, c.peer.uid)).toEqual(changed(c.peer.pid, 0));
      expect(await e.identifyPid(c.peer.pid, 65534)).toMatchObject({ ok: true, id: "spiffe://example.org/nobody" });
    } finally {
      await c.cleanup();
    }
  }, 60_000);

  test.skipIf(!canChoosePid)("the caller (uid 1000) exits and its pid is reused by a process of nobody's (clone3 set_tid): caller_changed", async () => {
    const c = await connected({ setpriv: ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups"], mode: "stay" });
    let reuser: ReturnType<typeof Bun.spawn> | null = null;
    try {
      expect(c.peer).toMatchObject({ pid: c.proc.pid, uid: 1000 });
      expect(await e.identifyPid(c.peer.pid, c.peer.uid)).toMatchObject({ ok: true, id: "spiffe://example.org/mcp-host" });
      c.proc.stdin.end();
      await c.proc.exited;
      expect(uidsOf(c.peer.pid)).toBeUndefined(); // gone and reaped: the pid is free
      reuser = Bun.spawn(["/usr/bin/python3", "-c", CLONE3_PY, "reuse", String(c.peer.pid)], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
      const r = reuser;
      await waitFor("nobody's sleep at the caller's pid", () => {
        if (r.exitCode !== null) throw new Error(`clone3 failed (exit ${r.exitCode})`);
        const sleeping = uidsOf(c.peer.pid)?.[1] === 65534 && readlinkSync(`/proc/${c.peer.pid}/exe`).endsWith("/sleep");
        return sleeping ? true : undefined;
      }, 30_000, 10);
      expect(await e.identifyPid(c.peer.pid, c.peer.uid)).toEqual(changed(c.peer.pid, 1000));
      expect(await e.identifyPid(c.peer.pid, 65534)).toMatchObject({ ok: true, id: "spiffe://example.org/nobody" });
    } finally {
      if (reuser !== null) {
        if (uidsOf(c.peer.pid)?.[1] === 65534) process.kill(c.peer.pid, "SIGKILL");
        reuser.kill("SIGKILL");
        await reuser.exited;
      }
      await c.cleanup();
    }
  }, 60_000);
});
