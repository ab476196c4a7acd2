/**
 * The MCP server of the pinning end-to-end test (mcp.test.ts, stand: mcp-setup.ts), run as its own
 * process: `bun test/e2e/mcp-pinned-server.ts HOST PORT DESCRIPTION_FILE`. A Streamable HTTP server
 * built with the SDK (`McpServer` over `StreamableHTTPServerTransport`, on `node:http`), stateful:
 * each session has its Mcp-Session-Id and its own McpServer. Two tools:
 * - `lookup` {q: string} → text `found:<q>`; its description is read from DESCRIPTION_FILE when a
 *   session starts (each `initialize`), so the test changes a tool's definition between two client
 *   connections by rewriting the file. A `q` that begins `resume:` makes it close the call's SSE
 *   stream first (the SDK's `closeSSEStream`, SSE polling), then answer RESUME_DELAY_MS later: the
 *   answer reaches the client on the GET that resumes the stream (Last-Event-ID), replayed from
 *   the session's event store;
 * - `ping` {} → text `pong`.
 * It prints one JSON line per event on stdout: {event: "listening", port}, {event: "http", method,
 * session} for every request to /mcp (so the test can tell what tidegate forwarded at all),
 * {event: "session_starting", description}, {event: "session", id}, {event: "call", session, tool}
 * when a tool runs (so the test can tell a refused call never reached it), {event: "stream_closed",
 * session} when `lookup` closed a call's stream, {event: "closed", id}. Its transports keep an event
 * store (the SDK's in-memory one), so every stream's events have ids and can be resumed.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import { InMemoryEventStore } from "@modelcontextprotocol/sdk/examples/shared/inMemoryEventStore.js";
import * as z from "zod/v4";

const [host, portText, descriptionFile] = process.argv.slice(2);
if (host === undefined || portText === undefined || descriptionFile === undefined) {
  console.error("usage: bun test/e2e/mcp-pinned-server.ts HOST PORT DESCRIPTION_FILE");
  process.exit(2);
}

function emit(rec: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(rec)}\n`);
}

/** A new McpServer for one session, `lookup` described as the file says now. */
function sessionServer(sessionOf: () => string | undefined): McpServer {
  const description = readFileSync(descriptionFile!, "utf8").trim();
  const server = new McpServer({ name: "tidegate-e2e-pinned", version: "1.0.0" });
  server.registerTool("lookup", { description, inputSchema: { q: z.string().describe("what to look up") } }, async ({ q }, extra) => {
    emit({ event: "call", session: sessionOf() ?? null, tool: "lookup" });
    if (q.startsWith("resume:") && extra.closeSSEStream !== undefined) {
      extra.closeSSEStream();
      emit({ event: "stream_closed", session: sessionOf() ?? null });
      await new Promise((r) => setTimeout(r, RESUME_DELAY_MS));
    }
    return { content: [{ type: "text", text: `found:${q}` }] };
  });
  server.registerTool("ping", { description: "Answers pong." }, async () => {
    emit({ event: "call", session: sessionOf() ?? null, tool: "ping" });
    return { content: [{ type: "text", text: "pong" }] };
  });
  emit({ event: "session_starting", description });
  return server;
}

/** How long `lookup` of a `resume:` query waits after closing the call's stream before it answers. */
const RESUME_DELAY_MS = 300;

const transports = new Map<string, StreamableHTTPServerTransport>();

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString("utf8");
  return text === "" ? undefined : JSON.parse(text);
}

function jsonError(res: ServerResponse, status: number, code: number, message: string): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", error: { code, message }, id: null }));
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (new URL(req.url ?? "/", "http://x").pathname !== "/mcp") return void res.writeHead(404).end();
  const sid = req.headers["mcp-session-id"];
  emit({ event: "http", method: req.method ?? "", session: typeof sid === "string" ? sid : null });
  const existing = typeof sid === "string" ? transports.get(sid) : undefined;
  if (req.method !== "POST") {
    if (existing === undefined) return jsonError(res, 400, -32000, "Bad Request: No valid session ID provided");
    return existing.handleRequest(req, res);
  }
  let body: unknown;
  try {
    body = await readJson(req);
  } catch {
    return jsonError(res, 400, -32700, "Parse error");
  }
  if (existing !== undefined) return existing.handleRequest(req, res, body);
  if (sid !== undefined || !isInitializeRequest(body)) return jsonError(res, 400, -32000, "Bad Request: No valid session ID provided");
  const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
    sessionIdGenerator: () => randomUUID(),
    eventStore: new InMemoryEventStore(),
    retryInterval: 100, // the client's wait before it resumes a closed stream
    onsessioninitialized: (id) => {
      transports.set(id, transport);
      emit({ event: "session", id });
    },
  });
  transport.onclose = () => {
    if (transport.sessionId !== undefined && transports.delete(transport.sessionId)) emit({ event: "closed", id: transport.sessionId });
  };
  await sessionServer(() => transport.sessionId).connect(transport);
  await transport.handleRequest(req, res, body);
}

const http = createServer((req, res) => {
  handle(req, res).catch((e: unknown) => {
    emit({ event: "error", message: String(e) });
    if (!res.headersSent) jsonError(res, 500, -32603, "Internal server error");
  });
});
http.listen(Number(portText), host, () => {
  const a = http.address();
  emit({ event: "listening", port: typeof a === "object" && a !== null ? a.port : Number(portText) });
});
const stop = () => {
  for (const t of transports.values()) void t.close();
  http.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
