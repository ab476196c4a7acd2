// Two real servers in one process: A (example.org) federates with partner.test over https_spiffe,
// authenticated the first time by the bundle partner's admin API gave out. What A's status shows,
// what A's nodes get in their sync answer, a root rotation on partner reaching A before the new
// root is used, and A dropping partner's bundle max_age after partner went away.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readFederated } from "../agent/federated.ts";
import { parseJwksBundle, TrustDomain } from "../spiffe/index.ts";
import { encodePem, fingerprintSha256 } from "../x509/index.ts";
import type { FederationStatus } from "./federation.ts";
import { joinNode, startTestServer, tlsFetch, TEST_TD, TEST_YAML, type ClientIdentity, type TestServer } from "./test-server.ts";

const T = 30_000;
const PARTNER = TrustDomain.parse("partner.test");
const ENDPOINT_ID = "spiffe://partner.test/tidegate/server";
/** partner's refresh hint: A fetches every 1.5 s; a new root is used 3 s after it is published. */
const HINT_S = 3;
const MAX_AGE_S = 4;

let dir: string;
let partner: TestServer;
let a: TestServer;
let node: ClientIdentity;
let partnerStopped = false;

async function until<V>(what: string, probe: () => Promise<V | undefined | null | false>, ms = 10_000): Promise<V> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== null && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(50);
  }
}

const fedStatus = async (): Promise<FederationStatus> => {
  const s = await a.admin("GET", "/v1/status");
  expect(s.status).toBe(200);
  return s.body.federation[0];
};
const sync = async () => {
  const res = await tlsFetch(`${a.server.apiUrl}/v1/sync`, { caPem: a.server.rootsPem(), client: node });
  expect(res.status).toBe(200);
  return res.body as { federated: { trust_domain: string; bundle: unknown; expires_at: string }[] };
};
const rootsIn = async (jwks: unknown) => (await parseJwksBundle(PARTNER, JSON.stringify(jwks))).x509Authorities;
const sha = async (der: Uint8Array) => (await fingerprintSha256(der)).replaceAll(":", "").toLowerCase();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tidegate-federation-servers-"));
  partner = await startTestServer({ trustDomain: PARTNER.name, yaml: TEST_YAML.replace("refresh_hint: 2s", `refresh_hint: ${HINT_S}s`) });
  // out of band, once: partner's bundle, as `tidegate server bundle` prints it
  const bundle = await partner.admin("GET", "/v1/bundle");
  expect(bundle.status).toBe(200);
  const bundleFile = join(dir, "partner.json");
  writeFileSync(bundleFile, JSON.stringify(bundle.body));
  a = await startTestServer({
    yaml: [
      TEST_YAML,
      "federation:",
      "  - trust_domain: partner.test",
      `    bundle_endpoint: https://127.0.0.1:${partner.server.public.port}/.well-known/spiffe-bundle`,
      "    profile: https_spiffe",
      `    endpoint_id: ${ENDPOINT_ID}`,
      `    bundle: ${bundleFile}`,
      `    max_age: ${MAX_AGE_S}s`,
    ].join("\n"),
  });
  node = (await joinNode(a, "n1")).client;
}, T);
afterAll(async () => {
  await a?.close();
  if (!partnerStopped) await partner?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("example.org federates partner.test (https_spiffe)", () => {
  test("A's status shows partner.test current, fetched from the endpoint", async () => {
    const f = await until("a current bundle", async () => {
      const f = await fedStatus();
      return f.state === "current" && f;
    });
    expect(f).toMatchObject({ trust_domain: "partner.test", profile: "https_spiffe", bundle_endpoint: `https://127.0.0.1:${partner.server.public.port}/.well-known/spiffe-bundle`, failures: 0, last_error: null });
    expect(Date.parse(f.expires_at!) - Date.parse(f.refreshed_at!)).toBe(MAX_AGE_S * 1000);
    expect(a.logger.lines.find((l) => l.event === "federated_bundle_updated")).toMatchObject({ trust_domain: "partner.test", roots: 1, refresh_hint_seconds: HINT_S });
  }, T);

  test("a node of A gets partner's bundle in its sync answer, expiring max_age after A fetched it", async () => {
    const before = await fedStatus();
    const answer = await sync();
    const after = await fedStatus();
    expect(answer.federated.map((f) => f.trust_domain)).toEqual(["partner.test"]);
    const item = answer.federated[0]!;
    expect([before.expires_at, after.expires_at]).toContain(new Date(Date.parse(item.expires_at)).toISOString());
    const roots = await rootsIn(item.bundle);
    expect(roots).toHaveLength(1);
    expect(await sha(roots[0]!)).toBe(partner.server.ca.status().roots[0]!.sha256);
    // what the agent makes of it (federated.ts): partner.test's bundle, with that expiry
    const held = await readFederated(answer.federated, TrustDomain.parse(TEST_TD), "GET /v1/sync");
    expect([...held.keys()]).toEqual(["partner.test"]);
    expect(held.get("partner.test")!.expiresAt).toBe(Date.parse(item.expires_at));
  }, T);

  test("rotate-ca --root on partner: A's nodes hold both roots before the new one is used, and A still reaches partner after", async () => {
    const rotated = await partner.admin("POST", "/v1/ca/rotate", { root: true });
    expect(rotated.status).toBe(200);
    const pending = (rotated.body.roots as { sha256: string; state: string; activate_at?: string }[]).find((r) => r.state === "pending")!;
    const activateAt = Date.parse(pending.activate_at!);
    const both = await until("both roots in A's sync answer", async () => {
      const f = (await sync()).federated[0];
      return f !== undefined && (await rootsIn(f.bundle)).length === 2 && f;
    });
    const seenAt = Date.now();
    expect(seenAt).toBeLessThan(activateAt);
    expect((await Promise.all((await rootsIn(both.bundle)).map(sha))).sort()).toEqual(partner.server.ca.status().roots.map((r) => r.sha256).sort());

    // partner activates the new root and presents an SVID below it; A fetches with the bundle it holds
    let newRoot: Uint8Array | undefined;
    for (const r of await rootsIn(both.bundle)) if ((await sha(r)) === pending.sha256) newRoot = r;
    const newRootPem = encodePem("CERTIFICATE", newRoot!);
    const byNewRoot = () => tlsFetch(`${partner.server.publicUrl}/.well-known/spiffe-bundle`, { caPem: newRootPem, serverId: ENDPOINT_ID }).then((r) => r.status === 200, () => false);
    if (Date.now() < activateAt - 300) expect(await byNewRoot()).toBe(false); // not used yet
    await until("partner's endpoint presenting an SVID below the new root", byNewRoot);
    const switchedAt = Date.now();
    const f = await until("a fetch after the switch", async () => {
      const f = await fedStatus();
      return Date.parse(f.refreshed_at!) > switchedAt + 200 && f;
    });
    expect(f).toMatchObject({ state: "current", failures: 0, last_error: null });
    expect(a.logger.lines.filter((l) => l.event === "federation_fetch_failed")).toEqual([]);
  }, T);

  test("partner stopped: A keeps its bundle until max_age after the last fetch, then drops it, once", async () => {
    await partner.close();
    partnerStopped = true;
    // from the first failed fetch on, nothing refreshes the bundle: its expiry is fixed
    const last = await until("a failed fetch", async () => {
      const f = await fedStatus();
      return f.failures > 0 && f;
    });
    const expiresAt = Date.parse(last.expires_at!);
    if (Date.now() < expiresAt - 300) {
      expect((await sync()).federated.map((f) => f.trust_domain)).toEqual(["partner.test"]);
      expect((await fedStatus()).state).toBe("current");
    }
    await until("the bundle dropped from the sync answer", async () => (await sync()).federated.length === 0);
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt);
    const f = await fedStatus();
    expect(f).toMatchObject({ state: "dropped", expires_at: last.expires_at, refreshed_at: last.refreshed_at });
    expect(f.last_error).toContain("cannot reach partner.test's bundle endpoint");
    await until("the drop logged", async () => a.logger.lines.some((l) => l.event === "federated_bundle_dropped"));
    await Bun.sleep(500); // a few more ticks: still once
    expect(a.logger.lines.filter((l) => l.event === "federated_bundle_dropped")).toHaveLength(1);
  }, T);
});
