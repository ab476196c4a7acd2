/**
 * The command tree. Each verb declares its options, usage and help; routing, `--help` and the
 * global flags are handled once in main.ts, so every verb answers `--help` the same way.
 */
import type { Places } from "../runtime/instance.ts";

export interface OptionSpec {
  readonly type: "string" | "boolean";
  readonly short?: string;
  readonly multiple?: boolean;
  /** Shown in help: what the value is, e.g. "FILE". */
  readonly value?: string;
  readonly help: string;
}

export interface Output {
  out(text: string): void;
  err(text: string): void;
}

export interface Context {
  readonly values: Readonly<Record<string, string | boolean | string[] | undefined>>;
  readonly positionals: readonly string[];
  readonly places: Places;
  readonly io: Output;
}

export interface Command {
  readonly name: string;
  readonly summary: string;
  /** Lines after "usage: tidegate ", e.g. ["svid inspect [--json] FILE"]. */
  readonly usage: readonly string[];
  /** Longer text shown by --help: what the verb does, what it prints, its exit codes. */
  readonly help?: string;
  readonly options?: Readonly<Record<string, OptionSpec>>;
  readonly subcommands?: readonly Command[];
  /** Not listed in help (internal verbs such as `__launch`). */
  readonly hidden?: boolean;
  /** Returns the exit code: 0 ok, 1 failure (usage errors throw UsageError, exit 2). */
  readonly run?: (ctx: Context) => Promise<number>;
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
