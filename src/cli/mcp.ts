/**
 * `tidegate mcp tools|approve` (docs/mcp.md, "Tool pinning"): the tool definitions the agent
 * pinned per MCP server, the changed ones waiting, and approving them. With the agent running
 * they go through agent.sock (the agent applies an approval at once and logs it); with no agent
 * they read and write `<state-dir>/agent/mcp-pins.json` directly. Root only, like the state.
 * `mcp pin` checks its SERVER before anything is written (mcp-server-name.ts): a name no gate
 * uses is refused, one no rule of the policy reads is pinned with a warning.
 */
import { didYouMean, nearest } from "../policy/nearest.ts";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Command, Context } from "./command.ts";
import { UsageError } from "./usage-error.ts";
import { callUnix, nobodyListens } from "../runtime/unix-http.ts";
import { readPins, readPinsWithDefinitions, writeDefinitions, writePins } from "../agent/mcp-pins.ts";
import { parsedPins, PinBook, sha256Hex, toolDefinitionText, type PinBookData } from "../mcp/index.ts";
import { readInputFile } from "./files.ts";
import { renderPins, renderTool, safeJson, safeName, type ShownTool } from "./mcp-show.ts";
import { quote, TidegateError } from "../errors.ts";
import { namingFromConfig, pinServerName, unnamedWarning, type ServerNaming } from "./mcp-server-name.ts";

type Reach = { agent: true; socket: string } | { agent: false };

/** The running agent, or none: only when agent.sock is not there does the command touch the file (an agent that fails to answer would overwrite it). */
/** A name the operator typed or a server gave, for a message: bare when plain, else quoted and cut (quote). */
const named = (s: string): string => (s.length <= 256 ? safeName(s) : quote(s));

async function reach(ctx: Context): Promise<Reach> {
  const socket = join(ctx.places.runDir, "agent.sock");
  if (!existsSync(socket)) return { agent: false };
  try {
    await callUnix(socket, "the agent", "GET", "/v1/status");
    return { agent: true, socket };
  } catch (e) {
    // A socket file left by an agent that is gone: nobody listens, so nobody would overwrite the file.
    if (nobodyListens(e)) return { agent: false };
    throw new UsageError(`cannot ask the agent at ${socket} (${e instanceof Error ? e.message : String(e)}); the pins are not changed behind a running agent`);
  }
}

async function allPins(ctx: Context, r: Reach): Promise<PinBookData> {
  if (!r.agent) return readPins(ctx.places.stateDir).toJSON();
  const res = await callUnix(r.socket, "the agent", "GET", "/v1/mcp/pins");
  if (res.status !== 200) throw new UsageError(`the agent answered ${res.status}: ${JSON.stringify(res.body)}`);
  return (res.body as { servers: PinBookData }).servers;
}

function serverArgument(verb: string, positionals: readonly string[], max: number): string {
  if (positionals.length === 0) throw new UsageError(`mcp ${verb} needs a SERVER (its SPIFFE ID, or the rule's name for an intercepted third party)`);
  if (positionals.length > max) throw new UsageError(`mcp ${verb} takes at most ${max === 1 ? "SERVER" : "SERVER and TOOL"}`);
  return positionals[0]!;
}

/** One tool's pins with the definitions kept: from the agent, or from the files when none runs. Null when unknown. */
async function toolPins(ctx: Context, r: Reach, server: string, tool: string): Promise<ShownTool | null> {
  if (!r.agent) {
    const e = readPinsWithDefinitions(ctx.places.stateDir).entry(server, tool);
    return e === null ? null : parsedPins(e);
  }
  const res = await callUnix(r.socket, "the agent", "GET", `/v1/mcp/tool?server=${encodeURIComponent(server)}&tool=${encodeURIComponent(tool)}`);
  if (res.status === 404) return null;
  if (res.status !== 200) throw new UsageError(`the agent answered ${res.status}: ${JSON.stringify(res.body)}`);
  return res.body as ShownTool;
}

const tools: Command = {
  name: "tools",
  summary: "show the tool definitions pinned for an MCP server, the changed ones waiting, and what changed",
  usage: ["mcp tools [SERVER [TOOL]] [--json]"],
  help: [
    "For each tool of SERVER (its SPIFFE ID, or for an intercepted third party the egress rule's",
    "name): the SHA-256 of its pinned definition (name, title, description, schemas, annotations,",
    "execution), and when the server now describes it otherwise, the new hash, WAITING: such a tool",
    "is hidden from tools/list and its calls are refused until `tidegate mcp approve`. Without",
    "SERVER, every server. With TOOL, that tool's definitions: what changed, member by member",
    "(- pinned, + waiting), to read before approving; the agent keeps the definitions it was shown",
    "(in <state-dir>/agent/mcp-definitions.json), so one shows once a client has listed the",
    "server's tools through it.",
    "Text from the server is shown as JSON, every character from DEL up escaped (\\uXXXX).",
    "Asks the running agent, or reads <state-dir>/agent/mcp-pins.json and mcp-definitions.json",
    "when none runs.",
    "Exit 0; 1 when SERVER (or TOOL) has no pins.",
  ].join("\n"),
  options: { json: { type: "boolean", help: "print {server: {pinned, waiting, strict}} as JSON; with TOOL, {pinned, waiting} each {hash, definition}" } },
  run: async (ctx) => {
    if (ctx.positionals.length > 2) throw new UsageError("mcp tools takes at most SERVER and TOOL");
    const [server, tool] = ctx.positionals;
    const r = await reach(ctx);
    if (server !== undefined && tool !== undefined) {
      const t = await toolPins(ctx, r, server, tool);
      if (t === null) {
        const all = await allPins(ctx, r);
        const known = all[server];
        const near = known === undefined ? nearest(server, Object.keys(all)).map((x) => `${named(x)} ${named(tool)}`) : nearest(tool, [...new Set([...Object.keys(known.pinned), ...Object.keys(known.waiting)])]).map((x) => `${named(server)} ${named(x)}`);
        ctx.io.err(`tidegate mcp tools: no pin of tool ${named(tool)} for ${named(server)}${didYouMean(near)}\n`);
        return 1;
      }
      ctx.io.out(ctx.values.json ? `${safeJson({ server, tool, pinned: t.pinned, waiting: t.waiting })}\n` : renderTool(server, tool, t, r.agent));
      return 0;
    }
    const all = await allPins(ctx, r);
    const shown: PinBookData = server === undefined ? all : all[server] !== undefined ? { [server]: all[server] } : {};
    if (server !== undefined && Object.keys(shown).length === 0) {
      const near = nearest(server, Object.keys(all)).map(named);
      ctx.io.err(`tidegate mcp tools: no tools pinned for ${named(server)}${didYouMean(near)}\n`);
      return 1;
    }
    if (ctx.values.json) ctx.io.out(safeJson(shown) + "\n");
    else if (Object.keys(shown).length === 0) ctx.io.out("no MCP server seen yet\n");
    else for (const [s, p] of Object.entries(shown)) ctx.io.out(renderPins(s, p));
    return 0;
  },
};

const approve: Command = {
  name: "approve",
  summary: "accept the changed definitions of an MCP server's tools",
  usage: ["mcp approve SERVER [TOOL] [--hash SHA256]"],
  help: [
    "Pins the definition SERVER now gives for TOOL (without TOOL, for every tool waiting), so it",
    "shows in tools/list and may be called again, as far as the policy allows. Read the change",
    "first: `tidegate mcp tools SERVER TOOL`; with --hash, only the definition of that hash is approved",
    "(the one you read, not one the server swapped in since). Goes through the running agent (logged as an admin",
    "audit event), or edits <state-dir>/agent/mcp-pins.json when none runs.",
    "Exit 0 when something was approved; 1 when nothing of SERVER (or TOOL) was waiting.",
  ].join("\n"),
  options: { hash: { type: "string", value: "SHA256", help: "approve only while the waiting definition has this hash (from mcp tools)" } },
  run: async (ctx) => {
    const server = serverArgument("approve", ctx.positionals, 2);
    const tool = ctx.positionals[1];
    const hash = typeof ctx.values.hash === "string" ? ctx.values.hash.toLowerCase() : undefined;
    if (hash !== undefined && !/^[0-9a-f]{64}$/.test(hash)) throw new UsageError("--hash must be 64 hex digits (a SHA-256 from tidegate mcp tools)");
    const r = await reach(ctx);
    let approved: string[];
    if (r.agent) {
      const res = await callUnix(r.socket, "the agent", "POST", "/v1/mcp/approve", { server, ...(tool !== undefined ? { tool } : {}), ...(hash !== undefined ? { hash } : {}) });
      if (res.status !== 200) {
        ctx.io.err(`tidegate mcp approve: ${(res.body as { error?: { message?: string } })?.error?.message ?? `the agent answered ${res.status}`}\n`);
        return 1;
      }
      approved = (res.body as { approved: string[] }).approved;
    } else {
      const book: PinBook = readPins(ctx.places.stateDir);
      approved = book.approve(server, tool, hash);
      if (approved.length > 0) writePins(ctx.places.stateDir, book);
    }
    if (approved.length === 0) {
      ctx.io.err(`tidegate mcp approve: nothing of ${named(server)}${tool !== undefined ? ` ${named(tool)}` : ""} is waiting for approval\n`);
      return 1;
    }
    // Tool names are the MCP server's text: quoted when not plain (mcp-show.ts).
    ctx.io.out(`approved for ${safeName(server)}: ${approved.map(safeName).join(", ")}\n`);
    return 0;
  },
};

/** The tool definitions in an approved file (a tools/list result, a JSON-RPC answer holding one, or a list of tools): each tool's hash, and each hash's text. */
async function hashesOf(file: string): Promise<{ hashes: Map<string, string>; definitions: Map<string, string> }> {
  let data: unknown;
  try {
    data = JSON.parse(new TextDecoder().decode(readInputFile(file, "--from-file")));
  } catch (e) {
    if (e instanceof TidegateError) throw e;
    throw new UsageError(`--from-file ${JSON.stringify(file)} is not JSON`);
  }
  const o = data as { tools?: unknown; result?: { tools?: unknown } };
  const tools = Array.isArray(data) ? data : Array.isArray(o?.tools) ? o.tools : Array.isArray(o?.result?.tools) ? o.result.tools : null;
  if (tools === null) throw new UsageError(`--from-file ${JSON.stringify(file)} holds no tools (a tools/list result {"tools": [...]}, its JSON-RPC answer, or a list)`);
  const out = new Map<string, string>();
  const definitions = new Map<string, string>();
  for (const t of tools as unknown[]) {
    let text: string;
    try {
      text = toolDefinitionText(t);
    } catch {
      throw new UsageError(`--from-file ${JSON.stringify(file)}: a tool without a string name`);
    }
    const name = (t as { name: string }).name;
    if (out.has(name)) throw new UsageError(`--from-file ${JSON.stringify(file)}: tool ${JSON.stringify(name.slice(0, 128))} is given twice`);
    const hash = await sha256Hex(text);
    out.set(name, hash);
    definitions.set(hash, text);
  }
  return { hashes: out, definitions };
}

const pin: Command = {
  name: "pin",
  summary: "pin an MCP server's tools from an approved file of their definitions",
  usage: ["mcp pin SERVER --from-file FILE"],
  help: [
    "Makes SERVER's pins exactly the tool definitions in FILE (a tools/list result, its JSON-RPC",
    "answer, or a list of tools, as reviewed): from then on a tool FILE does not name, or names",
    "otherwise, is hidden and refused until approved, instead of pinned on first sight.",
    "SERVER is the name the pins are kept under: the server's SPIFFE ID (an inbound rule's id, an",
    "intercept rule's mtls.server_id, a stdio server's workload ID), or an intercept rule's name",
    "when it has no mtls.server_id. Anything else is refused (exit 2); a SERVER no rule of the",
    "policy reads MCP from (the running agent's, else --config's) is pinned with a warning naming",
    "the servers its rules do read, as a rule may come after its pins.",
    "Through the running agent (an admin audit event), or on <state-dir>/agent/mcp-pins.json when",
    "none runs. Exit 0.",
    "",
    "Example: tidegate mcp pin spiffe://example.org/mcp/github --from-file approved.json",
  ].join("\n"),
  options: { "from-file": { type: "string", value: "FILE", help: "the approved definitions (JSON)" } },
  run: async (ctx) => {
    const server = serverArgument("pin", ctx.positionals, 1);
    const name = pinServerName(ctx, server);
    const file = typeof ctx.values["from-file"] === "string" ? ctx.values["from-file"] : undefined;
    if (file === undefined) throw new UsageError("mcp pin needs --from-file FILE");
    const { hashes, definitions } = await hashesOf(file);
    const r = await reach(ctx);
    let naming: ServerNaming | { why: string };
    if (r.agent) {
      const res = await callUnix(r.socket, "the agent", "POST", "/v1/mcp/pin", { server, hashes: Object.fromEntries(hashes), definitions: Object.fromEntries(definitions) });
      if (res.status !== 200) {
        ctx.io.err(`tidegate mcp pin: ${(res.body as { error?: { message?: string } })?.error?.message ?? `the agent answered ${res.status}`}\n`);
        return 1;
      }
      const body = res.body as { read_by?: string[] | null; servers?: string[]; meant?: string[] };
      naming = body.read_by == null ? { why: "the running agent has no policy loaded" } : { source: "the running agent's policy", readBy: body.read_by, servers: body.servers ?? [], meant: body.meant ?? [] };
    } else {
      const book = readPinsWithDefinitions(ctx.places.stateDir);
      book.load(server, hashes, definitions);
      writePins(ctx.places.stateDir, book);
      writeDefinitions(ctx.places.stateDir, book);
      naming = namingFromConfig(ctx, name);
    }
    ctx.io.out(`pinned for ${safeName(server)} from ${safeName(file)}: ${[...hashes.keys()].sort().map(safeName).join(", ") || "no tools"} (other tools wait for approval)\n`);
    const warning = unnamedWarning("mcp pin", server, naming);
    if (warning !== null) ctx.io.err(warning);
    return 0;
  },
};

export const mcpCommand: Command = {
  name: "mcp",
  summary: "MCP tool pins: what is pinned, what changed, approving it",
  usage: ["mcp tools [SERVER [TOOL]] [--json]", "mcp approve SERVER [TOOL] [--hash SHA256]", "mcp pin SERVER --from-file FILE"],
  subcommands: [tools, approve, pin],
};
