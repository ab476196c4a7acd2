/**
 * Long-running tidegate processes for end-to-end tests: started from the built binary, their
 * output kept for the test's failure message, stopped (SIGTERM, then SIGKILL) at the end.
 */
import type { Subprocess } from "bun";
import { requireBinary, REPO } from "./binary.ts";

export interface Running {
  readonly proc: Subprocess<"ignore", "pipe", "pipe">;
  /** What it printed so far: the pipes are read as they fill, so this may lag what was written. */
  output(): string;
  /**
   * Its exit code, once it has exited and its output has been read to the end: the end of both
   * pipes, which a child that inherited them (a workload of `tidegate run`) may hold open after
   * it. Read the output after this, not after `proc.exited`, to see all of it.
   */
  ended(): Promise<number>;
  stop(signal?: NodeJS.Signals): Promise<number>;
}

/** `tidegate ARGS`; with `prefix` (say `nsenter --net=...`), `PREFIX tidegate ARGS`. */
export function startTidegate(args: readonly string[], env: Record<string, string> = {}, prefix: readonly string[] = []): Running {
  return tracked(
    Bun.spawn([...prefix, requireBinary(), ...args], {
      cwd: REPO,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    }),
  );
}

/** `proc` as a Running: its output read as it comes, stopped with SIGTERM, then SIGKILL after 5 s. */
export function tracked(proc: Subprocess<"ignore", "pipe", "pipe">): Running {
  let out = "";
  const decoder = new TextDecoder();
  const drain = async (s: ReadableStream<Uint8Array>) => {
    const reader = s.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      out += decoder.decode(value, { stream: true });
    }
  };
  const drained = Promise.all([drain(proc.stdout), drain(proc.stderr)]);
  return {
    proc,
    output: () => out,
    ended: async () => {
      const code = await proc.exited;
      await drained;
      return code;
    },
    stop: async (signal = "SIGTERM") => {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode ?? -1;
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
      const code = await proc.exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/**
 * Polls `probe` until it returns a value other than undefined, or fails after `ms` with `what`.
 * With `watch`, fails at once (with the process's output) when that process has exited.
 */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, ms = 15_000, every = 100, watch?: Running): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    if (watch !== undefined && (watch.proc.exitCode !== null || watch.proc.signalCode !== null)) {
      throw new Error(`waiting for ${what}: the process exited (${watch.proc.exitCode ?? watch.proc.signalCode}); its output:\n${watch.output()}`);
    }
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await Bun.sleep(every);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}
