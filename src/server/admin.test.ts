// The admin API on server.sock: entry validation (every rejection with its code), tokens (stored
// hashed, TTL from the settings), nodes, CA rotation applied to the listeners, status.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { statSync } from "node:fs";
import { fromBase64, readCertificate, serialHex } from "../x509/index.ts";
import { joinNode, newCsr, startTestServer, tlsFetch, TEST_TD, type TestServer } from "./test-server.ts";
import { tokenHash } from "./issuer.ts";

const T = 20_000;
const NODE = `spiffe://${TEST_TD}/tidegate/agent/n1`;
let t: TestServer;

beforeAll(async () => {
  t = await startTestServer();
}, T);
afterAll(async () => t?.close());

describe("entries", () => {
  const good = { spiffe_id: `spiffe://${TEST_TD}/svc/web`, parent_id: NODE, selectors: ["unix:uid:1000", "tidegate:workload:web"] };

  test("create, get, list by parent, delete", async () => {
    const created = await t.admin("POST", "/v1/entries", { ...good, ttl_seconds: 120, dns_names: ["web.example", "*.web.example"] });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ spiffe_id: good.spiffe_id, parent_id: NODE, selectors: ["tidegate:workload:web", "unix:uid:1000"], ttl_seconds: 120, revision: 1 });
    const id = created.body.id;
    expect((await t.admin("GET", `/v1/entries/${id}`)).body).toEqual(created.body);
    expect((await t.admin("GET", `/v1/entries?parent_id=${encodeURIComponent(NODE)}`)).body.entries.map((e: { id: string }) => e.id)).toContain(id);
    expect((await t.admin("GET", `/v1/entries?parent_id=${encodeURIComponent(`spiffe://${TEST_TD}/tidegate/agent/n9`)}`)).body.entries).toEqual([]);
    const dup = await t.admin("POST", "/v1/entries", { ...good, ttl_seconds: 120 });
    expect([dup.status, dup.body.error.code]).toEqual([409, "entry_exists"]);
    expect((await t.admin("DELETE", `/v1/entries/${id}`)).status).toBe(204);
    const gone = await t.admin("GET", `/v1/entries/${id}`);
    expect([gone.status, gone.body.error.code]).toEqual([404, "entry_unknown"]);
    expect((await t.admin("DELETE", `/v1/entries/${id}`)).body.error.code).toBe("entry_unknown");
  }, T);

  test("the default TTL is the settings' svid.default_ttl", async () => {
    const res = await t.admin("POST", "/v1/entries", { ...good, spiffe_id: `spiffe://${TEST_TD}/svc/default-ttl` });
    expect(res.body.ttl_seconds).toBe(60);
  }, T);

  const rejections: [string, Record<string, unknown>, string][] = [
    ["a SPIFFE ID that does not parse", { spiffe_id: "spiffe://Example.org/x" }, "bad_spiffe_id"],
    ["an http URL", { spiffe_id: "https://example.org/x" }, "bad_spiffe_id"],
    ["an ID without a path", { spiffe_id: `spiffe://${TEST_TD}` }, "bad_spiffe_id"],
    ["an ID of another trust domain", { spiffe_id: "spiffe://other.org/x" }, "wrong_trust_domain"],
    ["the server's own ID", { spiffe_id: `spiffe://${TEST_TD}/tidegate/server` }, "reserved_spiffe_id"],
    ["a node's ID", { spiffe_id: `spiffe://${TEST_TD}/tidegate/agent/n2` }, "reserved_spiffe_id"],
    ["a parent that is not a node", { parent_id: `spiffe://${TEST_TD}/svc/web` }, "bad_parent_id"],
    ["a parent below a node", { parent_id: `${NODE}/x` }, "bad_parent_id"],
    ["a parent of another trust domain", { parent_id: "spiffe://other.org/tidegate/agent/n1" }, "wrong_trust_domain"],
    ["a parent that does not parse", { parent_id: "n1" }, "bad_parent_id"],
    ["a selector without a type", { selectors: ["uid1000"] }, "bad_selector"],
    ["a selector with an upper-case type", { selectors: ["Unix:uid:1"] }, "bad_selector"],
    ["a selector with an empty value", { selectors: ["unix:"] }, "bad_selector"],
    ["a selector of a type no attestor gives", { selectors: ["bogus:thing"] }, "bad_selector"],
    ["a selector with a misspelt type", { selectors: ["tidgate:workload:web"] }, "bad_selector"],
    ["a selector with a misspelt key", { selectors: ["unix:ud:1000"] }, "bad_selector"],
    ["a unix:uid that is not a number", { selectors: ["unix:uid:abc"] }, "bad_selector"],
    ["a container:id that is not 64 hex", { selectors: ["container:id:abc"] }, "bad_selector"],
    ["no selector", { selectors: [] }, "bad_request"],
    ["a bad DNS name", { dns_names: ["bad_name.example"] }, "bad_dns_name"],
    ["a TTL of 0", { ttl_seconds: 0 }, "bad_request"],
    ["a fractional TTL", { ttl_seconds: 1.5 }, "bad_request"],
    ["an unknown field", { parent: NODE }, "bad_request"],
    ["a missing field", { spiffe_id: undefined }, "bad_request"],
  ];
  for (const [what, change, code] of rejections) {
    test(`400 ${code}: ${what}`, async () => {
      const before = await t.server.store.countEntries();
      const res = await t.admin("POST", "/v1/entries", { ...good, spiffe_id: `spiffe://${TEST_TD}/svc/rejected`, ...change });
      expect([res.status, res.body.error.code]).toEqual([400, code]);
      expect(res.body.error.message).toMatch(/^server: /);
      expect(await t.server.store.countEntries()).toBe(before);
    });
  }

  test("a bad selector's error names it, says why and what it probably is", async () => {
    const typo = await t.admin("POST", "/v1/entries", { ...good, spiffe_id: `spiffe://${TEST_TD}/svc/rejected`, selectors: ["unix:uid:1000", "tidgate:workload:web"] });
    expect([typo.status, typo.body.error.code]).toEqual([400, "bad_selector"]);
    expect(typo.body.error.message).toBe('server: selector "tidgate:workload:web" has type "tidgate", which no attestor gives (types: unix, cgroup, container, k8s, tidegate); did you mean tidegate?');
    const uid = await t.admin("POST", "/v1/entries", { ...good, spiffe_id: `spiffe://${TEST_TD}/svc/rejected`, selectors: ["unix:uid:abc"] });
    expect(uid.body.error.message).toMatch(/^server: selector "unix:uid:abc": the value of unix:uid must be a decimal id/);
    // what `tidegate up` gives an inbound listener's entry is accepted, though no attestor gives it
    const inbound = await t.admin("POST", "/v1/entries", { ...good, spiffe_id: `spiffe://${TEST_TD}/svc/listener`, selectors: ["tidegate:inbound:email-mcp"] });
    expect(inbound.status).toBe(201);
  }, T);

  test("an unknown route is 404 not_found; a body over 64 KiB is 413 body_too_large", async () => {
    const res = await t.admin("GET", "/v1/nope");
    expect([res.status, res.body.error.code]).toEqual([404, "not_found"]);
    const big = await t.admin("POST", "/v1/entries", { ...good, dns_names: ["x".repeat(70_000)] });
    expect([big.status, big.body.error.code]).toEqual([413, "body_too_large"]);
  });

  test("a body that is not JSON is 400 bad_request", async () => {
    const res = await fetch("http://localhost/v1/entries", { method: "POST", unix: t.server.socketPath, body: "{" } as RequestInit);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("bad_request");
  });
});

describe("tokens and nodes", () => {
  test("a token is 32 random bytes base64url, stored only as its SHA-256, with the default TTL", async () => {
    const res = await t.admin("POST", "/v1/tokens", { node: "n1" });
    expect(res.status).toBe(201);
    expect(res.body.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(res.body.server_fingerprint).toMatch(/^[0-9a-f]{64}$/);
    const rec = await t.server.store.getJoinToken(tokenHash(res.body.token));
    expect(rec?.nodeName).toBe("n1");
    expect(rec!.expiresAt.getTime() - rec!.createdAt.getTime()).toBe(30_000);
    expect(Date.parse(res.body.expires_at)).toBe(rec!.expiresAt.getTime());
    const custom = await t.admin("POST", "/v1/tokens", { node: "n1", ttl_seconds: 5 });
    const rec2 = await t.server.store.getJoinToken(tokenHash(custom.body.token));
    expect(rec2!.expiresAt.getTime() - rec2!.createdAt.getTime()).toBe(5000);
  });

  test("a node name that is not one path segment is 400 bad_node_name", async () => {
    for (const node of ["a/b", "..", "", "a b"]) {
      const res = await t.admin("POST", "/v1/tokens", { node });
      expect({ node, code: res.body.error.code }).toEqual({ node, code: node === "" ? "bad_request" : "bad_node_name" });
    }
  });

  test("nodes lists attested nodes with their SVID serial", async () => {
    const { answer } = await joinNode(t, "listed");
    const res = await t.admin("GET", "/v1/nodes");
    const node = res.body.nodes.find((n: { node: string }) => n.node === "listed");
    expect(node.spiffe_id).toBe(answer.spiffe_id);
    expect(node.serial).toBe(serialHex(readCertificate(fromBase64(answer.svid[0])!)));
  }, T);
});

describe("status and CA rotation", () => {
  test("status names the listeners, the CA and the counts; the socket is 0600", async () => {
    const res = await t.admin("GET", "/v1/status");
    expect(res.body.trust_domain).toBe(TEST_TD);
    expect(res.body.public).toBe(`127.0.0.1:${t.server.public.port}`);
    expect(res.body.api).toBe(`127.0.0.1:${t.server.api.port}`);
    expect(res.body.ca.roots[0]).toMatchObject({ state: "active" });
    expect(res.body.ca.signing.serial).toMatch(/^[0-9a-f]+$/);
    expect(statSync(t.server.socketPath).mode & 0o777).toBe(0o600);
    const json = JSON.parse(await Bun.file(t.server.paths.serverJson).text());
    expect(json).toEqual({ trust_domain: TEST_TD, public: res.body.public, api: res.body.api, pid: process.pid });
  });

  test("rotate-ca: a new signing CA, a new server SVID on the listeners, old node SVIDs still accepted", async () => {
    const { client } = await joinNode(t, "rotating");
    const before = (await t.admin("GET", "/v1/status")).body.ca.signing.serial;
    const firstLeaf = await (async () => {
      let seen: string | undefined;
      await fetch(`${t.server.publicUrl}/.well-known/spiffe-bundle`, { tls: { ca: t.server.rootsPem(), checkServerIdentity: (_h: string, c: { serialNumber?: string }) => void (seen = c.serialNumber) } } as RequestInit);
      return seen;
    })();
    const rotated = await t.admin("POST", "/v1/ca/rotate", { root: false });
    expect(rotated.status).toBe(200);
    expect(rotated.body.signing.serial).not.toBe(before);
    const leafSerial = async () => {
      let seen: string | undefined;
      const res = await fetch(`${t.server.publicUrl}/.well-known/spiffe-bundle`, {
        tls: { ca: t.server.rootsPem(), checkServerIdentity: (_h: string, cert: { serialNumber?: string }) => void (seen = cert.serialNumber) },
      } as RequestInit);
      expect(res.status).toBe(200);
      return seen?.toLowerCase();
    };
    const serverSvid = async () => (await t.server.store.getIssued(((await leafSerial()) ?? "").replace(/^0+/, "")))?.kind;
    expect(await serverSvid()).toBe("server");
    const issuedBefore = t.logger.lines.filter((l) => l.event === "server_svid_minted").length;
    expect((await tlsFetch(`${t.server.apiUrl}/v1/sync`, { caPem: t.server.rootsPem(), client })).status).toBe(200);
    expect(t.logger.lines.some((l) => l.event === "ca_rotated" && l.reason === "manual")).toBe(true);
    expect(t.logger.lines.filter((l) => l.event === "server_svid_minted").length).toBe(issuedBefore);
    expect(await leafSerial()).not.toBe(firstLeaf?.toLowerCase());
  }, T);

  test("rotate-ca --root publishes a second root: bundle sequence +1, a history row, 409 while pending", async () => {
    const seq = t.server.ca.bundleSequence();
    const rows = (await t.server.store.listBundles(TEST_TD)).length;
    const res = await t.admin("POST", "/v1/ca/rotate", { root: true });
    expect(res.status).toBe(200);
    expect(res.body.roots.map((r: { state: string }) => r.state).sort()).toEqual(["active", "pending"]);
    expect(t.server.ca.bundleSequence()).toBe(seq + 1);
    expect((await t.server.store.listBundles(TEST_TD)).length).toBe(rows + 1);
    const served = await tlsFetch(`${t.server.publicUrl}/.well-known/spiffe-bundle`, { caPem: t.server.rootsPem() });
    expect(served.body.spiffe_sequence).toBe(seq + 1);
    expect(served.body.keys.length).toBe(2);
    const again = await t.admin("POST", "/v1/ca/rotate", { root: true });
    expect([again.status, again.body.error.code]).toEqual([409, "ca_root_pending"]);
    // one refresh hint (2 s) later the tick activates it and the server re-mints its SVID under it
    const deadline = Date.now() + 8000;
    while (Date.now() < deadline && !t.logger.lines.some((l) => l.event === "root_activated")) await Bun.sleep(50);
    expect(t.logger.lines.some((l) => l.event === "root_activated")).toBe(true);
    const { csr } = await newCsr();
    const tok = (await t.admin("POST", "/v1/tokens", { node: "after-root" })).body.token;
    const joined = await tlsFetch(`${t.server.publicUrl}/v1/attest/join-token`, { caPem: t.server.rootsPem(), body: { token: tok, csr } });
    expect(joined.status).toBe(200);
  }, T);
});
