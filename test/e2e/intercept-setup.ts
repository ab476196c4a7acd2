/**
 * The stand of the interception end-to-end test (intercept.test.ts):
 * - the network namespace tidegate-test-ix-<pid>, joined to the host by a veth pair (host side
 *   10.250.0.1/30, namespace side 10.250.0.2/30), where the stand-in API (intercept-peers.ts)
 *   serves api.partner.test and other.partner.test on 443 with a certificate of its own openssl
 *   test CA;
 * - the built server and agent A (instance e2e-ix-a) with workload `client`; the secret
 *   partner_token is set with `tidegate secret set` (stdin) before A starts; besides the rules
 *   that reach the API, three on ports UNVERIFIED.* lead to the same API on 443 but cannot verify
 *   it (the ca of another openssl test CA; the system roots; mtls: the backend's SPIFFE ID), and
 *   one by the API's address (a `cidr` rule on port BY_ADDRESS_PORT; the API's certificate names
 *   that address too);
 * - on demand, agent B (instance e2e-ix-b) whose inbound listener (127.0.0.81,
 *   `forward_client_cert: true`) forwards to the header-recording backend in this process.
 * Leftovers of earlier runs (namespaces tidegate-test-ix-*, host links tgtix*, the instances) are
 * removed first; `tearDown` removes everything `setUp` made.
 */
import { cleanupStack, cliOk, freePort, type LogLine, parseLog, startJoinedAgent, startServer } from "../helpers/e2e-kit.ts";
import { readAudit, type AuditLine } from "../helpers/audit-files.ts";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireBinary, tidegate } from "../helpers/binary.ts";
import { waitFor, type Running } from "../helpers/processes.ts";
import { startApi, startHeaderBackend, type ApiRecord, type HeaderBackend } from "./intercept-peers.ts";

export type { ApiRecord, SeenRequest } from "./intercept-peers.ts";

export const INSTANCE_A = "e2e-ix-a";
export const INSTANCE_B = "e2e-ix-b";
export const NETNS = `tidegate-test-ix-${process.pid}`;
const LINK = `tgtix${process.pid}`;
export const ADDR = { host: "10.250.0.1", api: "10.250.0.2", listener: "127.0.0.81" } as const;
export const ID = { client: "spiffe://example.org/client", backend: "spiffe://example.org/backend" } as const;
/**
 * Ports of the API's name whose rules re-originate to the API on 443 with a verification it fails:
 * the rule's `ca` is another test CA's; no `ca` (the system roots); `mtls:` wanting ID.backend.
 */
export const UNVERIFIED = { otherCa: 8443, systemRoots: 8444, mtls: 8445 } as const;
/** The ports of the API's address whose `cidr` rule (partner-api-addr) intercepts, plain HTTP on the first and TLS on the second, and re-originates to 443: no name involved. */
export const BY_ADDRESS_PORT = 8081;
export const BY_ADDRESS_TLS_PORT = 8082;
/** The value of secret partner_token: printable ASCII, unique to this run. */
export const SECRET = `tg-e2e-${crypto.randomUUID().replaceAll("-", "")}`;

export type { LogLine } from "../helpers/e2e-kit.ts";

export interface Stand {
  readonly dir: string;
  readonly flagsA: string[];
  readonly flagsB: string[];
  /** The workloads' trust bundle agent A makes (system roots + its interception CA). */
  readonly bundle: string;
  /** The cgroup of workload `client` on A. */
  readonly clientCgroup: string;
  api(): ApiRecord[];
  logA(): LogLine[];
  logB(): LogLine[];
  /** The agents' audit events (their audit folders). */
  auditA(): AuditLine[];
  auditB(): AuditLine[];
  agentAOutput(): string;
  /** What every tidegate process of the stand wrote on stdout and stderr: server, A and B. */
  allOutput(): string;
  /** Kills agent A with SIGKILL (no orderly stop) and waits for it to be gone. */
  killA(): Promise<void>;
  /** Starts agent B with its listener in front of `backend`; the listener's address and port. */
  startB(): Promise<{ listen: number }>;
  readonly backend: HeaderBackend;
}

const cleanups = cleanupStack("intercept");

/** Undoes whatever `setUp` got to, last first; never throws. */
export const tearDown = (): Promise<void> => cleanups.run();

function sh(argv: string[]): string {
  const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")} exited ${r.exitCode}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

/** Namespaces tidegate-test-ix-* and host links tgtix* of earlier runs. */
export function removeLeftovers(): void {
  const names = existsSync("/run/netns") ? readdirSync("/run/netns").filter((n) => n.startsWith("tidegate-test-ix-")) : [];
  for (const n of names) Bun.spawnSync(["ip", "netns", "del", n]);
  for (const m of sh(["ip", "-o", "link", "show"]).matchAll(/^\d+: (tgtix\d+[hn])[@:]/gm)) Bun.spawnSync(["ip", "link", "del", m[1]!]);
}

/** The namespace, the veth pair, addresses and loopback; removed again at tearDown. */
function makeNetns(): void {
  sh(["ip", "netns", "add", NETNS]);
  cleanups.push(() => sh(["ip", "netns", "del", NETNS]));
  sh(["ip", "link", "add", `${LINK}h`, "type", "veth", "peer", "name", `${LINK}n`]);
  cleanups.push(() => Bun.spawnSync(["ip", "link", "del", `${LINK}h`])); // gone with the namespace already, normally
  sh(["ip", "link", "set", `${LINK}n`, "netns", NETNS]);
  sh(["ip", "addr", "add", `${ADDR.host}/30`, "dev", `${LINK}h`]);
  sh(["ip", "link", "set", `${LINK}h`, "up"]);
  const inNs = (...a: string[]) => sh(["ip", "-n", NETNS, ...a]);
  inNs("addr", "add", `${ADDR.api}/30`, "dev", `${LINK}n`);
  inNs("link", "set", `${LINK}n`, "up");
  inNs("link", "set", "lo", "up");
}

/** The API's test CA and its server certificate, made with openssl in `dir`. */
function makePki(dir: string): void {
  const run = (cmd: string) => {
    const r = Bun.spawnSync(["bash", "-c", cmd], { cwd: dir, stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`${cmd}: ${r.stderr.toString()}`);
  };
  run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 1 -subj /CN=tidegate-test-partner-ca -addext basicConstraints=critical,CA:TRUE");
  run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout api.key -out api.csr -subj /CN=api.partner.test");
  run(`openssl x509 -req -in api.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -out api.pem -extfile <(printf 'subjectAltName=DNS:api.partner.test,DNS:other.partner.test,IP:${ADDR.api}\\n')`);
  // a CA that signed nothing the API presents: a rule trusting it alone cannot verify the API
  run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout other-ca.key -out other-ca.pem -days 1 -subj /CN=tidegate-test-other-ca -addext basicConstraints=critical,CA:TRUE");
}

const cli = cliOk;

/** `tidegate ARGS` with `stdin` as its standard input. */
export async function withStdin(args: string[], stdin: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = Bun.spawn([requireBinary(), ...args], { stdin: new TextEncoder().encode(stdin), stdout: "pipe", stderr: "pipe", env: { PATH: "/usr/bin:/bin" } });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}


export async function setUp(cgroupMount: string): Promise<Stand> {
  removeLeftovers();
  const dir = mkdtempSync(join(tmpdir(), "tidegate-test-e2e-ix-"));
  chmodSync(dir, 0o711); // workloads (nobody) read A's trust bundle below it
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

  makeNetns();
  const pki = d("pki");
  makePki(pki);
  const api = startApi(pki, NETNS, ADDR.api);
  cleanups.push(() => api.stop());
  await waitFor("the API to listen in its namespace", () => {
    if (api.stderr().includes("Error")) throw new Error(`the API failed: ${api.stderr()}`);
    return api.records.some((r) => r.event === "listening") ? true : undefined;
  });
  const backend = startHeaderBackend();
  cleanups.push(() => backend.stop());
  const listen = freePort(ADDR.listener);

  const info = await startServer(dir, serverFlags);
  const server = info.server;
  cleanups.push(() => server.stop());
  const entryIds: Record<string, string> = {};
  for (const [node, id, selector] of [["ix-a", ID.client, "tidegate:workload:client"], ["ix-b", ID.backend, "tidegate:workload:unused"]] as const) {
    entryIds[id] = (JSON.parse(await cli(["entry", "create", "--spiffe-id", id, "--node", node, "--selector", selector, "--json", ...serverFlags])) as { id: string }).id;
  }

  const ca = join(pki, "ca.pem");
  const inject = `    inject: { headers: { Authorization: "Bearer \${secret:partner_token}" } }\n`;
  const rule = (name: string, host: string, port: number, extra = "", trust = `    ca: ${ca}\n`) => `  - name: ${name}\n    from: ${ID.client}\n    to: { host: ${host}, port: ${port} }\n    action: intercept\n${trust}${extra}`;
  const toApi = `${inject}    upstream: { port: 443 }\n`;
  const unverified =
    rule("unverified-other-ca", "api.partner.test", UNVERIFIED.otherCa, toApi, `    ca: ${join(pki, "other-ca.pem")}\n`) +
    rule("unverified-system-roots", "api.partner.test", UNVERIFIED.systemRoots, toApi, "") +
    rule("unverified-mtls", "api.partner.test", UNVERIFIED.mtls, toApi, `    mtls: { server_id: ${ID.backend} }\n`);
  writeFileSync(
    join(dir, "a.yaml"),
    `trust_domain: example.org
workloads:
  - { name: client, id: ${ID.client}, user: nobody }
egress:
${rule("partner-api", "api.partner.test", 443, inject)}${rule("partner-api-http", "api.partner.test", 80, `${inject}    upstream: { port: 443 }\n`)}${rule("other-api", "other.partner.test", 443)}${unverified}  - name: partner-api-addr
    from: ${ID.client}
    to: { cidr: ${ADDR.api}/32, port: "${BY_ADDRESS_PORT}-${BY_ADDRESS_TLS_PORT}" }
    action: intercept
    ca: ${ca}
${toApi}  - name: backend
    from: ${ID.client}
    to: { host: backend.ix.test, port: 80 }
    action: mtls
    mtls: { server_id: ${ID.backend} }
    upstream: { port: ${listen} }
audit: { checkpoint_every: 25 }
dns:
  hosts:
    api.partner.test: [${ADDR.api}]
    other.partner.test: [${ADDR.api}]
    backend.ix.test: [${ADDR.listener}]
`,
  );
  writeFileSync(
    join(dir, "b.yaml"),
    `trust_domain: example.org
inbound:
  - name: backend
    id: ${ID.backend}
    listen: ${ADDR.listener}:${listen}
    forward: 127.0.0.1:${backend.port}
    allow: [${ID.client}]
    forward_client_cert: true
`,
  );

  // the secret goes in before the agent starts, from stdin
  const set = await withStdin(["secret", "set", "partner_token", "--instance", INSTANCE_A, "--state-dir", join(dir, "a-state")], `${SECRET}\n`);
  if (set.code !== 0) throw new Error(`tidegate secret set exited ${set.code}: ${set.stderr}`);

  const agents: Record<"a" | "b", Running | undefined> = { a: undefined, b: undefined };
  const startAgent = async (n: "a" | "b", node: string, flags: string[], held: string): Promise<void> => {
    const ready = () => existsSync(join(dir, `${n}-state`, "agent", "svids", `${entryIds[held]}.key`));
    const agent = await startJoinedAgent({ dir, serverFlags, server: info.public, key: n, node, flags, what: `agent ${n} to capture, holding the SVID of ${held}`, ready });
    agents[n] = agent;
    cleanups.push(() => agent.stop());
  };
  await startAgent("a", "ix-a", flagsA, ID.client);

  return {
    dir,
    flagsA,
    flagsB,
    bundle: join(dir, "a-run", "intercept-ca-bundle.pem"),
    clientCgroup: join(cgroupMount, `tidegate-${INSTANCE_A}`, "workloads", "client"),
    api: () => api.records,
    logA: () => parseLog(agents.a),
    logB: () => parseLog(agents.b),
    auditA: () => readAudit(join(dir, "a-audit")),
    auditB: () => readAudit(join(dir, "b-audit")),
    agentAOutput: () => agents.a?.output() ?? "",
    allOutput: () => [server.output(), agents.a?.output() ?? "", agents.b?.output() ?? ""].join("\n"),
    killA: async () => {
      agents.a?.proc.kill("SIGKILL");
      await agents.a?.proc.exited;
    },
    backend,
    startB: async () => {
      if (agents.b === undefined) {
        await startAgent("b", "ix-b", flagsB, ID.backend);
        await waitFor("B's inbound listener", () => parseLog(agents.b).find((l) => l.event === "inbound_listening" && l.rule === "backend"), 15_000, 100, agents.b);
      }
      return { listen };
    },
  };
}
