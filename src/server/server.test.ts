// The identity server over real TLS on 127.0.0.1: the public listener (bundle, join-token
// attestation), the API listener (mutual TLS with node SVIDs), and what each rejection leaves in
// the datastore.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { parseJwksBundle, SpiffeId, TrustDomain } from "../spiffe/index.ts";
import { fingerprintSha256, fromBase64, readCertificate, serialHex, verifyX509Svid } from "../x509/index.ts";
import { createTestCa } from "../../test/helpers/test-ca.ts";
import { encodePem, exportPkcs8Pem } from "../x509/index.ts";
import { joinNode, newCsr, rawTlsRequest, startTestServer, tlsFetch, TEST_TD, type ClientIdentity, type TestServer } from "./test-server.ts";
import { p384Keys, rawCsr, rsaKeys } from "./test-csrs.ts";
import { tokenHash } from "./issuer.ts";

const T = 20_000;
const td = TrustDomain.parse(TEST_TD);
let t: TestServer;
let n1: ClientIdentity;

const attest = (body: unknown) => tlsFetch(`${t.server.publicUrl}/v1/attest/join-token`, { caPem: t.server.rootsPem(), body });
const api = (path: string, client: ClientIdentity | undefined, body?: unknown) =>
  tlsFetch(`${t.server.apiUrl}${path}`, { caPem: t.server.rootsPem(), ...(client ? { client } : {}), ...(body !== undefined ? { body } : {}) });
const token = async (node: string, ttl?: number) => (await t.admin("POST", "/v1/tokens", { node, ...(ttl ? { ttl_seconds: ttl } : {}) })).body.token as string;
const entryFor = async (node: string, path: string) =>
  (await t.admin("POST", "/v1/entries", { spiffe_id: `spiffe://${TEST_TD}${path}`, parent_id: `spiffe://${TEST_TD}/tidegate/agent/${node}`, selectors: ["unix:uid:1000"], dns_names: ["w.example"] })).body;

beforeAll(async () => {
  t = await startTestServer();
  n1 = (await joinNode(t, "n1")).client;
}, T);
afterAll(async () => t?.close());

describe("public listener", () => {
  test("the bundle endpoint serves the SPIFFE JWKS that the root fingerprint names", async () => {
    const res = await tlsFetch(`${t.server.publicUrl}/.well-known/spiffe-bundle`, { caPem: t.server.rootsPem() });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("application/json");
    const bundle = await parseJwksBundle(td, JSON.stringify(res.body));
    expect(bundle.sequence).toBe(t.server.ca.bundleSequence());
    expect(bundle.refreshHintSeconds).toBe(2);
    expect(bundle.x509Authorities.length).toBe(1);
    const created = await t.admin("POST", "/v1/tokens", { node: "fp" });
    expect(created.body.server_fingerprint).toBe((await fingerprintSha256(bundle.x509Authorities[0]!)).replaceAll(":", "").toLowerCase());
  }, T);

  test("a body declared over 64 KiB is refused before it is read, and the connection closed", async () => {
    // Anyone may connect here: the server must not buffer what a caller says it will send.
    const { data, closed } = await rawTlsRequest(
      t.server.publicUrl,
      t.server.rootsPem(),
      "POST /v1/attest/join-token HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100000000\r\n\r\n{",
    );
    expect(closed).toBe(true);
    expect(data).toStartWith("HTTP/1.1 413");
    expect(data).toContain('"code":"body_too_large"');
  }, T);

  test("join with a token: the node SVID verifies against the served bundle", async () => {
    const tok = await token("n2");
    const { csr } = await newCsr();
    const res = await attest({ token: tok, csr });
    expect(res.status).toBe(200);
    expect(res.body.node).toBe("n2");
    expect(res.body.spiffe_id).toBe(`spiffe://${TEST_TD}/tidegate/agent/n2`);
    expect(res.body.api_port).toBe(t.server.api.port);
    const bundle = await parseJwksBundle(td, JSON.stringify(res.body.bundle));
    const chain = (res.body.svid as string[]).map((c) => fromBase64(c)!);
    const verified = await verifyX509Svid(chain, { x509Authorities: () => bundle.x509Authorities }, { now: new Date() });
    expect(verified.id.toString()).toBe(`spiffe://${TEST_TD}/tidegate/agent/n2`);
    const node = await t.server.store.getNode("n2");
    expect(node?.serial).toBe(serialHex(readCertificate(chain[0]!)));
    expect(await t.server.store.getIssued(node!.serial)).not.toBeNull();
    const rec = await t.server.store.getJoinToken(tokenHash(tok));
    expect(rec?.usedAt).not.toBeNull();
  }, T);

  test("a used, an unknown and an expired token are 401 with their codes", async () => {
    const tok = await token("n3");
    expect((await attest({ token: tok, csr: (await newCsr()).csr })).status).toBe(200);
    const again = await attest({ token: tok, csr: (await newCsr()).csr });
    expect([again.status, again.body.error.code]).toEqual([401, "token_used"]);
    const unknown = await attest({ token: "not-a-token-anyone-made", csr: (await newCsr()).csr });
    expect([unknown.status, unknown.body.error.code]).toEqual([401, "token_unknown"]);
    const short = await token("n4", 5);
    t.clock.offsetMs = 6000;
    try {
      const expired = await attest({ token: short, csr: (await newCsr()).csr });
      expect([expired.status, expired.body.error.code]).toEqual([401, "token_expired"]);
    } finally {
      t.clock.offsetMs = 0;
    }
    expect(await t.server.store.getNode("n4")).toBeNull();
  }, T);

  test("bad CSRs are 400 with the csr_* code, and the token stays usable", async () => {
    const tok = await token("n5");
    const other = SpiffeId.parse(`spiffe://${TEST_TD}/tidegate/agent/someone-else`);
    const rows: [string, string, string][] = [
      ["another SPIFFE ID", "csr_id_mismatch", (await newCsr(other)).csr],
      ["an extra DNS SAN", "csr_extra_san", await rawCsr({ uris: [`spiffe://${TEST_TD}/tidegate/agent/n5`], dns: ["evil.example"] })],
      ["two URI SANs", "csr_extra_san", await rawCsr({ uris: [`spiffe://${TEST_TD}/tidegate/agent/n5`, other.toString()] })],
      ["a CA flag", "csr_requests_ca", await rawCsr({ ca: true })],
      ["an RSA key", "csr_unsupported_key", await rawCsr({ keys: await rsaKeys() })],
      ["a P-384 key", "csr_unsupported_key", await rawCsr({ keys: await p384Keys() })],
      ["malformed DER", "csr_malformed", "MIIBAAECAwQ="],
      ["not base64", "csr_malformed", "%%%"],
    ];
    for (const [what, code, csr] of rows) {
      const res = await attest({ token: tok, csr });
      expect({ what, status: res.status, code: res.body.error?.code }).toEqual({ what, status: 400, code });
    }
    expect((await t.server.store.getJoinToken(tokenHash(tok)))?.usedAt).toBeNull();
    expect((await attest({ token: tok, csr: (await newCsr()).csr })).status).toBe(200);
  }, T);

  test("a body that is not the contract's shape is 400 bad_request naming the field, never the token", async () => {
    const res = await attest({ token: "secret-looking-value", csr: 5 });
    expect([res.status, res.body.error.code]).toEqual([400, "bad_request"]);
    expect(res.body.error.message).toContain('"csr"');
    expect(JSON.stringify(res.body)).not.toContain("secret-looking-value");
    const extra = await attest({ token: "x", csr: "y", node: "z" });
    expect(extra.body.error.message).toContain('"node" is not a known field');
  }, T);
});

describe("API listener (mutual TLS)", () => {
  test("without a client certificate: 401 client_cert_required", async () => {
    const res = await api("/v1/sync", undefined);
    expect([res.status, res.body.error.code]).toEqual([401, "client_cert_required"]);
  }, T);

  test("a client certificate of another trust domain: 401 client_cert_invalid", async () => {
    const foreign = await createTestCa({ trustDomain: "other.org" });
    const leaf = await foreign.mintLeaf(`spiffe://${foreign.trustDomain.name}/tidegate/agent/n1`);
    const client = { certPem: leaf.chain.map((d) => encodePem("CERTIFICATE", d)).join(""), keyPem: await exportPkcs8Pem(leaf.privateKey) };
    const res = await api("/v1/sync", client);
    expect([res.status, res.body.error.code]).toEqual([401, "client_cert_invalid"]);
    expect(res.body.error.message).toMatch(/svid_(no_bundle|untrusted|bad_signature)/);
  }, T);

  test("an expired node SVID: 401 client_cert_invalid (svid_expired)", async () => {
    // Minted by the server's own CA two minutes ago for one minute (the server's clock stays put:
    // shifting it would make the server renew its own SVID in the future).
    const { csr, keyPem } = await newCsr();
    const old = await t.server.ca.mintFromCsr({ csr: fromBase64(csr)!, id: SpiffeId.parse(`spiffe://${TEST_TD}/tidegate/agent/n1`), ttlSeconds: 60, now: new Date(Date.now() - 120_000) });
    const res = await api("/v1/sync", { certPem: old.chain.map((d) => encodePem("CERTIFICATE", d)).join(""), keyPem });
    expect([res.status, res.body.error.code]).toEqual([401, "client_cert_invalid"]);
    expect(res.body.error.message).toContain("svid_expired");
  }, T);

  test("a workload SVID of this trust domain is not a node: 401 not_a_node", async () => {
    const entry = await entryFor("n1", "/svc/a");
    const { csr, keyPem } = await newCsr();
    const res = await api("/v1/svid", n1, { entry_id: entry.id, csr });
    expect(res.status).toBe(200);
    const workload = { certPem: (res.body.svid as string[]).map((c) => encodePem("CERTIFICATE", fromBase64(c)!)).join(""), keyPem };
    const denied = await api("/v1/sync", workload);
    expect([denied.status, denied.body.error.code]).toEqual([401, "not_a_node"]);
  }, T);

  test("sync lists the node's entries and the bundle", async () => {
    const entry = await entryFor("n1", "/svc/sync");
    await entryFor("other-node", "/svc/not-mine");
    const res = await api("/v1/sync", n1);
    expect(res.status).toBe(200);
    expect(res.body.node).toBe("n1");
    expect(res.body.entries.map((e: { id: string }) => e.id)).toContain(entry.id);
    expect(res.body.entries.every((e: { parent_id: string }) => e.parent_id === `spiffe://${TEST_TD}/tidegate/agent/n1`)).toBe(true);
    expect(res.body.bundle_sequence).toBe(t.server.ca.bundleSequence());
  }, T);

  test("a workload SVID is recorded before it is returned, with the entry's ID and DNS names", async () => {
    const entry = await entryFor("n1", "/svc/issued");
    const before = await t.server.store.countIssued();
    const res = await api("/v1/svid", n1, { entry_id: entry.id, csr: (await newCsr()).csr });
    expect(res.status).toBe(200);
    const leaf = readCertificate(fromBase64(res.body.svid[0])!);
    expect(leaf.uriSans).toEqual([`spiffe://${TEST_TD}/svc/issued`]);
    expect(leaf.dnsSans).toEqual(["w.example"]);
    const rec = await t.server.store.getIssued(serialHex(leaf));
    expect(rec).toMatchObject({ kind: "workload", nodeName: "n1", entryId: entry.id, spiffeId: `spiffe://${TEST_TD}/svc/issued` });
    expect(await t.server.store.countIssued()).toBe(before + 1);
    expect(res.body.expires_at).toBe(new Date(leaf.notAfter).toISOString());
  }, T);

  test("another node's entry: 403 entry_not_for_node, logged, nothing issued", async () => {
    const entry = await entryFor("other-node", "/svc/theirs");
    const before = await t.server.store.countIssued();
    const res = await api("/v1/svid", n1, { entry_id: entry.id, csr: (await newCsr()).csr });
    expect([res.status, res.body.error.code]).toEqual([403, "entry_not_for_node"]);
    expect(t.logger.lines.some((l) => l.event === "entry_not_for_node" && l.node === "n1" && l.entry_id === entry.id)).toBe(true);
    expect(await t.server.store.countIssued()).toBe(before);
  }, T);

  test("an unknown entry is 404 entry_unknown; a CSR for another ID is 400 csr_id_mismatch", async () => {
    const unknown = await api("/v1/svid", n1, { entry_id: "no-such-entry", csr: (await newCsr()).csr });
    expect([unknown.status, unknown.body.error.code]).toEqual([404, "entry_unknown"]);
    const entry = await entryFor("n1", "/svc/mismatch");
    const wrong = await api("/v1/svid", n1, { entry_id: entry.id, csr: (await newCsr(SpiffeId.parse(`spiffe://${TEST_TD}/svc/else`))).csr });
    expect([wrong.status, wrong.body.error.code]).toEqual([400, "csr_id_mismatch"]);
  }, T);

  test("renewing a known node replaces its SVID serial and keeps when it first attested", async () => {
    const { client } = await joinNode(t, "keeper");
    const before = (await t.server.store.getNode("keeper"))!;
    await Bun.sleep(5);
    const renew = await api("/v1/node/renew", client, { csr: (await newCsr()).csr });
    expect(renew.status).toBe(200);
    const after = (await t.server.store.getNode("keeper"))!;
    expect(after.serial).not.toBe(before.serial);
    expect(after.attestedAt).toEqual(before.attestedAt);
    expect(after.updatedAt.getTime()).toBeGreaterThan(before.updatedAt.getTime());
    expect(t.logger.lines.some((l) => l.event === "node_renewed" && l.node === "keeper")).toBe(true);
  }, T);

  test("renew gives a fresh node SVID; a node the server lost re-attests with its SVID", async () => {
    const { client } = await joinNode(t, "lost");
    expect(await t.server.store.deleteNode("lost")).toBe(true);
    const sync = await api("/v1/sync", client);
    expect([sync.status, sync.body.error.code]).toEqual([404, "node_unknown"]);
    const renew = await api("/v1/node/renew", client, { csr: (await newCsr()).csr });
    expect(renew.status).toBe(200);
    expect(renew.body.spiffe_id).toBe(`spiffe://${TEST_TD}/tidegate/agent/lost`);
    expect(await t.server.store.getNode("lost")).not.toBeNull();
    expect(t.logger.lines.some((l) => l.event === "node_reattested" && l.node === "lost")).toBe(true);
    expect((await api("/v1/sync", client)).status).toBe(200);
  }, T);

  test("no join token ever reaches the log", async () => {
    const tok = await token("logcheck");
    await attest({ token: tok, csr: (await newCsr()).csr });
    await attest({ token: tok, csr: (await newCsr()).csr });
    const text = JSON.stringify(t.logger.lines);
    expect(text).not.toContain(tok);
    expect(text).not.toContain(tokenHash(tok));
  }, T);
});

describe("svid lifetimes that agents renew at once", () => {
  test("the server says so at start, once per short setting; the test server's 60 s say nothing", async () => {
    expect(t.logger.lines.filter((l) => l.event === "svid_ttl_short")).toEqual([]);
    const s = await startTestServer({ yaml: "svid: { default_ttl: 8s, node_ttl: 1h, server_ttl: 1h }" });
    try {
      expect(s.logger.lines.filter((l) => l.event === "svid_ttl_short")).toMatchObject([{ level: "warn", setting: "svid.default_ttl", ttl_seconds: 8 }]);
    } finally {
      await s.close();
    }
  }, T);
});

describe("rate limits", () => {
  let r: TestServer;
  beforeAll(async () => {
    r = await startTestServer({ yaml: "rate_limit: { svid_per_node: 3/s, attest_per_source: 2/s }\nsvid: { default_ttl: 60s }" });
  }, T);
  afterAll(async () => r?.close());

  test("POST /v1/svid over the node's rate: 429 rate_limited with Retry-After", async () => {
    const tok = (await r.admin("POST", "/v1/tokens", { node: "busy" })).body.token;
    const { csr, keyPem } = await newCsr();
    const j = await tlsFetch(`${r.server.publicUrl}/v1/attest/join-token`, { caPem: r.server.rootsPem(), body: { token: tok, csr } });
    const client = { certPem: (j.body.svid as string[]).map((c) => encodePem("CERTIFICATE", fromBase64(c)!)).join(""), keyPem };
    const entry = (await r.admin("POST", "/v1/entries", { spiffe_id: `spiffe://${TEST_TD}/w`, parent_id: `spiffe://${TEST_TD}/tidegate/agent/busy`, selectors: ["unix:uid:1000"] })).body;
    const statuses: number[] = [];
    let limited: Awaited<ReturnType<typeof tlsFetch>> | undefined;
    for (let i = 0; i < 6; i++) {
      const res = await tlsFetch(`${r.server.apiUrl}/v1/svid`, { caPem: r.server.rootsPem(), client, body: { entry_id: entry.id, csr: (await newCsr()).csr } });
      statuses.push(res.status);
      if (res.status === 429) limited = res;
    }
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(3);
    expect(statuses).toContain(429);
    expect(limited!.body.error.code).toBe("rate_limited");
    expect(Number(limited!.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
  }, T);

  test("join attempts over the per-source rate: 429 before the token is looked at", async () => {
    const codes: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await tlsFetch(`${r.server.publicUrl}/v1/attest/join-token`, { caPem: r.server.rootsPem(), body: { token: `guess-${i}`, csr: "AA==" } });
      codes.push(res.body.error.code);
    }
    expect(codes).toContain("rate_limited");
    expect(codes.filter((c) => c === "token_unknown").length).toBeLessThanOrEqual(2);
  }, T);
});
