/**
 * `tidegate __launch`: the process side of `tidegate run`, not for people (hidden from help once
 * Command has a `hidden` flag). `tidegate run` re-executes this binary with it (launcherArgv in
 * ../run/launcher.ts); it joins the cgroup, drops to the user and execs the command, so on
 * success the command's own exit code and signals are the process's. Its own failures exit 126
 * (127 when the command is not found), as a shell's do, so they never look like a 0 or 1 of the
 * command; the message goes to stderr.
 */
import { writeSync } from "node:fs";
import type { Command, Context } from "./command.ts";
import { quote } from "../errors.ts";
import { EXIT_CANNOT_RUN, exitCodeFor, RunError } from "../run/errors.ts";
import { launch, type LaunchRequest } from "../run/launcher.ts";

const ID = /^[0-9]{1,10}$/;

function id(value: unknown, flag: string): number {
  if (typeof value !== "string") throw new RunError("run_bad_request", `run: --${flag} is required`);
  if (!ID.test(value) || Number(value) > 0xfffffffe) throw new RunError("run_bad_request", `run: --${flag} ${quote(value)} is not a numeric id`);
  return Number(value);
}

/** The launch request a `__launch` command line names; throws RunError `run_bad_request`. */
export function launchRequest(ctx: Pick<Context, "values" | "positionals">): LaunchRequest {
  const dir = ctx.values["cgroup-dir"];
  if (typeof dir !== "string" || !dir.startsWith("/")) throw new RunError("run_bad_request", "run: --cgroup-dir needs an absolute path");
  const groups = ctx.values.groups;
  const caBundle = ctx.values["ca-bundle"];
  if (caBundle !== undefined && (typeof caBundle !== "string" || !caBundle.startsWith("/"))) throw new RunError("run_bad_request", "run: --ca-bundle needs an absolute path");
  return {
    cgroupDir: dir,
    uid: id(ctx.values.uid, "uid"),
    gid: id(ctx.values.gid, "gid"),
    ...(typeof groups === "string" ? { groups: groups === "" ? [] : groups.split(",").map((g) => id(g, "groups")) } : {}),
    allowRoot: ctx.values["allow-root"] === true,
    ...(typeof ctx.values.cwd === "string" ? { cwd: ctx.values.cwd } : {}),
    ...(typeof ctx.values["env-fd"] === "string" ? { envFd: id(ctx.values["env-fd"], "env-fd") } : {}),
    ...(typeof caBundle === "string" ? { caBundle } : {}),
    ...(ctx.values.tty === true ? { tty: true } : {}),
    command: [...ctx.positionals],
  };
}

export const launchCommand: Command = {
  name: "__launch",
  hidden: true,
  summary: "internal: the process side of 'tidegate run'",
  usage: ["__launch --cgroup-dir DIR --uid N --gid N [--groups G,...] [--allow-root] [--cwd DIR] [--env-fd N] [--ca-bundle FILE] [--tty] -- COMMAND [ARGS...]"],
  help: [
    "Run by 'tidegate run' as root, not by hand. Joins cgroup DIR, sets no_new_privs, drops every",
    "capability, becomes uid N and gid N with the user's groups from /etc/group (or exactly --groups),",
    "checks all of it in /proc, then execs COMMAND (looked up in PATH) with this environment minus",
    "TIDEGATE_* variables (with --ca-bundle, SSL_CERT_FILE, NODE_EXTRA_CA_CERTS, REQUESTS_CA_BUNDLE",
    "and CURL_CA_BUNDLE set to FILE). uid 0 is refused unless --allow-root (uncontained). Exit codes:",
    "the command's own; 126 when it could not be run as required, 127 when it was not found.",
  ].join("\n"),
  options: {
    "cgroup-dir": { type: "string", value: "DIR", help: "the workload's cgroup directory (absolute; must exist)" },
    uid: { type: "string", value: "N", help: "numeric user id to run as" },
    gid: { type: "string", value: "N", help: "numeric primary group id" },
    groups: { type: "string", value: "G,...", help: "exactly these supplementary group ids (empty: none)" },
    "allow-root": { type: "boolean", help: "allow uid 0 (the command is uncontained)" },
    cwd: { type: "string", value: "DIR", help: "enter DIR after dropping privileges (the user's own access is checked)" },
    "env-fd": { type: "string", value: "N", help: "read the command's environment (NUL-separated) from descriptor N instead of this process's" },
    "ca-bundle": { type: "string", value: "FILE", help: "set SSL_CERT_FILE, NODE_EXTRA_CA_CERTS, REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE to FILE (absolute)" },
    tty: { type: "boolean", help: "descriptor 0 is the run's own pseudo-terminal: make it the controlling terminal after setsid" },
  },
  run: async (ctx) => {
    try {
      launch(launchRequest(ctx), { warn: (text) => void writeSync(2, text) });
    } catch (e) {
      if (e instanceof RunError) {
        ctx.io.err(`tidegate ${e.message} [${e.code}]\n`);
        return exitCodeFor(e);
      }
      ctx.io.err(`tidegate run: internal error before exec: ${e instanceof Error ? e.message : String(e)}\n`);
      return EXIT_CANNOT_RUN;
    }
  },
};
