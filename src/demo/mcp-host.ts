/**
 * `tidegate demo mcp-host`: the demo's AI agent (issue 11), run as workload demo-agent. It is the
 * MCP host of the forecast server: it starts the server through `tidegate run --mcp-stdio` (so the
 * agent attests it, applies the stdio rule and sits on the pipes), then lists the tools and calls
 * three of them. It reports each step as one JSON line on stdout for `tidegate demo` to show; after
 * the tool list it waits for a line on stdin, so the demo can look at the server's environment
 * while the server runs.
 */
import { createInterface } from "node:readline";
import { lines } from "../proxy/mcp/stdio-relay.ts";
import { MAX_MCP_BODY } from "../proxy/mcp/http-filter.ts";

type Json = Record<string, any>;

export interface McpHostOptions {
  /** The command that starts the server: `tidegate run --mcp-stdio ... -- SERVER ...`. */
  readonly command: readonly string[];
  readonly city: string;
  readonly unlistedUrl: string;
}

/** Lines of a byte stream as text, as they come (the stdio relay's splitter; over-long lines dropped). */
export async function* linesOf(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  for await (const line of lines(stream, MAX_MCP_BODY)) if (line !== null) yield decoder.decode(line);
}

export async function runMcpHost(o: McpHostOptions): Promise<number> {
  const report = (step: string, fields: Json) => void process.stdout.write(JSON.stringify({ step, ...fields }) + "\n");
  const child = Bun.spawn([...o.command], { stdin: "pipe", stdout: "pipe", stderr: "pipe", env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } });
  const serverLog: string[] = [];
  let serverPid: number | null = null;
  let pidSeen: () => void = () => undefined;
  const pidKnown = new Promise<void>((r) => (pidSeen = r));
  const stderrDone = (async () => {
    for await (const line of linesOf(child.stderr)) {
      serverLog.push(line);
      const m = /^forecast-mcp: pid (\d+)$/.exec(line);
      if (m !== null) {
        serverPid = Number(m[1]);
        pidSeen();
      }
    }
  })();
  const answers = new Map<number, (m: Json) => void>();
  const stdoutDone = (async () => {
    for await (const line of linesOf(child.stdout)) {
      let m: Json;
      try {
        m = JSON.parse(line) as Json;
      } catch {
        continue;
      }
      if (typeof m.id === "number") answers.get(m.id)?.(m);
    }
  })();
  let nextId = 1;
  const request = (method: string, params: Json): Promise<Json> => {
    const id = nextId++;
    const answer = new Promise<Json>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer to ${method} in 20 s`)), 20_000);
      answers.set(id, (m) => {
        clearTimeout(timer);
        resolve(m);
      });
    });
    child.stdin.write(JSON.stringify({ jsonrpc: "2.0", id, method, params }) + "\n");
    child.stdin.flush();
    return answer;
  };
  const notify = (method: string) => {
    child.stdin.write(JSON.stringify({ jsonrpc: "2.0", method }) + "\n");
    child.stdin.flush();
  };
  try {
    const init = await request("initialize", { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "tidegate-demo-agent", version: "1.0.0" } });
    if (init.error) throw new Error(`initialize refused: ${JSON.stringify(init.error)}`);
    notify("notifications/initialized");
    const list = await request("tools/list", {});
    let wait: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([pidKnown, new Promise<void>((r) => (wait = setTimeout(r, 5000)))]);
    clearTimeout(wait);
    report("list", { tools: (list.result?.tools ?? []).map((t: Json) => t.name), error: list.error ?? null, server_pid: serverPid });
    // The demo looks at the server's environment now; it writes a line when it is done.
    const go = createInterface({ input: process.stdin });
    await new Promise<void>((resolve) => {
      go.once("line", () => resolve());
      go.once("close", () => resolve());
    });
    go.close();
    process.stdin.destroy(); // nothing more is read: let the process end
    for (const [name, args] of [
      ["get_forecast", { city: o.city }],
      ["fetch_url", { url: o.unlistedUrl }],
      ["delete_all_forecasts", {}],
    ] as const) {
      const r = await request("tools/call", { name, arguments: args });
      report("call", { tool: name, result: r.result ?? null, error: r.error ?? null });
    }
  } catch (e) {
    report("failed", { error: (e as Error).message });
  }
  child.stdin.end();
  // MCP's stdio shutdown: close the server's stdin, wait for it to exit, then SIGTERM.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const code = await Promise.race([child.exited, new Promise<null>((r) => (timer = setTimeout(() => r(null), 10_000)))]);
  clearTimeout(timer);
  if (code === null) child.kill("SIGTERM");
  await Promise.all([stdoutDone, stderrDone]).catch(() => undefined);
  report("done", { exit: code, server_log: serverLog });
  return 0;
}
