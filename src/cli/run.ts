/**
 * `tidegate run --workload NAME [--user USER] [--allow-root] [--] COMMAND [ARGS...]` (DESIGN.md
 * section 2): asks the agent over agent.sock for the workload's cgroup (the agent makes it and
 * writes the workload's kernel share first), then re-executes this binary as the launcher
 * (src/run/launcher.ts) that joins the cgroup, drops to USER and execs COMMAND. stdin, stdout and
 * stderr are the launcher's own; SIGINT, SIGTERM, SIGHUP and SIGQUIT are passed on; the exit code
 * is the command's (128+N when a signal N ended it). Afterwards the agent is told, so it can remove
 * the cgroup once the workload's process tree is gone.
 *
 * Refused: no agent, an agent without kernel capture (it says why), a root USER without
 * --allow-root, a caller that is not root (running for group `tidegate` members through `run_by`
 * is not available yet: it needs the agent to start the process itself).
 */
import { join } from "node:path";
import { constants } from "node:os";
import type { Command } from "./command.ts";
import { UsageError } from "./usage-error.ts";
import { callUnix } from "../runtime/unix-http.ts";
import { TidegateError } from "../errors.ts";
import { findUser, readAccountFiles, supplementaryGroups } from "../run/accounts.ts";
import { launcherArgv, selfBinary } from "../run/launcher.ts";

export class RunCliError extends TidegateError<"run_not_root" | "run_agent" | "run_refused" | "run_bad_user"> {}

const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"] as const;

interface RunAnswer {
  cgroup_dir: string;
  spiffe_id: string | null;
  user: string | null;
}

async function prepare(socket: string, workload: string): Promise<RunAnswer> {
  let res;
  try {
    res = await callUnix(socket, "the agent", "POST", "/v1/run", { workload });
  } catch (e) {
    throw new RunCliError("run_agent", `run: cannot reach the agent at ${socket}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const body = res.body as { error?: { code: string; message: string } } & Partial<RunAnswer>;
  if (res.status !== 200 || typeof body?.cgroup_dir !== "string") {
    throw new RunCliError("run_refused", `run: the agent refused: ${body?.error?.message ?? `status ${res.status}`}${body?.error?.code ? ` (${body.error.code})` : ""}`);
  }
  return { cgroup_dir: body.cgroup_dir, spiffe_id: body.spiffe_id ?? null, user: body.user ?? null };
}

export const runCommand: Command = {
  name: "run",
  summary: "run a command as a managed workload (in its cgroup, as its user, captured)",
  usage: ["run --workload NAME [--user USER] [--allow-root] [--] COMMAND [ARGS...]"],
  help: [
    "Starts COMMAND inside the agent's cgroup for workload NAME, so every connection it makes goes",
    "through the kernel's policy and the egress listener. The command runs as USER (default: the",
    "workload's user: in the config) with no capabilities and no_new_privs, and not one system call",
    "of it runs outside the cgroup. Its identity is that of the registration entry with the selector",
    "tidegate:workload:NAME. stdin/stdout/stderr, signals and the exit code pass through.",
    "Refused when the agent has no kernel capture (no cgroup v2 or eBPF: it says which), and for",
    "USER root unless --allow-root (then uncontained). Needs root for now.",
  ].join("\n"),
  options: {
    workload: { type: "string", value: "NAME", help: "the workload (its cgroup and identity)" },
    user: { type: "string", value: "USER", help: "run as this user (name or uid)" },
    "allow-root": { type: "boolean", help: "allow running the command as root (uncontained)" },
  },
  run: async ({ values, positionals, places }) => {
    const workload = typeof values.workload === "string" ? values.workload : undefined;
    if (workload === undefined) throw new UsageError("run needs --workload NAME");
    if (positionals.length === 0) throw new UsageError("run needs a COMMAND after the options (put -- before it if it has options)");
    if (process.getuid?.() !== 0) {
      throw new RunCliError("run_not_root", "run: only root can run workloads for now (members of group tidegate through run_by come later)");
    }
    const answer = await prepare(join(places.runDir, "agent.sock"), workload);
    const userSpec = typeof values.user === "string" ? values.user : answer.user;
    if (userSpec === null) throw new UsageError(`run needs --user USER (workload ${workload} names no user: in the config)`);
    const files = readAccountFiles();
    const account = findUser(files, userSpec);
    if (account === null) throw new RunCliError("run_bad_user", `run: no such user ${JSON.stringify(userSpec.slice(0, 64))}`);
    const gid = account.gid ?? account.uid;
    const argv = launcherArgv({
      binary: selfBinary(),
      cgroupDir: answer.cgroup_dir,
      uid: account.uid,
      gid,
      groups: supplementaryGroups(files, account.uid, gid),
      allowRoot: values["allow-root"] === true,
      command: positionals,
    });
    const child = Bun.spawn(argv, { stdin: "inherit", stdout: "inherit", stderr: "inherit", env: process.env });
    const forward = (sig: (typeof SIGNALS)[number]) => () => child.kill(sig);
    const handlers = SIGNALS.map((s) => [s, forward(s)] as const);
    for (const [s, h] of handlers) process.on(s, h);
    const code = await child.exited;
    for (const [s, h] of handlers) process.off(s, h);
    try {
      await callUnix(join(places.runDir, "agent.sock"), "the agent", "POST", "/v1/run/release", { workload });
    } catch {
      // the agent sweeps empty workload cgroups itself as well
    }
    if (child.signalCode !== null) return 128 + ((constants.signals as Record<string, number>)[child.signalCode] ?? 0);
    return code;
  },
};
