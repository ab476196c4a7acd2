// The agent's guards, end to end (root; CI runs it), with the built server and an agent under
// instance e2e-guard (domain.ts: its own mkdtemp folder, state, sockets, cgroup tree and pins):
// - the egress_port_unprotected warning follows this host's net.ipv4.ip_unprivileged_port_start
//   (read, never changed; src/agent/egress-port.test.ts covers every side of it);
// - `tidegate run --mcp-stdio --allow-root` is a usage error: nothing starts, the agent hears nothing;
// - a running agent whose config becomes untrusted (group-writable, then owned by another uid)
//   refuses its reload, says why, and keeps enforcing the last good policy; the same file made
//   root's again loads (so the refused one would have changed the kernel's answer);
// - `tidegate agent --uninstall` is refused while the agent answers on agent.sock and removes
//   nothing (pins, programs, cgroups, workloads stay); once the agent stops it removes them.
// Addresses: 127.0.0.78 only (the upstream).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { probeHost } from "../../src/runtime/host.ts";
import { callUnix } from "../../src/runtime/unix-http.ts";
import { startTidegate, waitFor, type Running } from "../helpers/processes.ts";
import { startDomain, type Agent, type Domain } from "./domain.ts";

const T = 60_000;
const isRoot = process.getuid?.() === 0;
const mount = probeHost().cgroup2;
if (!isRoot && process.env.CI) throw new Error("agent-guards.test.ts: CI must run as root");
if (!isRoot || mount === null) console.warn("agent-guards.test.ts: skipped (needs root and cgroup v2: cgroups, eBPF)");

const INSTANCE = "e2e-guard";
const UPSTREAM = "127.0.0.78";
const ID = "spiffe://example.org/guard-w1";
const ENV = { PATH: "/usr/local/bin:/usr/bin:/bin" };
const config = (action: "passthrough" | "deny") => `trust_domain: example.org
workloads:
  - { name: w1, id: ${ID}, user: nobody }
egress:
  - name: upstream
    from: ${ID}
    to: { cidr: ${UPSTREAM}/32, port: any }
    action: ${action}
`;

let domain: Domain | undefined;
let agent: Agent;
let configFile = "";
const workloads: Running[] = [];

/** The upstream: answers `seen` to the first bytes of each connection. */
const upstream = { accepted: 0, port: 0 };
let listener: { stop(force?: boolean): void } | null = null;

interface Status {
  capture?: { cgroup: string; pins: string; egress_port: number; policy: { file: string; egress_rules: number; generation: number } | null };
}

const flag = (name: string) => agent.flags[agent.flags.indexOf(name) + 1]!;
const agentSock = () => join(flag("--run-dir"), "agent.sock");
const status = async (): Promise<Status | undefined> => (await callUnix(agentSock(), "the agent", "GET", "/v1/status").catch(() => undefined))?.body as Status | undefined;
const since = (n: number) => agent.log().slice(n);
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

const PY_CONNECT = `
import socket, sys, errno
s = socket.socket(); s.settimeout(5)
try:
    s.connect((sys.argv[1], int(sys.argv[2]))); s.sendall(b'hello\\n'); print(s.recv(64).decode().strip() or 'eof')
except OSError as e:
    print(errno.errorcode.get(e.errno, type(e).__name__))
`;

/** A connection to the upstream from workload w1 (tidegate run, as nobody): its answer, or the errno. */
async function fromW1(): Promise<string> {
  const r = await agent.cli(["run", "--workload", "w1", "--user", "nobody", "--", "python3", "-c", PY_CONNECT, UPSTREAM, String(upstream.port)], ENV);
  if (r.code !== 0) throw new Error(`tidegate run exited ${r.code}: ${r.stderr}`);
  return r.stdout.trim();
}

describe.skipIf(!isRoot || mount === null)("the agent's guards", () => {
  beforeAll(async () => {
    const l = Bun.listen<undefined>({
      hostname: UPSTREAM,
      port: 0,
      socket: {
        open: () => void upstream.accepted++,
        data: (s) => void s.end("seen\n"),
        error() {},
      },
    });
    listener = l;
    upstream.port = l.port;
    try {
      domain = await startDomain(INSTANCE);
      await domain.entry("guard", ID, ["tidegate:workload:w1"]);
      agent = await domain.startAgent(INSTANCE, "guard", config("passthrough"), [ID]);
      configFile = join(domain.dir, "guard.yaml");
    } catch (e) {
      await domain?.tearDown();
      domain = undefined;
      throw e;
    }
  }, 120_000);

  afterAll(async () => {
    for (const w of workloads) await w.stop("SIGKILL");
    await domain?.tearDown(); // stops the agent and the server, runs agent --uninstall, removes the folder
    listener?.stop(true);
  }, T);

  test("egress_port_unprotected is logged exactly when this host's ip_unprivileged_port_start lets anyone bind the egress port", async () => {
    const start = Number(readFileSync("/proc/sys/net/ipv4/ip_unprivileged_port_start", "utf8").trim());
    const port = (await status())!.capture!.egress_port;
    expect(port).toBeLessThan(1024);
    const warned = agent.log().filter((l) => l.event === "egress_port_unprotected");
    expect(warned).toEqual(start <= port ? [expect.objectContaining({ port, ip_unprivileged_port_start: start })] : []);
  }, T);

  test("run --mcp-stdio --allow-root is a usage error: nothing starts and the agent is not asked", async () => {
    const marker = join(domain!.dir, "mcp-stdio-allow-root-ran");
    const logged = agent.log().length;
    const r = await agent.cli(["run", "--mcp-stdio", "--allow-root", "--workload", "w1", "--", "sh", "-c", `touch ${marker}`], ENV);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("tidegate run: run --mcp-stdio does not take --allow-root: a stdio MCP server runs contained");
    expect(r.stdout).toBe("");
    expect(existsSync(marker)).toBe(false);
    // The agent logs every request on run.sock (run_refused, run_mcp_stdio, run_started). Its log is
    // in order, so once a reload after the refusal shows up, anything the refusal caused is there too.
    agent.process.proc.kill("SIGHUP");
    await waitFor("the agent's policy_loaded after the refusal", () => since(logged).find((l) => l.event === "policy_loaded"), 15_000, 100, agent.process);
    expect(since(logged).filter((l) => l.event.startsWith("run_"))).toEqual([]);
    expect(existsSync(join(flag("--run-dir"), "run.sock"))).toBe(true); // the agent was there to ask
  }, T);

  test("a config that became untrusted is refused on reload, naming why, and the last good policy keeps applying", async () => {
    const before = (await status())!.capture!.policy!;
    expect(before.file).toBe(configFile);
    expect(await fromW1()).toBe("seen");
    const loads = () => agent.log().filter((l) => l.event === "policy_loaded").length;
    const loaded = loads();
    const rejection = async (n: number, why: string) =>
      waitFor(`policy_rejected naming "${why}"`, () => since(n).find((l) => l.event === "policy_rejected" && String(l.error).includes(why)), 15_000, 100, agent.process);
    const stillOld = async () => {
      expect(loads()).toBe(loaded);
      expect((await status())!.capture!.policy).toEqual(before);
      const accepted = upstream.accepted;
      expect(await fromW1()).toBe("seen"); // the old rule's passthrough, not the new deny
      expect(upstream.accepted).toBe(accepted + 1);
    };
    try {
      // Group-writable, and then a new policy written into it: the change and SIGHUP both reload it.
      let n = agent.log().length;
      chmodSync(configFile, 0o664);
      writeFileSync(configFile, config("deny"));
      agent.process.proc.kill("SIGHUP");
      const group = await rejection(n, `${configFile} is writable by its group (mode 664)`);
      expect(group).toMatchObject({ level: "error", file: configFile, kept: true });
      await stillOld();

      // Owned by another uid (chown before chmod: never a moment when it is root's with the new policy).
      n = agent.log().length;
      chownSync(configFile, 65534, 65534);
      chmodSync(configFile, 0o644);
      agent.process.proc.kill("SIGHUP");
      await rejection(n, `${configFile} belongs to uid 65534, not root`);
      await stillOld();
      const audited = agent.audit().filter((l) => l.type === "policy_rejected");
      expect(audited.some((l) => String(l.reason).includes("is writable by its group"))).toBe(true);
      expect(audited.some((l) => String(l.reason).includes("belongs to uid 65534"))).toBe(true);
      expect(audited.every((l) => l.kept === true)).toBe(true);

      // The same file, root's again, loads: the refused policy would have denied the connection.
      chownSync(configFile, 0, 0);
      agent.process.proc.kill("SIGHUP");
      await waitFor("the deny policy loaded", async () => ((await status())?.capture?.policy?.generation ?? 0) > before.generation ? true : undefined, 15_000, 100, agent.process);
      await waitFor("the kernel to deny w1's connection", async () => ((await fromW1()) === "EPERM" ? true : undefined), 15_000, 200);
    } finally {
      chownSync(configFile, 0, 0);
      chmodSync(configFile, 0o644);
      writeFileSync(configFile, config("passthrough"));
    }
  }, T);

  test("agent --uninstall is refused while the agent answers and removes nothing; once it stops, uninstall removes everything", async () => {
    const { cgroup, pins } = (await status())!.capture!;
    const pinned = readdirSync(pins).sort();
    expect(pinned.length).toBeGreaterThan(0);
    const programs = () => (JSON.parse(Bun.spawnSync(["bpftool", "cgroup", "show", cgroup, "-j"]).stdout.toString() || "[]") as { id: number }[]).map((p) => p.id).sort();
    const attached = programs();
    expect(attached).toHaveLength(7); // connect4/6, sendmsg4/6, sock_create, ingress, sock_release
    const sleeper = startTidegate([...agent.flags, "run", "--workload", "w1", "--user", "nobody", "--", "sleep", "600"], ENV);
    workloads.push(sleeper);
    const procs = join(cgroup, "workloads", "w1", "cgroup.procs");
    const pid = await waitFor("the sleeper in w1's cgroup", () => (existsSync(procs) ? readFileSync(procs, "utf8").trim() || undefined : undefined), 15_000, 100, sleeper);

    const refused = await agent.cli(["agent", "--uninstall"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`tidegate agent: the agent of this instance is running (it answers on ${agentSock()}); stop it first (SIGTERM to the agent's process`);
    expect(refused.stderr).toEndWith("[agent_running]\n");
    expect(refused.stdout).toBe("");
    expect(readdirSync(pins).sort()).toEqual(pinned);
    expect(programs()).toEqual(attached);
    expect(readFileSync(procs, "utf8").trim()).toBe(pid);
    expect(sleeper.proc.exitCode).toBeNull();
    expect((await status())?.capture?.pins).toBe(pins);

    expect(await agent.process.stop()).toBe(0);
    expect(existsSync(agentSock())).toBe(false);
    expect(readdirSync(pins).sort()).toEqual(pinned); // the agent's stop leaves them: only uninstall removes them
    const r = await agent.cli(["agent", "--uninstall"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^uninstalled: [1-9][0-9]* pins removed from ${escape(pins)}; cgroup ${escape(cgroup)} removed\\n$`));
    expect(r.stderr).toContain("killed 1 process");
    await sleeper.proc.exited;
    expect(existsSync(pins)).toBe(false);
    expect(existsSync(cgroup)).toBe(false);
    const alive = () => attached.filter((id) => Bun.spawnSync(["bpftool", "prog", "show", "id", String(id)]).exitCode === 0);
    await waitFor("the programs to be freed", () => (alive().length === 0 ? true : undefined), 10_000);
  }, T);
});
