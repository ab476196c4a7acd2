// The demo's MCP server as a process (`tidegate demo mcp-server`, from source), spoken to over its
// stdin and stdout as an MCP host does, with a plain local HTTP server standing in for the API.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { linesOf } from "./mcp-host.ts";

const MAIN = join(import.meta.dir, "..", "cli", "main.ts");
let api: ReturnType<typeof Bun.serve>;
const seen: { host: string | null; authorization: string | null; url: string }[] = [];

beforeAll(() => {
  api = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      seen.push({ host: req.headers.get("host"), authorization: req.headers.get("authorization"), url: req.url });
      return Response.json({ city: "x", celsius: 20, sky: "clear" });
    },
  });
});
afterAll(() => void api.stop(true));

/** Sends `messages` one line each, closes stdin, and collects every answer and the stderr lines. */
async function session(messages: unknown[]): Promise<{ answers: any[]; stderr: string[]; code: number }> {
  const proc = Bun.spawn([process.execPath, MAIN, "demo", "mcp-server", "--api-name", "api.test", "--api-address", "127.0.0.1", "--api-port", String(api.port)], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  for (const m of messages) proc.stdin.write((typeof m === "string" ? m : JSON.stringify(m)) + "\n");
  proc.stdin.end();
  const answers: any[] = [];
  for await (const l of linesOf(proc.stdout)) answers.push(JSON.parse(l));
  const stderr = (await new Response(proc.stderr).text()).trim().split("\n");
  return { answers, stderr, code: await proc.exited };
}

describe("demo mcp-server", () => {
  test("initialize, tools/list and a get_forecast that asks the API with no credential", async () => {
    const before = seen.length;
    const r = await session([
      { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "t", version: "1" } } },
      { jsonrpc: "2.0", method: "notifications/initialized" },
      { jsonrpc: "2.0", id: 2, method: "tools/list" },
      { jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "get_forecast", arguments: { city: "Faro & Co" } } },
    ]);
    expect(r.code).toBe(0);
    const byId = new Map(r.answers.map((a) => [a.id, a]));
    expect(byId.get(1).result.serverInfo.name).toBe("forecast-mcp");
    expect(byId.get(2).result.tools.map((t: any) => t.name)).toEqual(["get_forecast", "fetch_url", "delete_all_forecasts"]);
    expect(byId.get(3).result.content[0].text).toStartWith("200 {");
    expect(seen.slice(before)).toEqual([{ host: `api.test:${api.port}`, authorization: null, url: `http://api.test:${api.port}/v1/forecast?city=Faro%20%26%20Co` }]);
    expect(r.stderr).toContain("forecast-mcp: received tools/call get_forecast");
    expect(r.stderr).toContain("forecast-mcp: received notifications/initialized");
    expect(r.stderr[0]).toMatch(/^forecast-mcp: pid \d+$/);
  });

  test("fetch_url takes http:// only; an unreachable URL is a tool error, not a crash", async () => {
    const r = await session([
      { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "fetch_url", arguments: { url: "file:///etc/passwd" } } },
      { jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "fetch_url", arguments: { url: "http://127.0.0.1:1/" } } },
    ]);
    const byId = new Map(r.answers.map((a) => [a.id, a]));
    expect(byId.get(1).result).toEqual({ content: [{ type: "text", text: "fetch_url takes an http:// URL" }], isError: true });
    expect(byId.get(2).result.isError).toBe(true);
    expect(byId.get(2).result.content[0].text).toStartWith("could not fetch http://127.0.0.1:1/");
  });

  test("bad JSON, unknown methods and unknown tools get JSON-RPC answers; it ends at EOF", async () => {
    const r = await session(["{not json", { jsonrpc: "2.0", id: 7, method: "resources/list" }, { jsonrpc: "2.0", id: 8, method: "tools/call", params: { name: "nope" } }, { jsonrpc: "2.0", id: 9, method: "ping" }]);
    expect(r.code).toBe(0);
    expect(r.answers).toContainEqual({ jsonrpc: "2.0", id: null, error: { code: -32700, message: "parse error" } });
    expect(r.answers).toContainEqual({ jsonrpc: "2.0", id: 7, error: { code: -32601, message: "method not found: resources/list" } });
    expect(r.answers.find((a) => a.id === 8).result.isError).toBe(true);
    expect(r.answers).toContainEqual({ jsonrpc: "2.0", id: 9, result: {} });
  });
});
