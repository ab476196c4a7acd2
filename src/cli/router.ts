/**
 * Finds the verb an argument list names and parses the rest against that verb's options plus the
 * global ones. Global flags may stand before or after the verb; `--` ends option parsing. An
 * unknown verb is a usage error naming it, with the nearest listed verbs ("did you mean").
 */
import { printable } from "../errors.ts";
import { parseArgs } from "node:util";
import type { Command, OptionSpec } from "./command.ts";
import { GLOBAL_OPTIONS } from "./global-options.ts";
import { UsageError } from "./usage-error.ts";
import { didYouMean, nearest } from "../policy/nearest.ts";

export interface Routed {
  readonly command: Command;
  readonly path: readonly string[];
  readonly values: Record<string, string | boolean | string[] | undefined>;
  readonly positionals: string[];
}

function optionsOf(cmd: Command): Record<string, OptionSpec> {
  return { ...GLOBAL_OPTIONS, ...(cmd.options ?? {}) };
}

function takesValue(token: string, options: Record<string, OptionSpec>): boolean {
  if (token.includes("=")) return false;
  if (token.startsWith("--")) return options[token.slice(2)]?.type === "string";
  const short = token.slice(1);
  return Object.values(options).some((o) => o.short === short && o.type === "string");
}

function parseErrorMessage(e: unknown): string {
  const raw = e instanceof Error ? e.message : String(e);
  // Node's hints name its own "--" convention, not tidegate's options: dropped.
  const text = raw.replace(/'/g, '"').replace(/\. This command does not take positional arguments/, "").replace(/\. To specify a positional argument starting with a .*$/s, "");
  // It quotes the option as typed: printable ASCII only (src/errors.ts), cut as quote() cuts.
  const cut = text.replace(/"([^"]{100})[^"]+"/g, '"$1..."');
  return printable(cut.charAt(0).toLowerCase() + cut.slice(1));
}

export function route(root: Command, argv: readonly string[]): Routed {
  let command = root;
  const path: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]!;
    if (token === "--") {
      rest.push(...argv.slice(i));
      break;
    }
    if (token.startsWith("-") && token !== "-") {
      rest.push(token);
      if (takesValue(token, optionsOf(command)) && i + 1 < argv.length) rest.push(argv[++i]!);
      continue;
    }
    const sub = command.subcommands?.find((c) => c.name === token);
    if (sub) {
      command = sub;
      path.push(token);
      continue;
    }
    if (command.run === undefined) {
      const where = path.length ? `tidegate ${path.join(" ")}` : "tidegate";
      const near = token === "help" ? ["--help"] : nearest(token, (command.subcommands ?? []).filter((c) => !c.hidden).map((c) => c.name));
      throw new UsageError(`unknown command ${JSON.stringify(token.slice(0, 64))} for ${where}${didYouMean(near)}`, path);
    }
    rest.push(...argv.slice(i));
    break;
  }
  const options = optionsOf(command);
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      options: Object.fromEntries(
        Object.entries(options).map(([k, o]) => [k, { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) }]),
      ),
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    throw new UsageError(parseErrorMessage(e), path);
  }
  return { command, path, values: parsed.values as Routed["values"], positionals: parsed.positionals };
}
