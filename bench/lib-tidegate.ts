/**
 * tidegate's path in bench/mtls.ts, built as test/e2e/capture.test.ts builds its stand: the built
 * server (`tidegate server init` + `tidegate server`), and two agents on this host joined to it as
 * two nodes, each an instance of its own (`tidegate-test-mtls-a-PID`, `-b-PID`: state, sockets,
 * config, cgroup tree and pins apart):
 *
 *   wrk (tidegate run --workload bench-client, as nobody) -> 127.0.0.21:8080, redirected by A's
 *   kernel programs to A's egress proxy -> rule `bench` (action mtls, server_id .../bench/backend,
 *   upstream port = B's listen port) -> B's inbound listener on 127.0.0.21 -> the nginx backend.
 *
 * Node A holds spiffe://example.org/bench/client (selector tidegate:workload:bench-client), node B
 * spiffe://example.org/bench/backend, which its inbound listener presents. The agents run with
 * their default sync interval; their JSON log lines go to files in the run's folder.
 */
import { readAudit, type AuditLine } from "../test/helpers/audit-files.ts";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { callUnix } from "../src/runtime/unix-http.ts";
import { freePort, type PathSpec } from "./lib-peers.ts";
import type { Procs } from "./lib-procs.ts";

export const BINARY = join(import.meta.dir, "..", "dist", "tidegate");
const TD = "spiffe://example.org";
const CLIENT_ID = `${TD}/bench/client`;
const BACKEND_ID = `${TD}/bench/backend`;
/** What wrk dials: nothing listens there; A's kernel programs send it to A's egress proxy. */
export const DIAL = { host: "127.0.0.21", port: 8080 };
/** Workloads run as nobody: a PATH of system folders only. */
export const WORKLOAD_ENV = { PATH: "/usr/local/bin:/usr/bin:/bin" };

export const instanceNames = (pid: number) => ({ a: `tidegate-test-mtls-a-${pid}`, b: `tidegate-test-mtls-b-${pid}` });

async function tg(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = Bun.spawn([BINARY, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe", cwd: "/" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}

async function cli(args: string[]): Promise<string> {
  const r = await tg(args);
  if (r.code !== 0) throw new Error(`bench: tidegate ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** `tidegate agent --uninstall` for an instance (its cgroup tree and pins), with its run folder if known. */
export async function uninstallInstance(instance: string, runDir?: string): Promise<string> {
  const r = await tg(["agent", "--uninstall", "--instance", instance, ...(runDir !== undefined ? ["--run-dir", runDir] : [])]);
  if (r.code !== 0) throw new Error(`bench: tidegate agent --uninstall --instance ${instance}: ${r.stderr}`);
  return r.stdout.trim();
}

/** Both instances of the run of `pid`, if anything of them is left. */
export async function uninstallRun(pid: number, mount: string): Promise<void> {
  for (const name of Object.values(instanceNames(pid))) {
    if (existsSync(join(mount, `tidegate-${name}`)) || existsSync(`/sys/fs/bpf/tidegate-${name}`)) await uninstallInstance(name);
  }
}

/** Polls `probe` every 100 ms until it gives a value; `check` throws to give up early (a process died). */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, ms: number, check: () => void): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    check();
    const v = await Promise.resolve(probe()).catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`bench: timed out after ${ms} ms waiting for ${what}`);
    await Bun.sleep(100);
  }
}

export interface TidegatePath extends PathSpec {
  /** argv before wrk's: `tidegate run` of A's workload as nobody. */
  readonly runPrefix: string[];
  readonly instances: { a: string; b: string };
  readonly agentPids: { a: number; b: number };
  readonly flags: { a: string[]; b: string[] };
  /** The agents' JSON log lines (stderr). */
  log(node: "a" | "b"): { event: string; [k: string]: unknown }[];
  /** The agents' audit events (their audit folders). */
  audit(node: "a" | "b"): AuditLine[];
  /** The agents' audit folders. */
  readonly auditDirs: { a: string; b: string };
  /**
   * bench/mtls.ts: the same agents and hop, dialled on DIAL.port + 1, where A's rule says
   * `upstream: { key_exchange: classical }`: X25519 alone, as the OpenSSL peers do it.
   */
  readonly x25519?: PathSpec;
}

/** What a path's stand-up writes between the entries and the agents' start. */
interface Stand {
  readonly dir: string;
  readonly inst: { a: string; b: string };
  readonly listenPort: number;
  readonly backendPort: number;
}

/**
 * The stand both paths share: the server, the two entries, then `configure` (the agents' configs,
 * anything to do before they start), then agents A and B, one after the other, each waited for
 * until it captures and holds its SVID, and B's inbound listener `rule` until it listens.
 */
async function standUp(procs: Procs, backendPort: number, rule: string, configure: (s: Stand) => Promise<void>, agentBinary = BINARY, agentEnv: Record<string, string> = {}): Promise<TidegatePath> {
  if (!existsSync(BINARY)) throw new Error(`bench: ${BINARY} is missing: run 'bun run build' first`);
  const dir = join(procs.dir, "tidegate");
  const d = (n: string) => {
    const p = join(dir, n);
    mkdirSync(p, { recursive: true });
    return p;
  };
  const inst = instanceNames(process.pid);
  const serverFlags = ["--instance", inst.a, "--state-dir", d("server-state"), "--run-dir", d("server-run"), "--server-config", join(dir, "server.yaml"), "--audit-dir", d("server-audit")];
  // TIDEGATE_BENCH_AUDIT_BASE=DIR puts the agents' audit folders there (a tmpfs, to tell the
  // disk's share of the audit log's cost from the rest: bench/audit.ts).
  const auditBase = process.env.TIDEGATE_BENCH_AUDIT_BASE;
  const auditDir = (n: string) => (auditBase !== undefined ? join(auditBase, `${inst.a}-${n}-audit`) : d(`${n}-audit`));
  const nodeFlags = (instance: string, n: string) => ["--instance", instance, "--state-dir", d(`${n}-state`), "--run-dir", d(`${n}-run`), "--config", join(dir, `${n}.yaml`), "--audit-dir", auditDir(n)];
  const flags = { a: nodeFlags(inst.a, "a"), b: nodeFlags(inst.b, "b") };
  const listenPort = freePort(DIAL.host);

  writeFileSync(join(dir, "server.yaml"), "svid:\n  default_ttl: 1h\n");
  await cli(["server", "init", "--trust-domain", "example.org", ...serverFlags]);
  procs.start("tg-server", [BINARY, "server", ...serverFlags]);
  const serverJson = join(dir, "server-run", "server.json");
  const info = await waitFor("server.json", () => (existsSync(serverJson) ? (JSON.parse(readFileSync(serverJson, "utf8")) as { public: string }) : undefined), 20_000, () => procs.check("tg-server"));

  const entry = async (node: string, id: string, selector: string) => (JSON.parse(await cli(["entry", "create", "--spiffe-id", id, "--node", node, "--selector", selector, "--json", ...serverFlags])) as { id: string }).id;
  const entries = { a: await entry("bench-a", CLIENT_ID, "tidegate:workload:bench-client"), b: await entry("bench-b", BACKEND_ID, "tidegate:workload:bench-backend") };

  await configure({ dir, inst, listenPort, backendPort });

  const logOf = (n: "a" | "b") =>
    procs
      .output(`tg-agent-${n}`)
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { event: string; [k: string]: unknown });
  const pids = { a: 0, b: 0 };
  // one after the other: each instance takes the first free egress port below 1000
  for (const n of ["a", "b"] as const) {
    const tokenOut = await cli(["token", "create", "--node", `bench-${n}`, ...serverFlags]);
    const tokenFile = join(dir, `${n}.token`);
    writeFileSync(tokenFile, /token:\s*(\S+)/.exec(tokenOut)![1]!, { mode: 0o600 });
    const fingerprint = /fingerprint[^:]*:\s*([0-9a-fA-F:]+)/.exec(tokenOut)![1]!;
    const c = procs.start(`tg-agent-${n}`, [agentBinary, "agent", ...flags[n], "--server", `https://${info.public}`, "--join-token-file", tokenFile, "--server-fingerprint", fingerprint], agentEnv);
    pids[n] = c.proc.pid;
    const sock = join(dir, `${n}-run`, "agent.sock");
    await waitFor(
      `agent ${n} to capture, holding its SVID`,
      async () => {
        const s = (await callUnix(sock, "the agent", "GET", "/v1/status")).body as { capture?: { egress_port?: number } };
        return s.capture?.egress_port && existsSync(join(dir, `${n}-state`, "agent", "svids", `${entries[n]}.key`)) ? true : undefined;
      },
      30_000,
      () => procs.check(`tg-agent-${n}`),
    );
  }
  await waitFor("B's inbound listener", () => logOf("b").find((l) => l.event === "inbound_listening" && l.rule === rule), 20_000, () => procs.check("tg-agent-b"));

  return {
    name: "tidegate",
    host: DIAL.host,
    port: DIAL.port,
    hops: () => ({ client: [pids.a], server: [pids.b] }),
    runPrefix: [BINARY, "run", ...flags.a, "--workload", "bench-client", "--user", "nobody", "--"],
    instances: inst,
    agentPids: pids,
    flags,
    log: logOf,
    audit: (n) => readAudit(auditDir(n)),
    auditDirs: { a: auditDir("a"), b: auditDir("b") },
  };
}

/**
 * Starts server and agents as children of `procs` ("tg-server", "tg-agent-a", "tg-agent-b"); `procs.stopAll` and `uninstall` undo it.
 * `agentEnv` is added to the agents' environment (GC_LOG_ENV for --gc-log).
 */
export async function startTidegatePath(procs: Procs, backendPort: number, agentEnv: Record<string, string> = {}): Promise<TidegatePath> {
  const path = await standUp(procs, backendPort, "bench", async ({ dir, listenPort }) => {
    writeFileSync(
      join(dir, "a.yaml"),
      `trust_domain: example.org
workloads:
  - { name: bench-client, id: ${CLIENT_ID}, user: nobody }
egress:
  - name: bench
    from: ${CLIENT_ID}
    to: { cidr: ${DIAL.host}/32, port: ${DIAL.port} }
    action: mtls
    mtls: { server_id: ${BACKEND_ID} }
    upstream: { port: ${listenPort} }
  - name: bench-x25519
    from: ${CLIENT_ID}
    to: { cidr: ${DIAL.host}/32, port: ${DIAL.port + 1} }
    action: mtls
    mtls: { server_id: ${BACKEND_ID} }
    upstream: { port: ${listenPort}, key_exchange: classical }
`,
    );
    writeFileSync(
      join(dir, "b.yaml"),
      `trust_domain: example.org
inbound:
  - name: bench
    id: ${BACKEND_ID}
    listen: ${DIAL.host}:${listenPort}
    forward: 127.0.0.1:${backendPort}
    allow: [${CLIENT_ID}]
`,
    );
  }, BINARY, agentEnv);
  return { ...path, x25519: { name: "tidegate-x25519", host: DIAL.host, port: DIAL.port + 1, hops: path.hops } };
}

/** The name wrk's requests carry in bench/mtls-http.ts; A's `dns.hosts` maps it to `DIAL.host`. */
export const HTTP_HOST = "backend.bench.test";
/** The secret A injects, stored before A starts. */
export const SECRET_NAME = "bench_token";

/**
 * tidegate's L7 path of bench/mtls-http.ts, on the same stand as `startTidegatePath` (server, two
 * agent instances, the same names and identities):
 *
 *   wrk over plain HTTP (tidegate run --workload bench-client, as nobody; Host: backend.bench.test)
 *   -> 127.0.0.21:8080, redirected to A's egress proxy -> rule `bench-http` (action intercept:
 *   each request parsed, `Authorization: Bearer ${secret:bench_token}` injected, re-originated
 *   with mTLS to .../bench/backend on B's listen port, legs reused) -> B's inbound listener
 *   (`forward_client_cert: true`: x-forwarded-client-cert set on each request) -> the backend.
 *
 * The secret (random, 64 hex characters) is set with `tidegate secret set` through stdin, with
 * A's --instance and --state-dir, before A starts. `secret` is that value, for checks only.
 */
/** `agentBinary`: the agents' executable (bench/audit.ts runs dist/tidegate-bench-null-audit beside dist/tidegate). */
export async function startTidegateHttpPath(procs: Procs, backendPort: number, agentBinary = BINARY, agentEnv: Record<string, string> = {}): Promise<TidegatePath & { readonly secret: string }> {
  const secret = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("hex");
  const path = await standUp(procs, backendPort, "bench-http", async ({ dir, inst, listenPort }) => {
    writeFileSync(
      join(dir, "a.yaml"),
      `trust_domain: example.org
workloads:
  - { name: bench-client, id: ${CLIENT_ID}, user: nobody }
egress:
  - name: bench-http
    from: ${CLIENT_ID}
    to: { host: ${HTTP_HOST}, port: ${DIAL.port} }
    action: intercept
    inject: { headers: { Authorization: "Bearer \${secret:${SECRET_NAME}}" } }
    mtls: { server_id: ${BACKEND_ID} }
    upstream: { port: ${listenPort} }
dns:
  hosts:
    ${HTTP_HOST}: [${DIAL.host}]
`,
    );
    writeFileSync(
      join(dir, "b.yaml"),
      `trust_domain: example.org
inbound:
  - name: bench-http
    id: ${BACKEND_ID}
    listen: ${DIAL.host}:${listenPort}
    forward: 127.0.0.1:${backendPort}
    allow: [${CLIENT_ID}]
    forward_client_cert: true
`,
    );
    await cli(["policy", "check", join(dir, "a.yaml")]);
    await cli(["policy", "check", join(dir, "b.yaml")]);

    // the secret goes in before A starts, from stdin (never argv)
    const set = Bun.spawn([BINARY, "secret", "set", SECRET_NAME, "--instance", inst.a, "--state-dir", join(dir, "a-state")], { stdin: new TextEncoder().encode(`${secret}\n`), stdout: "pipe", stderr: "pipe", cwd: "/" });
    const [, setErr, setCode] = await Promise.all([new Response(set.stdout).text(), new Response(set.stderr).text(), set.exited]);
    if (setCode !== 0) throw new Error(`bench: tidegate secret set ${SECRET_NAME} exited ${setCode}: ${setErr}`);
  }, agentBinary, agentEnv);
  return { ...path, secret };
}

/**
 * Stops a path's agents and server and removes their kernel state (each agent's --uninstall),
 * their folder and audit folders (which may live elsewhere: TIDEGATE_BENCH_AUDIT_BASE).
 */
export async function stopTidegatePath(procs: Procs, tide: TidegatePath | null): Promise<void> {
  for (const n of ["tg-agent-a", "tg-agent-b", "tg-server"]) await procs.stop(n);
  if (tide === null) return;
  for (const [n, f] of [["a", tide.flags.a], ["b", tide.flags.b]] as const) {
    const r = Bun.spawnSync([BINARY, "agent", "--uninstall", ...f], { stdout: "pipe", stderr: "pipe" });
    if (r.exitCode !== 0) console.error(`bench: uninstall of ${n}: ${r.stderr.toString()}`);
  }
  for (const d of Object.values(tide.auditDirs)) rmSync(d, { recursive: true, force: true });
}

/**
 * The one cleanup of a benchmark, run once (on the way out, or at SIGINT/SIGTERM, exiting 130):
 * the wrk in flight killed, the tidegate path stopped, every child stopped, `tidegate run`'s
 * cgroups removed, the run's folder removed unless kept.
 */
export function benchCleanup(o: { procs: Procs; tide: () => TidegatePath | null; running: () => { kill(sig?: number | NodeJS.Signals): void } | null; mount: string | null; keep: boolean }): () => Promise<void> {
  let cleaning: Promise<void> | null = null;
  const cleanup = () =>
    (cleaning ??= (async () => {
      o.running()?.kill("SIGKILL");
      await stopTidegatePath(o.procs, o.tide());
      await o.procs.stopAll();
      if (o.mount !== null) await uninstallRun(process.pid, o.mount).catch((e: unknown) => console.error(`bench: ${String(e)}`));
      if (o.keep) console.error(`bench: kept ${o.procs.dir}`);
      else rmSync(o.procs.dir, { recursive: true, force: true });
    })());
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => void cleanup().finally(() => process.exit(130)));
  return cleanup;
}

