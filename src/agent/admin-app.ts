/**
 * The agent's admin API on `<run-dir>/agent.sock` (docs/server-api.md, "Agent"): status, the
 * chains it holds (certificates only: a key never leaves through this API) and its bundle.
 * The socket is 0600 in a 0700 folder (src/runtime/unix-http.ts): root only.
 */
import { Hono } from "hono";
import { formatJwksBundle } from "../spiffe/index.ts";
import type { AgentCore } from "./agent-core.ts";
import { statusOf } from "./health.ts";
import { chainPem } from "./svid-cache.ts";

function fail(status: 404, code: string, message: string): Response {
  return Response.json({ error: { code, message } }, { status });
}

export function adminApp(core: AgentCore, now: () => number): Hono {
  const app = new Hono();
  app.get("/v1/status", (c) => c.json(statusOf(core, now())));
  app.get("/v1/svids/:entry_id", (c) => {
    const id = c.req.param("entry_id");
    const held = core.svids.get(id);
    if (held === undefined) return fail(404, "svid_unknown", `agent: no SVID held for entry ${JSON.stringify(id.slice(0, 128))}`);
    return c.json({ entry_id: id, spiffe_id: held.spiffeId, chain_pem: chainPem(held.chain), expires_at: new Date(held.notAfter).toISOString() });
  });
  app.get("/v1/bundle", async (c) => c.body(await formatJwksBundle(core.bundle, { indent: 2 }), 200, { "content-type": "application/json" }));
  app.notFound(() => fail(404, "not_found", "agent: no such admin endpoint"));
  return app;
}
