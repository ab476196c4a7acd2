/**
 * The agent's admin API on `<run-dir>/agent.sock` (docs/server-api.md, "Agent"): status, the
 * chains it holds (certificates only: a key never leaves through this API) and its bundle.
 * The socket is 0600 in a 0700 folder (src/runtime/unix-http.ts): root only.
 * `POST /v1/mcp/pin` refuses a server name no gate could use (400 `policy_bad_mcp_server`) and
 * answers which rules of the policy in force read MCP from the server (`read_by`, null with no
 * policy), every server name they use (`servers`) and the ones it was probably meant as
 * (`meant`), so `tidegate mcp pin` can warn.
 */
import { Hono } from "hono";
import { formatJwksBundle } from "../spiffe/index.ts";
import type { AgentCore } from "./agent-core.ts";
import { statusOf, type AuditStatus } from "./health.ts";
import { chainPem } from "./svid-cache.ts";
import type { Enforcer } from "./enforcer.ts";
import { TidegateError } from "../errors.ts";
import { parsedPins, sha256Hex } from "../mcp/index.ts";
import { mcpServerNaming, parseMcpServerName, PolicyError, type McpServerName } from "../policy/index.ts";

export interface CaptureAccess {
  readonly enforcer: Enforcer | null;
  /** Why there is no enforcer. */
  readonly captureUnavailable: string | null;
}

function fail(status: 400 | 404 | 503, code: string, message: string): Response {
  return Response.json({ error: { code, message } }, { status });
}

async function runBody(req: Request): Promise<{ workload: string; allowRoot: boolean } | null> {
  try {
    const body = (await req.json()) as { workload?: unknown; allow_root?: unknown };
    return typeof body?.workload === "string" ? { workload: body.workload, allowRoot: body.allow_root === true } : null;
  } catch {
    return null;
  }
}

/** `audit`: the audit log's state, so an unwritable log makes the agent unhealthy here too. */
export function adminApp(core: AgentCore, now: () => number, capture: CaptureAccess = { enforcer: null, captureUnavailable: "no capture" }, audit: () => AuditStatus | null = () => null): Hono {
  const app = new Hono();
  app.get("/v1/status", (c) => c.json({ ...statusOf(core, now(), audit()), capture: capture.enforcer?.status() ?? { unavailable: capture.captureUnavailable } }));
  app.post("/v1/run", async (c) => {
    const e = capture.enforcer;
    if (e === null) return fail(503, "capture_unavailable", `agent: no kernel capture: ${capture.captureUnavailable}`);
    const body = await runBody(c.req.raw);
    if (body === null) return fail(400, "bad_request", "agent: POST /v1/run needs {\"workload\": NAME}");
    try {
      // {allow_root: true} comes on its own, once the client knows the user is root: noted, nothing prepared.
      if (body.allowRoot) {
        e.noteUncontained(body.workload);
        return c.json({ noted: true });
      }
      return c.json(e.prepareRun(body.workload));
    } catch (err) {
      if (err instanceof TidegateError) return fail(400, err.code, err.message);
      throw err;
    }
  });
  app.post("/v1/run/release", async (c) => {
    const e = capture.enforcer;
    const body = await runBody(c.req.raw);
    if (e === null || body === null) return fail(400, "bad_request", "agent: nothing to release");
    try {
      return c.json({ removed: e.release(body.workload) });
    } catch (err) {
      if (err instanceof TidegateError) return fail(400, err.code, err.message);
      throw err;
    }
  });
  app.get("/v1/svids/:entry_id", (c) => {
    const id = c.req.param("entry_id");
    const held = core.svids.get(id);
    if (held === undefined) return fail(404, "svid_unknown", `agent: no SVID held for entry ${JSON.stringify(id.slice(0, 128))}`);
    return c.json({ entry_id: id, spiffe_id: held.spiffeId, chain_pem: chainPem(held.chain), expires_at: new Date(held.notAfter).toISOString() });
  });
  app.get("/v1/bundle", async (c) => c.body(await formatJwksBundle(core.bundle, { indent: 2 }), 200, { "content-type": "application/json" }));
  app.get("/v1/mcp/pins", (c) => {
    const e = capture.enforcer;
    if (e === null) return fail(503, "capture_unavailable", `agent: no kernel capture, so no MCP policy: ${capture.captureUnavailable}`);
    return c.json({ servers: e.pins.toJSON() });
  });
  app.get("/v1/mcp/tool", (c) => {
    const e = capture.enforcer;
    if (e === null) return fail(503, "capture_unavailable", `agent: no kernel capture, so no MCP policy: ${capture.captureUnavailable}`);
    const server = c.req.query("server");
    const tool = c.req.query("tool");
    if (server === undefined || tool === undefined) return fail(400, "bad_request", "agent: GET /v1/mcp/tool needs ?server=NAME&tool=NAME");
    const entry = e.pins.entry(server, tool);
    if (entry === null) return fail(404, "mcp_tool_unknown", `agent: no pin of tool ${JSON.stringify(tool.slice(0, 128))} for server ${JSON.stringify(server.slice(0, 256))}`);
    return c.json({ server, tool, ...parsedPins(entry) });
  });
  app.post("/v1/mcp/approve", async (c) => {
    const e = capture.enforcer;
    if (e === null) return fail(503, "capture_unavailable", `agent: no kernel capture, so no MCP policy: ${capture.captureUnavailable}`);
    const body = (await c.req.raw.json().catch(() => null)) as { server?: unknown; tool?: unknown; hash?: unknown } | null;
    const optional = (v: unknown) => v === undefined || typeof v === "string";
    if (typeof body?.server !== "string" || !optional(body.tool) || !optional(body.hash)) return fail(400, "bad_request", 'agent: POST /v1/mcp/approve needs {"server": NAME, "tool"?: NAME, "hash"?: SHA256}');
    if (e.pins.show(body.server) === null) return fail(404, "mcp_server_unknown", `agent: no tools pinned for server ${JSON.stringify(body.server.slice(0, 256))}`);
    return c.json({ approved: e.approveTools(body.server, body.tool as string | undefined, body.hash as string | undefined) });
  });
  app.post("/v1/mcp/pin", async (c) => {
    const e = capture.enforcer;
    if (e === null) return fail(503, "capture_unavailable", `agent: no kernel capture, so no MCP policy: ${capture.captureUnavailable}`);
    const body = (await c.req.raw.json().catch(() => null)) as { server?: unknown; hashes?: unknown; definitions?: unknown } | null;
    const hashes = body?.hashes;
    const isMap = (m: unknown): m is Record<string, unknown> => m !== null && typeof m === "object" && !Array.isArray(m);
    const valid = isMap(hashes) && Object.values(hashes).every((h) => typeof h === "string" && /^[0-9a-f]{64}$/.test(h));
    const defs = body?.definitions;
    if (typeof body?.server !== "string" || !valid || (defs !== undefined && (!isMap(defs) || !Object.values(defs).every((d) => typeof d === "string")))) {
      return fail(400, "bad_request", 'agent: POST /v1/mcp/pin needs {"server": NAME, "hashes": {TOOL: SHA256}, "definitions"?: {SHA256: TEXT}}');
    }
    // A name no gate could use is refused (docs/mcp.md, "Tool pinning"); one no rule of the
    // policy in force uses yet is pinned (pinning before the rule exists is the careful order),
    // and the answer says which rules read it, so the caller can warn.
    let name: McpServerName;
    try {
      name = parseMcpServerName(body.server);
    } catch (err) {
      if (err instanceof PolicyError) return fail(400, err.code, err.message.replace(/^policy: /, "agent: "));
      throw err;
    }
    // kept to be shown only when each text is what its hash is taken of
    const definitions = new Map<string, string>();
    for (const [hash, text] of Object.entries((defs ?? {}) as Record<string, string>)) if ((await sha256Hex(text)) === hash) definitions.set(hash, text);
    e.pinTools(body.server, new Map(Object.entries(hashes as Record<string, string>)), definitions);
    const policy = e.holder.policy;
    const naming = policy === null ? null : mcpServerNaming(policy, name);
    return c.json({ pinned: Object.keys(hashes as object).sort(), read_by: naming?.readBy ?? null, servers: naming?.servers ?? [], meant: naming?.meant ?? [] });
  });
  // `tidegate secret set|rm` wrote the store: injection reads it on its next request (docs/secrets.md)
  app.post("/v1/secrets/changed", (c) => {
    const e = capture.enforcer;
    if (e === null) return c.json({ noticed: false });
    e.secretsChanged();
    return c.json({ noticed: true });
  });
  app.notFound(() => fail(404, "not_found", "agent: no such admin endpoint"));
  return app;
}
