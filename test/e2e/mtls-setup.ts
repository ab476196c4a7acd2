/**
 * The stand of the mTLS end-to-end test (mtls.test.ts): the built server, two agents on this host
 * (instances e2e-mtls-a, the client side, and e2e-mtls-b, the server side, each with its own state,
 * sockets, config, cgroup tree and pins), the backends, a TLS server with a certificate from a
 * second root of the same trust-domain name (untrusted), and stunnel on either side of an mTLS hop.
 * Addresses: 127.0.0.40-49 only.
 */
import { bundlePem, cleanupStack, cliOk, collectOutput, deleteEntry, freePort, type LogLine, parseLog, startJoinedAgent, startServer } from "../helpers/e2e-kit.ts";
import { readAudit, type AuditLine } from "../helpers/audit-files.ts";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { tidegate } from "../helpers/binary.ts";
import { waitFor, type Running } from "../helpers/processes.ts";
import { createTestCa } from "../helpers/test-ca.ts";
import { encodePem } from "../../src/x509/pem.ts";
import { exportPkcs8Pem } from "../../src/x509/keys.ts";
import { startBackend, type Backend } from "./mtls-backend.ts";

export const INSTANCE_A = "e2e-mtls-a";
export const INSTANCE_B = "e2e-mtls-b";

export const ADDR = {
  /** B's inbound listener; also where the workload's HTTP (port 80) and raw TCP go. */
  listener: "127.0.0.41",
  /** An address backend.test.internal does not resolve to. */
  elsewhere: "127.0.0.42",
  stunnelServer: "127.0.0.43",
  stunnelClient: "127.0.0.44",
  untrusted: "127.0.0.45",
  /** No rule names it. */
  unnamed: "127.0.0.46",
} as const;

const TD = "spiffe://example.org";
export const ID = {
  client: `${TD}/client`,
  backend: `${TD}/backend`,
  intruder: `${TD}/intruder`,
  stunnelClient: `${TD}/stunnel-client`,
  stunnelServer: `${TD}/stunnel-server`,
  other: `${TD}/other`,
} as const;

export type { LogLine } from "../helpers/e2e-kit.ts";
export interface Pem {
  readonly cert: string;
  readonly key: string;
}

export interface Stand {
  readonly dir: string;
  readonly flagsA: string[];
  readonly flagsB: string[];
  readonly ports: { listen: number; untrusted: number; stunnelServer: number; stunnelClient: number };
  /** Behind B's listener, reading PROXY v2; and a plain one behind stunnel. */
  readonly backend: Backend;
  readonly plain: Backend;
  /** The TLS server with the untrusted certificate: connections and bytes it received. */
  readonly untrusted: { conns: number; bytes: number };
  /** `spiffe://example.org/client` from the untrusted root. */
  readonly untrustedClient: Pem;
  logA(): LogLine[];
  logB(): LogLine[];
  /** The agents' audit events (their audit folders). */
  auditA(): AuditLine[];
  auditB(): AuditLine[];
  /** The SVID the agent holds for that SPIFFE ID, read from its state folder. */
  svid(node: "a" | "b", id: string): Pem;
  stunnelOutput(side: "server" | "client"): string;
  /** Deletes the entry that gives workload `client` on A its identity; what puts a new one back (resolving once A holds its SVID). */
  unregisterClient(): Promise<() => Promise<void>>;
}

const cleanups = cleanupStack("mtls");

/** Undoes whatever `setUp` got to, last first; never throws. */
export const tearDown = (): Promise<void> => cleanups.run();

const cli = cliOk;



function startStunnel(dir: string, name: string, lines: string[]): { proc: Subprocess<"ignore", "pipe", "pipe">; output(): string } {
  const conf = join(dir, `${name}.conf`);
  writeFileSync(conf, ["foreground = yes", `pid = ${join(dir, `${name}.pid`)}`, "syslog = no", "debug = 5", `[tidegate-test-${name}]`, ...lines, ""].join("\n"));
  const proc = Bun.spawn(["/usr/bin/stunnel", conf], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const output = collectOutput([proc.stdout, proc.stderr]);
  cleanups.push(async () => {
    proc.kill();
    await proc.exited;
  });
  return { proc, output };
}

export async function setUp(): Promise<Stand> {
  const dir = mkdtempSync(join(tmpdir(), "tidegate-test-e2e-mtls-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const d = (n: string) => {
    const p = join(dir, n);
    mkdirSync(p, { recursive: true });
    return p;
  };
  const serverFlags = ["--instance", INSTANCE_A, "--state-dir", d("server-state"), "--run-dir", d("server-run"), "--server-config", join(dir, "server.yaml"), "--audit-dir", d("server-audit")];
  const nodeFlags = (instance: string, n: string) => ["--instance", instance, "--state-dir", d(`${n}-state`), "--run-dir", d(`${n}-run`), "--config", join(dir, `${n}.yaml`), "--audit-dir", join(dir, `${n}-audit`)];
  const flagsA = nodeFlags(INSTANCE_A, "a");
  const flagsB = nodeFlags(INSTANCE_B, "b");
  for (const flags of [flagsA, flagsB]) {
    await tidegate(["agent", "--uninstall", ...flags]); // leftovers of an earlier run
    cleanups.push(() => tidegate(["agent", "--uninstall", ...flags]));
  }

  const backend = startBackend(true);
  const plain = startBackend(false);
  cleanups.push(() => backend.stop(), () => plain.stop());
  const ports = { listen: freePort(ADDR.listener), untrusted: 0, stunnelServer: freePort(ADDR.stunnelServer), stunnelClient: freePort(ADDR.stunnelClient) };

  // a root of another key for the same trust-domain name: certificates nobody here trusts
  const stranger = await createTestCa({ trustDomain: "example.org" });
  const pemOf = async (id: string): Promise<Pem> => {
    const leaf = await stranger.mintLeaf(id);
    return { cert: leaf.chain.map((der) => encodePem("CERTIFICATE", der)).join(""), key: await exportPkcs8Pem(leaf.privateKey) };
  };
  const untrustedServer = await pemOf(ID.backend);
  const untrustedClient = await pemOf(ID.client);
  const untrusted = { conns: 0, bytes: 0 };
  const tlsServer = Bun.listen({
    hostname: ADDR.untrusted,
    port: 0,
    tls: untrustedServer,
    socket: {
      open: () => void untrusted.conns++,
      data: (_s, b) => void (untrusted.bytes += b.length),
    },
  });
  ports.untrusted = tlsServer.port;
  cleanups.push(() => tlsServer.stop(true));

  const info = await startServer(dir, serverFlags);
  const server = info.server;
  cleanups.push(() => server.stop());

  const entryIds: Record<string, string> = {};
  let unused = 0;
  const entry = async (node: string, id: string, selector = `tidegate:workload:unused-${++unused}`) => {
    const e = JSON.parse(await cli(["entry", "create", "--spiffe-id", id, "--node", node, "--selector", selector, "--json", ...serverFlags])) as { id: string };
    entryIds[`${node} ${id}`] = e.id;
  };
  await entry("mtls-a", ID.client, "tidegate:workload:client");
  await entry("mtls-a", ID.intruder);
  await entry("mtls-a", ID.stunnelClient);
  await entry("mtls-b", ID.backend);
  await entry("mtls-b", ID.stunnelServer);

  const mtls = (name: string, to: string, serverId: string, upstreamPort?: number) =>
    `  - name: ${name}\n    from: ${ID.client}\n    to: ${to}\n    action: mtls\n    mtls: { server_id: ${serverId} }\n` + (upstreamPort !== undefined ? `    upstream: { port: ${upstreamPort} }\n` : "");
  writeFileSync(
    join(dir, "a.yaml"),
    `trust_domain: example.org
workloads:
  - { name: client, id: ${ID.client}, user: nobody }
egress:
${mtls("backend-http", "{ host: backend.test.internal, port: 80 }", ID.backend, ports.listen)}${mtls("wrong-id", "{ host: other.test.internal, port: 80 }", ID.other, ports.listen)}${mtls("backend-raw", `{ cidr: ${ADDR.listener}/32, port: ${ports.listen} }`, ID.backend)}${mtls("untrusted", `{ cidr: ${ADDR.untrusted}/32, port: ${ports.untrusted} }`, ID.backend)}${mtls("stunnel-server", `{ cidr: ${ADDR.stunnelServer}/32, port: ${ports.stunnelServer} }`, ID.stunnelServer)}dns:
  hosts:
    backend.test.internal: [${ADDR.listener}]
    other.test.internal: [${ADDR.listener}]
`,
  );
  writeFileSync(
    join(dir, "b.yaml"),
    `trust_domain: example.org
inbound:
  - name: backend
    id: ${ID.backend}
    listen: ${ADDR.listener}:${ports.listen}
    forward: 127.0.0.1:${backend.port}
    allow: [${ID.client}, ${ID.stunnelClient}]
    proxy_protocol: true
`,
  );

  const agents: Record<"a" | "b", Running | undefined> = { a: undefined, b: undefined };
  const startAgent = async (n: "a" | "b", node: string, flags: string[], held: string[]): Promise<void> => {
    const ready = () => held.every((id) => existsSync(join(dir, `${n}-state`, "agent", "svids", `${entryIds[`${node} ${id}`]}.key`)));
    const agent = await startJoinedAgent({ dir, serverFlags, server: info.public, key: n, node, flags, what: `agent ${n} to capture, holding ${held.length} SVIDs`, ready });
    agents[n] = agent;
    cleanups.push(() => agent.stop());
  };
  // one after the other: each instance takes the first free egress port below 1000
  await startAgent("a", "mtls-a", flagsA, [ID.client, ID.intruder, ID.stunnelClient]);
  await startAgent("b", "mtls-b", flagsB, [ID.backend, ID.stunnelServer]);
  await waitFor("B's inbound listener", () => parseLog(agents.b).find((l) => l.event === "inbound_listening" && l.rule === "backend"), 15_000, 100, agents.b);

  const svidPaths = (node: "a" | "b", id: string) => {
    const base = join(dir, `${node}-state`, "agent", "svids", entryIds[`mtls-${node} ${id}`]!);
    return { cert: `${base}.pem`, key: `${base}.key` };
  };
  const svid = (node: "a" | "b", id: string): Pem => {
    const p = svidPaths(node, id);
    return { cert: readFileSync(p.cert, "utf8"), key: readFileSync(p.key, "utf8") };
  };

  // stunnel reads copies: the agent replaces its files whole at rotation
  const sdir = d("stunnel");
  writeFileSync(join(sdir, "bundle.pem"), bundlePem(readFileSync(join(dir, "a-state", "agent", "bundle.json"), "utf8")));
  const copy = (node: "a" | "b", id: string, name: string) => {
    const p = svidPaths(node, id);
    copyFileSync(p.cert, join(sdir, `${name}.pem`));
    copyFileSync(p.key, join(sdir, `${name}.key`));
    return [`cert = ${join(sdir, `${name}.pem`)}`, `key = ${join(sdir, `${name}.key`)}`, `CAfile = ${join(sdir, "bundle.pem")}`, "verifyChain = yes"];
  };
  const stunnels = {
    server: startStunnel(sdir, "server", [`accept = ${ADDR.stunnelServer}:${ports.stunnelServer}`, `connect = 127.0.0.1:${plain.port}`, ...copy("b", ID.stunnelServer, "stunnel-server"), "requireCert = yes"]),
    client: startStunnel(sdir, "client", ["client = yes", `accept = ${ADDR.stunnelClient}:${ports.stunnelClient}`, `connect = ${ADDR.listener}:${ports.listen}`, ...copy("a", ID.stunnelClient, "stunnel-client")]),
  };
  for (const [side, s] of Object.entries(stunnels)) {
    await waitFor(`stunnel (${side}) to listen`, () => {
      if (s.proc.exitCode !== null) throw new Error(`stunnel (${side}) exited ${s.proc.exitCode}: ${s.output()}`);
      return s.output().includes("Configuration successful") ? true : undefined;
    });
  }

  return {
    dir,
    flagsA,
    flagsB,
    ports,
    backend,
    plain,
    untrusted,
    untrustedClient,
    logA: () => parseLog(agents.a),
    logB: () => parseLog(agents.b),
    auditA: () => readAudit(join(dir, "a-audit")),
    auditB: () => readAudit(join(dir, "b-audit")),
    svid,
    stunnelOutput: (side) => stunnels[side].output(),
    unregisterClient: async () => {
      const key = `mtls-a ${ID.client}`;
      const again = await deleteEntry({ serverFlags, entryId: entryIds[key]!, spiffeId: ID.client, node: "mtls-a", selector: "tidegate:workload:client", stateDir: join(dir, "a-state") });
      return async () => void (entryIds[key] = await again());
    },
  };
}
