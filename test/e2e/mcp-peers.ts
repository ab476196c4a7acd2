/**
 * The MCP servers of the MCP end-to-end test (mcp.test.ts, stand: mcp-setup.ts), each its own
 * process, run with this Bun from node_modules (no network at test time):
 * - server-everything (`@modelcontextprotocol/server-everything`, the reference server of the MCP
 *   project) in streamableHttp mode, endpoint /mcp. It has no setting for its address (PORT only;
 *   express's `app.listen(PORT)` takes every interface), so it is started through a one-line
 *   `bun -e` that makes `http.Server.listen(port, ...)` bind 127.0.0.1 before importing its
 *   transport module; its environment is PATH and PORT only (its get-env tool prints it). It
 *   logs `Received MCP POST request` on stdout for every POST, which the test counts.
 * - the pinned server (mcp-pinned-server.ts), whose `lookup` description the test changes.
 */
import { collectOutput } from "../helpers/e2e-kit.ts";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { REPO } from "../helpers/binary.ts";

export const EVERYTHING = join(REPO, "node_modules", "@modelcontextprotocol", "server-everything", "dist", "transports", "streamableHttp.js");
const PINNED = join(import.meta.dir, "mcp-pinned-server.ts");

/** Binds what express passes as `listen(port, callback)` to 127.0.0.1, then runs the transport module. */
export const LOOPBACK_ONLY = `import http from "node:http";
const listen = http.Server.prototype.listen;
http.Server.prototype.listen = function (...a) {
  if (typeof a[0] === "number" || typeof a[0] === "string") a.splice(1, 0, "127.0.0.1");
  return listen.apply(this, a);
};
await import(process.env.TG_E2E_ENTRY);`;

export interface Peer {
  readonly port: number;
  readonly proc: Subprocess<"ignore", "pipe", "pipe">;
  /** Everything it wrote on stdout and stderr, interleaved as it came. */
  output(): string;
  stop(): Promise<void>;
}

export interface PinnedPeer extends Peer {
  /** The JSON lines it printed (mcp-pinned-server.ts lists them). */
  records(): { event: string; [k: string]: unknown }[];
}

export { freePort } from "../helpers/e2e-kit.ts";

function spawn(argv: string[], env: Record<string, string>, port: number): Peer {
  const proc = Bun.spawn(argv, { cwd: REPO, env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const output = collectOutput([proc.stdout, proc.stderr]);
  return {
    port,
    proc,
    output,
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
      await proc.exited;
      clearTimeout(timer);
    },
  };
}

/** Polls until HOST:PORT answers HTTP on /mcp (any status), failing with the process's output. */
async function waitListening(what: string, peer: Peer, host: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  let last = "";
  while (Date.now() < deadline) {
    if (peer.proc.exitCode !== null || peer.proc.signalCode !== null) {
      throw new Error(`${what} exited (${peer.proc.exitCode ?? peer.proc.signalCode}) before it listened; its output:\n${peer.output()}`);
    }
    try {
      await fetch(`http://${host}:${peer.port}/mcp`, { signal: AbortSignal.timeout(1000) });
      return;
    } catch (e) {
      last = String(e);
    }
    await Bun.sleep(100);
  }
  await peer.stop();
  throw new Error(`${what} did not listen on ${host}:${peer.port} within ${ms} ms (${last}); its output:\n${peer.output()}`);
}

/** server-everything on 127.0.0.1:PORT, once it accepts connections. */
export async function startEverything(port: number): Promise<Peer> {
  const peer = spawn([process.execPath, "-e", LOOPBACK_ONLY], { PATH: "/usr/bin:/bin", PORT: String(port), TG_E2E_ENTRY: EVERYTHING }, port);
  await waitListening("server-everything", peer, "127.0.0.1");
  return peer;
}

/** mcp-pinned-server.ts on HOST:PORT, `lookup` described by DESCRIPTION_FILE, once it listens. */
export async function startPinnedServer(host: string, port: number, descriptionFile: string): Promise<PinnedPeer> {
  const peer = spawn([process.execPath, PINNED, host, String(port), descriptionFile], { PATH: "/usr/bin:/bin" }, port);
  await waitListening("the pinned MCP server", peer, host);
  return {
    ...peer,
    records: () =>
      peer
        .output()
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as { event: string; [k: string]: unknown }),
  };
}
