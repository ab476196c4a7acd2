/**
 * The MCP client of the MCP end-to-end test (mcp.test.ts, stand: mcp-setup.ts), run as its own
 * process: `bun test/e2e/mcp-client.ts '<json>'`, inside workload `client` through `tidegate run`
 * (its traffic captured by agent A) or straight from the test (to agent B's inbound listener).
 * It is the SDK's own client (`Client` over `StreamableHTTPClientTransport`), so what tidegate
 * forwards has to make sense to a real MCP client.
 *
 * Input: {url | stdio: {command, args, env?}, tls?: {cert, key, ca, server_id?}, resolve?: {NAME: ADDRESS}, steps: [{op: "list"}
 * | {op: "call", name, args} | {op: "progress", name, args} | {op: "resources"} | {op: "read", uri}
 * | {op: "prompts"} | {op: "prompt", name}], timeout_ms?}. `tls` names PEM files:
 * the transport then fetches with Bun's `tls: {cert, key, ca}` (the chain verified against `ca`;
 * the server's name is not checked, its SPIFFE ID is when `server_id` is given, since an SVID
 * carries a URI SAN, not a DNS name or IP). `resolve` is curl's --resolve: a request to NAME dials
 * ADDRESS and says `Host: NAME` (the test names are in no resolver, and a workload cannot patch
 * Bun's DNS; tidegate decides by the Host and checks the address against its own dns.hosts).
 * `stdio` instead of `url`: the SDK's StdioClientTransport starts COMMAND ARGS (the stdio test starts
 * `tidegate run --mcp-stdio ... -- SERVER`) and speaks newline-delimited JSON-RPC on its pipes.
 *
 * Output: one JSON line per step on stdout:
 *   list     {op, ok: true, tools: [names]} or {op, ok: false, code, message}
 *   resources, prompts
 *            {op, ok: true, names: [uris or names]} or {op, ok: false, code, message}
 *   read, prompt
 *            {op, name: uri or name, ok: true} or {op, name, ok: false, code, message}
 *   call     {op, name, ok: true, isError, content} or {op, name, ok: false, code, message}
 *   progress as call, with `progress` (how many notifications came), `progress_values`,
 *            `progress_ms` (when each came) and `elapsed_ms` (when the answer came), so a proxy
 *            that held the stream back until the end shows
 *   refreshed (with watch_tools) {op, ok: true, tools: [names]}: the latest tools list the SDK
 *            fetched by itself after a notifications/tools/list_changed, once one has come that
 *            names tool `has` and not tool `lacks` (waited for at most 15 s; then {op, ok: false}
 *            with the last one); a server may say its list changed at other times too
 *   hold     {op, ok: true, pid} when it starts waiting, with the session open, until the file
 *            `until` exists (at most 60 s; then {op, ok: false}): a test looks into the live
 *            process meanwhile
 * Exit 0 when every step ran (a refused call is data, not a failure); exit 2 when connecting (the
 * initialize handshake) failed, after printing {op: "connect", ok: false, message}.
 */
import { existsSync, readFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import type { FetchLike, Transport } from "@modelcontextprotocol/sdk/shared/transport.js";

export type Step =
  | { op: "list" }
  | { op: "call"; name: string; args?: Record<string, unknown> }
  | { op: "progress"; name: string; args?: Record<string, unknown> }
  | { op: "hold"; until: string }
  | { op: "refreshed"; has?: string; lacks?: string }
  | { op: "resources" }
  | { op: "read"; uri: string }
  | { op: "prompts" }
  | { op: "prompt"; name: string };

export interface ClientInput {
  url?: string;
  stdio?: { command: string; args: string[]; env?: Record<string, string> };
  tls?: { cert: string; key: string; ca: string; server_id?: string };
  resolve?: Record<string, string>;
  steps: Step[];
  /** Per request; a progress notification restarts it. Default 20 s. */
  timeout_ms?: number;
  /** The SDK's own listChanged handling for tools (Client option `listChanged`, autoRefresh): step `refreshed` reports what it fetched. */
  watch_tools?: boolean;
}

/** One line of output. */
export type StepResult = {
  op: string;
  ok: boolean;
  name?: string;
  tools?: string[];
  /** resources, prompts: the URIs or names listed. */
  names?: string[];
  isError?: boolean;
  content?: unknown;
  code?: number | string;
  message?: string;
  progress?: number;
  progress_values?: number[];
  /** When each progress notification came, in ms since the call was sent. */
  progress_ms?: number[];
  /** How long the call took until its answer, in ms. */
  elapsed_ms?: number;
  /** hold: the client's own pid. */
  pid?: number;
};

function emit(r: StepResult): void {
  process.stdout.write(`${JSON.stringify(r)}\n`);
}

/** A Bun fetch presenting the client's certificate and trusting `ca` only. */
function tlsFetch(t: NonNullable<ClientInput["tls"]>): FetchLike {
  const tls = {
    cert: readFileSync(t.cert, "utf8"),
    key: readFileSync(t.key, "utf8"),
    ca: readFileSync(t.ca, "utf8"),
    checkServerIdentity: (_host: string, cert: { subjectaltname?: string }): Error | undefined => {
      if (t.server_id === undefined) return undefined;
      const uris = (cert.subjectaltname ?? "").split(", ").filter((n) => n.startsWith("URI:")).map((n) => n.slice(4));
      return uris.includes(t.server_id) ? undefined : new Error(`the server presented ${uris.join(" ") || "no URI SAN"}, not ${t.server_id}`);
    },
  };
  return (url, init) => fetch(url, { ...init, tls } as RequestInit);
}

/** `base`, dialling the address `resolve` gives for a URL's host name and sending the name as Host. */
function resolvingFetch(base: FetchLike, resolve: Record<string, string>): FetchLike {
  return (url, init) => {
    const u = new URL(url);
    const address = resolve[u.hostname];
    if (address === undefined) return base(url, init);
    const headers = new Headers(init?.headers);
    headers.set("host", u.host);
    u.hostname = address;
    return base(u, { ...init, headers });
  };
}

function failure(e: unknown): { code?: number | string; message: string } {
  const err = e as { code?: unknown; message?: unknown };
  const code = typeof err?.code === "number" || typeof err?.code === "string" ? err.code : undefined;
  const message = typeof err?.message === "string" ? err.message : String(e);
  return code === undefined ? { message } : { code, message };
}

async function main(): Promise<number> {
  const input = JSON.parse(process.argv[2] ?? "") as ClientInput;
  const timeout = input.timeout_ms ?? 20_000;
  let fetcher: FetchLike = input.tls !== undefined ? tlsFetch(input.tls) : (url, init) => fetch(url, init);
  if (input.resolve !== undefined) fetcher = resolvingFetch(fetcher, input.resolve);
  const http = input.url !== undefined ? new StreamableHTTPClientTransport(new URL(input.url), { fetch: fetcher }) : null;
  const transport: Transport = http ?? new StdioClientTransport({ ...input.stdio!, stderr: "inherit" });
  // Each tools list the SDK fetched on its own after a list-changed notification (watch_tools).
  const refreshed: string[][] = [];
  const watch = { listChanged: { tools: { debounceMs: 0, onChanged: (err: Error | null, tools: { name: string }[] | null) => void (err === null && tools !== null && refreshed.push(tools.map((t) => t.name))) } } };
  const client = new Client({ name: "tidegate-e2e-mcp-client", version: "1.0.0" }, input.watch_tools === true ? watch : undefined);
  try {
    await client.connect(transport, { timeout });
  } catch (e) {
    emit({ op: "connect", ok: false, ...failure(e) });
    await client.close().catch(() => {});
    return 2;
  }
  for (const step of input.steps) {
    if (step.op === "hold") {
      emit({ op: "hold", ok: true, pid: process.pid } as StepResult);
      const deadline = Date.now() + 60_000;
      while (!existsSync(step.until) && Date.now() < deadline) await Bun.sleep(50);
      if (!existsSync(step.until)) emit({ op: "hold", ok: false, message: `${step.until} did not appear within 60 s` });
      continue;
    }
    if (step.op === "refreshed") {
      const fits = (tools: string[] | undefined) => tools !== undefined && (step.has === undefined || tools.includes(step.has)) && (step.lacks === undefined || !tools.includes(step.lacks));
      const deadline = Date.now() + 15_000;
      while (!fits(refreshed.at(-1)) && Date.now() < deadline) await Bun.sleep(50);
      const last = refreshed.at(-1);
      if (fits(last)) emit({ op: "refreshed", ok: true, tools: last! });
      else emit({ op: "refreshed", ok: false, message: `no list-changed refresh as asked within 15 s (${refreshed.length} refreshes)`, ...(last !== undefined ? { tools: last } : {}) });
      continue;
    }
    if (step.op === "list") {
      try {
        const r = await client.listTools(undefined, { timeout });
        emit({ op: "list", ok: true, tools: r.tools.map((t) => t.name) });
      } catch (e) {
        emit({ op: "list", ok: false, ...failure(e) });
      }
      continue;
    }
    if (step.op === "resources" || step.op === "prompts") {
      try {
        const names = step.op === "resources" ? (await client.listResources(undefined, { timeout })).resources.map((r) => r.uri) : (await client.listPrompts(undefined, { timeout })).prompts.map((p) => p.name);
        emit({ op: step.op, ok: true, names });
      } catch (e) {
        emit({ op: step.op, ok: false, ...failure(e) });
      }
      continue;
    }
    if (step.op === "read" || step.op === "prompt") {
      const name = step.op === "read" ? step.uri : step.name;
      try {
        if (step.op === "read") await client.readResource({ uri: step.uri }, { timeout });
        else await client.getPrompt({ name: step.name }, { timeout });
        emit({ op: step.op, name, ok: true });
      } catch (e) {
        emit({ op: step.op, name, ok: false, ...failure(e) });
      }
      continue;
    }
    const values: number[] = [];
    const times: number[] = [];
    const progress = step.op === "progress";
    const t0 = performance.now();
    const onprogress = (p: { progress: number }) => {
      values.push(p.progress);
      times.push(Math.round(performance.now() - t0));
    };
    const extra = () => (progress ? { progress: values.length, progress_values: values, progress_ms: times, elapsed_ms: Math.round(performance.now() - t0) } : {});
    try {
      const r = await client.callTool({ name: step.name, arguments: step.args ?? {} }, undefined, progress ? { timeout, resetTimeoutOnProgress: true, onprogress } : { timeout });
      emit({ op: step.op, name: step.name, ok: true, isError: r.isError === true, content: r.content, ...extra() });
    } catch (e) {
      emit({ op: step.op, name: step.name, ok: false, ...failure(e), ...extra() });
    }
  }
  // ends the session (DELETE) where the server keeps one; a refusal there changes nothing here
  await http?.terminateSession().catch(() => {});
  await client.close().catch(() => {});
  return 0;
}

process.exit(await main());
