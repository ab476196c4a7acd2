import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { statSync, writeFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { memoryLogger } from "../runtime/log.ts";
import { formatPemBundle, Bundle } from "../spiffe/index.ts";
import { createTestCa } from "../../test/helpers/test-ca.ts";
import { bootstrap, type BootstrapOptions } from "./bootstrap.ts";
import { StateFiles } from "./state-files.ts";
import { parseFingerprint } from "./trust.ts";
import { startStandIn, type StandIn } from "./test-stand-in.ts";
import { tempPlaces, type TempPlaces } from "./test-support.ts";

const TOKEN = "tok-0123456789abcdef-secret";
let s: StandIn;
let t: TempPlaces;

beforeEach(async () => {
  s = await startStandIn();
  t = tempPlaces();
  s.tokens.set(TOKEN, "node-1");
});
afterEach(async () => {
  await s.close();
  t.cleanup();
});

function opts(extra: Partial<BootstrapOptions> = {}): BootstrapOptions & { logger: ReturnType<typeof memoryLogger> } {
  return { files: new StateFiles(t.places.stateDir), now: () => s.clock.now, logger: memoryLogger(), serverUrl: s.publicUrl, ...extra } as never;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as { code: string }).code;
  }
  return "no error";
}

describe("first contact with a fingerprint", () => {
  test("a join the server answers 503 (audit_unavailable, not_ready) is tried again with backoff, with the same token, until it is answered", async () => {
    s.faults.set("/v1/attest/join-token", { status: 503, code: "audit_unavailable" });
    const o = opts({ joinToken: TOKEN, fingerprint: s.fingerprint, random: () => 0 });
    const id = await bootstrap(o);
    expect(id.config.node).toBe("node-1");
    expect(s.requests).toEqual(["GET /.well-known/spiffe-bundle", "POST /v1/attest/join-token", "POST /v1/attest/join-token"]);
    expect(o.logger.lines.find((l) => l.event === "join_retry")).toMatchObject({ level: "warn", code: "audit_unavailable", failures: 1 });
  });

  test("a join refused otherwise is not tried again (401 token_unknown)", async () => {
    s.faults.set("/v1/attest/join-token", { status: 401, code: "token_unknown" });
    expect(await codeOf(bootstrap(opts({ joinToken: TOKEN, fingerprint: s.fingerprint, random: () => 0 })))).toBe("token_unknown");
    expect(s.requests.filter((r) => r === "POST /v1/attest/join-token")).toHaveLength(1);
  });

  test("a stopping agent stops trying: the 503 is what it reports", async () => {
    s.faults.set("/v1/attest/join-token", { status: 503, code: "audit_unavailable" });
    const stop = new AbortController();
    const o = opts({ joinToken: TOKEN, fingerprint: s.fingerprint, random: () => 0.99, signal: stop.signal });
    const p = codeOf(bootstrap(o));
    while (!o.logger.lines.some((l) => l.event === "join_retry")) await Bun.sleep(10);
    stop.abort();
    expect(await p).toBe("audit_unavailable");
  });

  test("joins: the node SVID, key, bundle and agent.json are kept with safe modes", async () => {
    const o = opts({ joinToken: TOKEN, fingerprint: parseFingerprint(s.fingerprint.toUpperCase().replace(/(..)/g, "$1:").slice(0, -1)) });
    const id = await bootstrap(o);
    expect(id.config).toEqual({ server: s.publicUrl, api_port: s.apiPort, trust_domain: "example.org", node: "node-1", spiffe_id: "spiffe://example.org/tidegate/agent/node-1" });
    expect(id.node.spiffeId).toBe("spiffe://example.org/tidegate/agent/node-1");
    expect(s.requests).toEqual(["GET /.well-known/spiffe-bundle", "POST /v1/attest/join-token"]);
    const dir = join(t.places.stateDir, "agent");
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, "svids")).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, "node.key")).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, "node.key"), "utf8")).toContain("PRIVATE KEY");
    expect(readFileSync(join(dir, "node.pem"), "utf8")).toContain("CERTIFICATE");
    expect(JSON.parse(readFileSync(join(dir, "bundle.json"), "utf8")).keys).toHaveLength(1);
    // the CSR carried no key, the token never reached a log line
    const body = s.bodies.find((b) => (b as { token?: string }).token === TOKEN) as Record<string, string>;
    expect(Object.keys(body).sort()).toEqual(["csr", "token"]);
    expect(JSON.stringify(o.logger.lines)).not.toContain(TOKEN);
    expect(o.logger.lines.map((l) => l.event)).toContain("node_attested");
  });

  test("a server whose root differs from the fingerprint never sees the token", async () => {
    const other = await createTestCa();
    const wrong = new Bun.CryptoHasher("sha256").update(other.root.der).digest("hex");
    expect(await codeOf(bootstrap(opts({ joinToken: TOKEN, fingerprint: wrong })))).toBe("server_fingerprint_mismatch");
    expect(s.requests).toEqual(["GET /.well-known/spiffe-bundle"]);
    expect(s.tokens.has(TOKEN)).toBe(true);
  });

  test("a server presenting another SPIFFE ID is refused before the token goes out", async () => {
    await s.present(s.signing, "spiffe://example.org/not-the-server");
    expect(await codeOf(bootstrap(opts({ joinToken: TOKEN, fingerprint: s.fingerprint })))).toBe("server_spiffe_id_mismatch");
    expect(s.requests).toEqual(["GET /.well-known/spiffe-bundle"]);
  });

  test("a server whose certificate chains to another root than the one fingerprinted is refused", async () => {
    const other = await createTestCa();
    await s.present(other, undefined);
    expect(await codeOf(bootstrap(opts({ joinToken: TOKEN, fingerprint: s.fingerprint })))).toBe("server_untrusted");
    expect(s.requests).toEqual(["GET /.well-known/spiffe-bundle"]);
  });

  test("a malformed fingerprint is refused", () => {
    for (const bad of ["", "abc", "zz".repeat(32), "ab".repeat(33)]) expect(() => parseFingerprint(bad)).toThrow(expect.objectContaining({ code: "fingerprint_malformed" }));
  });
});

describe("first contact with a bundle file", () => {
  test("PEM roots: joins without fetching the bundle unverified", async () => {
    const text = formatPemBundle(Bundle.create(s.td, { x509Authorities: [s.ca.root.der] }));
    const id = await bootstrap(opts({ joinToken: TOKEN, trustBundle: { text, path: "roots.pem" } }));
    expect(id.config.node).toBe("node-1");
    expect(s.requests).toEqual(["POST /v1/attest/join-token"]);
  });

  test("a bundle of another CA: server_untrusted, nothing sent", async () => {
    const other = await createTestCa();
    const text = formatPemBundle(Bundle.create(s.td, { x509Authorities: [other.root.der] }));
    expect(await codeOf(bootstrap(opts({ joinToken: TOKEN, trustBundle: { text, path: "x.pem" } })))).toBe("server_untrusted");
    expect(s.requests).toEqual([]);
  });
});

describe("restart", () => {
  test("with a valid node SVID needs no token (and no --server)", async () => {
    await bootstrap(opts({ joinToken: TOKEN, fingerprint: s.fingerprint }));
    s.requests.length = 0;
    const o = opts({ serverUrl: undefined } as never);
    delete (o as { serverUrl?: string }).serverUrl;
    const again = await bootstrap(o);
    expect(again.config.node).toBe("node-1");
    expect(s.requests).toEqual([]);
    expect(o.logger.lines.map((l) => l.event)).toEqual(["agent_resumed"]);
  });

  test("with an expired node SVID asks for a new token", async () => {
    await bootstrap(opts({ joinToken: TOKEN, fingerprint: s.fingerprint }));
    s.clock.now += 2 * 3600_000;
    expect(await codeOf(bootstrap(opts()))).toBe("node_svid_expired");
    s.tokens.set("tok-2", "node-1");
    const again = await bootstrap(opts({ joinToken: "tok-2" }));
    expect(again.node.notAfter).toBeGreaterThan(s.clock.now);
  });

  test("state of another server is refused", async () => {
    await bootstrap(opts({ joinToken: TOKEN, fingerprint: s.fingerprint }));
    expect(await codeOf(bootstrap(opts({ serverUrl: "https://127.0.0.1:1" })))).toBe("state_server_mismatch");
  });

  test("a node.key that does not match node.pem is reported, not used", async () => {
    await bootstrap(opts({ joinToken: TOKEN, fingerprint: s.fingerprint }));
    const files = new StateFiles(t.places.stateDir);
    const other = await createTestCa();
    const { exportPkcs8Pem } = await import("../x509/keys.ts");
    files.writeKey("node.key", await exportPkcs8Pem(other.root.privateKey));
    expect(await codeOf(bootstrap(opts()))).toBe("state_unreadable");
  });
});

describe("what is missing", () => {
  test("no state and no token, no trust, no server", async () => {
    expect(await codeOf(bootstrap(opts()))).toBe("join_token_required");
    expect(await codeOf(bootstrap(opts({ joinToken: TOKEN })))).toBe("join_trust_required");
    const o = opts({ joinToken: TOKEN });
    delete (o as { serverUrl?: string }).serverUrl;
    expect(await codeOf(bootstrap(o))).toBe("server_required");
    expect(await codeOf(bootstrap(opts({ serverUrl: "http://127.0.0.1:1", joinToken: TOKEN })))).toBe("server_url_bad");
    expect(s.requests).toEqual([]);
  });

  test("a used token: the server's code", async () => {
    expect(await codeOf(bootstrap(opts({ joinToken: "nope", fingerprint: s.fingerprint })))).toBe("token_unknown");
  });

  test("an unreachable server", async () => {
    await s.down();
    expect(await codeOf(bootstrap(opts({ joinToken: TOKEN, fingerprint: s.fingerprint })))).toBe("server_unreachable");
  });
});
