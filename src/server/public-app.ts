/**
 * The public listener's routes (docs/server-api.md, "Public listener"): the SPIFFE bundle
 * endpoint and join-token attestation. TLS with the server's SVID, no client certificate.
 * Join attempts are rate limited per source address (429 with Retry-After) before the token is
 * even hashed, so guessing tokens costs the guesser time.
 */
import type { IncomingMessage } from "node:http";
import { Hono } from "hono";
import type { Logger } from "../runtime/log.ts";
import { ApiError, errorHandler, notFound } from "./errors.ts";
import type { Issuer } from "./issuer.ts";
import type { RateLimiter } from "./rate-limit.ts";
import type { ServedBundle } from "./bundle-state.ts";
import { AttestBody, limitBody, readBody } from "./wire.ts";

type Env = { Bindings: { incoming: IncomingMessage } };

export function publicApp(deps: {
  issuer: Issuer;
  bundle: () => ServedBundle;
  attestLimiter: RateLimiter;
  apiPort: () => number;
  logger: Logger;
}): Hono<Env> {
  const app = new Hono<Env>();
  app.onError(errorHandler(deps.logger, "public"));
  app.use(limitBody());
  app.notFound(notFound);
  app.get("/.well-known/spiffe-bundle", (c) => {
    c.header("content-type", "application/json");
    c.header("cache-control", "no-store");
    return c.body(deps.bundle().jwksText);
  });
  app.post("/v1/attest/join-token", async (c) => {
    const source = c.env.incoming.socket.remoteAddress ?? "unknown";
    const wait = deps.attestLimiter.take(source);
    if (wait > 0) {
      deps.logger.warn("attest_rate_limited", { source });
      throw new ApiError("rate_limited", `server: too many join attempts from ${source}`, { retryAfter: wait });
    }
    const body = await readBody(c, AttestBody);
    try {
      const answer = await deps.issuer.attestJoinToken(body.token, body.csr, source);
      return c.json({ ...answer, api_port: deps.apiPort() });
    } catch (e) {
      if (e instanceof ApiError || (e instanceof Error && "code" in e)) {
        deps.logger.warn("attest_refused", { source, code: (e as { code: string }).code });
      }
      throw e;
    }
  });
  return app;
}
