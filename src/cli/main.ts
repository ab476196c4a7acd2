/**
 * The `tidegate` entry point. Exit codes: 0 ok, 1 failure, 2 usage. Errors go to stderr, name the
 * bad input and carry the error's stable code; stack traces only with TIDEGATE_DEBUG=1. Nothing
 * written to stderr carries a control, C1, bidi or other format character as itself (terminalSafe).
 */
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, type Command, type Output } from "./command.ts";
import { renderHelp } from "./help.ts";
import { route } from "./router.ts";
import { UsageError } from "./usage-error.ts";
import { placesFromValues } from "./global-options.ts";
import { versionCommand, versionLine } from "./version.ts";
import { svidCommand } from "./svid.ts";
import { serverCommand } from "./server.ts";
import { entryCommand } from "./entry.ts";
import { tokenCommand } from "./token.ts";
import { agentCommand } from "./agent.ts";
import { statusCommand } from "./status.ts";
import { attestCommand } from "./attest.ts";
import { policyCommand } from "./policy.ts";
import { launchCommand } from "./launch.ts";
import { runCommand } from "./run.ts";
import { secretCommand } from "./secret.ts";
import { auditCommand } from "./audit.ts";
import { mcpCommand } from "./mcp.ts";
import { downCommand, upCommand } from "./up.ts";
import { demoCommand } from "./demo.ts";
import { terminalSafe, TidegateError } from "../errors.ts";
import { stdOutput } from "./std-output.ts";

export const rootCommand: Command = {
  name: "tidegate",
  summary: "workload identity, capture, mutual TLS and MCP tool policy for AI agents and MCP servers",
  usage: ["COMMAND [OPTIONS]", "--version"],
  help: "Every command answers --help. Exit codes: 0 ok, 1 failure, 2 usage error.",
  options: { version: { type: "boolean", help: "print the version line and exit" } },
  subcommands: [demoCommand, upCommand, downCommand, svidCommand, versionCommand, serverCommand, entryCommand, tokenCommand, agentCommand, statusCommand, attestCommand, policyCommand, secretCommand, auditCommand, mcpCommand, runCommand, launchCommand],
};

export async function main(argv: readonly string[], stdio: Output, env: Record<string, string | undefined>): Promise<number> {
  // Errors and warnings quote what they were given (a file's key, an argument, an agent's answer):
  // none of it may drive the terminal, whichever message forgot to quote it (src/errors.ts).
  const io: Output = { out: (text) => stdio.out(text), err: (text) => stdio.err(terminalSafe(text)) };
  let path: readonly string[] = [];
  let command: Command = rootCommand;
  try {
    const routed = route(rootCommand, argv);
    ({ path, command } = routed);
    if (routed.values.help) {
      io.out(renderHelp(command, path));
      return EXIT_OK;
    }
    if (command === rootCommand && routed.values.version) {
      io.out(versionLine() + "\n");
      return EXIT_OK;
    }
    if (command.run === undefined) {
      if (routed.positionals.length === 0 && path.length === 0 && argv.length === 0) {
        io.err(renderHelp(command, path));
        return EXIT_USAGE;
      }
      throw new UsageError(`${path.length ? `"${path.join(" ")}" needs` : "missing"} a command`);
    }
    const places = placesFromValues(routed.values, env);
    return await command.run({ values: routed.values, positionals: routed.positionals, places, io });
  } catch (e) {
    const where = ["tidegate", ...(e instanceof UsageError && e.path !== undefined ? e.path : path)].join(" ");
    if (e instanceof UsageError || (e instanceof TidegateError && e.code === "instance_bad_name")) {
      io.err(`${where}: ${e.message}\nrun '${where} --help' for usage\n`);
      return EXIT_USAGE;
    }
    if (e instanceof TidegateError) {
      io.err(`${where}: ${e.message} [${e.code}]\n`);
      return EXIT_FAILURE;
    }
    const err = e instanceof Error ? e : new Error(String(e));
    io.err(`${where}: internal error: ${err.message}\n${env.TIDEGATE_DEBUG === "1" ? `${err.stack}\n` : ""}`);
    return EXIT_FAILURE;
  }
}

if (import.meta.main) {
  // A reader that leaves early (`| head -1`) ends output quietly: see ./std-output.ts.
  const io: Output = stdOutput();
  const code = await main(process.argv.slice(2), io, process.env);
  process.exitCode = code;
}
