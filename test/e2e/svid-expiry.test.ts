// Faults of the identity server, end to end (root; CI runs it): the built `tidegate server` with
// 20 s SVIDs (the node's for an hour) and one agent with capture (instance e2e-exp) whose workload
// `client` calls the agent's own inbound listener over mTLS (the egress rule `to-backend`), behind
// which a backend in this process reads the PROXY v2 header. With the server down the agent keeps
// serving on its cached SVIDs until they expire; then the egress proxy and the inbound listener
// refuse with `no_svid`, naming the SPIFFE ID, nothing reaches the backend and the agent is
// unhealthy; with the server back it renews and calls go through again. After the join, an
// impostor at the server's address (a chain from another root of the same trust-domain name, then
// a genuine SVID of the trust domain that is not the server's) is refused at the TLS handshake
// during sync and while renewal is due: it receives no byte of a request, the agent says why and
// keeps everything it holds. Addresses: 127.0.0.72-75 only.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tidegate } from "../helpers/binary.ts";
import { cleanupStack, cliOk, freePort, parseLog, startJoinedAgent, startServer, type LogLine } from "../helpers/e2e-kit.ts";
import { startTidegate, waitFor, type Running } from "../helpers/processes.ts";
import { readAudit, srcOf, type AuditLine } from "../helpers/audit-files.ts";
import { createTestCa } from "../helpers/test-ca.ts";
import { callUnix } from "../../src/runtime/unix-http.ts";
import { encodePem } from "../../src/x509/pem.ts";
import { exportPkcs8Pem } from "../../src/x509/keys.ts";
import { startBackend, tlsProbe, type Backend } from "./mtls-backend.ts";

const isRoot = process.getuid?.() === 0;
if (!isRoot && process.env.CI) throw new Error("svid-expiry.test.ts: CI must run as root");
if (!isRoot) console.warn("svid-expiry.test.ts: skipped (needs root: cgroups, eBPF)");

const T = 60_000;
const INSTANCE = "e2e-exp";
const SVID_TTL_S = 20;
const ADDR = {
  /** The identity server's public and API listeners, and later the impostor on the same ports. */
  server: "127.0.0.72",
  /** The agent's inbound listener, which the workload calls. */
  listener: "127.0.0.73",
} as const;
const TD = "spiffe://example.org";
const ID = { client: `${TD}/client`, backend: `${TD}/backend`, impostor: `${TD}/impostor`, server: `${TD}/tidegate/server` } as const;
/** Workloads run as nobody: a PATH of system folders only. */
const WORKLOAD_ENV = { PATH: "/usr/local/bin:/usr/bin:/bin" };

interface Pem {
  readonly cert: string;
  readonly key: string;
}

interface SvidStatus {
  entry_id: string;
  spiffe_id: string;
  serial: string;
  expires_at: string;
  rotate_at: string;
  expired: boolean;
}

interface Status {
  healthy: boolean;
  problems: string[];
  node_svid: { serial: string; expired: boolean };
  sync: { error: string | null };
  entries: { id: string }[];
  svids: SvidStatus[];
}

/** A TLS listener on the server's ports that counts what reaches it and answers nothing. */
interface Impostor {
  /** TCP connections accepted, TLS handshakes it saw complete, bytes of application data received. */
  readonly seen: { conns: number; handshakes: number; bytes: number };
  stop(): void;
}

const cleanups = cleanupStack("svid-expiry");
let dir = "";
let serverFlags: string[] = [];
let flagsA: string[] = [];
let ports = { public: 0, api: 0, listen: 0 };
let backend: Backend;
let server: Running | undefined;
let agent: Running;
const entryIds: Record<string, string> = {};

const agentSock = () => join(dir, "a-run", "agent.sock");
const svidOf = (id: string) => (s: Status) => s.svids.find((v) => v.spiffe_id === id);
const logSince = (n: number): LogLine[] => parseLog(agent).slice(n);
const audit = (): AuditLine[] => readAudit(join(dir, "a-audit"));

async function status(): Promise<Status> {
  const r = await callUnix(agentSock(), "the agent", "GET", "/v1/status");
  if (r.status !== 200) throw new Error(`agent status ${r.status}`);
  return r.body as Status;
}

/** `tidegate server` with the stand's flags, its state as it was (init done once, in setUp). */
async function restartServer(): Promise<Running> {
  const serverJson = join(dir, "server-run", "server.json");
  rmSync(serverJson, { force: true });
  const s = startTidegate(["server", ...serverFlags]);
  try {
    await waitFor("the restarted server's server.json", () => (existsSync(serverJson) ? true : undefined), 15_000, 100, s);
  } catch (e) {
    await s.stop();
    throw e;
  }
  return s;
}

async function stopServer(): Promise<void> {
  await server?.stop();
  server = undefined;
}

function startImpostor(cred: Pem): Impostor {
  const seen = { conns: 0, handshakes: 0, bytes: 0 };
  const listeners = [ports.public, ports.api].map((port) =>
    Bun.listen({
      hostname: ADDR.server,
      port,
      tls: cred,
      socket: {
        open: () => void seen.conns++,
        handshake: (_s, success) => void (success && seen.handshakes++),
        data: (_s, b) => void (seen.bytes += b.length),
      },
    }),
  );
  const stop = () => {
    for (const l of listeners) l.stop(true);
  };
  cleanups.push(stop);
  return { seen, stop };
}

/** ARGV in the workload `client`, as nobody; its pid is the one the egress conn_close names. */
async function workload(argv: string[]): Promise<{ pid: number; out: string; code: number }> {
  const r = await tidegate(["run", ...flagsA, "--workload", "client", "--user", "nobody", "--", "sh", "-c", 'echo pid=$$; exec "$@"', "sh", ...argv], { env: WORKLOAD_ENV });
  const m = /^pid=(\d+)\n/.exec(r.stdout);
  if (m === null) throw new Error(`tidegate run exited ${r.code}: ${r.stdout}${r.stderr}`);
  return { pid: Number(m[1]), out: r.stdout.slice(m[0].length), code: r.code };
}

const call = () => workload(["curl", "-sS", "--max-time", "5", `http://${ADDR.listener}:${ports.listen}/`]);
const egressLine = (pid: number) => waitFor(`the egress conn_close for pid ${pid}`, () => audit().find((l) => l.type === "conn_close" && srcOf(l).pid === pid));

/** A call that must reach the backend over mTLS: the backend saw one new connection naming the client. */
async function expectForwarded(what: string): Promise<void> {
  const before = backend.conns.length;
  const r = await call();
  const eg = await egressLine(r.pid);
  expect(eg, what).toMatchObject({ rule: "to-backend", action: "mtls", outcome: "forwarded", peer_id: ID.backend, src: { workload: "client", spiffe_id: ID.client } });
  expect(r.out).toBe(`caller=${ID.client} conn=${String(eg.conn_id)}`);
  expect(backend.conns.length).toBe(before + 1);
  expect(backend.conns[before]!.header?.spiffeId).toBe(ID.client);
}

async function setUp(): Promise<void> {
  dir = mkdtempSync(join(tmpdir(), "tidegate-test-e2e-exp-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const d = (n: string) => {
    const p = join(dir, n);
    mkdirSync(p, { recursive: true });
    return p;
  };
  serverFlags = ["--instance", INSTANCE, "--state-dir", d("server-state"), "--run-dir", d("server-run"), "--server-config", join(dir, "server.yaml"), "--audit-dir", d("server-audit")];
  flagsA = ["--instance", INSTANCE, "--state-dir", d("a-state"), "--run-dir", d("a-run"), "--config", join(dir, "a.yaml"), "--audit-dir", join(dir, "a-audit")];
  await tidegate(["agent", "--uninstall", ...flagsA]); // leftovers of an earlier run
  cleanups.push(() => tidegate(["agent", "--uninstall", ...flagsA]));

  backend = startBackend(true);
  cleanups.push(() => backend.stop());
  ports.public = freePort(ADDR.server);
  do ports.api = freePort(ADDR.server);
  while (ports.api === ports.public);
  ports.listen = freePort(ADDR.listener);

  const yaml = ["listen:", `  public: ${ADDR.server}:${ports.public}`, `  api: ${ADDR.server}:${ports.api}`, "svid:", `  default_ttl: ${SVID_TTL_S}s`, "  node_ttl: 1h", ""].join("\n");
  const info = await startServer(dir, serverFlags, yaml);
  server = info.server;
  cleanups.push(() => server?.stop());
  expect(info.public).toBe(`${ADDR.server}:${ports.public}`);

  const entry = async (id: string, selector: string, ttl?: string) => {
    const e = JSON.parse(await cliOk(["entry", "create", "--spiffe-id", id, "--node", "exp-a", "--selector", selector, ...(ttl ? ["--ttl", ttl] : []), "--json", ...serverFlags])) as { id: string };
    entryIds[id] = e.id;
  };
  await entry(ID.client, "tidegate:workload:client");
  await entry(ID.backend, "tidegate:workload:unused-backend");
  // a workload of the trust domain with a valid SVID of its own: the second impostor presents it
  await entry(ID.impostor, "tidegate:workload:unused-impostor", "1h");

  writeFileSync(
    join(dir, "a.yaml"),
    `trust_domain: example.org
workloads:
  - { name: client, id: ${ID.client}, user: nobody }
egress:
  - name: to-backend
    from: ${ID.client}
    to: { cidr: ${ADDR.listener}/32, port: ${ports.listen} }
    action: mtls
    mtls: { server_id: ${ID.backend} }
inbound:
  - name: backend
    id: ${ID.backend}
    listen: ${ADDR.listener}:${ports.listen}
    forward: 127.0.0.1:${backend.port}
    allow: [${ID.client}]
    proxy_protocol: true
`,
  );
  const ready = () => Object.values(entryIds).every((id) => existsSync(join(dir, "a-state", "agent", "svids", `${id}.key`)));
  agent = await startJoinedAgent({ dir, serverFlags, server: info.public, key: "a", node: "exp-a", flags: [...flagsA, "--retry-max", "2s"], what: "the agent to capture, holding 3 SVIDs", ready });
  cleanups.push(() => agent.stop());
  await waitFor("the inbound listener", () => parseLog(agent).find((l) => l.event === "inbound_listening" && l.rule === "backend"), 15_000, 100, agent);
}

describe.skipIf(!isRoot)("SVID expiry with the identity server down, and a spoofed server after the join", () => {
  beforeAll(async () => {
    if (!isRoot) return;
    try {
      await setUp();
    } catch (e) {
      await cleanups.run();
      throw e;
    }
  }, 2 * T);

  afterAll(async () => {
    await cleanups.run();
  }, T);

  /** The client's and backend's SVIDs before the server went down (step 2), renewed later (step 4). */
  let held: { client: string; backend: string } = { client: "", backend: "" };

  test("server up: the workload's call reaches the backend over mTLS", async () => {
    await expectForwarded("with the server up");
  }, T);

  test("server down: a call within the SVIDs' lifetime still goes through on the cached SVIDs", async () => {
    // Stop it while both SVIDs have most of their life ahead, so the call below falls inside it.
    const margin = (SVID_TTL_S - 6) * 1000;
    const s = await waitFor("both SVIDs to have 14 s or more left", async () => {
      const st = await status();
      const left = [ID.client, ID.backend].map((id) => Date.parse(svidOf(id)(st)!.expires_at) - Date.now());
      return left.every((ms) => ms >= margin) ? st : undefined;
    }, 30_000, 100);
    held = { client: svidOf(ID.client)(s)!.serial, backend: svidOf(ID.backend)(s)!.serial };
    const mark = parseLog(agent).length;
    await stopServer();
    await waitFor("the agent to fail a sync", () => logSince(mark).find((l) => l.event === "sync_failed"), 15_000, 100, agent);
    await expectForwarded("on cached SVIDs");
    const after = await status();
    expect(after.healthy).toBe(true);
    expect([svidOf(ID.client)(after)!.serial, svidOf(ID.backend)(after)!.serial]).toEqual([held.client, held.backend]);
  }, T);

  test("SVIDs expired: mTLS is refused with no_svid naming the SPIFFE ID, nothing reaches the backend, the agent is unhealthy", async () => {
    await waitFor("the client's and backend's SVIDs to expire", async () => {
      const st = await status();
      return svidOf(ID.client)(st)!.expired && svidOf(ID.backend)(st)!.expired ? true : undefined;
    }, 2 * SVID_TTL_S * 1000, 250);
    const before = backend.conns.length;
    const r = await call();
    expect(r.out).not.toContain("caller=");
    expect(r.code).not.toBe(0);
    const eg = await egressLine(r.pid);
    expect(eg).toMatchObject({ src: { workload: "client", spiffe_id: ID.client }, rule: "to-backend", action: "mtls", outcome: "refused", reason: "no_svid" });
    expect(eg.detail).toBe(`the agent holds no valid SVID for ${ID.client}`);

    // The inbound listener, dialled directly, refuses too: it holds no valid SVID for its own id.
    const p = await tlsProbe(ADDR.listener, ports.listen);
    expect(p.received).toBe("");
    const ib = await waitFor("the inbound conn_close of the probe", () => audit().find((l) => l.type === "conn_close" && l.side === "inbound" && String(srcOf(l).peer).endsWith(`:${p.localPort}`)));
    expect(ib).toMatchObject({ rule: "backend", outcome: "refused", reason: "no_svid" });
    expect(ib.detail).toBe(`the agent holds no valid SVID for ${ID.backend}`);

    await Bun.sleep(300);
    expect(backend.conns.length).toBe(before);
    const st = await status();
    expect(st.healthy).toBe(false);
    for (const id of [ID.client, ID.backend]) expect(st.problems.some((p) => p.includes(entryIds[id]!) && p.includes(id) && p.includes("SVID expired at"))).toBe(true);
    expect(st.node_svid.expired).toBe(false);
  }, T);

  test("server back with the same state: the agent renews and calls go through again", async () => {
    server = await restartServer();
    const st = await waitFor("the agent to renew and be healthy", async () => {
      const s = await status();
      const renewed = svidOf(ID.client)(s)!.serial !== held.client && svidOf(ID.backend)(s)!.serial !== held.backend;
      return s.healthy && renewed ? s : undefined;
    }, 30_000, 100, agent);
    expect(st.problems).toEqual([]);
    await expectForwarded("after renewal");
  }, T);

  test("a spoofed server after the join is refused during sync and renewal; it gets no request; the agent keeps what it holds", async () => {
    const before = await status();
    const bundleBefore = readFileSync(join(dir, "a-state", "agent", "bundle.json"), "utf8");
    const serials = (s: Status) => s.svids.map((v) => [v.entry_id, v.serial]);
    await stopServer();

    // 1. The server's SPIFFE ID, from another root of the same trust-domain name.
    const stranger = await createTestCa({ trustDomain: "example.org" });
    const leaf = await stranger.mintLeaf(ID.server);
    const strangerCred = { cert: leaf.chain.map((der) => encodePem("CERTIFICATE", der)).join(""), key: await exportPkcs8Pem(leaf.privateKey) };
    let mark = parseLog(agent).length;
    const foreign = startImpostor(strangerCred);
    const dueAt = Math.max(...[ID.client, ID.backend].map((id) => Date.parse(svidOf(id)(before)!.rotate_at)));
    const untrusted = await waitFor("two refused syncs, with the SVIDs' renewal due", () => {
      const failed = logSince(mark).filter((l) => l.event === "sync_failed" && String(l.error).startsWith("server_untrusted:"));
      return failed.length >= 2 && Date.now() > dueAt ? failed : undefined;
    }, 40_000, 200, agent);
    expect(String(untrusted[0]!.error)).toContain(`https://${ADDR.server}:${ports.api}`);
    expect(String(untrusted[0]!.error)).toContain("does not chain to the trusted roots");
    expect(foreign.seen.conns).toBeGreaterThan(0); // the agent did dial it
    expect(foreign.seen.handshakes).toBe(0);
    expect(foreign.seen.bytes).toBe(0);
    expect(logSince(mark).filter((l) => l.event === "svid_rotated" || l.event === "svid_issued" || l.event === "bundle_updated" || l.event === "node_renewed")).toEqual([]);
    const during = await status();
    expect(during.sync.error).toStartWith("server_untrusted:");
    foreign.stop();

    // 2. A genuine SVID of the trust domain (a workload's), which is not the server's.
    const base = join(dir, "a-state", "agent", "svids", entryIds[ID.impostor]!);
    mark = parseLog(agent).length;
    const insider = startImpostor({ cert: readFileSync(`${base}.pem`, "utf8"), key: readFileSync(`${base}.key`, "utf8") });
    const mismatch = await waitFor("two syncs refused for the server's SPIFFE ID", () => {
      const failed = logSince(mark).filter((l) => l.event === "sync_failed" && String(l.error).startsWith("server_spiffe_id_mismatch:"));
      return failed.length >= 2 ? failed : undefined;
    }, 30_000, 200, agent);
    expect(String(mismatch[0]!.error)).toContain(`presents ${ID.impostor}, not ${ID.server}`);
    expect(insider.seen.conns).toBeGreaterThan(0);
    expect(insider.seen.bytes).toBe(0);
    expect(logSince(mark).filter((l) => l.event === "svid_rotated" || l.event === "svid_issued" || l.event === "bundle_updated" || l.event === "node_renewed")).toEqual([]);
    insider.stop();

    // Nothing held was dropped or replaced.
    const after = await status();
    expect(after.sync.error).toStartWith("server_spiffe_id_mismatch:");
    expect(after.node_svid.serial).toBe(before.node_svid.serial);
    expect(after.entries.map((e) => e.id).sort()).toEqual(before.entries.map((e) => e.id).sort());
    expect(serials(after)).toEqual(serials(before));
    expect(readFileSync(join(dir, "a-state", "agent", "bundle.json"), "utf8")).toBe(bundleBefore);
  }, T);
});
