/**
 * `tidegate up` and `tidegate down` (issue 11): single-host mode without systemd. `up` starts
 * `up --foreground` in the background (its own session, output to <state-dir>/up.log), waits
 * until the agent is healthy while saying what it does, and prints what to do next; `down` stops
 * it through the pid file <run-dir>/up.pid. Both are harmless to repeat.
 */
import { spawn } from "node:child_process";
import { closeSync, existsSync, fchmodSync, fstatSync, mkdirSync, openSync, readFileSync, readlinkSync, readSync, rmSync, writeFileSync } from "node:fs";
import { parseStartTime } from "../attest/proc-text.ts";
import { join } from "node:path";
import type { Command, Context, Output } from "./command.ts";
import { UsageError } from "./usage-error.ts";
import { flagsFor, shellJoin, str } from "./global-options.ts";
import { createLogger } from "../runtime/log.ts";
import { dropStartupCode } from "../runtime/compiled-code.ts";
import { heapGovernor } from "../runtime/heap-governor.ts";
import { connectionsClosed } from "../proxy/in-flight.ts";
import { parseDuration } from "../runtime/duration.ts";
import type { Places } from "../runtime/instance.ts";
import { callUnix } from "../runtime/unix-http.ts";
import { startSingleHost, UpError } from "../up/single-host.ts";
import { lockUp } from "../up/up-lock.ts";
import { hurryOnSecondSignal } from "./stop-signals.ts";
import type { AgentStatus } from "../agent/index.ts";
import { selfBinary } from "../run/launcher.ts";
import { trustDomainFlag } from "./flag-values.ts";

const pidFile = (p: Places) => join(p.runDir, "up.pid");
const logFile = (p: Places) => join(p.stateDir, "up.log");

/** `pid`'s start time (clock ticks after boot, /proc/PID/stat field 22), or null when it is gone. */
function startTimeOf(pid: number | "self"): number | null {
  try {
    return parseStartTime(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return null;
  }
}

function exeOf(pid: number | "self"): string | null {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return null;
  }
}

/**
 * Whether a process whose executable is `theirs` runs the binary at our path `ours`: the same
 * file, or the one an upgrade replaced there (install.sh renames the new binary over the old one,
 * and the kernel then shows the old, unlinked file as `PATH (deleted)`). Only root can replace
 * the binary, and `tidegate down && tidegate up` after an upgrade must stop the old process.
 */
function sameProgram(theirs: string | null, ours: string | null): boolean {
  return theirs !== null && ours !== null && (theirs === ours || theirs === `${ours} (deleted)`);
}

/**
 * The pid in the pid file when that process is this instance's running `tidegate up
 * --foreground`; else null. The file holds the pid and its start time: a pid reused by any other
 * process (a crash leaves the file behind) has another start time, and the process must also run
 * this same binary (or the one an upgrade replaced at its path) with `up --foreground` and this
 * instance's places on its command line.
 */
export function runningUp(places: Places): number | null {
  let pid: number;
  let start: number;
  try {
    const [p, t] = readFileSync(pidFile(places), "utf8").trim().split(/\s+/);
    pid = Number.parseInt(p ?? "", 10);
    start = Number.parseInt(t ?? "", 10);
  } catch {
    return null;
  }
  if (!Number.isSafeInteger(pid) || pid <= 1 || !Number.isSafeInteger(start)) return null;
  if (startTimeOf(pid) !== start || !sameProgram(exeOf(pid), exeOf("self"))) return null;
  let cmdline: string[];
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  } catch {
    return null;
  }
  const at = cmdline.indexOf("up");
  if (at < 0 || cmdline[at + 1] !== "--foreground") return null;
  const want = flagsFor(places);
  const theirs = cmdline.slice(at + 2);
  return want.every((f, i) => theirs[i] === f) ? pid : null;
}

/** What the pid file says of this process: its pid and start time. */
function pidLine(): string {
  return `${process.pid} ${startTimeOf("self") ?? 0}\n`;
}

function timeoutOf(v: unknown, fallback: number): number {
  if (typeof v !== "string") return fallback;
  try {
    const ms = parseDuration(v, "--timeout");
    if (ms <= 0) throw new Error("--timeout must be longer than 0s");
    return ms;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

interface UpFlags {
  /** The parsed trust domain's name (`spiffe://x` gives `x`). */
  readonly trustDomain?: string;
  readonly timeoutMs: number;
}

/**
 * `--trust-domain` and `--timeout`, checked before `up` starts, spawns or creates anything: a bad
 * value is a usage error in this process, never a background process that fails on its own.
 */
function upFlags(ctx: Context): UpFlags {
  const td = str(ctx.values["trust-domain"]);
  const timeoutMs = timeoutOf(ctx.values.timeout, 60_000);
  return td === undefined ? { timeoutMs } : { trustDomain: trustDomainFlag(td).name, timeoutMs };
}

function requireRoot(verb: string): void {
  if (process.getuid?.() !== 0) throw new UpError("up_not_root", `${verb}: runs as root (it loads eBPF programs, makes cgroups and keeps the CA's keys)`);
}

async function agentStatus(places: Places): Promise<AgentStatus | null> {
  try {
    const r = await callUnix(join(places.runDir, "agent.sock"), "the agent", "GET", "/v1/status");
    return r.status === 200 ? (r.body as AgentStatus) : null;
  } catch {
    return null;
  }
}

function nextSteps(places: Places, s: AgentStatus | null): string {
  const t = (...a: string[]) => shellJoin(["tidegate", ...a, ...flagsFor(places)]);
  const n = s?.svids.length ?? 0;
  return [
    `tidegate is up: trust domain ${s?.trust_domain ?? "?"}, node ${s?.node ?? "?"}, ${n} SVID${n === 1 ? "" : "s"} held (workloads and inbound listeners).`,
    `  config (agent settings and policy, default deny): ${places.config}`,
    `  log: ${logFile(places)}`,
    `  audit: ${places.auditDir}`,
    "",
    "next:",
    "  what it holds, rules with hit counts, recent denies:",
    `    ${t("status")}`,
    "  add a workload and the rules it needs (applied when the file is saved):",
    `    edit ${places.config}`,
    "  start a command as that workload:",
    `    ${t("run")} --workload NAME -- COMMAND ...`,
    "  store a credential that a rule's inject: adds on the wire (read from stdin):",
    `    ${t("secret", "set")} NAME`,
    "  why a connection is allowed or denied:",
    `    ${t("policy", "explain")} --from SPIFFE-ID --to HOST:PORT`,
    "  follow the audit trail:",
    `    ${t("audit", "tail")} -f`,
    "  stop:",
    `    ${t("down")}`,
    "",
  ].join("\n");
}

/** The foreground process: serves until SIGTERM or SIGINT, removing its pid file at the end. */
async function foreground(ctx: Context, flags: UpFlags): Promise<number> {
  const { places, io } = ctx;
  requireRoot("up");
  const other = runningUp(places);
  if (other !== null && other !== process.pid) throw new UpError("up_running", `up: already running as pid ${other} (${pidFile(places)}); 'tidegate down' stops it`);
  mkdirSync(places.runDir, { recursive: true, mode: 0o755 });
  // The lock, not the pid file, makes this the instance's only up (src/up/up-lock.ts); the pid
  // file is written only while holding it.
  const lock = lockUp(places.runDir);
  const removePid = () => {
    try {
      const held = readFileSync(pidFile(places), "utf8").trim();
      if (held.split(/\s+/)[0] === String(process.pid)) rmSync(pidFile(places), { force: true });
    } catch {
      // already gone (removed by hand, or the run folder with it)
    } finally {
      lock.release(); // only after the pid file: the next up writes its own under the lock
    }
  };
  const progress = (line: string) => io.err(`up: ${line}\n`);
  // Signals are ours from the start: one during startup aborts it and unwinds what was started
  // (a default-action death would leave sockets, the pid file and an unsealed audit log).
  const stopping = new AbortController();
  let stopSignal: string | null = null;
  let woken: (sig: string) => void = () => undefined;
  const stopped = new Promise<string>((resolve) => (woken = resolve));
  const on = (sig: string) => () => {
    stopSignal ??= sig;
    stopping.abort();
    woken(sig);
  };
  const term = on("SIGTERM");
  const int = on("SIGINT");
  // SIGHUP is ours for the whole life too: its default action ends the process, so a reload
  // (`systemctl reload`) that came while starting or while draining killed it half-way. One while
  // starting is applied once ready (the config may have changed after it was read); one while
  // stopping is ignored.
  let host: Awaited<ReturnType<typeof startSingleHost>> | null = null;
  let reloadWanted = false;
  const hup = () => {
    if (stopSignal !== null) return;
    if (host === null) reloadWanted = true;
    else void host.reload();
  };
  process.on("SIGTERM", term);
  process.on("SIGINT", int);
  process.on("SIGHUP", hup);
  // The pid file says "up is here, signal it": written only once every handler above is in place,
  // never while a signal still has its default action (the first handler a process installs takes
  // long enough that a SIGHUP sent as soon as the file appeared used to kill it).
  writeFileSync(pidFile(places), pidLine(), { mode: 0o644 });
  const handlersOff = () => {
    process.off("SIGTERM", term);
    process.off("SIGINT", int);
  };
  const logger = createLogger({ write: (l) => io.err(l) });
  let started;
  try {
    started = await startSingleHost({
      places,
      logger,
      progress,
      signal: stopping.signal,
      ...(flags.trustDomain !== undefined ? { trustDomain: flags.trustDomain } : {}),
      readyTimeoutMs: flags.timeoutMs,
    });
  } catch (e) {
    handlersOff();
    process.off("SIGHUP", hup);
    removePid();
    if (stopSignal !== null) {
      progress(`${stopSignal} while starting: stopped`);
      return 0;
    }
    throw e;
  }
  host = started;
  if (stopSignal === null) progress(`ready (pid ${process.pid})`);
  if (reloadWanted && stopSignal === null) {
    progress("SIGHUP while starting: applying the config again");
    void host.reload();
  }
  const heap = heapGovernor({ churn: connectionsClosed });
  void dropStartupCode(logger, "up").then(() => heap.start());
  const sig = await stopped;
  heap.stop();
  handlersOff();
  progress(`${sig}: stopping the agent and the server`);
  const again = hurryOnSecondSignal(() => host.hurry(), (l) => io.err(l));
  await host.stop();
  again.off();
  process.off("SIGHUP", hup);
  removePid();
  return 0;
}

/** The text of `path` from byte `from` on (what this run wrote), without reading what came before. */
function readFrom(path: string, from: number): string {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return "";
  }
  try {
    const size = fstatSync(fd).size;
    const buf = Buffer.alloc(Math.max(0, size - from));
    readSync(fd, buf, 0, buf.length, from);
    return buf.toString("utf8");
  } finally {
    closeSync(fd);
  }
}

async function background(ctx: Context, flags: UpFlags): Promise<number> {
  const { places, io } = ctx;
  requireRoot("up");
  const running = runningUp(places);
  if (running !== null) {
    io.err(`up: already running (pid ${running}); nothing to do\n`);
    io.out(nextSteps(places, await agentStatus(places)));
    return 0;
  }
  mkdirSync(places.stateDir, { recursive: true, mode: 0o755 });
  const log = openSync(logFile(places), "a", 0o600);
  fchmodSync(log, 0o600); // "a" keeps the mode of a file that was already there
  const from = fstatSync(log).size; // earlier runs' lines are not this run's progress
  const [exe, ...pre] = selfBinary();
  const args = [...pre, "up", "--foreground", ...flagsFor(places)];
  if (flags.trustDomain !== undefined) args.push("--trust-domain", flags.trustDomain);
  if (str(ctx.values.timeout) !== undefined) args.push("--timeout", str(ctx.values.timeout)!);
  const child = spawn(exe!, args, { detached: true, stdio: ["ignore", log, log] });
  closeSync(log);
  let exited: number | null = null;
  child.on("exit", (code, signal) => {
    exited = code ?? (signal ? 128 : 1);
  });
  child.unref();
  io.err(`up: starting in the background (pid ${child.pid}; output in ${logFile(places)})\n`);
  const until = Date.now() + flags.timeoutMs + 15_000;
  let shown = 0;
  for (;;) {
    // Relay the foreground's progress lines as they come.
    const text = readFrom(logFile(places), from);
    const lines = text.split("\n").filter((l) => l.startsWith("up: "));
    for (const l of lines.slice(shown)) io.err(`${l}\n`);
    shown = Math.max(shown, lines.length);
    if (exited !== null) {
      const errors = text.split("\n").filter((l) => l.startsWith("tidegate up")).slice(-3);
      io.err(`up: the background process exited (${exited}) before it was ready${errors.length ? `:\n${errors.join("\n")}` : ""}\nup: see ${logFile(places)}\n`);
      return 1;
    }
    const s = runningUp(places) === child.pid ? await agentStatus(places) : null;
    if (s !== null && lines.some((l) => l.startsWith("up: ready"))) {
      io.out(nextSteps(places, s));
      return 0;
    }
    if (Date.now() > until) {
      io.err(`up: not ready in time; it still runs as pid ${child.pid} ('tidegate down' stops it); see ${logFile(places)}\n`);
      return 1;
    }
    await Bun.sleep(200);
  }
}

export const upCommand: Command = {
  name: "up",
  summary: "single host: identity server and agent in one process, in the background",
  usage: ["up [--trust-domain TD] [--timeout D]", "up --foreground"],
  help: [
    "Starts tidegate for one host, as root: the identity server and an agent joined to it in one",
    "process. The first run writes a starter config at --config when there is none (default deny,",
    "the host's resolvers allowed, commented examples), creates the trust domain (--trust-domain,",
    "default HOSTNAME.internal) and its CA, registers the config's workloads: as identities of this",
    "host (each implies the selector tidegate:workload:NAME) and each inbound: listener's id (for the",
    "agent's listener alone: selector tidegate:inbound:NAME) and joins the agent. Later runs reuse all",
    "of it. Edits of the config are applied when it is saved (workloads and policy); SIGHUP too.",
    "",
    "Without --foreground it runs in the background (its own session; output in <state-dir>/up.log;",
    "pid in <run-dir>/up.pid), shows its progress, waits until the agent is healthy and prints what",
    "to do next. Run again while it runs: it says so and exits 0. 'tidegate down' stops it.",
    "With --foreground it serves until SIGTERM or SIGINT (what a systemd unit runs).",
    "Exit 0 ready; 1 when it could not start (the reason, and the log's path); 2 on a bad value",
    "(--trust-domain, --timeout), found before anything starts.",
    "",
    "Example: tidegate up --trust-domain example.org",
  ].join("\n"),
  options: {
    foreground: { type: "boolean", help: "serve in this process until SIGTERM/SIGINT" },
    "trust-domain": { type: "string", value: "TD", help: "trust domain of a starter config written now (default HOSTNAME.internal)" },
    timeout: { type: "string", value: "DURATION", help: "how long to wait for the agent to be healthy (default 60s)" },
  },
  run: async (ctx) => {
    if (ctx.positionals.length > 0) throw new UsageError(`up takes no arguments, got ${JSON.stringify(ctx.positionals[0])}`);
    const flags = upFlags(ctx);
    return ctx.values.foreground === true ? foreground(ctx, flags) : background(ctx, flags);
  },
};

async function down(places: Places, io: Output, timeoutMs: number): Promise<number> {
  const pid = runningUp(places);
  if (pid === null) {
    if (existsSync(pidFile(places))) rmSync(pidFile(places), { force: true });
    io.out("tidegate up is not running; nothing to stop\n");
    return 0;
  }
  process.kill(pid, "SIGTERM");
  io.err(`down: sent SIGTERM to pid ${pid}, waiting for it to stop\n`);
  const until = Date.now() + timeoutMs;
  let next = Date.now() + 2000;
  while (existsSync(`/proc/${pid}`) && runningUp(places) === pid) {
    if (Date.now() > until) {
      io.err(`down: pid ${pid} still runs after ${Math.round(timeoutMs / 1000)} s; see ${logFile(places)}\n`);
      return 1;
    }
    if (Date.now() > next) {
      io.err("down: still stopping...\n");
      next = Date.now() + 2000;
    }
    await Bun.sleep(100);
  }
  io.out(
    [
      `stopped (pid ${pid}).`,
      "The eBPF programs stay attached and keep enforcing: managed workloads reach nothing new until",
      `'tidegate up' runs again. ${shellJoin(["tidegate", "agent", "--uninstall", ...flagsFor(places)])} removes them.`,
      "",
    ].join("\n"),
  );
  return 0;
}

export const downCommand: Command = {
  name: "down",
  summary: "stop what 'tidegate up' started",
  usage: ["down [--timeout D]"],
  help: [
    "Sends SIGTERM to the process in <run-dir>/up.pid and waits until it has stopped (--timeout,",
    "default 30s): only when it is this binary's 'up --foreground' of this instance (or the binary",
    "an upgrade replaced at its path) with the start time the file records; a stale pid file is",
    "removed, never followed. Not running: says so and exits 0. The eBPF programs stay attached",
    "(fail closed); 'tidegate agent --uninstall' removes them.",
  ].join("\n"),
  options: { timeout: { type: "string", value: "DURATION", help: "how long to wait (default 30s)" } },
  run: async ({ positionals, places, io, values }) => {
    if (positionals.length > 0) throw new UsageError(`down takes no arguments, got ${JSON.stringify(positionals[0])}`);
    requireRoot("down");
    return down(places, io, timeoutOf(values.timeout, 30_000));
  },
};
