/**
 * `tidegate demo` (issue 11): DESIGN.md section 1's local scenario, end to end, on this host, with
 * nothing but the binary. Everything runs under the demo's own instance (cgroup and pins) with its
 * files in one fresh folder, and is removed at the end (`--keep` keeps the folder):
 *
 *  1. single-host mode (src/up): a trust domain, its CA, and an agent joined to it, in this process;
 *  2. a stand-in third-party HTTPS API that wants a bearer token, and a host no rule names;
 *  3. the demo's agent (workload demo-agent, user nobody) starts the forecast MCP server
 *     (workload forecast-mcp, user daemon) through `tidegate run --mcp-stdio`;
 *  4. get_forecast: the server sends plain HTTP with no token, and tidegate adds it on the wire;
 *  5. fetch_url toward the unlisted host: denied;
 *  6. delete_all_forecasts: hidden from the tool list and refused by the stdio rule;
 *  then it prints the audit trail, verifies it, and cleans up.
 *
 * Every claim it prints is checked against what really happened (what the API and the unlisted
 * host saw, the server's own log, /proc/PID/environ), and the exit code is 0 only when all hold.
 */
import { appendFileSync, chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { answersOn } from "../runtime/unix-http.ts";
import { runningUp } from "../cli/up.ts";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import type { Output } from "../cli/command.ts";
import { flagsFor } from "../cli/global-options.ts";
import { TidegateError } from "../errors.ts";
import { placesFor, type Places } from "../runtime/instance.ts";
import { createLogger } from "../runtime/log.ts";
import { probeHost } from "../runtime/host.ts";
import { findGroup, findUser, readAccountFiles } from "../run/accounts.ts";
import { Capture } from "../bpf/capture.ts";
import { SecretStore, secretsDir } from "../secrets/index.ts";
import { startSingleHost, type SingleHost } from "../up/single-host.ts";
import { startForecastApi, type ForecastApi } from "./forecast-api.ts";
import { linesOf } from "./mcp-host.ts";

export class DemoError extends TidegateError {}

export const DEMO = {
  trustDomain: "demo.internal",
  apiName: "api.forecast.demo",
  address: "127.0.0.1",
  city: "Lisbon",
  agent: { workload: "demo-agent", id: "spiffe://demo.internal/agent/demo", user: "nobody" },
  server: { workload: "forecast-mcp", id: "spiffe://demo.internal/mcp/forecast", user: "daemon" },
  runGroup: "nogroup",
  secret: "forecast_token",
  egressRule: "forecast-api",
  stdioRule: "agent-uses-forecast",
  deniedTool: "delete_all_forecasts",
} as const;

export interface DemoOptions {
  /** The instance (cgroup, pins, ports); its files go to a fresh folder instead of its places. */
  readonly instance: string;
  readonly keep: boolean;
  /** How to run this binary again (src/run/launcher.ts selfBinary()). */
  readonly self: readonly string[];
  readonly io: Output;
}

export function demoConfig(o: { apiPort: number; caFile: string }): string {
  const d = DEMO;
  return `# tidegate demo: the local scenario (DESIGN.md section 1). Default deny: only what is below.
trust_domain: ${d.trustDomain}
agent: { run_group: ${d.runGroup} }
workloads:
  - { name: ${d.agent.workload}, id: ${d.agent.id}, user: ${d.agent.user} }
  - { name: ${d.server.workload}, id: ${d.server.id}, user: ${d.server.user}, run_by: { users: [${d.agent.user}] } }
dns:
  hosts: { ${d.apiName}: [${d.address}] }
egress:
  # The MCP server may reach the forecast API; tidegate adds the token, the server never holds it.
  - name: ${d.egressRule}
    from: ${d.server.id}
    to: { host: ${d.apiName}, port: ${o.apiPort} }
    action: intercept
    ca: ${o.caFile}
    inject: { headers: { Authorization: "Bearer \${secret:${d.secret}}" } }
stdio:
  # The demo agent may use the forecast server, but no tool that deletes.
  - name: ${d.stdioRule}
    from: ${d.agent.id}
    server: ${d.server.id}
    mcp: { tools: { deny: ["delete_*"] } }
`;
}

/** Why other users (not root) could not run `path` (`exec`) or read it: a folder they cannot enter, or the file's mode. */
export function othersCannotRun(path: string, exec: boolean, stat: (p: string) => { mode: number } = statSync): string | null {
  let dir = dirname(path);
  const chain: string[] = [];
  while (true) {
    chain.push(dir);
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  for (const d of chain.reverse()) if ((stat(d).mode & 0o001) === 0) return `the folder ${d} is not searchable by other users (mode ${(stat(d).mode & 0o777).toString(8)})`;
  const want = exec ? 0o005 : 0o004;
  if ((stat(path).mode & want) !== want) return `${path} is not ${exec ? "readable and executable" : "readable"} by other users`;
  return null;
}

/** Where the demo marks the instances it is using (root's), so it only ever cleans up after itself. */
export const DEMO_MARKERS = "/run/tidegate-demo";

/**
 * Writes the marker of `instance` (this process's pid) in `folder`, making the folder when needed.
 * Another demo that finished just then may remove the folder between the two steps
 * (unmarkInstance): the marker is then tried again. Returns the marker's path.
 */
export function markInstance(instance: string, folder = DEMO_MARKERS): string {
  const marker = join(folder, instance);
  for (let attempt = 1; ; attempt++) {
    mkdirSync(folder, { recursive: true, mode: 0o700 });
    try {
      writeFileSync(marker, `${process.pid}\n`, { mode: 0o600 });
      return marker;
    } catch (e) {
      if ((e as { code?: string }).code !== "ENOENT" || attempt >= 5) throw e;
    }
  }
}

/** Removes the marker of `instance`, and `folder` with it when no other demo's marker is left in it. */
export function unmarkInstance(instance: string, folder = DEMO_MARKERS): void {
  rmSync(join(folder, instance), { force: true });
  try {
    rmdirSync(folder);
  } catch {
    // another demo's marker is in it (ENOTEMPTY), or it is gone already
  }
}

/**
 * Whether instance NAME is in use by something else than a demo: an agent answering on its
 * agent.sock, a running `tidegate up`, or pins or a cgroup of it (`leftover`: nothing answers).
 */
async function instanceInUse(name: string, mount: string): Promise<{ what: string; leftover: boolean } | null> {
  const p = placesFor(name);
  const sock = join(p.runDir, "agent.sock");
  if (await answersOn(sock)) return { what: `an agent answers on ${sock}`, leftover: false };
  if (runningUp(p) !== null) return { what: `'tidegate up' runs (${join(p.runDir, "up.pid")})`, leftover: false };
  if (existsSync(p.bpfPinDir)) return { what: `it has eBPF pins in ${p.bpfPinDir}`, leftover: true };
  if (existsSync(join(mount, p.cgroupName))) return { what: `it has a cgroup ${join(mount, p.cgroupName)}`, leftover: true };
  return null;
}

/** Why root should not make its folder in `dir`: another user could rename what root makes there. */
export function unsafeParent(dir: string, stat: (p: string) => { uid: number; mode: number } = lstatSync): string | null {
  let st;
  try {
    st = stat(dir);
  } catch {
    return "it does not exist";
  }
  const sticky = (st.mode & 0o1000) !== 0;
  if (sticky || (st.uid === 0 && (st.mode & 0o022) === 0)) return null;
  return `it is ${st.uid === 0 ? "writable by other users" : `owned by uid ${st.uid}`} and not sticky`;
}

interface Step {
  step: string;
  [k: string]: any;
}

/** What a workload said, safe for a terminal: control characters (escape sequences) shown as "?". */
export const printable = (t: string): string => t.replace(/[\u0000-\u001f\u007f-\u009f]/g, "?").slice(0, 300);
const textOf = (result: any): string => printable(Array.isArray(result?.content) ? result.content.map((c: any) => (typeof c?.text === "string" ? c.text : "")).join(" ") : "");

export async function runDemo(o: DemoOptions): Promise<number> {
  const { io } = o;
  const out = (t = "") => io.out(t + "\n");
  const checks: { what: string; ok: boolean }[] = [];
  const check = (what: string, ok: boolean) => {
    checks.push({ what, ok });
    return ok ? "ok" : "FAILED";
  };

  // Preflight: say plainly what is missing before anything is made.
  if (process.getuid?.() !== 0) throw new DemoError("demo_not_root", "demo: runs as root (it loads eBPF programs, makes cgroups and starts workloads as other users)");
  const mount = probeHost().cgroup2;
  if (mount === null) throw new DemoError("demo_no_cgroup2", "demo: no cgroup v2 mount on this host (tidegate version shows what the host offers)");
  const accounts = readAccountFiles();
  for (const u of [DEMO.agent.user, DEMO.server.user]) if (findUser(accounts, u) === null) throw new DemoError("demo_no_user", `demo: needs the user ${u} (in /etc/passwd), which its workloads run as`);
  if (findGroup(accounts, DEMO.runGroup) === null) throw new DemoError("demo_no_user", `demo: needs the group ${DEMO.runGroup} (in /etc/group)`);
  for (const [i, part] of o.self.entries()) {
    if (!part.startsWith("/")) continue;
    const why = othersCannotRun(part, i === 0);
    if (why !== null) throw new DemoError("demo_binary_unreachable", `demo: the workloads run as ${DEMO.agent.user} and ${DEMO.server.user} and start this binary again, but ${why}; install it somewhere they can run it (install.sh puts it in /usr/local/bin)`);
  }

  // The demo removes its instance's programs, pins and cgroups: never those of an instance in use.
  const marker = join(DEMO_MARKERS, o.instance);
  const inUse = await instanceInUse(o.instance, mount);
  if (inUse !== null && !(inUse.leftover && existsSync(marker))) {
    throw new DemoError("demo_instance_in_use", `demo: instance ${o.instance} is in use (${inUse.what}); the demo would tear it down. Pick another with --instance NAME${inUse.leftover ? `, or remove what is left with 'tidegate agent --uninstall --instance ${o.instance}' if it is yours` : ""}`);
  }
  const parent = tmpdir();
  const unsafe = unsafeParent(parent);
  if (unsafe !== null) throw new DemoError("demo_tmpdir_unsafe", `demo: its folder would go in ${parent}, but ${unsafe}; set TMPDIR to a folder only root can change (or /tmp)`);
  markInstance(o.instance);

  const dir = mkdtempSync(join(parent, "tidegate-demo-"));
  chmodSync(dir, 0o711);
  const places: Places = placesFor(o.instance, {
    config: join(dir, "etc", "tidegate.yaml"),
    serverConfig: join(dir, "etc", "server.yaml"),
    stateDir: join(dir, "state"),
    runDir: join(dir, "run"),
    auditDir: join(dir, "audit"),
  });
  const capture = { mount, cgroupName: places.cgroupName, pinDir: places.bpfPinDir };
  let host: SingleHost | null = null;
  let api: ForecastApi | null = null;
  let unlisted: ReturnType<typeof Bun.serve> | null = null;
  const flags = flagsFor(places);
  const self = [...o.self];
  // Ctrl-C or SIGTERM: stop the demo's agent workload; the cleanup below runs as at a normal end.
  let interrupted: string | null = null;
  let agentProc: ReturnType<typeof Bun.spawn> | null = null;
  const onSignal = (sig: string) => () => {
    interrupted = sig;
    agentProc?.kill("SIGKILL");
  };
  const sigint = onSignal("SIGINT");
  const sigterm = onSignal("SIGTERM");
  process.on("SIGINT", sigint);
  process.on("SIGTERM", sigterm);
  try {
    await Capture.uninstall(capture); // leftovers of an earlier demo of this instance
    out(`tidegate demo: the local scenario, as instance ${o.instance}; its files are in ${dir}`);
    out();

    // 1. The stand-ins: the API that wants a token, and a host that no rule names.
    const token = randomBytes(24).toString("base64url");
    api = await startForecastApi({ hostname: DEMO.apiName, address: DEMO.address, token });
    let unlistedHits = 0;
    unlisted = Bun.serve({
      hostname: DEMO.address,
      port: 0,
      fetch: () => {
        unlistedHits++;
        return new Response("you should not see this\n");
      },
    });
    const unlistedUrl = `http://${DEMO.address}:${unlisted.port}/upload`;
    mkdirSync(join(dir, "etc"), { recursive: true, mode: 0o755 });
    const caFile = join(dir, "etc", "forecast-api-ca.pem");
    writeFileSync(caFile, api.caPem, { mode: 0o644 });
    writeFileSync(places.config, demoConfig({ apiPort: api.port, caFile }), { mode: 0o644 });
    mkdirSync(places.stateDir, { recursive: true, mode: 0o700 });
    await SecretStore.open(secretsDir(places.stateDir)).set(DEMO.secret, token);

    // 2. Identity and the agent, in this process.
    out(`[1/6] trust domain ${DEMO.trustDomain}: a CA, and an agent joined to it (single-host mode, as 'tidegate up')`);
    const logPath = join(dir, "tidegate.log");
    host = await startSingleHost({
      places,
      logger: createLogger({ write: (l) => appendFileSync(logPath, l, { mode: 0o600 }) }),
      progress: (l) => out(`      ${l}`),
    });
    out(`      workloads: ${DEMO.agent.workload} (${DEMO.agent.id}) runs as ${DEMO.agent.user}; ${DEMO.server.workload} (${DEMO.server.id}) as ${DEMO.server.user}`);
    out(`[2/6] a stand-in third-party API, https://${DEMO.apiName}:${api.port}, that wants a bearer token`);
    out(`      the token is in tidegate's secret store (${DEMO.secret}), nowhere else; egress rule ${DEMO.egressRule} adds it`);

    // 3. The demo's AI agent starts the MCP server through tidegate.
    const serverCmd = [...self, "run", "--mcp-stdio", ...flags, "--workload", DEMO.server.workload, "--", ...self, "demo", "mcp-server", "--api-name", DEMO.apiName, "--api-address", DEMO.address, "--api-port", String(api.port)];
    const hostArgs = JSON.stringify({ command: serverCmd, city: DEMO.city, unlistedUrl });
    const proc = Bun.spawn([...self, "run", ...flags, "--workload", DEMO.agent.workload, "--", ...self, "demo", "mcp-host", hostArgs], {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
      env: { PATH: "/usr/bin:/bin" },
      // `tidegate run` enters its working directory as the workload's user: root's own (/root,
      // where the demo is often started) would be refused.
      cwd: "/",
    });
    agentProc = proc;
    if (interrupted !== null) proc.kill("SIGKILL");
    const agentErr = new Response(proc.stderr).text();
    const steps: Step[] = [];
    const timeout = setTimeout(() => proc.kill("SIGKILL"), 60_000);
    for await (const line of linesOf(proc.stdout)) {
      let s: Step;
      try {
        s = JSON.parse(line) as Step;
      } catch {
        continue;
      }
      steps.push(s);
      if (s.step === "list") {
        out(`[3/6] agent ${DEMO.agent.workload} starts the forecast MCP server with 'tidegate run --mcp-stdio' and lists its tools`);
        const tools: string[] = Array.isArray(s.tools) ? s.tools.filter((t: unknown): t is string => typeof t === "string").map(printable) : [];
        out(`      tools/list: ${tools.join(", ") || "(none)"}`);
        out(`      ${DEMO.deniedTool} is hidden by stdio rule ${DEMO.stdioRule}: ${check(`tools/list hides ${DEMO.deniedTool}`, tools.length > 0 && !tools.includes(DEMO.deniedTool))}`);
        // The pid comes from the workload's own output: read its environment only when the
        // kernel says it is a process of the forecast-mcp workload's cgroup.
        let env = "";
        const pid = Number.isSafeInteger(s.server_pid) && s.server_pid > 1 ? (s.server_pid as number) : null;
        try {
          const cg = pid === null ? "" : readFileSync(`/proc/${pid}/cgroup`, "utf8");
          if (cg.split("\n").some((l) => l.startsWith("0::") && l.endsWith(`/${places.cgroupName}/workloads/${DEMO.server.workload}`))) env = readFileSync(`/proc/${pid}/environ`, "latin1");
        } catch {
          env = "";
        }
        const vars = env.split("\0").filter((v) => v !== "");
        const clean = env !== "" && !env.includes(token);
        out(`      the server's environment (/proc/${pid ?? "?"}/environ, ${vars.length} variables: ${vars.map((v) => v.split("=")[0]).join(", ")}) holds no token: ${check("the server's environment holds no token", clean)}`);
        proc.stdin.write("\n");
        proc.stdin.flush();
      } else if (s.step === "call" && s.tool === "get_forecast") {
        const t = textOf(s.result);
        out(`[4/6] get_forecast ${DEMO.city} -> ${t || printable(JSON.stringify(s.error))}`);
        out("      the server sent plain HTTP with no Authorization header; tidegate intercepted it, added the");
        out(`      token from its store and spoke TLS to the API, which saw ${api.seen.authorized} request(s) with the right token: ${check("the API got the token", t.startsWith("200 ") && api.seen.authorized >= 1 && api.seen.refused === 0)}`);
      } else if (s.step === "call" && s.tool === "fetch_url") {
        const t = textOf(s.result);
        out(`[5/6] fetch_url ${unlistedUrl} (no rule names this host) -> ${t || printable(JSON.stringify(s.error))}`);
        out(`      denied; the host received ${unlistedHits} request(s): ${check("the unlisted host is denied", s.result?.isError === true && unlistedHits === 0)}`);
      } else if (s.step === "call" && s.tool === DEMO.deniedTool) {
        out(`[6/6] ${DEMO.deniedTool} -> ${s.error ? `JSON-RPC error ${printable(String(s.error.code))}: ${printable(String(s.error.message))}` : textOf(s.result)}`);
      } else if (s.step === "done") {
        const reached = (Array.isArray(s.server_log) ? (s.server_log as unknown[]) : []).map(String).some((l) => l.includes(`received tools/call ${DEMO.deniedTool}`));
        const refused = steps.find((x) => x.step === "call" && x.tool === DEMO.deniedTool);
        out(`      refused by tidegate; the server never received it: ${check(`${DEMO.deniedTool} is refused`, refused?.error?.code === -32001 && !reached)}`);
      } else if (s.step === "failed") {
        out(`      the agent's MCP session failed: ${printable(String(s.error))}`);
        check("the MCP session ran", false);
      }
    }
    clearTimeout(timeout);
    const agentExit = await proc.exited;
    if (!steps.some((s) => s.step === "done")) {
      out(`      the demo agent stopped early (exit ${agentExit}): ${(await agentErr).trim().split("\n").slice(-3).join(" / ")}`);
      check("the demo agent ran to the end", false);
    }

    // The audit trail of this run, sealed by the agent's last checkpoint when it stops, and its
    // verification, with the same commands an operator uses.
    await host.stop();
    host = null;
    out();
    out(`audit trail (${places.auditDir}):`);
    const tail = Bun.spawnSync([...self, "audit", "tail", "-n", "40", ...flags], { stdout: "pipe", stderr: "pipe" });
    for (const l of tail.stdout.toString().trimEnd().split("\n")) out(`  ${l}`);
    const verify = Bun.spawnSync([...self, "audit", "verify", ...flags], { stdout: "pipe", stderr: "pipe" });
    const verdict = (verify.stdout.toString() + verify.stderr.toString()).trim();
    out(`audit verify: ${verdict.split("\n").join("\n  ")}`);
    check("the audit trail verifies", verify.exitCode === 0);
  } finally {
    await host?.stop().catch(() => undefined);
    api?.stop();
    unlisted?.stop(true);
    const removed = await Capture.uninstall(capture).catch(() => null);
    if (o.keep) out(`\nkept ${dir} (config, state, audit log); 'rm -rf ${dir}' removes it`);
    else rmSync(dir, { recursive: true, force: true });
    if (removed !== null) unmarkInstance(o.instance);
    process.off("SIGINT", sigint);
    process.off("SIGTERM", sigterm);
    out(`cleaned up: the agent and server stopped, ${removed ? `${removed.pins} pins and the cgroup of instance ${o.instance} removed` : "the instance's pins and cgroup could not be removed"}${o.keep ? "" : `, ${dir} removed`}`);
  }
  if (interrupted !== null) {
    out(`demo interrupted (${interrupted})`);
    return 130;
  }
  const failed = checks.filter((c) => !c.ok);
  out();
  out(failed.length === 0 ? `demo passed: ${checks.length} of ${checks.length} checks hold` : `demo FAILED: ${failed.map((c) => c.what).join("; ")}`);
  return failed.length === 0 ? 0 : 1;
}
