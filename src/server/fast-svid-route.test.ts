// POST /v1/svid is served by ./fast-svid-route.ts ahead of hono; it must answer exactly like the
// hono route of ./api-app.ts. The same requests go to the running server (real mutual TLS, the fast
// path) and to the hono app in this process (same datastore and CA, the caller's verdict set by
// hand), and their statuses, bodies and headers that matter are compared, and checked against the
// contract (docs/server-api.md).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Hono } from "hono";
import { memoryLogger } from "../runtime/log.ts";
import { TrustDomain } from "../spiffe/index.ts";
import { apiApp } from "./api-app.ts";
import { Issuer } from "./issuer.ts";
import { ConnectionVerdicts } from "./node-auth.ts";
import { RateLimiter } from "./rate-limit.ts";
import { expectSpiffeId, joinNode, newCsr, rawTlsRequest, startTestServer, TEST_TD, type ClientIdentity, type TestServer } from "./test-server.ts";
import { MAX_BODY_BYTES } from "./wire.ts";

const T = 20_000;

interface Answer {
  status: number;
  body: any;
  contentType: string | null;
  retryAfter: string | null;
}

async function answerOf(res: Response): Promise<Answer> {
  return { status: res.status, body: JSON.parse(await res.text()), contentType: res.headers.get("content-type"), retryAfter: res.headers.get("retry-after") };
}

/** Writes `request` on a fresh mutual-TLS connection; the response head, and whether the server closed within 2 s. */
async function rawRequest(t: TestServer, client: ClientIdentity, request: string): Promise<{ head: string; closed: boolean }> {
  const { data, closed } = await rawTlsRequest(t.server.apiUrl, t.server.rootsPem(), request, client);
  return { head: data.split("\r\n\r\n")[0] ?? "", closed };
}

/** The same request both ways: through the server's API listener, and through a hono app. */
function both(t: TestServer, client: ClientIdentity, hono: Hono<any>, socket: object) {
  return async (raw: string, path = "/v1/svid"): Promise<{ fast: Answer; hono: Answer }> => {
    const init = { method: "POST", headers: { "content-type": "application/json" }, body: raw };
    const fast = await fetch(`${t.server.apiUrl}${path}`, {
      ...init,
      tls: { ca: t.server.rootsPem(), cert: client.certPem, key: client.keyPem, checkServerIdentity: expectSpiffeId(`spiffe://${TEST_TD}/tidegate/server`) },
    } as RequestInit);
    return { fast: await answerOf(fast), hono: await answerOf(await hono.request(path, init, { incoming: { socket } })) };
  };
}

/** A hono API app over the server's datastore and CA, with its own verdicts and rate limiter; `node` calls on the returned socket. */
function reference(t: TestServer, node: string, svidPerNode: number): { hono: Hono<any>; socket: object } {
  const now = () => new Date();
  const issuer = new Issuer({
    trustDomain: TrustDomain.parse(TEST_TD),
    settings: t.settings,
    store: t.server.store,
    ca: t.server.ca,
    logger: memoryLogger(),
    now,
    bundle: () => {
      throw new Error("not used by POST /v1/svid");
    },
    svidLimiter: new RateLimiter(svidPerNode),
  });
  const verdicts = new ConnectionVerdicts();
  const socket = {};
  verdicts.set(socket, Promise.resolve({ node, spiffeId: `spiffe://${TEST_TD}/tidegate/agent/${node}`, notAfter: Date.now() + 3_600_000 }));
  return { hono: apiApp({ issuer, verdicts, logger: memoryLogger(), now }), socket };
}

const entryFor = async (t: TestServer, node: string, path: string) =>
  (await t.admin("POST", "/v1/entries", { spiffe_id: `spiffe://${TEST_TD}${path}`, parent_id: `spiffe://${TEST_TD}/tidegate/agent/${node}`, selectors: ["unix:uid:1000"] })).body as { id: string };

describe("POST /v1/svid: the fast path answers like the hono route", () => {
  let t: TestServer;
  let send: ReturnType<typeof both>;
  let mine: { id: string };
  let theirs: { id: string };
  let client: ClientIdentity;

  beforeAll(async () => {
    t = await startTestServer();
    ({ client } = await joinNode(t, "n1"));
    await joinNode(t, "n2");
    mine = await entryFor(t, "n1", "/svc/mine");
    theirs = await entryFor(t, "n2", "/svc/theirs");
    const ref = reference(t, "n1", 10_000);
    send = both(t, client, ref.hono, ref.socket);
  }, T);
  afterAll(async () => t?.close());

  test("a valid request: 200 with the entry, its SPIFFE ID, a chain and expires_at", async () => {
    for (const path of ["/v1/svid", "/v1/svid?x=1"]) {
      const { fast, hono } = await send(JSON.stringify({ entry_id: mine.id, csr: (await newCsr()).csr }), path);
      for (const a of [fast, hono]) {
        expect(a.status).toBe(200);
        expect(a.contentType).toBe("application/json");
        expect(Object.keys(a.body)).toEqual(["entry_id", "spiffe_id", "svid", "expires_at"]);
        expect(a.body.entry_id).toBe(mine.id);
        expect(a.body.spiffe_id).toBe(`spiffe://${TEST_TD}/svc/mine`);
        expect(a.body.svid).toHaveLength(2);
        expect(Number.isNaN(Date.parse(a.body.expires_at))).toBe(false);
      }
    }
  }, T);

  const rejected: [string, () => string, number, string, RegExp][] = [
    ["bad JSON", () => "{not json", 400, "bad_request", /not JSON/],
    ["an empty body", () => "", 400, "bad_request", /"entry_id" is missing/],
    ["not an object", () => JSON.stringify("text"), 400, "bad_request", /expected an object/],
    ["an unknown field", () => JSON.stringify({ entry_id: "e", csr: "c", node: "n2" }), 400, "bad_request", /"node" is not a known field/],
    ["a field of the wrong type", () => JSON.stringify({ entry_id: 5, csr: "c" }), 400, "bad_request", /"entry_id"/],
    ["an unknown entry", () => JSON.stringify({ entry_id: "no-such-entry", csr: "AAAA" }), 404, "entry_unknown", /no-such-entry/],
    ["another node's entry", () => JSON.stringify({ entry_id: theirs.id, csr: "AAAA" }), 403, "entry_not_for_node", /not parented to node "n1"/],
    ["a CSR that is not base64", () => JSON.stringify({ entry_id: mine.id, csr: "not base64!" }), 400, "csr_malformed", /base64/],
    ["an oversized body", () => JSON.stringify({ entry_id: mine.id, csr: "A".repeat(MAX_BODY_BYTES) }), 413, "body_too_large", /over 65536 bytes/],
  ];
  for (const [what, body, status, code, message] of rejected) {
    test(`${what}: ${status} ${code}, the same both ways`, async () => {
      const { fast, hono } = await send(body());
      expect(fast).toEqual(hono);
      expect(fast.status).toBe(status);
      expect(fast.contentType).toBe("application/json");
      expect(Object.keys(fast.body)).toEqual(["error"]);
      expect(Object.keys(fast.body.error)).toEqual(["code", "message"]);
      expect(fast.body.error.code).toBe(code);
      expect(fast.body.error.message).toMatch(message);
    }, T);
  }

  test("an oversized body is refused without being read to its end, and the connection closed", async () => {
    // Declares 100 MB and sends a few bytes: the answer must come at once (nothing waits for the
    // rest), say 413, and close the connection so the unread rest is never taken as a request.
    const reply = await rawRequest(t, client, `POST /v1/svid HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100000000\r\n\r\n{"entry_id":`);
    expect(reply.head).toStartWith("HTTP/1.1 413");
    expect(reply.head.toLowerCase()).toContain("connection: close");
    expect(reply.closed).toBe(true);
    expect((await send(JSON.stringify({ entry_id: mine.id, csr: (await newCsr()).csr }))).fast.status).toBe(200);
  }, T);

  test("another node's entry is logged as entry_not_for_node by the fast path too", async () => {
    t.logger.lines.length = 0;
    await send(JSON.stringify({ entry_id: theirs.id, csr: "AAAA" }));
    expect(t.logger.lines.filter((l) => l.event === "entry_not_for_node")).toHaveLength(1);
  }, T);

  test("without a client certificate: 401 client_cert_required", async () => {
    const res = await fetch(`${t.server.apiUrl}/v1/svid`, {
      method: "POST",
      body: JSON.stringify({ entry_id: mine.id, csr: "AAAA" }),
      tls: { ca: t.server.rootsPem(), checkServerIdentity: expectSpiffeId(`spiffe://${TEST_TD}/tidegate/server`) },
    } as RequestInit);
    const a = await answerOf(res);
    expect(a.status).toBe(401);
    expect(a.body.error.code).toBe("client_cert_required");
  }, T);
});

describe("POST /v1/svid over the node's rate, both ways", () => {
  let t: TestServer;
  let send: ReturnType<typeof both>;
  let mine: { id: string };

  beforeAll(async () => {
    t = await startTestServer({ yaml: "rate_limit: { svid_per_node: 1/s }\nsvid: { default_ttl: 60s }" });
    const { client } = await joinNode(t, "n1");
    mine = await entryFor(t, "n1", "/svc/mine");
    const ref = reference(t, "n1", 1);
    send = both(t, client, ref.hono, ref.socket);
  }, T);
  afterAll(async () => t?.close());

  test("429 rate_limited with Retry-After, the same both ways", async () => {
    const body = JSON.stringify({ entry_id: mine.id, csr: (await newCsr()).csr });
    const first = await send(body);
    expect([first.fast.status, first.hono.status]).toEqual([200, 200]);
    const { fast, hono } = await send(body);
    expect(fast).toEqual(hono);
    expect(fast.status).toBe(429);
    expect(fast.body.error.code).toBe("rate_limited");
    expect(fast.retryAfter).toBe("1");
  }, T);
});
