/**
 * The process's stdout and stderr as the CLI's Output (main.ts), for a reader that goes away
 * early: `tidegate --help | true`, `audit verify | head -1`, `audit tail -f | grep -m1 deny`.
 *
 * Guaranteed: a closed stdout or stderr (EPIPE) ends that stream quietly, as coreutils do: no
 * stack trace, and every later write to it is dropped. A closed stdout also stops the command as
 * SIGTERM would, through the command's own handlers when it has some (tail -f ends, the demo
 * stops its workloads and cleans up), so it exits with the status that stop gives; a command
 * without such handlers runs to its end and keeps its status. A closed stderr stops nothing (a
 * daemon whose log reader left keeps enforcing). Any other write error is thrown, never
 * swallowed. The listeners are on the process's streams, so code that writes to them directly
 * (the demo's mcp-host and mcp-server) is covered too.
 */
import type { Output } from "./command.ts";

/** What this needs of process.stdout and process.stderr. */
export interface WriteStream {
  write(text: string): unknown;
  on(event: "error", listener: (e: Error) => void): unknown;
}

const isEpipe = (e: unknown): boolean => (e as { code?: unknown } | null)?.code === "EPIPE";

/** Stops the command as SIGTERM would, when it listens for SIGTERM; otherwise it runs to its end. */
function stopAsOnSigterm(): void {
  if (process.listenerCount("SIGTERM") > 0) process.emit("SIGTERM", "SIGTERM");
}

export function stdOutput(streams: { out: WriteStream; err: WriteStream } = { out: process.stdout, err: process.stderr }, onOutClosed: () => void = stopAsOnSigterm): Output {
  const closed = { out: false, err: false };
  const closing = (which: "out" | "err") => (e: unknown) => {
    if (!isEpipe(e)) throw e;
    if (closed[which]) return;
    closed[which] = true;
    if (which === "out") onOutClosed();
  };
  const onOut = closing("out");
  const onErr = closing("err");
  streams.out.on("error", onOut);
  streams.err.on("error", onErr);
  // Bun reports a write to a closed pipe as an "error" event; a synchronous throw is taken alike.
  const writer = (which: "out" | "err", s: WriteStream, on: (e: unknown) => void) => (text: string) => {
    if (closed[which]) return;
    try {
      s.write(text);
    } catch (e) {
      on(e);
    }
  };
  return { out: writer("out", streams.out, onOut), err: writer("err", streams.err, onErr) };
}
