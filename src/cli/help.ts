import type { Command, OptionSpec } from "./command.ts";
import { GLOBAL_OPTIONS } from "./global-options.ts";

function optionLines(options: Readonly<Record<string, OptionSpec>>): string[] {
  const rows = Object.entries(options).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : "    "}--${name}${o.value ? ` ${o.value}` : ""}`;
    return [flag, o.help + (o.multiple ? " (repeatable)" : "")] as const;
  });
  const width = Math.max(0, ...rows.map(([f]) => f.length));
  return rows.map(([f, h]) => `  ${f.padEnd(width)}  ${h}`);
}

/** The text `--help` prints for a command found at `path` (e.g. ["svid", "verify"]). */
export function renderHelp(cmd: Command, path: readonly string[]): string {
  const lines: string[] = [];
  lines.push(...cmd.usage.map((u, i) => `${i === 0 ? "usage:" : "      "} tidegate ${u}`));
  lines.push("", cmd.summary);
  if (cmd.help) lines.push("", cmd.help.trimEnd());
  const shown = (cmd.subcommands ?? []).filter((c) => !c.hidden);
  if (shown.length) {
    lines.push("", "commands:");
    const width = Math.max(...shown.map((c) => c.name.length));
    for (const c of shown) lines.push(`  ${c.name.padEnd(width)}  ${c.summary}`);
    const where = path.length ? `${path.join(" ")} ` : "";
    lines.push("", `run 'tidegate ${where}COMMAND --help' for a command's options.`);
  }
  if (cmd.options && Object.keys(cmd.options).length) lines.push("", "options:", ...optionLines(cmd.options));
  lines.push("", "global options:", ...optionLines(GLOBAL_OPTIONS));
  return lines.join("\n") + "\n";
}
