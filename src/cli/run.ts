/**
 * `tidegate run --workload NAME [--user USER] [--allow-root] [--] COMMAND [ARGS...]` (DESIGN.md
 * section 2, docs/capture.md). stdin, stdout and stderr are the caller's own, except that when
 * one of them is a terminal (and not with --mcp-stdio) the command gets a pseudo-terminal of its
 * own in place of each of them that is the terminal, relayed to the caller's (../runtime/pty.ts)
 * and closed when the command ends, so nothing it leaves behind reads or writes the caller's
 * terminal (its controlling terminal too when stdin was the terminal); SIGINT, SIGTERM,
 * SIGHUP and SIGQUIT are passed on; the exit code is the command's (128+N when a signal N ended
 * it). Two paths:
 *
 * - root: asks the agent over agent.sock for the workload's cgroup (the agent makes it and writes
 *   the workload's kernel share first), then re-executes this binary as the launcher
 *   (src/run/launcher.ts) that joins the cgroup, drops to USER and execs COMMAND; afterwards the
 *   agent is told, so it can remove the cgroup once the workload's process tree is gone.
 * - anyone else: over run.sock (src/agent/run-service.ts), sending descriptors 0, 1, 2, its
 *   environment and working directory; the agent checks who connected and starts the launcher
 *   itself, or refuses (not in the agent's run group, not named by the workload's run_by, a USER
 *   other than the workload's own, a root USER).
 *
 * Refused: no agent, an agent without kernel capture (it says why), a root USER without
 * --allow-root (and always for non-root callers).
 */
import { join } from "node:path";
import { constants } from "node:os";
import { readFileSync } from "node:fs";
import type { Command, Output } from "./command.ts";
import { UsageError } from "./usage-error.ts";
import { callUnix } from "../runtime/unix-http.ts";
import { TidegateError } from "../errors.ts";
import { findUser, readAccountFiles, supplementaryGroups } from "../run/accounts.ts";
import { launcherArgv, selfBinary } from "../run/launcher.ts";
import * as u from "../runtime/unix-fds.ts";
import { Errno } from "../runtime/libc.ts";
import { RunTerminal } from "../runtime/pty.ts";
import { encodeLine, encodeRequest, LineReader, noIdentityNotice, noUserReason, parseAnswer, RUN_SIGNALS, type RunAnswer, type RunRequest } from "../agent/run-protocol.ts";

export class RunCliError extends TidegateError<"run_agent" | "run_refused" | "run_bad_user" | "run_lost" | "run_terminal"> {}

/**
 * What `tidegate run` says when the agent refused a run over run.sock. An agent older than this
 * binary (upgraded, not restarted) refuses the request's terminal field as unknown: that says how
 * to mend it.
 */
export function agentRefusal(e: { code: string; message: string }): string {
  const older = e.code === "run_bad_request" && e.message.includes('unknown field "tty"') ? "; the agent is older than this tidegate: restart it (tidegate down, then tidegate up; or the agent's service) so it runs the installed binary" : "";
  return `run: the agent refused: ${e.message.replace(/^run: /, "")} (${e.code})${older}`;
}

const SIGNALS = RUN_SIGNALS;

interface CgroupGrant {
  cgroup_dir: string;
  spiffe_id: string | null;
  /** Why the workload has no identity, when it has none. */
  no_identity: string | null;
  user: string | null;
  /** The config's workload names; null from an agent that does not send them. */
  workloads: readonly string[] | null;
  /** The agent's workload trust bundle (the interception CA); null without one. */
  ca_bundle: string | null;
}

async function noteUncontained(socket: string, workload: string): Promise<void> {
  await callUnix(socket, "the agent", "POST", "/v1/run", { workload, allow_root: true }).catch(() => undefined);
}

async function prepare(socket: string, workload: string): Promise<CgroupGrant> {
  let res;
  try {
    res = await callUnix(socket, "the agent", "POST", "/v1/run", { workload });
  } catch (e) {
    // callUnix's message names the socket already ("cannot reach the agent at PATH: is it running?")
    throw new RunCliError("run_agent", `run: ${e instanceof Error ? e.message : `cannot reach the agent at ${socket}: ${String(e)}`}`);
  }
  const body = res.body as { error?: { code: string; message: string } } & Partial<CgroupGrant>;
  if (res.status !== 200 || typeof body?.cgroup_dir !== "string") {
    throw new RunCliError("run_refused", `run: the agent refused: ${body?.error?.message ?? `status ${res.status}`}${body?.error?.code ? ` (${body.error.code})` : ""}`);
  }
  return { cgroup_dir: body.cgroup_dir, spiffe_id: body.spiffe_id ?? null, no_identity: typeof body.no_identity === "string" ? body.no_identity : null, user: body.user ?? null, workloads: Array.isArray(body.workloads) ? body.workloads.filter((w): w is string => typeof w === "string") : null, ca_bundle: typeof body.ca_bundle === "string" ? body.ca_bundle : null };
}

/** The run's own terminal when stdin, stdout or stderr is the caller's terminal (null otherwise: nothing changes). */
function openTerminal(): RunTerminal | null {
  try {
    return RunTerminal.open();
  } catch (e) {
    throw new RunCliError("run_terminal", `run: cannot make a terminal for the command: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function signalNumber(name: string | number): number {
  return typeof name === "number" ? name : ((constants.signals as Record<string, number>)[name] ?? 0);
}

/** This process's environment as its parent gave it (not as Bun changed it), NAME=VALUE each. */
function environment(): string[] {
  try {
    return readFileSync("/proc/self/environ", "utf8").split("\0").filter((e) => e.indexOf("=") > 0);
  } catch {
    return Object.entries(process.env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]));
  }
}

function connect(socket: string): number {
  try {
    return u.connectUnix(socket);
  } catch (e) {
    const errno = e instanceof u.UnixFdError ? e.errno : 0;
    const why =
      errno === Errno.ENOENT || errno === Errno.ECONNREFUSED
        ? "is it running, as root with kernel capture?"
        : errno === Errno.EACCES
          ? "permission denied: run.sock is for root and the members of the agent's run group (agent.run_group, default tidegate)"
          : e instanceof Error ? e.message : String(e);
    throw new RunCliError("run_agent", `run: cannot reach the agent at ${socket}: ${why}`);
  }
}

/**
 * Sends the request with descriptors 0, 1, 2 (the run's own terminal's slave in place of each that
 * is the caller's terminal, when `term` is given), then waits for the answer, passing signals on
 * and relaying the terminal.
 */
async function runThroughAgent(socket: string, request: RunRequest, io: Output, term: RunTerminal | null = null): Promise<RunAnswer> {
  const fd = connect(socket);
  try {
    // `tty` asks for the slave on descriptor 0 as the controlling terminal: only when it is there.
    const bytes = encodeRequest(term?.controlling === true ? { ...request, tty: true } : request);
    let sent: number | null;
    try {
      sent = u.sendWithFds(fd, bytes, term === null ? [0, 1, 2] : [term.descriptor(0), term.descriptor(1), term.descriptor(2)]);
      if (sent === null) throw new u.UnixFdError("unix_fds_failed", "unix sockets: sendmsg would block", Errno.EAGAIN);
      u.sendAll(fd, bytes.subarray(sent));
    } catch (e) {
      const why = e instanceof u.UnixFdError && e.errno === Errno.EBADF ? "stdin, stdout and stderr must all be open" : e instanceof Error ? e.message : String(e);
      throw new RunCliError("run_agent", `run: cannot send the request to ${socket}: ${why}`);
    }
    if (term !== null) {
      // The agent has its own copies now (in flight or received): the command's end is EIO on the master.
      term.closeSlave();
      term.start();
    }
    const forward = (sig: string) => () => {
      try {
        u.sendAll(fd, encodeLine({ signal: sig }));
      } catch {
        // the agent is gone; the answer loop reports it
      }
    };
    const handlers = SIGNALS.map((s) => [s, forward(s)] as const);
    for (const [s, h] of handlers) process.on(s, h);
    try {
      return await new Promise<RunAnswer>((resolve, reject) => {
        const reader = new LineReader(64 * 1024, 64 * 1024);
        const timer = setInterval(() => {
          try {
            for (let got = u.receive(fd, 4096); got !== null; got = u.receive(fd, 4096)) {
              for (const extra of got.fds) u.closeFd(extra);
              if (got.bytes.length === 0) throw new RunCliError("run_lost", "run: the agent closed the connection before the command ended (it may still be running)");
              for (const line of reader.push(got.bytes)) {
                const m = parseAnswer(line);
                if ("notice" in m) {
                  // the caller's terminal is raw meanwhile: a line ends with a carriage return too
                  io.err(`tidegate run: warning: ${m.notice}${term?.controlling === true ? "\r\n" : "\n"}`);
                  continue;
                }
                clearInterval(timer);
                term?.stopInput();
                return resolve(m);
              }
            }
          } catch (e) {
            clearInterval(timer);
            reject(e);
          }
        }, 20);
      });
    } finally {
      for (const [s, h] of handlers) process.off(s, h);
    }
  } finally {
    u.closeFd(fd);
  }
}

export const runCommand: Command = {
  name: "run",
  summary: "run a command as a managed workload (in its cgroup, as its user, captured)",
  usage: ["run --workload NAME [--user USER] [--allow-root] [--] COMMAND [ARGS...]", "run --mcp-stdio --workload NAME [--user USER] [--] SERVER [ARGS...]"],
  help: [
    "Starts COMMAND inside the agent's cgroup for workload NAME, so every connection it makes goes",
    "through the kernel's policy and the egress listener. The command runs as USER (default: the",
    "workload's user: in the config) with no capabilities and no_new_privs, and not one system call",
    "of it runs outside the cgroup. Its identity is that of the registration entry with the selector",
    "tidegate:workload:NAME. stdin/stdout/stderr, signals and the exit code pass through; where any",
    "of them is a terminal the command gets a terminal of its own in its place, relayed to yours and",
    "closed when it ends, so nothing it leaves running reads or writes yours.",
    "Refused when the agent has no kernel capture (no cgroup v2 or eBPF: it says which), and for",
    "USER root unless --allow-root (then uncontained). Callers other than root go through the agent",
    "(run.sock): they must be in the agent's run group and named by the workload's run_by, and the",
    "command runs as the workload's user: only.",
    "",
    "--mcp-stdio: COMMAND is a stdio MCP server (newline-delimited JSON-RPC on its stdin and",
    "stdout), started by an MCP client that runs this command. The agent starts it (through",
    "run.sock, for root too) and sits on its stdin and stdout: the stdio[] rule whose from matches",
    "this process's identity (the client's: its user, its cgroup) and whose server matches the",
    "workload's decides which tools, resources and prompts pass; denied calls are answered with a",
    "JSON-RPC error, tools/list is filtered, tool definitions are pinned, every call is audited.",
    "No rule: refused. stderr passes as it is.",
    "",
    "Example: tidegate run --workload github-mcp -- curl -sS https://api.github.com/user",
  ].join("\n"),
  options: {
    workload: { type: "string", value: "NAME", help: "the workload (its cgroup and identity)" },
    user: { type: "string", value: "USER", help: "run as this user (name or uid)" },
    "allow-root": { type: "boolean", help: "allow running the command as root (uncontained)" },
    "mcp-stdio": { type: "boolean", help: "COMMAND is a stdio MCP server: the agent applies the stdio[] rules to its stdin and stdout" },
  },
  run: async ({ values, positionals, places, io }) => {
    const workload = typeof values.workload === "string" ? values.workload : undefined;
    if (workload === undefined) throw new UsageError("run needs --workload NAME");
    if (positionals.length === 0) throw new UsageError("run needs a COMMAND after the options (put -- before it if it has options)");
    const mcpStdio = values["mcp-stdio"] === true;
    if (mcpStdio && values["allow-root"] === true) throw new UsageError("run --mcp-stdio does not take --allow-root: a stdio MCP server runs contained");
    if (process.getuid?.() !== 0 || mcpStdio) {
      // A terminal of the run's own where stdin, stdout or stderr is the caller's terminal; never with --mcp-stdio (JSON-RPC on stdin and stdout).
      const term = mcpStdio ? null : openTerminal();
      let answer: RunAnswer;
      try {
        answer = await runThroughAgent(join(places.runDir, "run.sock"), {
          workload,
          user: typeof values.user === "string" ? values.user : null,
          allowRoot: values["allow-root"] === true,
          command: positionals,
          env: environment(),
          cwd: process.cwd(),
          ...(mcpStdio ? { mcpStdio: true } : {}),
        }, io, term);
        await term?.finish();
      } finally {
        term?.close();
      }
      if ("error" in answer) throw new RunCliError("run_refused", agentRefusal(answer.error));
      return "exit" in answer ? answer.exit : 128 + signalNumber(answer.signal);
    }
    const answer = await prepare(join(places.runDir, "agent.sock"), workload);
    // From here on the agent holds the workload's cgroup for this run: released however it ends.
    let code: number;
    let signal: string | number | null;
    let term: RunTerminal | null = null;
    try {
      term = openTerminal();
      const userSpec = typeof values.user === "string" ? values.user : answer.user;
      if (userSpec === null) throw new UsageError(noUserReason(workload, answer.workloads));
      const files = readAccountFiles();
      const account = findUser(files, userSpec);
      if (account === null) throw new RunCliError("run_bad_user", `run: no such user ${JSON.stringify(userSpec.slice(0, 64))}`);
      const gid = account.gid ?? account.uid;
      // A root workload is uncontained: tell the agent, which records it.
      if (account.uid === 0 && values["allow-root"] === true) await noteUncontained(join(places.runDir, "agent.sock"), workload);
      const argv = launcherArgv({
        binary: selfBinary(),
        cgroupDir: answer.cgroup_dir,
        uid: account.uid,
        gid,
        groups: supplementaryGroups(files, account.uid, gid),
        allowRoot: values["allow-root"] === true,
        // Entered by the launcher as the user: inherited, root's working directory would hand the
        // workload a folder its user may not reach (one inside a root-only folder, say).
        cwd: process.cwd(),
        ...(answer.ca_bundle !== null ? { caBundle: answer.ca_bundle } : {}),
        ...(term?.controlling === true ? { tty: true } : {}),
        command: positionals,
      });
      if (answer.no_identity !== null) io.err(`tidegate run: warning: ${noIdentityNotice(workload, answer.no_identity)}\n`);
      const stdio = (n: 0 | 1 | 2) => (term === null ? "inherit" : term.useSlave[n] ? term.slave : "inherit");
      const started = Bun.spawn(argv, { stdin: stdio(0), stdout: stdio(1), stderr: stdio(2), env: process.env });
      term?.closeSlave();
      const forward = (sig: (typeof SIGNALS)[number]) => () => started.kill(sig);
      const handlers = SIGNALS.map((s) => [s, forward(s)] as const);
      for (const [s, h] of handlers) process.on(s, h);
      try {
        term?.start();
        code = await started.exited;
        signal = started.signalCode;
        await term?.finish();
      } finally {
        for (const [s, h] of handlers) process.off(s, h);
      }
    } finally {
      term?.close();
      try {
        await callUnix(join(places.runDir, "agent.sock"), "the agent", "POST", "/v1/run/release", { workload });
      } catch {
        // the agent sweeps empty workload cgroups itself as well
      }
    }
    if (signal !== null) return 128 + signalNumber(signal);
    return code;
  },
};
