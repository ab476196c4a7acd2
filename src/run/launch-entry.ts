/**
 * For tests until `__launch` is among main.ts's subcommands: `bun src/run/launch-entry.ts __launch
 * ...` routes the arguments through the CLI's router to the same command main.ts would run.
 */
import type { Command, Output } from "../cli/command.ts";
import { launchCommand } from "../cli/launch.ts";
import { route } from "../cli/router.ts";
import { placesFor } from "../runtime/instance.ts";

if (import.meta.main) {
  const root: Command = { name: "tidegate", summary: "", usage: [], subcommands: [launchCommand] };
  const io: Output = { out: (t) => void process.stdout.write(t), err: (t) => void process.stderr.write(t) };
  const routed = route(root, process.argv.slice(2));
  process.exitCode = await routed.command.run!({ values: routed.values, positionals: routed.positionals, places: placesFor(null), io });
}
