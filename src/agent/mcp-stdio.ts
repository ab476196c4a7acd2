/**
 * `tidegate run --mcp-stdio`: the agent between the launching client's stdin and stdout (the
 * descriptors it sent over run.sock) and the server's (pipes the agent made), each line through
 * the gate (src/proxy/mcp/stdio-relay.ts).
 *
 * The caller's descriptors are plain blocking pipes or terminals that Bun cannot poll reliably, so
 * each is bridged by `cat` in a process of its own (reading the caller's stdin into a pipe the
 * agent polls; writing a pipe the agent fills to the caller's stdout): a slow or stuck client
 * blocks its own bridge, never the agent. The descriptors are closed in the agent as soon as the
 * bridges hold them.
 *
 * Every second the relay looks whether a reload, a registration change or an approval changed what
 * the client may list, and tells it (StdioRelay.announce).
 *
 * Ends: the client's EOF closes the server's stdin; the server's stdout EOF (it exited, or closed
 * it) ends the client's stdout; then the reading bridge is stopped. Resolves when both directions
 * are done; `run_mcp_ended` logs what the relay refused and dropped.
 */
import type { Subprocess } from "bun";
import type { McpGate } from "../mcp/index.ts";
import type { Logger } from "../runtime/log.ts";
import * as u from "../runtime/unix-fds.ts";
import { StdioRelay, type LineSink } from "../proxy/mcp/stdio-relay.ts";

const CAT = "/bin/cat";

/** How often a stdio relay looks whether the client should be told a list changed (StdioRelay.announce). */
const ANNOUNCE_EVERY_MS = 1000;

/** A Bun subprocess's stdin as a LineSink; a write to a closed pipe ends it quietly (the reader is gone). */
function sinkOf(stdin: import("bun").FileSink): LineSink {
  let broken = false;
  return {
    async write(bytes) {
      if (broken) return;
      try {
        stdin.write(bytes);
        await stdin.flush();
      } catch {
        broken = true;
      }
    },
    async end() {
      if (broken) return;
      broken = true;
      try {
        await stdin.end();
      } catch {
        // already closed
      }
    },
  };
}

export async function relayStdio(gate: McpGate, server: Subprocess, caller: { stdin: number; stdout: number }, logger: Logger, who: Record<string, unknown>): Promise<void> {
  let fromCaller: Subprocess<number, "pipe", "ignore"> | null = null;
  let toCaller: Subprocess<"pipe", number, "ignore"> | null = null;
  try {
    fromCaller = Bun.spawn([CAT], { stdin: caller.stdin, stdout: "pipe", stderr: "ignore", env: { PATH: "/usr/bin:/bin" } });
    toCaller = Bun.spawn([CAT], { stdin: "pipe", stdout: caller.stdout, stderr: "ignore", env: { PATH: "/usr/bin:/bin" } });
  } catch (e) {
    logger.error("run_mcp_relay_failed", { ...who, error: `cannot start the bridge: ${e instanceof Error ? e.message : String(e)}`, effect: "the server is hung up" });
    fromCaller?.kill();
    server.kill("SIGHUP");
    return;
  } finally {
    u.closeFd(caller.stdin);
    u.closeFd(caller.stdout);
  }
  const relay = new StdioRelay(gate, sinkOf(server.stdin as import("bun").FileSink), sinkOf(toCaller.stdin));
  const up = relay.fromClient(fromCaller.stdout).catch((e: unknown) => logger.warn("run_mcp_relay_failed", { ...who, direction: "to_server", error: e instanceof Error ? e.message : String(e) }));
  const down = relay.fromServer(server.stdout as ReadableStream<Uint8Array>).catch((e: unknown) => logger.warn("run_mcp_relay_failed", { ...who, direction: "to_client", error: e instanceof Error ? e.message : String(e) }));
  // A reload (or a registration change, an approval) that changes what the client may list: it is told.
  const announcing = setInterval(() => relay.announce(), ANNOUNCE_EVERY_MS);
  await down;
  clearInterval(announcing);
  await server.exited;
  fromCaller.kill();
  await Promise.all([up, fromCaller.exited, toCaller.exited]);
  logger.info("run_mcp_ended", { ...who, refused: relay.refused, dropped: relay.dropped, announced: relay.announced });
}
