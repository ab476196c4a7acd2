/**
 * The stand of the MCP end-to-end test (mcp.test.ts), built like the interception and mTLS stands
 * (intercept-setup.ts, mtls-setup.ts):
 * - the built server (trust domain example.org) and two agents on this host, each with its own
 *   instance, state, run, audit folders and config under one mkdtemp folder, so cgroups
 *   (`tidegate-e2e-mcp-a`, `-b`) and pins are their own;
 * - agent A (instance e2e-mcp-a, node mcp-a) with workload `client`
 *   (spiffe://example.org/mcp-client, user nobody), whose rule `everything-mcp` intercepts
 *   http://everything.mcp.test (port 80, resolved by A's dns.hosts to 127.0.0.91) and re-originates
 *   it with mTLS to B's listener, denying tool `get-sum`;
 * - agent B (instance e2e-mcp-b, node mcp-b) holding spiffe://example.org/mcp/everything and
 *   spiffe://example.org/mcp/pinned, with an inbound listener for each on 127.0.0.91: `everything`
 *   in front of server-everything (denying `get-tiny-image`) and `pinned` in front of
 *   mcp-pinned-server.ts (no tool filter: `mcp: { tools: {} }`, pinning only);
 * - server-everything and the pinned server on 127.0.0.1 (mcp-peers.ts).
 * The MCP client (mcp-client.ts) runs either as workload `client` through `tidegate run` on A
 * (`runClient`, captured) or from the test with copies of the client's SVID (`directClient`).
 * Addresses: 127.0.0.90-99 only. `agent --uninstall` runs before (leftovers of an earlier run) and
 * after; `tearDown` removes everything `setUp` made, last first.
 * Another test may build the same stand with its own instances, address, name and tool filters
 * (`StandOptions`; mcp-conformance-setup.ts does); without options it is the stand above.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readAudit, type AuditLine } from "../helpers/audit-files.ts";
import { bundlePem, cleanupStack, cliOk, deleteEntry, type LogLine, parseLog, startJoinedAgent, startServer } from "../helpers/e2e-kit.ts";
import { REPO, requireBinary, tidegate, type RunResult } from "../helpers/binary.ts";
import { waitFor, type Running } from "../helpers/processes.ts";
import { freePort, startEverything, startPinnedServer, type Peer, type PinnedPeer } from "./mcp-peers.ts";
import type { ClientInput, StepResult } from "./mcp-client.ts";

export type { ClientInput, Step, StepResult } from "./mcp-client.ts";

export const INSTANCE_A = "e2e-mcp-a";
export const INSTANCE_B = "e2e-mcp-b";
export const ADDR = { listener: "127.0.0.91" } as const;
export const ID = {
  client: "spiffe://example.org/mcp-client",
  everything: "spiffe://example.org/mcp/everything",
  pinned: "spiffe://example.org/mcp/pinned",
} as const;
/** The name A's rule intercepts (port 80, plain HTTP from the workload). */
export const EVERYTHING_HOST = "everything.mcp.test";
/** server-everything's tools the rules deny: B's inbound rule `everything`, A's egress rule `everything-mcp`. */
export const DENIED = { byB: "get-tiny-image", byA: "get-sum", resourceByB: "demo://resource/static/document/architecture.md", promptByB: "simple-prompt" } as const;
export const RULE = { b: "everything", pinned: "pinned", a: "everything-mcp" } as const;
export const FIRST_DESCRIPTION = "Looks a word up in the test's dictionary.";

const CLIENT = join(import.meta.dir, "mcp-client.ts");
/** Workloads run as nobody: system folders only on PATH; Bun writes no transpiler cache. */
const CLIENT_ENV = { PATH: "/usr/bin:/bin", BUN_RUNTIME_TRANSPILER_CACHE_PATH: "0" };

export type { LogLine } from "../helpers/e2e-kit.ts";

/** What a stand other than mcp.test.ts's changes; each field defaults to that stand's value. */
export interface StandOptions {
  /** Names the temporary folder (`tidegate-test-e2e-LABEL-*`); default `mcp`. */
  readonly label?: string;
  /** The agents' instances (their cgroups, pins, egress ports); default INSTANCE_A and INSTANCE_B. */
  readonly instances?: { readonly a: string; readonly b: string };
  /** The address of B's listeners, and the one A's dns.hosts gives `host`; default ADDR.listener. */
  readonly listener?: string;
  /** The name A's rule intercepts (port 80); default EVERYTHING_HOST. */
  readonly host?: string;
  /**
   * The `mcp.tools` (YAML flow mapping) of A's rule everything-mcp and B's rule everything; default
   * `{ deny: [DENIED.byA] }` and `{ deny: [DENIED.byB] }`. `{}` allows every tool.
   */
  readonly tools?: { readonly a: string; readonly b: string };
  /**
   * B's rule everything also refuses resource DENIED.resourceByB and prompt DENIED.promptByB;
   * default true, false when `tools` is given.
   */
  readonly resourcesAndPrompts?: boolean;
}

/** What one run of mcp-client.ts did: its exit code, its result lines, and its raw output. */
export interface ClientRun {
  readonly code: number;
  readonly results: StepResult[];
  readonly stdout: string;
  readonly stderr: string;
}

/** A client run's steps, and optionally its per-request timeout. */
export type ClientSteps = Pick<ClientInput, "steps" | "timeout_ms" | "watch_tools">;

export interface Stand {
  readonly dir: string;
  readonly flagsA: string[];
  readonly flagsB: string[];
  /** The name A's rule intercepts (EVERYTHING_HOST unless set). */
  readonly host: string;
  /** The address of B's listeners, which A's dns.hosts gives `host` (ADDR.listener unless set). */
  readonly listener: string;
  /** B's inbound listeners (on `listener`) and the servers behind them (on 127.0.0.1). */
  readonly ports: { everything: number; pinned: number; everythingBackend: number; pinnedBackend: number };
  /** https://LISTENER:PORT/mcp of B's listeners (https://127.0.0.91:PORT/mcp by default). */
  readonly urls: { everything: string; pinned: string };
  /** The client's SVID (leaf first), its key and the trust bundle, as PEM files (copies). */
  readonly clientTls: { cert: string; key: string; ca: string };
  /** mcp-client.ts as workload `client` on A (through `tidegate run`, captured) to http://everything.mcp.test/mcp. */
  runClient(json: ClientSteps): Promise<ClientRun>;
  /**
   * ARGV as workload `client` on A: `[...PREFIX, tidegate, run, <flags of A>, --workload, client,
   * --user, nobody, --, ...ARGV]` (PREFIX, e.g. `unshare -m ...`, runs as root and execs what
   * follows), in the client's environment (PATH /usr/bin:/bin, no transpiler cache); killed after
   * `timeoutMs` (default 60 s).
   */
  runWorkload(argv: string[], opts?: { prefix?: string[]; timeoutMs?: number }): Promise<RunResult>;
  /** mcp-client.ts from the test, outside tidegate, with the client's SVID, to B's listener at `url`. */
  directClient(url: string, json: ClientSteps): Promise<ClientRun>;
  /** mcp-client.ts from the test, plaintext, straight to a server (no tidegate in between). */
  plainClient(url: string, json: ClientSteps): Promise<ClientRun>;
  /** `tidegate ARGS <flags of B>`. */
  cli(args: string[]): Promise<RunResult>;
  /** Deletes the registration entry of `id` on the server; what puts a new one back (same selector), resolving once its agent holds its SVID. */
  unregister(id: (typeof ID)[keyof typeof ID]): Promise<() => Promise<void>>;
  /** Rewrites the pinned server's description of `lookup` (read at each new session). */
  setDescription(text: string): void;
  auditA(): AuditLine[];
  auditB(): AuditLine[];
  /** The raw text of every file in A's, B's and the server's audit folders. */
  auditText(): string;
  logA(): LogLine[];
  logB(): LogLine[];
  readonly everything: Peer;
  readonly pinned: PinnedPeer;
  agentB(): Running;
  /** What every process of the stand wrote: server, A, B, server-everything, the pinned server. */
  allOutput(): string;
}

const cleanups = cleanupStack("mcp");

/** Undoes whatever `setUp` got to, last first; never throws. */
export const tearDown = (): Promise<void> => cleanups.run();

const cli = cliOk;

/** The result lines of a client run (anything else on stdout is kept in `stdout` only). */
export function clientRun(r: RunResult): ClientRun {
  const results = r.stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as StepResult);
  return { code: r.code, results, stdout: r.stdout, stderr: r.stderr };
}

async function runBun(argv: string[]): Promise<RunResult> {
  const p = Bun.spawn(argv, { cwd: REPO, env: CLIENT_ENV, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}

/** Every file below `dir`, read as text ("" when the folder is not there). */
function allText(dir: string): string {
  if (!existsSync(dir)) return "";
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => readFileSync(join(e.parentPath, e.name), "latin1"))
    .join("\n");
}

export async function setUp(opts: StandOptions = {}): Promise<Stand> {
  const instances = opts.instances ?? { a: INSTANCE_A, b: INSTANCE_B };
  const listener = opts.listener ?? ADDR.listener;
  const host = opts.host ?? EVERYTHING_HOST;
  const tools = opts.tools ?? { a: `{ deny: [${DENIED.byA}] }`, b: `{ deny: [${DENIED.byB}] }` };
  const othersB = (opts.resourcesAndPrompts ?? opts.tools === undefined) ? `, resources: { deny: ["${DENIED.resourceByB}"] }, prompts: { deny: [${DENIED.promptByB}] }` : "";
  const dir = mkdtempSync(join(tmpdir(), `tidegate-test-e2e-${opts.label ?? "mcp"}-`));
  chmodSync(dir, 0o711); // the workload (nobody) reads A's interception CA bundle below it
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const d = (n: string) => {
    const p = join(dir, n);
    mkdirSync(p, { recursive: true });
    return p;
  };
  const serverFlags = ["--instance", instances.a, "--state-dir", d("server-state"), "--run-dir", d("server-run"), "--server-config", join(dir, "server.yaml"), "--audit-dir", d("server-audit")];
  const nodeFlags = (instance: string, n: string) => ["--instance", instance, "--state-dir", d(`${n}-state`), "--run-dir", d(`${n}-run`), "--config", join(dir, `${n}.yaml`), "--audit-dir", join(dir, `${n}-audit`)];
  const flagsA = nodeFlags(instances.a, "a");
  const flagsB = nodeFlags(instances.b, "b");
  for (const flags of [flagsA, flagsB]) {
    await tidegate(["agent", "--uninstall", ...flags]); // leftovers of an earlier run
    cleanups.push(() => tidegate(["agent", "--uninstall", ...flags]));
  }

  // the MCP servers
  const descriptionFile = join(dir, "lookup-description.txt");
  writeFileSync(descriptionFile, `${FIRST_DESCRIPTION}\n`);
  const everything = await startEverything(freePort("127.0.0.1"));
  cleanups.push(() => everything.stop());
  const pinned = await startPinnedServer("127.0.0.1", freePort("127.0.0.1"), descriptionFile);
  cleanups.push(() => pinned.stop());
  const ports = { everything: freePort(listener), pinned: 0, everythingBackend: everything.port, pinnedBackend: pinned.port };
  do ports.pinned = freePort(listener);
  while (ports.pinned === ports.everything);

  const info = await startServer(dir, serverFlags);
  const server = info.server;
  cleanups.push(() => server.stop());
  const entryIds: Record<string, string> = {};
  const registered = {
    [ID.client]: ["mcp-a", "tidegate:workload:client"],
    [ID.everything]: ["mcp-b", "tidegate:workload:unused-everything"],
    [ID.pinned]: ["mcp-b", "tidegate:workload:unused-pinned"],
  } as const;
  for (const [id, [node, selector]] of Object.entries(registered)) {
    entryIds[id] = (JSON.parse(await cli(["entry", "create", "--spiffe-id", id, "--node", node, "--selector", selector, "--json", ...serverFlags])) as { id: string }).id;
  }

  writeFileSync(
    join(dir, "a.yaml"),
    `trust_domain: example.org
workloads:
  - { name: client, id: ${ID.client}, user: nobody }
egress:
  - name: ${RULE.a}
    from: ${ID.client}
    to: { host: ${host}, port: 80 }
    action: intercept
    mtls: { server_id: ${ID.everything} }
    upstream: { port: ${ports.everything} }
    mcp: { tools: ${tools.a} }
dns:
  hosts:
    ${host}: [${listener}]
`,
  );
  writeFileSync(
    join(dir, "b.yaml"),
    `trust_domain: example.org
inbound:
  - name: ${RULE.b}
    id: ${ID.everything}
    listen: ${listener}:${ports.everything}
    forward: 127.0.0.1:${everything.port}
    allow: [${ID.client}]
    mcp: { tools: ${tools.b}${othersB} }
  - name: ${RULE.pinned}
    id: ${ID.pinned}
    listen: ${listener}:${ports.pinned}
    forward: 127.0.0.1:${pinned.port}
    allow: [${ID.client}]
    mcp: { tools: {} }
`,
  );
  for (const n of ["a", "b"]) {
    const check = await tidegate(["policy", "check", join(dir, `${n}.yaml`)]);
    if (check.code !== 0) throw new Error(`e2e mcp: ${n}.yaml does not load: ${check.stdout}${check.stderr}`);
  }

  const agents: Record<"a" | "b", Running | undefined> = { a: undefined, b: undefined };
  const startAgent = async (n: "a" | "b", node: string, flags: string[], held: string[]): Promise<Running> => {
    const ready = () => held.every((id) => existsSync(join(dir, `${n}-state`, "agent", "svids", `${entryIds[id]}.key`)));
    const agent = await startJoinedAgent({ dir, serverFlags, server: info.public, key: n, node, flags, what: `agent ${n} to capture, holding ${held.join(" and ")}`, ready });
    agents[n] = agent;
    cleanups.push(() => agent.stop());
    return agent;
  };
  // one after the other: each instance takes the first free egress port below 1000
  await startAgent("a", "mcp-a", flagsA, [ID.client]);
  const agentB = await startAgent("b", "mcp-b", flagsB, [ID.everything, ID.pinned]);
  for (const rule of [RULE.b, RULE.pinned]) {
    await waitFor(`B's inbound listener ${rule}`, () => parseLog(agentB).find((l) => l.event === "inbound_listening" && l.rule === rule), 15_000, 100, agentB);
  }

  // the client's SVID as A holds it, copied (the agent replaces its files whole at rotation)
  const tlsDir = d("client-tls");
  const base = join(dir, "a-state", "agent", "svids", entryIds[ID.client]!);
  const clientTls = { cert: join(tlsDir, "client.pem"), key: join(tlsDir, "client.key"), ca: join(tlsDir, "bundle.pem") };
  writeFileSync(clientTls.cert, readFileSync(`${base}.pem`));
  writeFileSync(clientTls.key, readFileSync(`${base}.key`), { mode: 0o600 });
  writeFileSync(clientTls.ca, bundlePem(readFileSync(join(dir, "a-state", "agent", "bundle.json"), "utf8")));

  const url = (port: number) => `https://${listener}:${port}/mcp`;
  const serverIdOf = (u: string) => (u === url(ports.pinned) ? ID.pinned : u === url(ports.everything) ? ID.everything : undefined);

  return {
    dir,
    flagsA,
    flagsB,
    host,
    listener,
    ports,
    urls: { everything: url(ports.everything), pinned: url(ports.pinned) },
    clientTls,
    runClient: async (json) => {
      const input: ClientInput = { ...json, url: `http://${host}/mcp`, resolve: { [host]: listener } };
      const r = await tidegate(["run", ...flagsA, "--workload", "client", "--user", "nobody", "--", process.execPath, CLIENT, JSON.stringify(input)], { env: CLIENT_ENV });
      return clientRun(r);
    },
    runWorkload: async (argv, o = {}) => {
      const p = Bun.spawn([...(o.prefix ?? []), requireBinary(), "run", ...flagsA, "--workload", "client", "--user", "nobody", "--", ...argv], {
        cwd: REPO,
        env: CLIENT_ENV,
        stdin: "ignore",
        stdout: "pipe",
        stderr: "pipe",
        timeout: o.timeoutMs ?? 60_000,
        killSignal: "SIGTERM",
      });
      const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
      return { code, stdout, stderr };
    },
    directClient: async (u, json) => {
      const serverId = serverIdOf(u);
      const input: ClientInput = { ...json, url: u, tls: { ...clientTls, ...(serverId !== undefined ? { server_id: serverId } : {}) } };
      return clientRun(await runBun([process.execPath, CLIENT, JSON.stringify(input)]));
    },
    plainClient: async (u, json) => clientRun(await runBun([process.execPath, CLIENT, JSON.stringify({ ...json, url: u })])),
    cli: (args) => tidegate([...args, ...flagsB]),
    unregister: async (id) => {
      const [node, selector] = registered[id];
      const again = await deleteEntry({ serverFlags, entryId: entryIds[id]!, spiffeId: id, node, selector, stateDir: join(dir, `${node === "mcp-a" ? "a" : "b"}-state`) });
      return async () => void (entryIds[id] = await again());
    },
    setDescription: (text) => writeFileSync(descriptionFile, `${text}\n`),
    auditA: () => readAudit(join(dir, "a-audit")),
    auditB: () => readAudit(join(dir, "b-audit")),
    auditText: () => [allText(join(dir, "a-audit")), allText(join(dir, "b-audit")), allText(join(dir, "server-audit"))].join("\n"),
    logA: () => parseLog(agents.a),
    logB: () => parseLog(agents.b),
    everything,
    pinned,
    agentB: () => agentB,
    allOutput: () => [server.output(), agents.a?.output() ?? "", agents.b?.output() ?? "", everything.output(), pinned.output()].join("\n"),
  };
}
