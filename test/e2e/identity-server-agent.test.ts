// Issue 3 end to end: the built `tidegate server` and `tidegate agent` as separate processes, under
// their own instance with their own state, socket and config folders, and short TTLs. The agent
// bootstraps with a join token and the server's fingerprint, obtains SVIDs for the entries made
// for its node, and openssl verifies them against the served bundle; with the server stopped the
// agent keeps its SVIDs until they expire and then reports itself unhealthy; after both restart
// nothing is lost; a CA rotation keeps every chain valid.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tidegate } from "../helpers/binary.ts";
import { startTidegate, waitFor, type Running } from "../helpers/processes.ts";
import { callUnix } from "../../src/runtime/unix-http.ts";
import { TrustDomain, parseJwksBundle, formatPemBundle } from "../../src/spiffe/index.ts";

const T = 120_000;
const root = mkdtempSync(join(tmpdir(), "tidegate-e2e-id-"));
const dirs = { state: join(root, "state"), run: join(root, "run"), etc: join(root, "etc") };
const serverFlags = ["--instance", "e2e-identity", "--state-dir", dirs.state, "--run-dir", dirs.run, "--server-config", join(dirs.etc, "server.yaml"), "--audit-dir", join(dirs.state, "audit")];
const agentFlags = ["--no-capture", "--instance", "e2e-identity", "--state-dir", join(dirs.state, "node1"), "--run-dir", join(dirs.run, "node1"), "--audit-dir", join(dirs.state, "node1-audit")];
const agentSock = join(dirs.run, "node1", "agent.sock");
let server: Running | undefined;
let agent: Running | undefined;

async function cli(args: string[]) {
  const r = await tidegate(args);
  if (r.code !== 0) throw new Error(`tidegate ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

function serverInfo(): { public: string; api: string } {
  return JSON.parse(readFileSync(join(dirs.run, "server.json"), "utf8"));
}

async function agentStatus(): Promise<any> {
  const r = await callUnix(agentSock, "the agent", "GET", "/v1/status");
  if (r.status !== 200) throw new Error(`agent status ${r.status}`);
  return r.body;
}

async function startServer(): Promise<Running> {
  rmSync(join(dirs.run, "server.json"), { force: true });
  const s = startTidegate(["server", ...serverFlags]);
  await waitFor("server.json", () => {
    try {
      return serverInfo();
    } catch {
      return undefined;
    }
  });
  return s;
}

async function servedBundlePem(): Promise<string> {
  const res = await fetch(`https://${serverInfo().public}/.well-known/spiffe-bundle`, { tls: { rejectUnauthorized: false } } as RequestInit);
  expect(res.status).toBe(200);
  return formatPemBundle(await parseJwksBundle(TrustDomain.parse("example.org"), await res.text()));
}

async function chainOf(entryId: string): Promise<string> {
  const r = await callUnix(agentSock, "the agent", "GET", `/v1/svids/${entryId}`);
  expect(r.status).toBe(200);
  const body = r.body as { chain_pem: string };
  expect(body.chain_pem).not.toContain("PRIVATE KEY");
  return body.chain_pem;
}

/** openssl verify of a chain (leaf first) against the served bundle's roots. */
async function opensslVerify(chainPem: string, name: string): Promise<{ code: number; out: string }> {
  const blocks = chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
  writeFileSync(join(root, `${name}-leaf.pem`), blocks[0] ?? "");
  writeFileSync(join(root, `${name}-inter.pem`), blocks.slice(1).join(""));
  writeFileSync(join(root, `${name}-roots.pem`), await servedBundlePem());
  const p = Bun.spawnSync(["openssl", "verify", "-CAfile", join(root, `${name}-roots.pem`), ...(blocks.length > 1 ? ["-untrusted", join(root, `${name}-inter.pem`)] : []), join(root, `${name}-leaf.pem`)], { stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode ?? 1, out: p.stdout.toString() + p.stderr.toString() };
}

beforeAll(() => {
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
  writeFileSync(
    join(dirs.etc, "server.yaml"),
    ["ca:", "  signing_ttl: 2m", "bundle:", "  refresh_hint: 5s", "svid:", "  default_ttl: 10s", "  node_ttl: 10s", "  server_ttl: 1m", ""].join("\n"),
  );
});

afterAll(async () => {
  await agent?.stop();
  await server?.stop();
  rmSync(root, { recursive: true, force: true });
});

describe("identity server and node agent", () => {
  let entryIds: string[] = [];

  test("bootstrap: token, entries, SVIDs that openssl verifies against the served bundle", async () => {
    await cli(["server", "init", "--trust-domain", "example.org", ...serverFlags]);
    server = await startServer();
    const tokenOut = await cli(["token", "create", "--node", "node1", "--ttl", "2m", ...serverFlags]);
    const token = /token:\s*(\S+)/.exec(tokenOut)?.[1];
    const fingerprint = /fingerprint[^:]*:\s*([0-9a-fA-F:]+)/.exec(tokenOut)?.[1];
    expect(token).toBeDefined();
    expect(fingerprint).toBeDefined();
    for (const name of ["claude", "github-mcp"]) {
      await cli(["entry", "create", "--spiffe-id", `spiffe://example.org/agent/${name}`, "--node", "node1", "--selector", `tidegate:workload:${name}`, "--ttl", "10s", ...serverFlags]);
    }
    entryIds = JSON.parse(await cli(["entry", "list", "--json", ...serverFlags])).map((e: { id: string }) => e.id);
    expect(entryIds).toHaveLength(2);

    // What token create says to do on the node, done as it says (the file moved into the test's folder):
    // the token goes to a file by the shell's own printf, never on a command line.
    const tokenFile = join(root, "token");
    const told = tokenOut.split("\n").filter((l) => l.startsWith("  ")).map((l) => l.trim().replaceAll("/root/tidegate-join-token", tokenFile));
    expect(told).toHaveLength(2);
    expect(tokenOut).not.toContain("--join-token ");
    expect(Bun.spawnSync(["sh", "-c", told[0]!]).exitCode).toBe(0);
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    const agentArgs = told[1]!.split(" ");
    expect(agentArgs.slice(0, 2)).toEqual(["tidegate", "agent"]);
    expect(agentArgs.slice(2)).toEqual(["--server", `https://${serverInfo().public}`, "--join-token-file", tokenFile, "--server-fingerprint", fingerprint!]);
    agent = startTidegate([...agentArgs.slice(1), "--sync-interval", "1s", "--retry-max", "2s", ...agentFlags]);
    const status = await waitFor("the agent to hold both SVIDs", async () => {
      const s = await agentStatus();
      return s.healthy && s.svids.length === 2 ? s : undefined;
    }, 30_000, 100, agent);
    expect(status.node).toBe("node1");
    expect(status.spiffe_id).toBe("spiffe://example.org/tidegate/agent/node1");
    for (const id of entryIds) {
      const v = await opensslVerify(await chainOf(id), `first-${id}`);
      expect(v.out).toContain(": OK");
      expect(v.code).toBe(0);
    }
    // The token is never in any log.
    expect(server.output() + agent.output()).not.toContain(token!);
  }, T);

  test("a CA rotation keeps every chain valid, old and new", async () => {
    const before = await Promise.all(entryIds.map(chainOf));
    await cli(["server", "rotate-ca", ...serverFlags]);
    // Old chains still verify against the bundle after rotation.
    for (const [i, chain] of before.entries()) expect((await opensslVerify(chain, `old-${i}`)).code).toBe(0);
    // SVIDs rotate at half life (10 s TTL): wait for ones issued under the new signing CA.
    const after = await waitFor("rotated SVIDs", async () => {
      const chains = await Promise.all(entryIds.map(chainOf));
      return chains.every((c, i) => c !== before[i] && c.split("-----BEGIN CERTIFICATE-----")[2] !== before[i]!.split("-----BEGIN CERTIFICATE-----")[2]) ? chains : undefined;
    }, 30_000, 250);
    for (const [i, chain] of after.entries()) expect((await opensslVerify(chain, `new-${i}`)).code).toBe(0);
  }, T);

  test("both restarted: nothing lost, and the agent resumes from its state without a token", async () => {
    const before = await agentStatus();
    await agent!.stop();
    await server!.stop();
    server = await startServer();
    agent = startTidegate(["agent", "--sync-interval", "1s", "--retry-max", "2s", ...agentFlags]);
    const status = await waitFor("the restarted agent to be healthy", async () => {
      const s = await agentStatus();
      return s.healthy && s.svids.length === 2 && Date.parse(s.last_sync) > Date.now() - 5000 ? s : undefined;
    }, 30_000, 100, agent);
    expect(status.node).toBe(before.node);
    expect(status.svids.map((s: { entry_id: string }) => s.entry_id).sort()).toEqual([...entryIds].sort());
    const entries = JSON.parse(await cli(["entry", "list", "--json", ...serverFlags])).map((e: { id: string }) => e.id);
    expect(entries.sort()).toEqual([...entryIds].sort());
    const nodes = (await callUnix(join(dirs.run, "server.sock"), "the server", "GET", "/v1/nodes")).body as { nodes: { node: string }[] };
    expect(nodes.nodes.map((n) => n.node)).toEqual(["node1"]);
  }, T);

  test("with the server down the agent keeps its SVIDs until they expire, then is unhealthy", async () => {
    await server!.stop();
    server = undefined;
    const held = await agentStatus();
    expect(held.svids).toHaveLength(2);
    const firstExpiry = Math.min(...held.svids.map((s: { expires_at: string }) => Date.parse(s.expires_at)));
    // Still healthy and still serving the same SVIDs while they are valid.
    if (Date.now() < firstExpiry - 1500) {
      expect((await agentStatus()).healthy).toBe(true);
      for (const id of entryIds) expect((await chainOf(id)).length).toBeGreaterThan(0);
    }
    const sick = await waitFor("the agent to report expired SVIDs", async () => {
      const s = await agentStatus();
      return s.healthy === false ? s : undefined;
    }, 30_000, 250);
    expect(Date.now()).toBeGreaterThanOrEqual(firstExpiry - 1000);
    expect(sick.problems.length).toBeGreaterThan(0);
  }, T);

  test("once its node SVID expired, the agent needs a new token; the node keeps its entries", async () => {
    await agent!.stop();
    server = await startServer();
    const tokenOut = await cli(["token", "create", "--node", "node1", ...serverFlags]);
    const tokenFile = join(root, "token2");
    writeFileSync(tokenFile, /token:\s*(\S+)/.exec(tokenOut)![1]!, { mode: 0o600 });
    const fingerprint = /fingerprint[^:]*:\s*([0-9a-fA-F:]+)/.exec(tokenOut)![1]!;
    agent = startTidegate(["agent", "--server", `https://${serverInfo().public}`, "--join-token-file", tokenFile, "--server-fingerprint", fingerprint, "--sync-interval", "1s", "--retry-max", "2s", ...agentFlags]);
    const status = await waitFor("the re-joined agent to be healthy", async () => {
      const s = await agentStatus();
      return s.healthy && s.svids.length === 2 ? s : undefined;
    }, 30_000, 100, agent);
    expect(status.svids.map((s: { entry_id: string }) => s.entry_id).sort()).toEqual([...entryIds].sort());
  }, T);
});
