/**
 * MCP tool calls through an inbound listener (issue 10), as root, in one run: tools/call round
 * trips per second and the latency tidegate adds at p50 and p99, with one kept-alive connection
 * and one call in flight (a closed loop), against the same calls made straight to the server.
 *
 * The MCP server: server-everything (`@modelcontextprotocol/server-everything`, streamableHttp,
 * endpoint /mcp) from node_modules, bound to 127.0.0.1 as test/e2e/mcp-peers.ts binds it; every
 * call is its `echo` tool. Three paths, each with a connection and an MCP session of its own
 * (initialize, notifications/initialized, then Mcp-Session-Id and MCP-Protocol-Version 2025-11-25
 * on every request; the session ended with DELETE afterwards):
 *
 * - `direct`: plain HTTP/1.1 to server-everything;
 * - `mtls+mcp`: mutual TLS, presenting the client's SVID, to an inbound listener of a tidegate
 *   agent whose rule has `mcp: { tools: {} }` (every tool allowed, so the MCP relay parses, gates
 *   and audits every message: a `tool_call` event per call), forwarding to the same server;
 * - `mtls`: the same listener rule without `mcp:` (a second rule, another port): the bytes are
 *   spliced, not parsed; the difference between the two is what MCP handling costs.
 *
 * The client is a small HTTP/1.1 client over Bun's native sockets (TLS for the listener paths; the
 * server's SPIFFE ID checked once per connection), not the MCP SDK, whose overhead would hide what
 * is measured. A response ends at its chunked terminator or its Content-Length; an SSE body (a
 * priming event with empty data, then the result) and a JSON body are both read.
 *
 * The stand, as bench/lib-tidegate.ts builds its own: the built server (`tidegate server init` +
 * `tidegate server`, instance bench-mcp-s-PID) and one agent (instance bench-mcp-PID: its own
 * state, run and audit folders, cgroup tree and pins), node `bench-mcp`, holding two SVIDs: the
 * listener's spiffe://example.org/bench-mcp/server and the client's
 * spiffe://example.org/bench-mcp/client (an entry with a selector no process has; the bench reads
 * that SVID from the agent's state folder and presents it). Listeners on 127.0.0.110. Every
 * tidegate process writes to an audit folder of the run's own.
 *
 * Per repetition, each path in turn (the order rotated by one path per repetition): a fresh
 * connection and session, --warmup calls (5,000 by default: the agent's JIT tiers and heap
 * settle over the first few thousand MCP calls, and with 500 the first repetition's p99 carried
 * that; docs/benchmarks.md), then --calls calls, each timed with performance.now()
 * from the request's write to its response's last byte. A first round of warm-up calls on every
 * path, not counted, comes before the repetitions. Reported: calls/s, p50 and p99 per path
 * (median over repetitions), and, taken within each repetition and then the median: calls/s
 * tidegate / direct and the added p50 and p99 (tidegate minus direct) of both listener paths;
 * target: at most 0.5 ms added at p99 on the `mtls+mcp` path. Also the CPU time per call of the
 * client (this process), the agent and server-everything, and interference (steal and CPU used by
 * anything else, in % of one core). A markdown table and one JSON line on stdout.
 *
 *   bun run build && bun bench/mcp.ts [--reps 5] [--calls 2000] [--warmup 5000] [--json FILE] [--keep]
 *                                     [--chart-out FILE] [--no-chart]
 *
 * (or TIDEGATE_BENCH_MCP_REPS, _CALLS, _WARMUP in the environment; about 3 minutes by default).
 * The chart (bench/lib-svg.ts): calls/s, p50, p99 and p99.9 medians of both listener paths
 * against direct's, written to docs/bench/mcp.svg by a full run (bench/lib-chart.ts: at least the
 * defaults, without TIDEGATE_BENCH_AUDIT_BASE or _PROFILE_DIR), to --chart-out FILE by any run,
 * by none with --no-chart. Progress goes to stderr before each path's turn.
 *
 * TIDEGATE_BENCH_AUDIT_BASE=DIR: the agent's audit folder goes there (a tmpfs such as /dev/shm
 * tells the disk's share from the rest). TIDEGATE_BENCH_PROFILE_DIR=DIR: the agent runs under
 * Bun's CPU profiler (one sample per TIDEGATE_BENCH_PROFILE_INTERVAL_US, 10,000 by default: at
 * Bun's 1,000 the profiler's signals make the kernel's verifier give up, EAGAIN, and the agent
 * comes up without capture and without its listeners) and writes a .cpuprofile into DIR when it
 * stops; the figures of such a run are not comparable.
 *
 * The run works in a folder /tmp/tidegate-test-mtls-PID-* (bench/lib-procs.ts: every child
 * recorded with its start time). Leftovers of earlier runs (their recorded children, by pid and
 * start time only; bench-mcp instances whose process is gone; their folders) are removed first;
 * everything the run made is removed on the way out, on failure and at SIGINT/SIGTERM too.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { Socket } from "bun";
import { readAudit, type AuditLine } from "../test/helpers/audit-files.ts";
import { callUnix } from "../src/runtime/unix-http.ts";
import { probeHost } from "../src/runtime/host.ts";
import { encodePem } from "../src/x509/pem.ts";
import { CLK_TCK, median, ticks } from "./lib-measure.ts";
import { freePort } from "./lib-peers.ts";
import { alive, Procs, removeLeftoverRuns, waitListening } from "./lib-procs.ts";
import { BINARY, uninstallInstance, uninstallRun, waitFor } from "./lib-tidegate.ts";
import { writeChart } from "./lib-chart.ts";
import { Progress } from "./lib-progress.ts";
import { renderChart, type Chart } from "./lib-svg.ts";

// ---------------------------------------------------------------------------------------------
// options and checks

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    reps: { type: "string", default: process.env.TIDEGATE_BENCH_MCP_REPS ?? "5" },
    calls: { type: "string", default: process.env.TIDEGATE_BENCH_MCP_CALLS ?? "2000" },
    warmup: { type: "string", default: process.env.TIDEGATE_BENCH_MCP_WARMUP ?? "5000" },
    json: { type: "string" },
    keep: { type: "boolean", default: false },
    "chart-out": { type: "string" },
    "no-chart": { type: "boolean", default: false },
  },
});
const [reps, calls, warmup] = [values.reps, values.calls, values.warmup].map(Number) as [number, number, number];
if (!(Number.isInteger(reps) && reps >= 1 && Number.isInteger(calls) && calls >= 100 && Number.isInteger(warmup) && warmup >= 0)) {
  throw new Error("bench: --reps must be a positive integer, --calls an integer of at least 100, --warmup an integer >= 0");
}
const TARGET_ADDED_P99_MS = 0.5;

const EVERYTHING = join(import.meta.dir, "..", "node_modules", "@modelcontextprotocol", "server-everything", "dist", "transports", "streamableHttp.js");
const mount = probeHost().cgroup2;
if (process.getuid?.() !== 0) throw new Error("bench: run as root (the agent attaches its kernel programs to a cgroup tree of its own)");
if (mount === null) throw new Error("bench: the agent needs cgroup v2");
if (!existsSync(BINARY)) throw new Error(`bench: ${BINARY} is missing: run 'bun run build'`);
if (!existsSync(EVERYTHING)) throw new Error(`bench: ${EVERYTHING} is missing: run 'bun install'`);

const TD = "spiffe://example.org";
const CLIENT_ID = `${TD}/bench-mcp/client`;
const SERVER_ID = `${TD}/bench-mcp/server`;
/** The listeners' address (this bench's range: 127.0.0.110-119). */
const LISTEN_HOST = "127.0.0.110";
const RULE = { mcp: "bench-mcp", l4: "bench-mcp-l4" } as const;
const INSTANCE_RE = /^tidegate-(bench-mcp-(?:s-)?(\d+))$/;
const instances = (pid: number) => ({ agent: `bench-mcp-${pid}`, server: `bench-mcp-s-${pid}` });

/** Binds what express passes as `listen(port, callback)` to 127.0.0.1, then runs the transport module (as test/e2e/mcp-peers.ts). */
const LOOPBACK_ONLY = `import http from "node:http";
const listen = http.Server.prototype.listen;
http.Server.prototype.listen = function (...a) {
  if (typeof a[0] === "number" || typeof a[0] === "string") a.splice(1, 0, "127.0.0.1");
  return listen.apply(this, a);
};
await import(process.env.TG_BENCH_ENTRY);`;

// ---------------------------------------------------------------------------------------------
// leftovers, the stand, cleanup

/** This bench's instances of the run of `pid`, if anything of them is left; and bench/mtls.ts's, for folders of its runs. */
async function uninstallMine(pid: number): Promise<void> {
  for (const name of Object.values(instances(pid))) {
    if (existsSync(join(mount!, `tidegate-${name}`)) || existsSync(`/sys/fs/bpf/tidegate-${name}`)) await uninstallInstance(name);
  }
  await uninstallRun(pid, mount!);
}

/** bench-mcp instances whose process is gone. */
async function removeOrphanInstances(): Promise<void> {
  const names = new Set([...readdirSync(mount!), ...(existsSync("/sys/fs/bpf") ? readdirSync("/sys/fs/bpf") : [])]);
  for (const n of names) {
    const m = INSTANCE_RE.exec(n);
    if (m === null || alive(Number(m[2]))) continue;
    await uninstallInstance(m[1]!);
    console.error(`bench: removed leftover instance ${m[1]}`);
  }
}

for (const d of await removeLeftoverRuns(uninstallMine)) console.error(`bench: removed leftover run ${d}`);
await removeOrphanInstances();

const procs = new Procs();
const inst = instances(process.pid);
const auditBase = process.env.TIDEGATE_BENCH_AUDIT_BASE;
const agentAudit = auditBase !== undefined ? join(auditBase, `${inst.agent}-audit`) : join(procs.dir, "agent-audit");
let agentFlags: string[] | null = null;
let live: HttpConn | null = null;

let cleaning: Promise<void> | null = null;
const cleanup = () =>
  (cleaning ??= (async () => {
    live?.destroy();
    for (const n of ["tg-agent", "tg-server"]) await procs.stop(n);
    if (agentFlags !== null) {
      const r = Bun.spawnSync([BINARY, "agent", "--uninstall", ...agentFlags], { stdout: "pipe", stderr: "pipe" });
      if (r.exitCode !== 0) console.error(`bench: uninstall of ${inst.agent}: ${r.stderr.toString()}`);
    }
    await procs.stopAll();
    await uninstallMine(process.pid).catch((e: unknown) => console.error(`bench: ${String(e)}`));
    if (values.keep) console.error(`bench: kept ${procs.dir}${auditBase !== undefined ? ` and ${agentAudit}` : ""}`);
    else {
      rmSync(agentAudit, { recursive: true, force: true });
      rmSync(procs.dir, { recursive: true, force: true });
    }
  })());
for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => void cleanup().finally(() => process.exit(130)));

async function cli(args: string[]): Promise<string> {
  const p = Bun.spawn([BINARY, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe", cwd: "/" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`bench: tidegate ${args.join(" ")} exited ${code}: ${stderr}`);
  return stdout;
}


/** The X.509 roots of a SPIFFE bundle (JWKS, `use: x509-svid`) as PEM. */
function bundlePem(jwks: string): string {
  const keys = (JSON.parse(jwks) as { keys: { use?: string; x5c?: string[] }[] }).keys;
  const roots = keys.filter((k) => k.use === "x509-svid" && k.x5c?.[0] !== undefined).map((k) => encodePem("CERTIFICATE", Buffer.from(k.x5c![0]!, "base64")));
  if (roots.length === 0) throw new Error("bench: the agent's bundle.json holds no x509-svid root");
  return roots.join("");
}

interface ClientTls {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
}
interface Target {
  readonly name: PathName;
  readonly host: string;
  readonly port: number;
  readonly tls: ClientTls | null;
}
type PathName = "direct" | "mtls+mcp" | "mtls";

interface Stand {
  readonly everythingPort: number;
  readonly ports: { mcp: number; l4: number };
  readonly clientTls: ClientTls;
  readonly pids: { agent: number; everything: number; server: number };
  log(): { event: string; [k: string]: unknown }[];
}

async function standUp(): Promise<Stand> {
  const dir = procs.dir;
  const d = (n: string) => {
    const p = join(dir, n);
    mkdirSync(p, { recursive: true });
    return p;
  };
  // the MCP server, recorded among the run's children
  const everythingPort = freePort("127.0.0.1");
  const ev = procs.start("everything", [process.execPath, "-e", LOOPBACK_ONLY], { PORT: String(everythingPort), TG_BENCH_ENTRY: EVERYTHING });
  await waitListening("127.0.0.1", everythingPort, "server-everything", 20_000, () => procs.check("everything"));

  const serverFlags = ["--instance", inst.server, "--state-dir", d("server-state"), "--run-dir", d("server-run"), "--server-config", join(dir, "server.yaml"), "--audit-dir", d("server-audit")];
  mkdirSync(agentAudit, { recursive: true });
  const flags = ["--instance", inst.agent, "--state-dir", d("agent-state"), "--run-dir", d("agent-run"), "--config", join(dir, "agent.yaml"), "--audit-dir", agentAudit];
  agentFlags = flags;
  const ports = { mcp: freePort(LISTEN_HOST), l4: 0 };
  do ports.l4 = freePort(LISTEN_HOST);
  while (ports.l4 === ports.mcp);

  writeFileSync(join(dir, "server.yaml"), "svid:\n  default_ttl: 1h\n");
  await cli(["server", "init", "--trust-domain", "example.org", ...serverFlags]);
  const srv = procs.start("tg-server", [BINARY, "server", ...serverFlags]);
  const serverJson = join(dir, "server-run", "server.json");
  const info = await waitFor("server.json", () => (existsSync(serverJson) ? (JSON.parse(readFileSync(serverJson, "utf8")) as { public: string }) : undefined), 20_000, () => procs.check("tg-server"));
  const entry = async (id: string, selector: string) => (JSON.parse(await cli(["entry", "create", "--spiffe-id", id, "--node", "bench-mcp", "--selector", selector, "--json", ...serverFlags])) as { id: string }).id;
  const entries = { server: await entry(SERVER_ID, "tidegate:workload:bench-mcp-unused-server"), client: await entry(CLIENT_ID, "tidegate:workload:bench-mcp-unused-client") };

  writeFileSync(
    join(dir, "agent.yaml"),
    `trust_domain: example.org
inbound:
  - name: ${RULE.mcp}
    id: ${SERVER_ID}
    listen: ${LISTEN_HOST}:${ports.mcp}
    forward: 127.0.0.1:${everythingPort}
    allow: [${CLIENT_ID}]
    mcp: { tools: {} }
  - name: ${RULE.l4}
    id: ${SERVER_ID}
    listen: ${LISTEN_HOST}:${ports.l4}
    forward: 127.0.0.1:${everythingPort}
    allow: [${CLIENT_ID}]
`,
  );
  await cli(["policy", "check", join(dir, "agent.yaml")]);

  const tokenOut = await cli(["token", "create", "--node", "bench-mcp", ...serverFlags]);
  const tokenFile = join(dir, "agent.token");
  writeFileSync(tokenFile, /token:\s*(\S+)/.exec(tokenOut)![1]!, { mode: 0o600 });
  const fingerprint = /fingerprint[^:]*:\s*([0-9a-fA-F:]+)/.exec(tokenOut)![1]!;
  const profile = process.env.TIDEGATE_BENCH_PROFILE_DIR;
  const agentEnv: Record<string, string> = profile !== undefined ? { BUN_OPTIONS: `--cpu-prof --cpu-prof-interval=${process.env.TIDEGATE_BENCH_PROFILE_INTERVAL_US ?? "10000"} --cpu-prof-dir=${profile}` } : {};
  const agent = procs.start("tg-agent", [BINARY, "agent", ...flags, "--server", `https://${info.public}`, "--join-token-file", tokenFile, "--server-fingerprint", fingerprint], agentEnv);
  const svids = join(dir, "agent-state", "agent", "svids");
  // capture is not waited for: nothing here goes through it (and under the CPU profiler the
  // kernel's verifier can give up on a pending signal, EAGAIN, leaving the agent identity-only)
  await waitFor(
    "the agent to answer, holding both SVIDs",
    async () => {
      await callUnix(join(dir, "agent-run", "agent.sock"), "the agent", "GET", "/v1/status");
      return existsSync(join(svids, `${entries.server}.key`)) && existsSync(join(svids, `${entries.client}.key`)) ? true : undefined;
    },
    30_000,
    () => procs.check("tg-agent"),
  );
  const log = () =>
    procs
      .output("tg-agent")
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { event: string; [k: string]: unknown });
  const listening = () => {
    procs.check("tg-agent");
    const off = log().find((l) => l.event === "capture_unavailable");
    // an agent without capture serves no inbound listener
    if (off !== undefined) throw new Error(`bench: the agent came up without capture, so without its listeners: ${String(off.reason).split("\n")[0]}`);
  };
  for (const rule of Object.values(RULE)) await waitFor(`the inbound listener ${rule}`, () => log().find((l) => l.event === "inbound_listening" && l.rule === rule), 20_000, listening);

  const clientTls = {
    cert: readFileSync(join(svids, `${entries.client}.pem`), "utf8"),
    key: readFileSync(join(svids, `${entries.client}.key`), "utf8"),
    ca: bundlePem(readFileSync(join(dir, "agent-state", "agent", "bundle.json"), "utf8")),
  };
  return { everythingPort, ports, clientTls, pids: { agent: agent.proc.pid, everything: ev.proc.pid, server: srv.proc.pid }, log };
}

// ---------------------------------------------------------------------------------------------
// the client: HTTP/1.1 on one connection, one request in flight

interface Resp {
  readonly status: number;
  /** Lowercased names; the last value of a repeated header. */
  readonly headers: ReadonlyMap<string, string>;
  readonly body: Buffer;
}

const CRLFCRLF = Buffer.from("\r\n\r\n");
const CRLF = Buffer.from("\r\n");
const CALL_TIMEOUT_MS = 10_000;

/** A complete response at the start of `buf`, and the bytes it took; null when more bytes are needed. */
function parseResponse(buf: Buffer): { resp: Resp; used: number } | null {
  const hEnd = buf.indexOf(CRLFCRLF);
  if (hEnd < 0) return null;
  const lines = buf.toString("latin1", 0, hEnd).split("\r\n");
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? "")?.[1] ?? Number.NaN);
  if (!Number.isInteger(status)) throw new Error(`bench: not an HTTP/1.1 status line: ${JSON.stringify(lines[0])}`);
  const headers = new Map<string, string>();
  for (let i = 1; i < lines.length; i++) {
    const l = lines[i]!;
    const c = l.indexOf(":");
    if (c > 0) headers.set(l.slice(0, c).trim().toLowerCase(), l.slice(c + 1).trim());
  }
  let pos = hEnd + 4;
  if (/\bchunked\b/i.test(headers.get("transfer-encoding") ?? "")) {
    const parts: Buffer[] = [];
    for (;;) {
      const le = buf.indexOf(CRLF, pos);
      if (le < 0) return null;
      const size = Number.parseInt(buf.toString("latin1", pos, le).split(";")[0]!.trim(), 16);
      if (!Number.isInteger(size) || size < 0) throw new Error("bench: bad chunk size");
      if (size === 0) {
        // the 0-size chunk: then trailers (none expected) and an empty line
        const tEnd = buf.indexOf(CRLF, le + 2);
        if (tEnd < 0) return null;
        if (tEnd !== le + 2) {
          const trailersEnd = buf.indexOf(CRLFCRLF, le);
          if (trailersEnd < 0) return null;
          return { resp: { status, headers, body: Buffer.concat(parts) }, used: trailersEnd + 4 };
        }
        return { resp: { status, headers, body: parts.length === 1 ? parts[0]! : Buffer.concat(parts) }, used: tEnd + 2 };
      }
      if (buf.length < le + 2 + size + 2) return null;
      parts.push(buf.subarray(le + 2, le + 2 + size));
      pos = le + 2 + size + 2;
    }
  }
  const cl = headers.get("content-length");
  if (cl !== undefined) {
    const n = Number(cl);
    if (buf.length < pos + n) return null;
    return { resp: { status, headers, body: buf.subarray(pos, pos + n) }, used: pos + n };
  }
  if (status === 204 || status === 304 || status < 200) return { resp: { status, headers, body: Buffer.alloc(0) }, used: pos };
  throw new Error(`bench: a ${status} response with neither Content-Length nor chunked framing (read until close) on a kept-alive connection`);
}

class HttpConn {
  private sock: Socket<undefined> | null = null;
  private held: Buffer | null = null;
  private unsent: Uint8Array | null = null;
  private waiter: { resolve(r: Resp): void; reject(e: Error): void; since: number } | null = null;
  private dead: Error | null = null;
  /** Socket reads (data callbacks) so far: how many pieces the responses came in. */
  reads = 0;
  private readonly watchdog: ReturnType<typeof setInterval>;

  private constructor(readonly target: Target) {
    this.watchdog = setInterval(() => {
      if (this.waiter !== null && performance.now() - this.waiter.since > CALL_TIMEOUT_MS) this.fail(new Error(`bench: ${target.name}: no complete response within ${CALL_TIMEOUT_MS} ms`));
    }, 1000);
  }

  /** A connection, ready (for TLS: handshake done, the server's SPIFFE ID checked). */
  static open(target: Target): Promise<HttpConn> {
    const c = new HttpConn(target);
    return new Promise<HttpConn>((resolve, reject) => {
      const ready = (s: Socket<undefined>) => {
        s.setNoDelay(true);
        c.sock = s;
        resolve(c);
      };
      Bun.connect({
        hostname: target.host,
        port: target.port,
        ...(target.tls !== null ? { tls: { ...target.tls, rejectUnauthorized: false } } : {}),
        socket: {
          open(s) {
            if (target.tls === null) ready(s);
          },
          handshake(s, _ok, error) {
            // Bun checks a host name that an SVID does not carry: the chain and the SPIFFE ID are what count
            const code = (error as { code?: string } | null)?.code;
            const uris = (s.getPeerCertificate()?.subjectaltname ?? "").split(", ").filter((x) => x.startsWith("URI:"));
            if ((error !== null && code !== "ERR_TLS_CERT_ALTNAME_INVALID" && !/altname|hostname|host name/i.test(error.message)) || !uris.includes(`URI:${SERVER_ID}`)) {
              s.end();
              return reject(new Error(`bench: ${target.name}: the listener's certificate: ${error?.message ?? "verified"}; URI SANs ${uris.join(" ") || "none"}`));
            }
            ready(s);
          },
          data: (_s, chunk) => c.onData(chunk),
          drain: (s) => {
            if (c.unsent === null) return;
            const n = s.write(c.unsent);
            c.unsent = n < c.unsent.length ? c.unsent.subarray(n) : null;
          },
          end: () => c.fail(new Error(`bench: ${target.name}: the server closed the connection`)),
          close: (_s, e) => c.fail(e ?? new Error(`bench: ${target.name}: the connection closed`)),
          error: (_s, e) => c.fail(e),
          connectError: (_s, e) => reject(e),
        },
      }).catch(reject);
    });
  }

  private onData(chunk: Buffer): void {
    this.reads++;
    if (this.waiter === null) {
      this.fail(new Error(`bench: ${this.target.name}: ${chunk.length} bytes nobody asked for`));
      return;
    }
    const buf = this.held === null ? chunk : Buffer.concat([this.held, chunk]);
    let r: { resp: Resp; used: number } | null;
    try {
      r = parseResponse(buf);
    } catch (e) {
      return this.fail(e as Error);
    }
    if (r === null) {
      this.held = this.held === null ? Buffer.from(chunk) : buf; // the socket's chunk may be reused: copied
      return;
    }
    if (r.used !== buf.length) return this.fail(new Error(`bench: ${this.target.name}: ${buf.length - r.used} bytes after the response`));
    this.held = null;
    const w = this.waiter;
    this.waiter = null;
    // the body may point into the socket's chunk: copied before anyone keeps it
    w.resolve({ ...r.resp, body: Buffer.from(r.resp.body) });
  }

  private fail(e: Error): void {
    if (this.dead !== null) return;
    this.dead = e;
    clearInterval(this.watchdog);
    const w = this.waiter;
    this.waiter = null;
    w?.reject(e);
  }

  request(bytes: Uint8Array): Promise<Resp> {
    if (this.dead !== null) return Promise.reject(this.dead);
    return new Promise<Resp>((resolve, reject) => {
      this.waiter = { resolve, reject, since: performance.now() };
      const n = this.sock!.write(bytes);
      if (n < bytes.length) this.unsent = bytes.subarray(n);
    });
  }

  close(): void {
    this.dead ??= new Error("closed");
    clearInterval(this.watchdog);
    this.sock?.end();
  }

  destroy(): void {
    this.dead ??= new Error("destroyed");
    clearInterval(this.watchdog);
    this.sock?.terminate();
  }
}

// ---------------------------------------------------------------------------------------------
// MCP over that client

const PROTOCOL = "2025-11-25";

/** The JSON-RPC messages of a response body: an SSE stream's non-empty data, or a JSON body. */
function messages(r: Resp): { id?: unknown; result?: unknown; error?: unknown }[] {
  const text = r.body.toString("utf8");
  if ((r.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
    const out: { id?: unknown }[] = [];
    for (const ev of (text.includes("\r") ? text.replace(/\r\n?/g, "\n") : text).split("\n\n")) {
      const data = ev
        .split("\n")
        .filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(l.startsWith("data: ") ? 6 : 5));
      const joined = data.join("\n");
      if (joined.trim() !== "") out.push(JSON.parse(joined) as { id?: unknown }); // a priming event has empty data
    }
    return out;
  }
  return text.trim() === "" ? [] : [JSON.parse(text) as { id?: unknown }];
}

class McpSession {
  private nextId = 1;
  private constructor(
    private readonly conn: HttpConn,
    private readonly authority: string,
    private readonly session: string,
  ) {}

  /** A POST's head; a DELETE's without Content-Type and Content-Length (no body at all: see `end`). */
  private static head(authority: string, method: "POST" | "DELETE", bodyLength: number, session: string | null): string {
    const post = method === "POST";
    return (
      `${method} /mcp HTTP/1.1\r\nHost: ${authority}\r\n${post ? "Content-Type: application/json\r\n" : ""}Accept: application/json, text/event-stream\r\n` +
      `${session !== null ? `Mcp-Session-Id: ${session}\r\nMCP-Protocol-Version: ${PROTOCOL}\r\n` : ""}${post ? `Content-Length: ${bodyLength}\r\n` : ""}\r\n`
    );
  }

  private static async post(conn: HttpConn, authority: string, session: string | null, body: string): Promise<Resp> {
    return conn.request(Buffer.from(McpSession.head(authority, "POST", Buffer.byteLength(body), session) + body));
  }

  /** initialize, then notifications/initialized. */
  static async open(conn: HttpConn): Promise<McpSession> {
    const authority = `${conn.target.host}:${conn.target.port}`;
    const init = JSON.stringify({ jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: "tidegate-bench-mcp", version: "0.1.0" } } });
    const r = await McpSession.post(conn, authority, null, init);
    const session = r.headers.get("mcp-session-id");
    const m = messages(r).find((x) => x.id === 0) as { result?: { protocolVersion?: string } } | undefined;
    if (r.status !== 200 || session === undefined || m?.result?.protocolVersion !== PROTOCOL) {
      throw new Error(`bench: ${conn.target.name}: initialize answered ${r.status}, session ${session ?? "none"}: ${r.body.toString("utf8").slice(0, 500)}`);
    }
    const n = await McpSession.post(conn, authority, session, JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }));
    if (n.status !== 202) throw new Error(`bench: ${conn.target.name}: notifications/initialized answered ${n.status}: ${n.body.toString("utf8").slice(0, 500)}`);
    return new McpSession(conn, authority, session);
  }

  /** tools/call echo: the request's bytes (made before the clock starts) and its check. */
  prepare(): { bytes: Buffer; check(r: Resp): void } {
    const id = this.nextId++;
    const message = `bench ${id}`;
    const body = `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"echo","arguments":{"message":"${message}"}}}`;
    const bytes = Buffer.from(McpSession.head(this.authority, "POST", body.length, this.session) + body);
    const name = this.conn.target.name;
    return {
      bytes,
      check(r) {
        const m = r.status === 200 ? (messages(r).find((x) => x.id === id) as { result?: { content?: { text?: string }[] } } | undefined) : undefined;
        if (m?.result?.content?.[0]?.text !== `Echo: ${message}`) throw new Error(`bench: ${name}: call ${id} answered ${r.status}: ${r.body.toString("utf8").slice(0, 500)}`);
      },
    };
  }

  call(bytes: Buffer): Promise<Resp> {
    return this.conn.request(bytes);
  }

  /**
   * DELETE: the server drops the session (and its event store). Sent without Content-Length: the
   * MCP relay of the inbound listener reads `Content-Length: 0` as a body and refuses it (400,
   * -32700 "not UTF-8 JSON"), where the same DELETE straight to the server is answered 200.
   */
  async end(): Promise<void> {
    const r = await this.conn.request(Buffer.from(McpSession.head(this.authority, "DELETE", 0, this.session)));
    if (r.status >= 300) throw new Error(`bench: ${this.conn.target.name}: DELETE of the session answered ${r.status}: ${r.body.toString("utf8").slice(0, 500)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// measuring

interface Sample {
  readonly path: PathName;
  readonly rep: number;
  readonly calls: number;
  readonly wallS: number;
  readonly callsPerS: number;
  readonly p50ms: number;
  readonly p99ms: number;
  readonly p999ms: number;
  readonly meanMs: number;
  readonly maxMs: number;
  /** Socket reads per response at the client (a response in one piece: 1). */
  readonly readsPerCall: number;
  /** CPU time per call, µs: this process (the client), the agent, server-everything. */
  readonly cpuUs: { client: number; agent: number; everything: number };
  /** Steal plus CPU used by anything else, % of one core over the measured calls. */
  readonly interferencePct: number;
}

function quantile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

function hostTicks(): { busy: number; steal: number } {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
  return { busy: user + nice + system + irq + softirq, steal };
}

/** One path's turn: connect, initialize, `warm` calls, then `n` timed calls (none when n is 0), end the session. */
async function segment(target: Target, stand: Stand, rep: number, warm: number, n: number): Promise<Sample | null> {
  const conn = await HttpConn.open(target);
  live = conn;
  try {
    const session = await McpSession.open(conn);
    for (let i = 0; i < warm; i++) {
      const c = session.prepare();
      c.check(await session.call(c.bytes));
    }
    if (n === 0) {
      await session.end();
      return null;
    }
    const lat = new Float64Array(n);
    const prepared = Array.from({ length: n }, () => session.prepare());
    Bun.gc(true);
    const pids = [[process.pid], [stand.pids.agent], [stand.pids.everything], [stand.pids.server]];
    const cpu0 = pids.map((p) => ticks(p));
    const h0 = hostTicks();
    const reads0 = conn.reads;
    const start = performance.now();
    for (let i = 0; i < n; i++) {
      const c = prepared[i]!;
      const t0 = performance.now();
      const r = await session.call(c.bytes);
      lat[i] = performance.now() - t0;
      c.check(r);
    }
    const wallS = (performance.now() - start) / 1000;
    const cpu = pids.map((p, i) => (ticks(p) - cpu0[i]!) / CLK_TCK);
    const h1 = hostTicks();
    await session.end();
    const sorted = lat.slice().sort();
    const other = (h1.busy - h0.busy) / CLK_TCK - cpu.reduce((a, b) => a + b, 0);
    return {
      path: target.name,
      rep,
      calls: n,
      wallS,
      callsPerS: n / wallS,
      p50ms: quantile(sorted, 0.5),
      p99ms: quantile(sorted, 0.99),
      p999ms: quantile(sorted, 0.999),
      meanMs: lat.reduce((a, b) => a + b, 0) / n,
      maxMs: sorted[n - 1]!,
      readsPerCall: (conn.reads - reads0) / n,
      cpuUs: { client: (cpu[0]! / n) * 1e6, agent: (cpu[1]! / n) * 1e6, everything: (cpu[2]! / n) * 1e6 },
      interferencePct: (100 * ((h1.steal - h0.steal) / CLK_TCK + Math.max(0, other))) / wallS,
    };
  } finally {
    conn.close();
    live = null;
  }
}

// ---------------------------------------------------------------------------------------------
// the run

const fmt = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : "n/a");
const int = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "n/a");
const signed = (x: number, d = 3) => (Number.isFinite(x) ? `${x >= 0 ? "+" : ""}${x.toFixed(d)}` : "n/a");

let stand: Stand | null = null;
try {
  stand = await standUp();
  const paths: Target[] = [
    { name: "direct", host: "127.0.0.1", port: stand.everythingPort, tls: null },
    { name: "mtls+mcp", host: LISTEN_HOST, port: stand.ports.mcp, tls: stand.clientTls },
    { name: "mtls", host: LISTEN_HOST, port: stand.ports.l4, tls: stand.clientTls },
  ];
  console.error(`bench: ${paths.map((p) => p.name).join(", ")}; ${reps} reps x (${warmup} warm-up + ${calls} timed calls) per path; folder ${procs.dir}`);

  const started = Date.now();
  console.error(`warm-up: ${warmup} calls per path`);
  for (const p of paths) await segment(p, stand, 0, warmup, 0); // JIT, caches; not counted
  const samples: Sample[] = [];
  const progress = new Progress(reps * paths.length);
  for (let rep = 1; rep <= reps; rep++) {
    const k = (rep - 1) % paths.length;
    for (const p of [...paths.slice(k), ...paths.slice(0, k)]) {
      progress.step(`rep ${rep}/${reps}, ${p.name}: ${warmup} + ${calls} calls`);
      const s = (await segment(p, stand, rep, warmup, calls))!;
      samples.push(s);
      console.error(
        `rep ${rep} ${p.name}: ${s.callsPerS.toFixed(0)} calls/s, p50 ${fmt(s.p50ms, 3)} ms, p99 ${fmt(s.p99ms, 3)} ms, max ${fmt(s.maxMs, 1)} ms, ${s.readsPerCall.toFixed(1)} reads/response, CPU us/call client ${s.cpuUs.client.toFixed(0)} agent ${s.cpuUs.agent.toFixed(0)} server ${s.cpuUs.everything.toFixed(0)}, interference ${s.interferencePct.toFixed(0)} %`,
      );
      for (const n of ["everything", "tg-server", "tg-agent"]) procs.check(n);
    }
  }
  const elapsedS = (Date.now() - started) / 1000;

  // within each repetition against direct, then the median over repetitions
  const at = (p: PathName, rep: number) => samples.find((s) => s.path === p && s.rep === rep)!;
  const per = (p: PathName, f: (s: Sample, d: Sample) => number) => Array.from({ length: reps }, (_, i) => f(at(p, i + 1), at("direct", i + 1)));
  const rel = (p: PathName) => ({
    ratio: per(p, (s, d) => s.callsPerS / d.callsPerS),
    addedP50: per(p, (s, d) => s.p50ms - d.p50ms),
    addedP99: per(p, (s, d) => s.p99ms - d.p99ms),
  });
  const relMcp = rel("mtls+mcp");
  const relL4 = rel("mtls");
  const mcpOverL4 = {
    p50: Array.from({ length: reps }, (_, i) => at("mtls+mcp", i + 1).p50ms - at("mtls", i + 1).p50ms),
    p99: Array.from({ length: reps }, (_, i) => at("mtls+mcp", i + 1).p99ms - at("mtls", i + 1).p99ms),
  };
  const addedP99 = median(relMcp.addedP99);
  const met = addedP99 <= TARGET_ADDED_P99_MS;

  // what the agent wrote: one tool_call per call on the mcp rule, all allowed, none an error
  await Bun.sleep(300);
  const audit: AuditLine[] = readAudit(agentAudit);
  const toolCalls = audit.filter((l) => l.type === "tool_call");
  const expected = (reps + 1) * warmup + reps * calls;
  const ok = toolCalls.filter((l) => l.decision === "allow" && l.is_error === false && l.rule === RULE.mcp && l.tool === "echo").length;
  const relayMs = median(toolCalls.map((l) => Number(l.duration_ms)));
  const connCloses = audit.filter((l) => l.type === "conn_close");
  const byRule = (r: string) => connCloses.filter((l) => l.rule === r).length;
  if (toolCalls.length !== expected || ok !== expected) console.error(`bench: WARNING: ${toolCalls.length} tool_call events (${ok} allowed, answered, not errors) for ${expected} calls on ${RULE.mcp}`);

  const command = `bun bench/mcp.ts --reps ${reps} --calls ${calls} --warmup ${warmup}`;
  const mRow = (p: PathName) => {
    const s = samples.filter((x) => x.path === p);
    const m = (f: (x: Sample) => number) => median(s.map(f));
    return `| ${p} | ${int(m((x) => x.callsPerS))} | ${fmt(m((x) => x.p50ms), 3)} | ${fmt(m((x) => x.p99ms), 3)} | ${fmt(m((x) => x.p999ms), 3)} | ${fmt(m((x) => x.cpuUs.client), 0)} / ${fmt(m((x) => x.cpuUs.agent), 0)} / ${fmt(m((x) => x.cpuUs.everything), 0)} | ${fmt(m((x) => x.readsPerCall), 1)} | ${fmt(m((x) => x.interferencePct), 0)} |`;
  };
  const list = (xs: number[], d: number) => xs.map((x) => x.toFixed(d)).join(", ");
  console.log(`MCP tools/call (server-everything echo), one kept-alive connection, one call in flight; ${reps} reps x ${calls} calls per path (${warmup} warm-up each), medians over reps\n`);
  console.log("| path | calls/s | p50 ms | p99 ms | p99.9 ms | CPU µs/call: client / agent / server-everything | reads per response | interference % |\n|---|---|---|---|---|---|---|---|");
  for (const p of ["direct", "mtls+mcp", "mtls"] as const) console.log(mRow(p));
  console.log("\n| figure (within each rep, median over reps) | mtls+mcp | mtls (no `mcp:`) | target | result |\n|---|---|---|---|---|");
  console.log(`| calls/s, tidegate / direct | ${fmt(median(relMcp.ratio), 3)} | ${fmt(median(relL4.ratio), 3)} | | |`);
  console.log(`| added p50, ms | ${signed(median(relMcp.addedP50))} | ${signed(median(relL4.addedP50))} | | |`);
  console.log(`| added p99, ms | ${signed(addedP99)} | ${signed(median(relL4.addedP99))} | ≤ ${TARGET_ADDED_P99_MS} (mtls+mcp) | ${met ? "met" : "**missed**"} |`);
  console.log(`\nper rep, mtls+mcp: ratio ${list(relMcp.ratio, 3)}; added p50 ${list(relMcp.addedP50, 3)} ms; added p99 ${list(relMcp.addedP99, 3)} ms`);
  console.log(`per rep, mtls: ratio ${list(relL4.ratio, 3)}; added p50 ${list(relL4.addedP50, 3)} ms; added p99 ${list(relL4.addedP99, 3)} ms`);
  console.log(`MCP handling (mtls+mcp minus mtls), median: p50 ${signed(median(mcpOverL4.p50))} ms, p99 ${signed(median(mcpOverL4.p99))} ms`);
  console.log(`agent audit: ${toolCalls.length} tool_call events for ${expected} calls on ${RULE.mcp} (${ok} allowed and answered); the relay's request-to-answer time, median ${fmt(relayMs, 3)} ms; conn_close: ${byRule(RULE.mcp)} on ${RULE.mcp}, ${byRule(RULE.l4)} on ${RULE.l4}`);
  console.log(`run time ${elapsedS.toFixed(0)} s\ncommand: ${command}\n`);
  const summary = {
    bench: "mcp",
    date: new Date().toISOString(),
    bun: Bun.version,
    kernel: probeHost().kernel,
    command,
    reps,
    calls,
    warmup,
    target_added_p99_ms: TARGET_ADDED_P99_MS,
    target_met: met,
    medians: Object.fromEntries(
      (["direct", "mtls+mcp", "mtls"] as const).map((p) => {
        const s = samples.filter((x) => x.path === p);
        return [p, { calls_per_s: median(s.map((x) => x.callsPerS)), p50_ms: median(s.map((x) => x.p50ms)), p99_ms: median(s.map((x) => x.p99ms)), p999_ms: median(s.map((x) => x.p999ms)), reads_per_response: median(s.map((x) => x.readsPerCall)), cpu_us_per_call: { client: median(s.map((x) => x.cpuUs.client)), agent: median(s.map((x) => x.cpuUs.agent)), everything: median(s.map((x) => x.cpuUs.everything)) } }];
      }),
    ),
    mtls_mcp: { ratio: median(relMcp.ratio), added_p50_ms: median(relMcp.addedP50), added_p99_ms: addedP99, per_rep: relMcp },
    mtls: { ratio: median(relL4.ratio), added_p50_ms: median(relL4.addedP50), added_p99_ms: median(relL4.addedP99), per_rep: relL4 },
    mcp_over_mtls_ms: { p50: median(mcpOverL4.p50), p99: median(mcpOverL4.p99) },
    audit: { tool_call: toolCalls.length, expected, allowed_answered: ok, relay_duration_ms_p50: relayMs },
    samples,
  };
  const line = JSON.stringify(summary);
  console.log(line);
  if (values.json !== undefined) writeFileSync(values.json, `${line}\n`);
  const full = reps >= 5 && calls >= 2000 && warmup >= 500 && auditBase === undefined && process.env.TIDEGATE_BENCH_PROFILE_DIR === undefined;
  writeChart("mcp", () => renderChart(chartOf(samples, command)), { out: values["chart-out"] ?? null, off: values["no-chart"] }, full);
} catch (e) {
  for (const n of ["tg-agent", "everything"]) console.error(`--- ${n}, last lines:\n${procs.output(n).split("\n").slice(-15).join("\n")}`);
  throw e;
} finally {
  await cleanup();
}

/** The chart: each listener path's medians as ratios to direct's. */
function chartOf(samples: readonly Sample[], command: string): Chart {
  const paths: PathName[] = ["direct", "mtls", "mtls+mcp"];
  const m = (f: (s: Sample) => number) => Object.fromEntries(paths.map((p) => [p, median(samples.filter((s) => s.path === p).map(f))]));
  return {
    title: "MCP tool calls through an inbound listener (bench/mcp.ts): tidegate with and without MCP handling, ratios to direct",
    baseline: "direct",
    paths,
    highlight: ["mtls", "mtls+mcp"],
    labels: { mtls: "tidegate mtls (no mcp:)", "mtls+mcp": "tidegate mtls+mcp" },
    groups: [
      { label: "tools/call per second, one in flight", better: "higher", unit: "calls/s", values: m((s) => s.callsPerS) },
      { label: "p50 latency", better: "lower", unit: "ms", values: m((s) => s.p50ms) },
      { label: "p99 latency", better: "lower", unit: "ms", values: m((s) => s.p99ms) },
      { label: "p99.9 latency", better: "lower", unit: "ms", values: m((s) => s.p999ms) },
    ],
    footer: { date: new Date().toISOString().slice(0, 10), command, reps, note: `${calls} timed calls per path and repetition; direct: plain HTTP to server-everything` },
  };
}
