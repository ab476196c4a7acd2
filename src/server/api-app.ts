/**
 * The API listener's routes (docs/server-api.md, "API listener"): mutual TLS, node SVIDs only.
 * Every request first gets its connection's verdict (./node-auth.ts); a connection that is not an
 * authenticated node gets 401 on every request, and an expired node SVID on a kept-alive
 * connection is refused from its notAfter on.
 */
import type { IncomingMessage } from "node:http";
import { Hono } from "hono";
import type { Logger } from "../runtime/log.ts";
import { ApiError, errorHandler, notFound } from "./errors.ts";
import type { Issuer } from "./issuer.ts";
import type { ConnectionVerdicts, NodeIdentity } from "./node-auth.ts";
import { readBody, RenewBody, SvidBody } from "./wire.ts";

type Env = { Bindings: { incoming: IncomingMessage }; Variables: { node: NodeIdentity } };

export function apiApp(deps: { issuer: Issuer; verdicts: ConnectionVerdicts; logger: Logger; now: () => Date }): Hono<Env> {
  const { issuer, verdicts } = deps;
  const app = new Hono<Env>();
  app.onError(errorHandler(deps.logger, "api"));
  app.notFound(notFound);
  app.use(async (c, next) => {
    const verdict = await verdicts.get(c.env.incoming.socket);
    if (verdict instanceof ApiError) throw verdict;
    if (deps.now().getTime() > verdict.notAfter) {
      throw new ApiError("client_cert_invalid", `server: the node SVID of ${verdict.spiffeId} has expired (x509svid: svid_expired)`);
    }
    c.set("node", verdict);
    await next();
  });
  app.post("/v1/node/renew", async (c) => {
    const body = await readBody(c, RenewBody);
    return c.json(await issuer.renewNode(c.get("node").node, body.csr));
  });
  app.get("/v1/sync", async (c) => c.json(await issuer.sync(c.get("node").node)));
  app.post("/v1/svid", async (c) => {
    const body = await readBody(c, SvidBody);
    return c.json(await issuer.issueWorkloadSvid(c.get("node").node, body.entry_id, body.csr));
  });
  return app;
}
