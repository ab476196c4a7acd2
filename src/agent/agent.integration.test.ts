/**
 * The agent against the real identity server in this process (src/server/), over real TLS:
 * join with a token and the printed fingerprint, SVIDs for entries created on the server, chains
 * that verify against the server's bundle, an entry deleted and its SVID dropped, a restart
 * without a token, and a CA rotation that the agent follows.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { memoryLogger } from "../runtime/log.ts";
import { callUnix } from "../runtime/unix-http.ts";
import { BundleSet, TrustDomain, parseJwksBundle } from "../spiffe/index.ts";
import { verifyX509Svid } from "../x509/verify.ts";
import { startTestServer, type TestServer } from "../server/test-server.ts";
import { startAgent, type RunningAgent } from "./agent.ts";
import { chainFromPem } from "./svid-cache.ts";
import { tempPlaces, type TempPlaces } from "./test-support.ts";

let srv: TestServer;
let t: TempPlaces;
let agent: RunningAgent | null = null;

beforeEach(async () => {
  srv = await startTestServer();
  t = tempPlaces();
});
afterEach(async () => {
  await agent?.stop();
  agent = null;
  await srv.close();
  t.cleanup();
});

async function until<T>(what: string, f: () => T | Promise<T>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    agent?.wake();
    await Bun.sleep(20);
  }
}

async function verifyHeld(a: RunningAgent, entryId: string): Promise<string> {
  const r = await callUnix(a.socketPath, "the agent", "GET", `/v1/svids/${entryId}`);
  const chain = chainFromPem((r.body as { chain_pem: string }).chain_pem);
  const bundleRes = await fetch(`${srv.server.publicUrl}/.well-known/spiffe-bundle`, { tls: { rejectUnauthorized: false } } as RequestInit);
  const bundle = await parseJwksBundle(TrustDomain.parse("example.org"), await bundleRes.text());
  return (await verifyX509Svid(chain, BundleSet.of(bundle), { now: new Date() })).id.toString();
}

describe("agent with the real server", () => {
  test("joins, holds verified SVIDs, drops a deleted entry's, restarts without a token", async () => {
    const tok = await srv.admin("POST", "/v1/tokens", { node: "node-a" });
    expect(tok.status).toBe(201);
    const parent = "spiffe://example.org/tidegate/agent/node-a";
    const e1 = await srv.admin("POST", "/v1/entries", { spiffe_id: "spiffe://example.org/web", parent_id: parent, selectors: ["tidegate:workload:web"] });
    const e2 = await srv.admin("POST", "/v1/entries", { spiffe_id: "spiffe://example.org/db", parent_id: parent, selectors: ["tidegate:workload:db"], dns_names: ["db.local"] });
    expect(e1.status).toBe(201);
    const logger = memoryLogger();
    agent = await startAgent({ places: t.places, serverUrl: srv.server.publicUrl, joinToken: tok.body.token, fingerprint: tok.body.server_fingerprint, syncIntervalMs: 200, logger });
    await agent.ready;
    const a = agent;
    await until("two SVIDs", () => a.status().svids.length === 2);
    expect(a.status()).toMatchObject({ healthy: true, node: "node-a", spiffe_id: parent });
    expect(await verifyHeld(a, e1.body.id)).toBe("spiffe://example.org/web");
    expect(await verifyHeld(a, e2.body.id)).toBe("spiffe://example.org/db");
    expect(JSON.stringify(logger.lines)).not.toContain(tok.body.token);
    expect(JSON.stringify(srv.logger.lines)).not.toContain(tok.body.token);

    expect((await srv.admin("DELETE", `/v1/entries/${e2.body.id}`)).status).toBe(204);
    await until("the deleted entry's SVID dropped", () => a.status().svids.length === 1);

    await a.stop();
    agent = null;
    agent = await startAgent({ places: t.places, syncIntervalMs: 200, logger: memoryLogger() });
    await agent.ready;
    const b = agent;
    expect(b.status().svids.map((s) => s.spiffe_id)).toEqual(["spiffe://example.org/web"]);
    expect(b.status().healthy).toBe(true);
    expect(b.status().sync.error).toBeNull();
  }, 30_000);

  test("follows a root rotation: new bundle adopted, SVIDs still verify", async () => {
    const tok = await srv.admin("POST", "/v1/tokens", { node: "node-b" });
    const e1 = await srv.admin("POST", "/v1/entries", { spiffe_id: "spiffe://example.org/api", parent_id: "spiffe://example.org/tidegate/agent/node-b", selectors: ["tidegate:workload:api"] });
    agent = await startAgent({ places: t.places, serverUrl: srv.server.publicUrl, joinToken: tok.body.token, fingerprint: tok.body.server_fingerprint, syncIntervalMs: 200, logger: memoryLogger() });
    await agent.ready;
    const a = agent;
    await until("an SVID", () => a.status().svids.length === 1);
    const before = a.status().bundle;
    const rot = await srv.admin("POST", "/v1/ca/rotate", { root: true });
    expect(rot.status).toBe(200);
    await until("the new bundle", () => a.status().bundle.roots.length > before.roots.length);
    expect(a.status().bundle.sequence).toBeGreaterThan(before.sequence ?? 0);
    expect(await verifyHeld(a, e1.body.id)).toBe("spiffe://example.org/api");
    expect(a.status().healthy).toBe(true);
  }, 30_000);

  test("a wrong fingerprint against the real server: refused, the token still unused", async () => {
    const tok = await srv.admin("POST", "/v1/tokens", { node: "node-c" });
    await expect(startAgent({ places: t.places, serverUrl: srv.server.publicUrl, joinToken: tok.body.token, fingerprint: "ab".repeat(32), logger: memoryLogger() })).rejects.toMatchObject({
      code: "server_fingerprint_mismatch",
    });
    const nodes = await srv.admin("GET", "/v1/nodes");
    expect(nodes.body.nodes).toEqual([]);
    agent = await startAgent({ places: t.places, serverUrl: srv.server.publicUrl, joinToken: tok.body.token, fingerprint: tok.body.server_fingerprint, logger: memoryLogger() });
    expect(agent.status().node).toBe("node-c");
  });
});
