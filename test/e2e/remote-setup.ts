/**
 * The stand of the remote scenario (remote.test.ts; DESIGN.md section 1, second scenario): four
 * test hosts, each a network namespace on one bridge (test/helpers/netns.ts, 10.251.0.0/24), each
 * running its tidegate processes under its own instance and entered with `nsenter --net` only, so
 * bpffs and cgroupfs stay the machine's:
 * - S (10.251.0.3): the identity server of example.org;
 * - A (10.251.0.1): agent `rm-a` of example.org, with workloads `client`
 *   (spiffe://example.org/agent/client) and `other` (spiffe://example.org/agent/other), both run
 *   as nobody through `tidegate run`, the SDK's MCP client (mcp-client.ts) inside;
 * - B (10.251.0.2): agent `rm-b` of example.org, whose inbound listener `everything`
 *   (10.251.0.2:8443, spiffe://example.org/mcp/everything) fronts server-everything, which
 *   listens on all of B's interfaces on port 3001; an nftables rule in B resets any connection to
 *   3001 that does not come over B's loopback, so the listener is the only way in;
 * - C (10.251.0.4), a second organisation: the server, agent `rm-c` and an MCP server (another
 *   server-everything on C's loopback) of partner.test, behind two inbound listeners: `tools`
 *   (10.251.0.4:8443, spiffe://partner.test/mcp/tools) and `impostor` (10.251.0.4:8444,
 *   spiffe://partner.test/mcp/impostor).
 * S and C federate both ways over https_spiffe: each server's `federation:` names the other's
 * bundle endpoint and SPIFFE ID, with the other's bundle (taken with `tidegate server bundle`
 * after both were initialised and started once) as the initial bundle. C's refresh hint is short
 * and its workload SVIDs live 30 s, so a root rotation on C reaches C's SVIDs within the test.
 *
 * A's rules (plain HTTP from the workload on port 80, intercepted, re-originated with mTLS):
 * `to-b` (both workloads) to B's listener, injecting secret b_token as Authorization; `to-c`
 * (client) to C's `tools`; `to-impostor` (client) to C's `impostor` port while still wanting
 * spiffe://partner.test/mcp/tools; `to-c-raw` (client), raw TCP to C's `impostor` port carried
 * over mTLS as it is (a splice), wanting the impostor's own ID. B allows only the client; C
 * allows only the client.
 *
 * `setUp` removes what an earlier run left (namespaces, agents' pins and cgroups) first; every
 * step it takes is undone by `tearDown`, last first. Nothing is sent outside the namespaces and
 * loopback; no address outside 10.251.0.0/24 is used.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readAudit, type AuditLine } from "../helpers/audit-files.ts";
import { cleanupStack, cliOk, parseLog, type LogLine } from "../helpers/e2e-kit.ts";
import { REPO, requireBinary, tidegate } from "../helpers/binary.ts";
import { makeHosts, type Host, type Hosts } from "../helpers/netns.ts";
import { startTidegate, tracked, waitFor, type Running } from "../helpers/processes.ts";
import { callUnix } from "../../src/runtime/unix-http.ts";
import type { ClientInput, Step, StepResult } from "./mcp-client.ts";
import { EVERYTHING, LOOPBACK_ONLY } from "./mcp-peers.ts";
import { clientRun, type ClientRun } from "./mcp-setup.ts";

export type { ClientRun } from "./mcp-setup.ts";

export const PREFIX = "tg-e2e-rm-";
export const SUBNET = "10.251.0";
export const TD = { ours: "example.org", partner: "partner.test" } as const;
export const ID = {
  client: "spiffe://example.org/agent/client",
  other: "spiffe://example.org/agent/other",
  everything: "spiffe://example.org/mcp/everything",
  tools: "spiffe://partner.test/mcp/tools",
  impostor: "spiffe://partner.test/mcp/impostor",
} as const;
export const NAME = { b: "everything.b.test", c: "tools.partner.test", impostor: "impostor.partner.test" } as const;
export const PORT = { backend: 3001, listener: 8443, impostor: 8444, public: 8081, api: 8082 } as const;
/** The secret A injects toward B; the test searches the client's memory for it. */
export const SECRET_NAME = "b_token";
/** C's bundle refresh hint and the maximum age S allows C's bundle (seconds). */
export const C_HINT_S = 4;
export const MAX_AGE_S = 12;

const CLIENT = join(import.meta.dir, "mcp-client.ts");
/** Workloads run as nobody: system folders only on PATH; Bun writes no transpiler cache. */
const CLIENT_ENV = { PATH: "/usr/bin:/bin", BUN_RUNTIME_TRANSPILER_CACHE_PATH: "0" };


/** A client run that waits (step `hold`) while the test looks into it. */
export interface HeldClient {
  /** The client's pid, once it holds. */
  readonly pid: number;
  /** What it printed before holding. */
  readonly before: StepResult[];
  /** Lets it go on and waits for the end. */
  release(): Promise<ClientRun>;
}

export type Org = "s" | "a" | "b" | "c" | "cs";

export interface Stand {
  readonly dir: string;
  readonly hosts: Hosts;
  readonly flags: Record<Org, string[]>;
  /** The secret's value (random per run). */
  readonly secret: string;
  /** `steps` as workload WORKLOAD on A, through `tidegate run`, to http://NAME/mcp. */
  runClient(workload: "client" | "other", name: string, steps: Step[]): Promise<ClientRun>;
  /** As runClient, ending with a hold step; resolves once the client holds. */
  holdClient(name: string, steps: Step[]): Promise<HeldClient>;
  /** `argv` as workload client on A, through `tidegate run`; its output once it ends. */
  runOnA(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** `tidegate ARGS FLAGS-OF-ORG`, which must succeed; its stdout. */
  cli(org: Org, args: string[]): Promise<string>;
  /** An agent's /v1/status. */
  agentStatus(org: "a" | "b" | "c"): Promise<AgentStatusLike>;
  audit(org: "a" | "b" | "c"): AuditLine[];
  log(org: "a" | "b" | "c" | "s" | "cs"): LogLine[];
  stopServerC(): Promise<void>;
  startServerC(): Promise<void>;
  /** What every process wrote, for failure messages. */
  allOutput(): string;
}

export interface AgentStatusLike {
  federation: { trust_domain: string; roots: number; expires_at: string; expired: boolean }[];
  svids: { spiffe_id: string; serial: string }[];
}

const cleanups = cleanupStack("remote");

export const tearDown = (): Promise<void> => cleanups.run();


/** Waits until http://127.0.0.1:PORT/mcp answers inside HOST (curl there; any status). */
async function waitHttp(host: Host, port: number, what: string, watch?: { output(): string; exited(): boolean }): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (watch?.exited()) throw new Error(`${what} exited before it listened:\n${watch.output()}`);
    const r = Bun.spawnSync(host.nsenterArgv(["curl", "-s", "-o", "/dev/null", "--max-time", "1", `http://127.0.0.1:${port}/mcp`]));
    if (r.exitCode === 0) return;
    await Bun.sleep(150);
  }
  throw new Error(`${what} did not answer on ${host.name} 127.0.0.1:${port} within 20 s${watch ? `:\n${watch.output()}` : ""}`);
}

/** server-everything in HOST on PORT: on every interface, or with `loopbackOnly` on 127.0.0.1. */
async function startEverything(host: Host, port: number, loopbackOnly: boolean): Promise<Running> {
  const argv = loopbackOnly ? [process.execPath, "-e", LOOPBACK_ONLY] : [process.execPath, EVERYTHING];
  const proc = Bun.spawn(host.nsenterArgv(argv), { cwd: REPO, env: { PATH: "/usr/bin:/bin", PORT: String(port), TG_E2E_ENTRY: EVERYTHING }, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const running = tracked(proc);
  await waitHttp(host, port, `server-everything on ${host.name}`, { output: running.output, exited: () => proc.exitCode !== null || proc.signalCode !== null });
  return running;
}

export async function setUp(): Promise<Stand> {
  const dir = mkdtempSync(join(tmpdir(), "tidegate-test-e2e-remote-"));
  chmodSync(dir, 0o711); // the workloads (nobody) pass through it
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const d = (n: string) => {
    const p = join(dir, n);
    mkdirSync(p, { recursive: true });
    return p;
  };
  const flags: Record<Org, string[]> = {
    s: ["--instance", "e2e-rm-s", "--state-dir", d("s-state"), "--run-dir", d("s-run"), "--server-config", join(dir, "s.server.yaml"), "--audit-dir", d("s-audit")],
    cs: ["--instance", "e2e-rm-cs", "--state-dir", d("cs-state"), "--run-dir", d("cs-run"), "--server-config", join(dir, "c.server.yaml"), "--audit-dir", d("cs-audit")],
    a: [],
    b: [],
    c: [],
  };
  for (const n of ["a", "b", "c"] as const) {
    flags[n] = ["--instance", `e2e-rm-${n}`, "--state-dir", d(`${n}-state`), "--run-dir", d(`${n}-run`), "--config", join(dir, `${n}.yaml`), "--audit-dir", join(dir, `${n}-audit`)];
  }
  for (const n of ["a", "b", "c"] as const) {
    await tidegate(["agent", "--uninstall", ...flags[n]]); // leftovers of an earlier run
    cleanups.push(() => tidegate(["agent", "--uninstall", ...flags[n]]));
  }

  const hosts = await makeHosts(PREFIX, SUBNET, ["a", "b", "s", "c"]);
  cleanups.push(() => hosts.remove());
  const [A, B, S, C] = (["a", "b", "s", "c"] as const).map((n) => hosts.host(n)) as [Host, Host, Host, Host];
  const cli = async (org: Org, args: string[]) => cliOk([...args, ...flags[org]]);
  const running: Partial<Record<"s" | "cs" | "a" | "b" | "c" | "everythingB" | "everythingC", Running>> = {};
  const stopLater = (key: keyof typeof running, r: Running) => {
    running[key] = r;
    cleanups.push(() => running[key]?.stop());
  };

  // MCP servers: B's on every interface, fenced by nftables; C's on its loopback
  stopLater("everythingB", await startEverything(B, PORT.backend, false));
  await B.dropExceptLoopback(PORT.backend);
  stopLater("everythingC", await startEverything(C, PORT.backend, true));

  // the two servers: initialised, started once to take each other's bundle, then federated
  const serverYaml = (host: Host, hint: number, svidTtl: string, federation: string) =>
    `listen: { public: "${host.address}:${PORT.public}", api: "${host.address}:${PORT.api}" }
bundle: { refresh_hint: ${hint}s }
svid: { default_ttl: ${svidTtl} }
${federation}`;
  writeFileSync(join(dir, "s.server.yaml"), serverYaml(S, 30, "1h", ""));
  writeFileSync(join(dir, "c.server.yaml"), serverYaml(C, C_HINT_S, "30s", ""));
  await cli("s", ["server", "init", "--trust-domain", TD.ours]);
  await cli("cs", ["server", "init", "--trust-domain", TD.partner]);
  const startServer = async (key: "s" | "cs", host: Host): Promise<Running> => {
    const r = startTidegate(["server", ...flags[key]], {}, host.nsenterArgv([]));
    const json = join(dir, `${key}-run`, "server.json");
    await waitFor(`server ${key} to start`, () => (existsSync(json) ? true : undefined), 15_000, 100, r);
    return r;
  };
  for (const [key, host] of [["s", S], ["cs", C]] as const) {
    const r = await startServer(key, host);
    writeFileSync(join(dir, `${key}.bundle.json`), await cli(key, ["server", "bundle"]));
    await r.stop();
  }
  const federate = (td: string, host: Host, bundleFile: string) => `federation:
  - trust_domain: ${td}
    bundle_endpoint: https://${host.address}:${PORT.public}/.well-known/spiffe-bundle
    profile: https_spiffe
    endpoint_id: spiffe://${td}/tidegate/server
    bundle: ${bundleFile}
    max_age: ${MAX_AGE_S}s
`;
  writeFileSync(join(dir, "s.server.yaml"), serverYaml(S, 30, "1h", federate(TD.partner, C, join(dir, "cs.bundle.json"))));
  writeFileSync(join(dir, "c.server.yaml"), serverYaml(C, C_HINT_S, "30s", federate(TD.ours, S, join(dir, "s.bundle.json"))));
  stopLater("s", await startServer("s", S));
  stopLater("cs", await startServer("cs", C));

  // entries
  const entry = (org: "s" | "cs", node: string, id: string, workload: string) => cli(org, ["entry", "create", "--spiffe-id", id, "--node", node, "--selector", `tidegate:workload:${workload}`, "--json"]);
  await entry("s", "rm-a", ID.client, "client");
  await entry("s", "rm-a", ID.other, "other");
  await entry("s", "rm-b", ID.everything, "unused-everything");
  await entry("cs", "rm-c", ID.tools, "unused-tools");
  await entry("cs", "rm-c", ID.impostor, "unused-impostor");

  // configs
  writeFileSync(
    join(dir, "a.yaml"),
    `trust_domain: ${TD.ours}
federation:
  - trust_domain: ${TD.partner}
workloads:
  - { name: client, id: ${ID.client}, user: nobody }
  - { name: other, id: ${ID.other}, user: nobody }
egress:
  - name: to-b
    from: [${ID.client}, ${ID.other}]
    to: { host: ${NAME.b}, port: 80 }
    action: intercept
    mtls: { server_id: ${ID.everything} }
    upstream: { port: ${PORT.listener} }
    inject: { headers: { Authorization: "Bearer \${secret:${SECRET_NAME}}" } }
  - name: to-c
    from: ${ID.client}
    to: { host: ${NAME.c}, port: 80 }
    action: intercept
    mtls: { server_id: ${ID.tools} }
    upstream: { port: ${PORT.listener} }
  - name: to-impostor
    from: ${ID.client}
    to: { host: ${NAME.impostor}, port: 80 }
    action: intercept
    mtls: { server_id: ${ID.tools} }
    upstream: { port: ${PORT.impostor} }
  - name: to-c-raw
    from: ${ID.client}
    to: { cidr: ${C.address}/32, port: ${PORT.impostor} }
    action: mtls
    mtls: { server_id: ${ID.impostor} }
dns:
  hosts:
    ${NAME.b}: [${B.address}]
    ${NAME.c}: [${C.address}]
    ${NAME.impostor}: [${C.address}]
`,
  );
  writeFileSync(
    join(dir, "b.yaml"),
    `trust_domain: ${TD.ours}
inbound:
  - name: everything
    id: ${ID.everything}
    listen: ${B.address}:${PORT.listener}
    forward: 127.0.0.1:${PORT.backend}
    allow: [${ID.client}]
    mcp: { tools: { deny: [get-tiny-image] } }
`,
  );
  writeFileSync(
    join(dir, "c.yaml"),
    `trust_domain: ${TD.partner}
federation:
  - trust_domain: ${TD.ours}
inbound:
  - name: tools
    id: ${ID.tools}
    listen: ${C.address}:${PORT.listener}
    forward: 127.0.0.1:${PORT.backend}
    allow: [${ID.client}]
    mcp: { tools: {} }
  - name: impostor
    id: ${ID.impostor}
    listen: ${C.address}:${PORT.impostor}
    forward: 127.0.0.1:${PORT.backend}
    allow: [${ID.client}]
`,
  );
  for (const n of ["a", "b", "c"]) {
    const check = await tidegate(["policy", "check", join(dir, `${n}.yaml`)]);
    if (check.code !== 0) throw new Error(`e2e remote: ${n}.yaml does not load: ${check.stdout}${check.stderr}`);
  }

  // A's secret, set before A starts
  const secret = `tg-remote-secret-${crypto.randomUUID()}`;
  const set = Bun.spawn([requireBinary(), "secret", "set", SECRET_NAME, ...flags.a], { stdin: new TextEncoder().encode(secret), stdout: "pipe", stderr: "pipe" });
  if ((await set.exited) !== 0) throw new Error(`tidegate secret set exited ${set.exitCode}: ${await new Response(set.stderr).text()}`);

  // agents, each in its host, joined with a token of its server
  const agentStatus = async (org: "a" | "b" | "c") => (await callUnix(join(dir, `${org}-run`, "agent.sock"), "the agent", "GET", "/v1/status")).body as AgentStatusLike & { capture?: { egress_port?: number } };
  const startAgent = async (org: "a" | "b" | "c", host: Host, server: { key: "s" | "cs"; host: Host }, node: string, held: string[]) => {
    const tokenOut = await cli(server.key, ["token", "create", "--node", node]);
    const tokenFile = join(dir, `${org}.token`);
    writeFileSync(tokenFile, /token:\s*(\S+)/.exec(tokenOut)![1]!, { mode: 0o600 });
    const fingerprint = /fingerprint[^:]*:\s*([0-9a-fA-F:]+)/.exec(tokenOut)![1]!;
    const agent = startTidegate(
      ["agent", ...flags[org], "--sync-interval", "1s", "--server", `https://${server.host.address}:${PORT.public}`, "--join-token-file", tokenFile, "--server-fingerprint", fingerprint],
      {},
      host.nsenterArgv([]),
    );
    stopLater(org, agent);
    await waitFor(`agent ${org} to capture, holding ${held.join(", ")}`, async () => {
      const s = await agentStatus(org).catch(() => undefined);
      return s?.capture?.egress_port && held.every((id) => s.svids.some((v) => v.spiffe_id === id)) ? true : undefined;
    }, 30_000, 100, agent);
  };
  await startAgent("a", A, { key: "s", host: S }, "rm-a", [ID.client, ID.other]);
  await startAgent("b", B, { key: "s", host: S }, "rm-b", [ID.everything]);
  await startAgent("c", C, { key: "cs", host: C }, "rm-c", [ID.tools, ID.impostor]);
  for (const [org, rules] of [["b", ["everything"]], ["c", ["tools", "impostor"]]] as const) {
    for (const rule of rules) {
      await waitFor(`${org}'s inbound listener ${rule}`, () => parseLog(running[org]).find((l) => l.event === "inbound_listening" && l.rule === rule), 15_000, 100, running[org]);
    }
  }
  // each side holds the other's bundle before the test begins
  for (const [org, td] of [["a", TD.partner], ["c", TD.ours]] as const) {
    await waitFor(`agent ${org} to trust ${td}`, async () => ((await agentStatus(org)).federation.some((f) => f.trust_domain === td && !f.expired) ? true : undefined), 30_000, 200, running[org]);
  }

  const runArgv = (workload: string, name: string, steps: Step[]) => {
    const input: ClientInput = { url: `http://${name}/mcp`, resolve: { [name]: name === NAME.b ? B.address : C.address }, steps };
    return A.nsenterArgv([requireBinary(), "run", ...flags.a, "--workload", workload, "--user", "nobody", "--", process.execPath, CLIENT, JSON.stringify(input)]);
  };
  const spawnClient = (argv: string[]) => Bun.spawn(argv, { cwd: REPO, env: CLIENT_ENV, stdin: "ignore", stdout: "pipe", stderr: "pipe", timeout: 90_000, killSignal: "SIGTERM" });

  return {
    dir,
    hosts,
    flags,
    secret,
    runOnA: async (argv) => {
      const p = Bun.spawn(A.nsenterArgv([requireBinary(), "run", ...flags.a, "--workload", "client", "--user", "nobody", "--", ...argv]), { cwd: REPO, env: CLIENT_ENV, stdin: "ignore", stdout: "pipe", stderr: "pipe", timeout: 90_000, killSignal: "SIGTERM" });
      const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
      return { code, stdout, stderr };
    },
    runClient: async (workload, name, steps) => {
      const p = spawnClient(runArgv(workload, name, steps));
      const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
      return clientRun({ code, stdout, stderr });
    },
    holdClient: async (name, steps) => {
      const until = join(dir, `release-${crypto.randomUUID()}`);
      const p = spawnClient(runArgv("client", name, [...steps, { op: "hold", until }]));
      let stdout = "";
      const reader = p.stdout.getReader();
      const decoder = new TextDecoder();
      const stderrText = new Response(p.stderr).text();
      const readMore = async () => {
        const { done, value } = await reader.read();
        if (!done) stdout += decoder.decode(value, { stream: true });
        return done;
      };
      const lines = () => clientRun({ code: 0, stdout, stderr: "" }).results;
      for (;;) {
        const held = lines().find((r) => r.op === "hold");
        if (held !== undefined) {
          return {
            pid: held.pid!,
            before: lines().filter((r) => r.op !== "hold"),
            release: async () => {
              writeFileSync(until, "");
              while (!(await readMore()));
              const code = await p.exited;
              return clientRun({ code, stdout, stderr: await stderrText });
            },
          };
        }
        if (await readMore()) throw new Error(`the client ended before it held (exit ${await p.exited}): ${stdout}${await stderrText}`);
      }
    },
    cli,
    agentStatus,
    audit: (org) => readAudit(join(dir, `${org}-audit`)),
    log: (org) => parseLog(running[org]),
    stopServerC: async () => {
      await running.cs?.stop();
    },
    startServerC: async () => {
      const r = await startServer("cs", C);
      running.cs = r;
    },
    allOutput: () =>
      Object.entries(running)
        .map(([k, r]) => `--- ${k}\n${r?.output() ?? ""}`)
        .join("\n"),
  };
}

/** Every file below `dir` as text ("" when it is not there). */
export function allText(dir: string): string {
  if (!existsSync(dir)) return "";
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => readFileSync(join(e.parentPath, e.name), "latin1"))
    .join("\n");
}
