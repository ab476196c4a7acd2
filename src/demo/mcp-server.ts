/**
 * `tidegate demo mcp-server`: the small stdio MCP server built into the binary for `tidegate demo`
 * (issue 11). Newline-delimited JSON-RPC on stdin and stdout (MCP's stdio transport), three tools:
 *
 *   get_forecast {city}   asks the forecast API over plain HTTP with no credential at all: the
 *                         token is added on the wire by tidegate's egress rule
 *   fetch_url {url}       GETs any http:// URL: the demo points it at a host no rule names
 *   delete_all_forecasts  a tool the demo's policy denies: it must never be called
 *
 * Each message it receives is named on stderr (`forecast-mcp: received ...`), so the demo can show
 * what reached the server and what did not.
 */
import { createInterface } from "node:readline";

const PROTOCOL = "2025-11-25";

const TOOLS = [
  {
    name: "get_forecast",
    description: "Today's forecast for a city, from the forecast API",
    inputSchema: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
  {
    name: "fetch_url",
    description: "GET an http:// URL and return the first 200 bytes",
    inputSchema: { type: "object", properties: { url: { type: "string" } }, required: ["url"] },
  },
  {
    name: "delete_all_forecasts",
    description: "Delete every stored forecast",
    inputSchema: { type: "object", properties: {} },
  },
];

export interface McpServerOptions {
  /** The API's name (what the Host header says) and the address and port to dial. */
  readonly apiName: string;
  readonly apiAddress: string;
  readonly apiPort: number;
}

type Json = Record<string, unknown>;

const text = (t: string, isError = false) => ({ content: [{ type: "text", text: t }], ...(isError ? { isError: true } : {}) });

/** "STATUS BODY" (the body cut to 200 characters); `ok` false for a status outside 2xx. */
async function get(url: string, host?: string): Promise<{ ok: boolean; text: string }> {
  const res = await fetch(url, { headers: host ? { host } : {}, signal: AbortSignal.timeout(10_000) });
  const body = (await res.text()).slice(0, 200);
  return { ok: res.ok, text: `${res.status} ${body.trimEnd()}` };
}

async function call(o: McpServerOptions, name: string, args: Json): Promise<Json> {
  if (name === "get_forecast") {
    const city = typeof args.city === "string" ? args.city : "";
    try {
      // Plain HTTP and no Authorization header: tidegate intercepts, adds the token, speaks TLS.
      const r = await get(`http://${o.apiAddress}:${o.apiPort}/v1/forecast?city=${encodeURIComponent(city)}`, `${o.apiName}:${o.apiPort}`);
      return text(r.text, !r.ok);
    } catch (e) {
      return text(`the forecast API could not be reached: ${(e as Error).message}`, true);
    }
  }
  if (name === "fetch_url") {
    const url = typeof args.url === "string" ? args.url : "";
    if (!url.startsWith("http://")) return text("fetch_url takes an http:// URL", true);
    try {
      const r = await get(url);
      return text(r.text, !r.ok);
    } catch (e) {
      return text(`could not fetch ${url}: ${(e as Error).message.split(". ")[0]}`, true);
    }
  }
  if (name === "delete_all_forecasts") return text("deleted every forecast");
  return text(`no tool ${JSON.stringify(name)}`, true);
}

export async function runMcpServer(o: McpServerOptions): Promise<number> {
  const say = (line: string) => void process.stderr.write(`forecast-mcp: ${line}\n`);
  const send = (msg: Json) => void process.stdout.write(JSON.stringify(msg) + "\n");
  say(`pid ${process.pid}`);
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  const pending: Promise<void>[] = [];
  for await (const line of rl) {
    if (line.trim() === "") continue;
    let msg: Json;
    try {
      msg = JSON.parse(line) as Json;
    } catch {
      send({ jsonrpc: "2.0", id: null, error: { code: -32700, message: "parse error" } });
      continue;
    }
    const method = typeof msg.method === "string" ? msg.method : "";
    const params = (msg.params ?? {}) as Json;
    say(`received ${method}${method === "tools/call" ? ` ${String(params.name)}` : ""}`);
    if (msg.id === undefined) continue; // a notification
    const reply = (result: Json) => send({ jsonrpc: "2.0", id: msg.id, result });
    if (method === "initialize") reply({ protocolVersion: PROTOCOL, capabilities: { tools: {} }, serverInfo: { name: "forecast-mcp", version: "1.0.0" } });
    else if (method === "ping") reply({});
    else if (method === "tools/list") reply({ tools: TOOLS });
    else if (method === "tools/call") pending.push(call(o, String(params.name), (params.arguments ?? {}) as Json).then(reply));
    else send({ jsonrpc: "2.0", id: msg.id, error: { code: -32601, message: `method not found: ${method}` } });
  }
  await Promise.all(pending);
  return 0;
}
