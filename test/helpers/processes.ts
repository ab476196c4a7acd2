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

/**
 * Python (ctypes) that defines `clone3(tid)`: clone3(2) with set_tid, a child at pid `tid`; returns
 * (result, errno) as fork does (0 in the child). Root needs CAP_SYS_ADMIN over the pid namespace.
 * Spliced into the tests' drivers that reuse a pid on purpose.
 */
export const CLONE3_PY_DEF = `
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def clone3(tid):
    tids = (ctypes.c_int * 1)(tid)
    args = struct.pack("=11Q", 0, 0, 0, 0, 17, 0, 0, 0, ctypes.addressof(tids), 1, 0)
    buf = ctypes.create_string_buffer(args, len(args))
    return libc.syscall(ctypes.c_long(435), buf, ctypes.c_size_t(len(args))), ctypes.get_errno()
`;
