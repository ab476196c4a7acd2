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
import { limitBody, readBody, RenewBody, SvidBody } from "./wire.ts";

/** The node calling on `socket` (its connection's verdict, not expired at `now`), or the ApiError to answer. */
export async function callingNode(verdicts: ConnectionVerdicts, socket: object, now: () => Date): Promise<NodeIdentity> {
  const verdict = await verdicts.get(socket);
  if (verdict instanceof ApiError) throw verdict;
  if (now().getTime() > verdict.notAfter) {
    throw new ApiError("client_cert_invalid", `server: the node SVID of ${verdict.spiffeId} has expired (x509svid: svid_expired)`);
  }
  return verdict;
}

type Env = { Bindings: { incoming: IncomingMessage }; Variables: { node: NodeIdentity } };

export function apiApp(deps: { issuer: Issuer; verdicts: ConnectionVerdicts; logger: Logger; now: () => Date }): Hono<Env> {
  const { issuer, verdicts } = deps;
  const app = new Hono<Env>();
  app.onError(errorHandler(deps.logger, "api"));
  app.notFound(notFound);
  app.use(async (c, next) => {
    c.set("node", await callingNode(verdicts, c.env.incoming.socket, deps.now));
    await next();
  });
  app.use(limitBody());
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
