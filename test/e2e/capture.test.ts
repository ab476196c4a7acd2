// Issue 6 end to end (root; CI runs it): the built server and agent under instance e2e-capture,
// the agent's eBPF programs on its own cgroup tree, and real curl, socat, node and python3 started
// with `tidegate run`. Denied destinations fail at once with EPERM, direct ones connect, the rest
// reach the egress listener, which names the original destination and the caller; UDP only to
// the direct resolver; processes outside are unaffected; kill -9 of the agent leaves enforcement
// in place and a restart adopts it, with no connection slipping through meanwhile; a member of
// the agent's run group (nobody, in nogroup) runs the workload whose run_by names it, as its
// configured user, over run.sock, and nothing else; uninstall leaves nothing behind.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { removeUserBinary, requireBinary, userBinary, tidegate } from "../helpers/binary.ts";
import { startTidegate, waitFor, type Running } from "../helpers/processes.ts";
import { dstOf, readAudit, srcOf } from "../helpers/audit-files.ts";
import { callUnix } from "../../src/runtime/unix-http.ts";
import { probeHost } from "../../src/runtime/host.ts";
import { DROP_ATTEMPTS } from "../../src/runtime/compiled-code.ts";

const T = 60_000;
const mount = probeHost().cgroup2;
const can = process.getuid?.() === 0 && mount !== null;
if (!can && !process.env.CI) console.warn("e2e capture: skipped (needs root and cgroup v2)");
const INSTANCE = "e2e-capture";
const root = mkdtempSync(join(tmpdir(), "tidegate-e2e-capture-"));
const dirs = { state: join(root, "state"), run: join(root, "run"), etc: join(root, "etc"), node: join(root, "node"), noderun: join(root, "node-run"), audit: join(root, "audit") };
const serverFlags = ["--instance", INSTANCE, "--state-dir", dirs.state, "--run-dir", dirs.run, "--server-config", join(dirs.etc, "server.yaml"), "--audit-dir", dirs.audit];
const nodeFlags = ["--instance", INSTANCE, "--state-dir", dirs.node, "--run-dir", dirs.noderun, "--config", join(dirs.etc, "tidegate.yaml"), "--audit-dir", dirs.audit];
const pinDir = `/sys/fs/bpf/tidegate-${INSTANCE}`;
const cgroupRoot = join(mount ?? "/nonexistent", `tidegate-${INSTANCE}`);
let server: Running | undefined;
let agent: Running | undefined;
const listeners: { stop(force?: boolean): void }[] = [];
/** Connections each test listener accepted, by name. */
const accepted: Record<string, number> = {};

function httpListener(name: string, hostname: string, port: number): number {
  const l = Bun.listen({
    hostname,
    port,
    socket: {
      open(s) {
        accepted[name] = (accepted[name] ?? 0) + 1;
        s.write(`HTTP/1.1 200 OK\r\ncontent-length: ${name.length}\r\nconnection: close\r\n\r\n${name}`);
        s.end();
      },
      data() {},
    },
  });
  listeners.push(l);
  return l.port;
}

let udpReceived: string[] = [];
let udpPort = 0;

/** A test CA and a server certificate for api.test.internal (only), made with openssl. */
function makeWebPki(): void {
  const sh = (cmd: string) => {
    const r = Bun.spawnSync(["bash", "-c", cmd], { cwd: dirs.etc, stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`${cmd}: ${r.stderr.toString()}`);
  };
  sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 1 -subj /CN=tidegate-test-ca -addext basicConstraints=critical,CA:TRUE");
  sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout srv.key -out srv.csr -subj /CN=api.test.internal");
  sh("openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -out srv.pem -extfile <(printf 'subjectAltName=DNS:api.test.internal\n')");
}

async function cli(args: string[]) {
  const r = await tidegate(args);
  if (r.code !== 0) throw new Error(`tidegate ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** Workloads run as nobody: a PATH of system folders only (root's may name folders nobody cannot enter). */
const WORKLOAD_ENV = { PATH: "/usr/local/bin:/usr/bin:/bin" };

/** `tidegate run --workload w1 --user nobody -- ARGS` from the built binary. */
async function run(args: string[], opts: { workload?: string; user?: string } = {}) {
  return tidegate(["run", ...nodeFlags, "--workload", opts.workload ?? "w1", "--user", opts.user ?? "nobody", "--", ...args], { env: WORKLOAD_ENV });
}

/**
 * `tidegate run ...RUN_ARGS` as uid:gid ID (no supplementary groups) with the given stdin, from a
 * copy of the binary that user can execute. Resolves once it has exited.
 */
async function asUser(id: number, runArgs: string[], stdin = ""): Promise<{ code: number; stdout: string; stderr: string; pid: number }> {
  const p = spawnAs(id, runArgs, "pipe");
  p.stdin.write(stdin);
  p.stdin.end();
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr, pid: p.pid };
}

function spawnAs(id: number, runArgs: string[], stdin: "pipe"): Bun.Subprocess<"pipe", "pipe", "pipe"> {
  return Bun.spawn(["setpriv", `--reuid=${id}`, `--regid=${id}`, "--clear-groups", "env", "-i", `PATH=${WORKLOAD_ENV.PATH}`, "LANG=C", userBinary(), "run", ...nodeFlags, ...runArgs], { stdin, stdout: "pipe", stderr: "pipe", cwd: "/" });
}

const PY_CONNECT = `
import socket, sys, errno
host, port, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fam = socket.AF_INET6 if ':' in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM if kind.startswith('tcp') else socket.SOCK_DGRAM)
s.settimeout(3)
try:
    if kind == 'tcp':
        s.connect((host, port)); print('connected', s.recv(200).decode().split('\\r\\n\\r\\n')[-1])
    elif kind == 'tcp-fastopen':
        # no connect(): the request rides TCP Fast Open's sendto (data in the SYN when a cookie is
        # known); blocking, since a socket with a timeout answers EINPROGRESS until the handshake ends
        s.settimeout(None); s.sendto(b'GET / HTTP/1.1\\r\\nHost: fastopen.test\\r\\nConnection: close\\r\\n\\r\\n', socket.MSG_FASTOPEN, (host, port)); s.settimeout(3)
        print('connected', s.recv(200).decode().split('\\r\\n\\r\\n')[-1])
    elif kind == 'udp-sendto':
        s.sendto(b'ping', (host, port)); print('sent')
    else:
        s.connect((host, port)); s.send(b'ping'); print('sent')
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e)))
`;

async function py(host: string, port: number, kind: "tcp" | "tcp-fastopen" | "udp-sendto" | "udp-connect" = "tcp") {
  const r = await run(["python3", "-c", PY_CONNECT, host, String(port), kind]);
  return r.stdout.trim();
}

/** A command outside the workload (async, so this process's listeners keep answering). */
async function outside(argv: string[]): Promise<string> {
  const p = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe" });
  const out = await new Response(p.stdout).text();
  await p.exited;
  return out.trim();
}

function agentLog(): { event: string; [k: string]: unknown }[] {
  return (agent?.output() ?? "")
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l));
}

/** The agent's audit events (its audit folder, as `tidegate audit tail --json` reads it). */
const audit = () => readAudit(dirs.audit);
const closes = () => audit().filter((l) => l.type === "conn_close");

async function agentStatus(): Promise<any> {
  const r = await callUnix(join(dirs.noderun, "agent.sock"), "the agent", "GET", "/v1/status");
  return r.body;
}

async function startAgent(extra: string[] = []): Promise<Running> {
  const a = startTidegate(["agent", ...nodeFlags, "--sync-interval", "1s", ...extra]);
  await waitFor("the agent to capture, with an identity for w1", async () => {
    const s = await agentStatus().catch(() => undefined);
    return s?.capture?.egress_port && s.entries?.length > 0 ? s : undefined;
  }, 30_000, 100, a);
  return a;
}

let ports: { direct: number; direct6: number; blocked: number; original: number; unnamed: number } = { direct: 0, direct6: 0, blocked: 0, original: 0, unnamed: 0 };

describe.skipIf(!can)("kernel capture with tidegate run", () => {
  beforeAll(async () => {
    for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
    await tidegate(["agent", "--uninstall", ...nodeFlags]);
    ports = {
      direct: httpListener("direct", "127.0.0.2", 0),
      direct6: httpListener("direct6", "::1", 0),
      blocked: httpListener("blocked", "127.0.0.3", 0),
      original: httpListener("original", "127.0.0.4", 80),
      unnamed: httpListener("unnamed", "127.0.0.5", 80),
    };
    const udp = await Bun.udpSocket({ hostname: "127.0.0.2", port: 0, socket: { data: (_s, buf) => void udpReceived.push(buf.toString()) } });
    udpPort = udp.port;
    listeners.push({ stop: () => udp.close() });
    writeFileSync(join(dirs.etc, "server.yaml"), "svid:\n  default_ttl: 1h\n");
    makeWebPki();
    const tlsServer = Bun.serve({ hostname: "127.0.0.6", port: 443, tls: { cert: readFileSync(join(dirs.etc, "srv.pem"), "utf8"), key: readFileSync(join(dirs.etc, "srv.key"), "utf8") }, fetch: () => new Response("secure") });
    listeners.push({ stop: () => void tlsServer.stop(true) });
    chmodSync(root, 0o711); // callers run as nobody reach run.sock below it
    writeFileSync(
      join(dirs.etc, "tidegate.yaml"),
      `trust_domain: example.org
agent: { run_group: nogroup }
workloads:
  - { name: w1, id: spiffe://example.org/w1, user: www-data, run_by: { users: [nobody] } }
  - { name: w2, id: spiffe://example.org/w2, user: www-data, run_by: { users: [daemon] } }
  - { name: w3, id: spiffe://example.org/w3, user: www-data, run_by: { users: [nobody] } }
egress:
  - name: blocked
    from: spiffe://example.org/w1
    to: { cidr: 127.0.0.3/32, port: any }
    action: deny
  - name: local-direct
    from: spiffe://example.org/w1
    to: { cidr: 127.0.0.2/32, port: ${ports.direct} }
    action: direct
  - name: local-direct6
    from: spiffe://example.org/w1
    to: { cidr: "::1/128", port: ${ports.direct6} }
    action: direct
  - name: resolver
    from: spiffe://example.org/w1
    to: { cidr: 127.0.0.2/32, port: ${udpPort}, proto: udp }
    action: direct
  - name: web
    from: spiffe://example.org/w1
    to: { cidr: 127.0.0.4/32, port: 80 }
    action: passthrough
  - name: api-tls
    from: spiffe://example.org/w1
    to: { host: api.test.internal, port: 80 }
    action: tls
    ca: ${join(dirs.etc, "ca.pem")}
    upstream: { port: 443 }
  - name: wrong-tls
    from: spiffe://example.org/w1
    to: { host: wrong.test.internal, port: 80 }
    action: tls
    ca: ${join(dirs.etc, "ca.pem")}
    upstream: { port: 443 }
dns:
  hosts:
    api.test.internal: [127.0.0.6]
    wrong.test.internal: [127.0.0.6]
`,
    );
    await cli(["server", "init", "--trust-domain", "example.org", ...serverFlags]);
    server = startTidegate(["server", ...serverFlags]);
    const info = await waitFor("server.json", () => (existsSync(join(dirs.run, "server.json")) ? JSON.parse(readFileSync(join(dirs.run, "server.json"), "utf8")) : undefined));
    const tokenOut = await cli(["token", "create", "--node", "node1", ...serverFlags]);
    writeFileSync(join(root, "token"), /token:\s*(\S+)/.exec(tokenOut)![1]!, { mode: 0o600 });
    const fingerprint = /fingerprint[^:]*:\s*([0-9a-fA-F:]+)/.exec(tokenOut)![1]!;
    await cli(["entry", "create", "--spiffe-id", "spiffe://example.org/w1", "--node", "node1", "--selector", "tidegate:workload:w1", ...serverFlags]);
    agent = await startAgent(["--server", `https://${info.public}`, "--join-token-file", join(root, "token"), "--server-fingerprint", fingerprint]);
  }, T);

  afterAll(async () => {
    await agent?.stop();
    await server?.stop();
    await tidegate(["agent", "--uninstall", ...nodeFlags]);
    for (const l of listeners) l.stop(true);
    rmSync(root, { recursive: true, force: true });
    removeUserBinary();
  }, T);

  test("a denied destination fails at once with EPERM (curl, python3, node, socat)", async () => {
    const started = Date.now();
    const c = await run(["curl", "-sS", "--max-time", "5", `http://127.0.0.3:${ports.blocked}/`]);
    expect(c.code).toBe(7);
    expect(c.stderr).toContain("Failed to connect to 127.0.0.3"); // curl 7.88 does not print the errno
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await py("127.0.0.3", ports.blocked)).toBe("EPERM");
    const n = await run(["node", "-e", `require('net').connect(${ports.blocked}, '127.0.0.3').on('error', e => console.log(e.code))`]);
    expect(n.stdout.trim()).toBe("EPERM");
    const s = await run(["socat", "-u", `TCP:127.0.0.3:${ports.blocked}`, "-"]);
    expect(s.code).not.toBe(0);
    expect(s.stderr).toMatch(/not permitted/i);
    expect(accepted.blocked ?? 0).toBe(0);
    await waitFor("the kernel's deny events in the audit log", () => (audit().filter((l) => l.type === "deny" && l.rule === "blocked").length >= 4 ? true : undefined));
    const deny = audit().find((l) => l.type === "deny" && l.rule === "blocked")!;
    expect(deny).toMatchObject({ side: "egress", conn_id: null, source: "kernel", reason: "rule", dst: { addr: "127.0.0.3", port: ports.blocked }, src: { uid: 65534, workload: "w1", spiffe_id: "spiffe://example.org/w1", peer: null } });
  }, T);

  test("a direct destination connects untouched, IPv4 and IPv6", async () => {
    const c = await run(["curl", "-sS", "--max-time", "5", `http://127.0.0.2:${ports.direct}/`]);
    expect(c.stdout).toBe("direct");
    expect(await py("::1", ports.direct6)).toBe("connected direct6");
  }, T);

  test("a redirected connection reaches the listener, which names the caller, decides, and passes a passthrough on", async () => {
    const r = await run(["sh", "-c", `echo pid=$$; exec curl -sS --max-time 5 http://127.0.0.4:80/`]);
    const pid = Number(/pid=(\d+)/.exec(r.stdout)![1]);
    expect(r.stdout).toContain("original");
    expect(accepted.original).toBe(1);
    const line = await waitFor("the listener's conn_close", () => closes().find((l) => srcOf(l).pid === pid));
    expect(line).toMatchObject({ dst: { addr: "127.0.0.4", port: 80, name: null }, src: { uid: 65534, workload: "w1", spiffe_id: "spiffe://example.org/w1" }, decision: "allow", action: "passthrough", rule: "web", outcome: "forwarded", upstream: "127.0.0.4:80" });
    expect(line.bytes_up).toBeGreaterThan(50);
    expect(line.bytes_down).toBe("HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\noriginal".length);
    expect(String((line.src as { cgroup_id: unknown }).cgroup_id)).toMatch(/^\d+$/);
    const open = audit().find((l) => l.type === "conn_open" && l.conn_id === line.conn_id);
    expect(open).toMatchObject({ decision: "allow", rule: "web", src: { pid }, gid: 65534 });
    expect(open!.seq).toBeLessThan(line.seq);
  }, T);

  test("the agent and the server dropped their start-up code once serving; the proxy, compiled afresh, serves on", async () => {
    for (const [who, p] of [["agent", agent!], ["server", server!]] as const) {
      const dropped = await waitFor(`the ${who}'s startup_code_dropped`, () =>
        p
          .output()
          .split("\n")
          .slice(0, -1) // complete lines only: the last may still be arriving
          .filter((l) => l.includes('"startup_code_dropped"'))
          .map((l) => JSON.parse(l))[0],
      );
      expect(dropped).toMatchObject({ level: "info", component: who });
      expect(dropped.code_blocks_before).toBeGreaterThan(1000);
      expect(dropped.code_blocks_after).toBeLessThan(dropped.code_blocks_before / 5);
      // how many times it was asked for (again when JavaScriptCore was collecting), within the bound
      expect(dropped.attempts).toBeGreaterThanOrEqual(1);
      expect(dropped.attempts).toBeLessThanOrEqual(DROP_ATTEMPTS);
    }
    const r = await run(["curl", "-sS", "--max-time", "5", "http://127.0.0.4:80/"]);
    expect(r.stdout).toContain("original");
  }, T);

  test("a redirected connection no rule names is refused by the listener, naming destination and caller; plain HTTP is answered 403 with the reason", async () => {
    const r = await run(["sh", "-c", `echo pid=$$; exec curl -sS --max-time 5 -w '\n%{http_code}' -H 'Host: api.example.test' http://127.0.0.5:80/`]);
    const pid = Number(/pid=(\d+)/.exec(r.stdout)![1]);
    expect(r.stdout.slice(r.stdout.indexOf("\n") + 1)).toBe("tidegate: no_rule\n\n403");
    expect(accepted.unnamed ?? 0).toBe(0);
    const line = await waitFor("the listener's conn_close", () => closes().find((l) => srcOf(l).pid === pid));
    expect(line).toMatchObject({ dst: { addr: "127.0.0.5", port: 80, name: "api.example.test" }, src: { uid: 65534, workload: "w1", spiffe_id: "spiffe://example.org/w1" }, decision: "deny", rule: null, outcome: "refused", reason: "no_rule" });
  }, T);

  test("tidegate status shows each rule's hits since the policy loaded and the recent denies, the listener's and the kernel's", async () => {
    const status = async () => {
      const r = await tidegate(["status", "--json", ...nodeFlags]);
      return { code: r.code, capture: JSON.parse(r.stdout).capture };
    };
    const hitsOf = (c: any, name: string) => c.rules.find((r: any) => r.name === name).hits as number;
    const before = (await status()).capture;
    expect((await run(["curl", "-sS", "--max-time", "5", "http://127.0.0.4:80/"])).stdout).toBe("original");
    const denied = await run(["sh", "-c", "echo pid=$$; exec curl -sS --max-time 5 -H 'Host: status.example.test' http://127.0.0.5:80/"]);
    const deniedPid = Number(/pid=(\d+)/.exec(denied.stdout)![1]);
    const kernel = await run(["sh", "-c", `echo pid=$$; exec python3 -c "$0" 127.0.0.3 ${ports.blocked} tcp`, PY_CONNECT]);
    expect(kernel.stdout).toContain("EPERM");
    const kernelPid = Number(/pid=(\d+)/.exec(kernel.stdout)![1]);
    // the kernel's deny reaches the agent through its ring buffer, read every 100 ms
    const { code, capture: c } = await waitFor("the kernel's deny in tidegate status", async () => {
      const s = await status();
      return s.capture.recent_denies.some((d: any) => d.pid === kernelPid) ? s : undefined;
    });
    expect(code).toBe(0);
    expect(c.hits_since.generation).toBe(c.policy.generation);
    expect(c.rules.map((r: any) => r.name)).toEqual(["blocked", "local-direct", "local-direct6", "resolver", "web", "api-tls", "wrong-tls"]);
    expect(c.rules.find((r: any) => r.name === "web")).toMatchObject({ side: "egress", action: "passthrough", denied: 0 });
    expect(hitsOf(c, "web")).toBe(hitsOf(before, "web") + 1);
    expect(hitsOf(c, "blocked")).toBe(hitsOf(before, "blocked") + 1);
    expect(c.unmatched.connections).toBe(before.unmatched.connections + 1);
    const noRule = c.recent_denies.find((d: any) => d.pid === deniedPid);
    expect(noRule).toMatchObject({ side: "egress", source: "proxy", kind: "connection", caller: "spiffe://example.org/w1", workload: "w1", destination: "127.0.0.5:80 (status.example.test)", rule: null, reason: "no_rule" });
    const byKernel = c.recent_denies.find((d: any) => d.pid === kernelPid);
    expect(byKernel).toMatchObject({ source: "kernel", caller: "spiffe://example.org/w1", destination: `127.0.0.3:${ports.blocked}`, rule: "blocked", reason: "rule" });
    expect(c.recent_denies.indexOf(byKernel)).toBeLessThan(c.recent_denies.indexOf(noRule)); // newest first
    const text = await tidegate(["status", ...nodeFlags]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`\nrules (since generation ${c.policy.generation}, `);
    expect(text.stdout).toMatch(new RegExp(`\\n  web +passthrough +${hitsOf(c, "web")} +${hitsOf(c, "web")} +0 +0\\n`));
    expect(text.stdout).toContain(`  spiffe://example.org/w1 pid ${deniedPid} -> 127.0.0.5:80 (status.example.test): no rule, no_rule\n`);
    expect(text.stdout).toContain(`  spiffe://example.org/w1 pid ${kernelPid} -> 127.0.0.3:${ports.blocked}: rule blocked, rule (kernel)\n`);
  }, T);

  test("a connection that closes before sending a byte is recorded as the client's going; nothing was decided or forwarded", async () => {
    const probe = "import socket, time; s = socket.create_connection(('127.0.0.5', 80), timeout=3); s.close(); time.sleep(1)"; // alive while the agent attests it
    const r = await run(["sh", "-c", `echo pid=$$; exec python3 -c "${probe}"`]);
    const pid = Number(/pid=(\d+)/.exec(r.stdout)![1]);
    expect(r.code).toBe(0);
    const line = await waitFor("the listener's conn_close", () => closes().find((l) => srcOf(l).pid === pid));
    expect(line).toMatchObject({ dst: { addr: "127.0.0.5", port: 80 }, src: { workload: "w1" }, outcome: "client_gone", detail: "closed before sending anything", decision: "deny", rule: null, action: null });
    expect(accepted.unnamed ?? 0).toBe(0);
  }, T);

  test("tls: plaintext from the workload leaves in TLS, verified against the rule's CA and the Host's name", async () => {
    const ok = await run(["curl", "-sS", "--max-time", "5", "--resolve", "api.test.internal:80:127.0.0.6", "http://api.test.internal/"]);
    expect(ok.stdout).toBe("secure");
    expect(await waitFor("the forwarded conn_close", () => closes().filter((l) => l.rule === "api-tls").at(-1))).toMatchObject({ dst: { name: "api.test.internal" }, action: "tls", outcome: "forwarded", upstream: "127.0.0.6:443" });
    const wrong = await run(["curl", "-sS", "--max-time", "5", "--resolve", "wrong.test.internal:80:127.0.0.6", "http://wrong.test.internal/"]);
    expect(wrong.stdout).toBe("");
    const bad = await waitFor("the refusal", () => closes().find((l) => l.rule === "wrong-tls"));
    expect(bad).toMatchObject({ outcome: "refused", reason: "upstream_tls_unverified", detail: "ERR_TLS_CERT_ALTNAME_INVALID" });
  }, T);

  test("where bytes go: an allowed name paired with another address is refused; TLS inside a tls rule too", async () => {
    const before = closes().length;
    await run(["curl", "-sS", "--max-time", "5", "-H", "Host: api.test.internal", "http://127.0.0.5:80/"]);
    const elsewhere = await waitFor("the refusal", () => closes().slice(before).find((l) => dstOf(l).name === "api.test.internal"));
    expect(elsewhere).toMatchObject({ dst: { addr: "127.0.0.5" }, rule: "api-tls", outcome: "refused", reason: "address_not_resolved" });
    expect(accepted.unnamed ?? 0).toBe(0);
    const mark = closes().length;
    await run(["curl", "-sSk", "--max-time", "5", "--resolve", "api.test.internal:80:127.0.0.6", "https://api.test.internal:80/"]);
    expect(await waitFor("the refusal", () => closes().slice(mark).find((l) => l.rule === "api-tls"))).toMatchObject({ outcome: "refused", reason: "tls_in_tls" });
  }, T);

  test("IPv4-mapped IPv6 destinations follow the IPv4 policy", async () => {
    expect(await py("::ffff:127.0.0.3", ports.blocked)).toBe("EPERM");
    expect(await py("::ffff:127.0.0.2", ports.direct)).toBe("connected direct");
    expect(await py("::ffff:127.0.0.4", 80)).toBe("connected original");
    const before = closes().length;
    expect(await py("::ffff:127.0.0.5", 80)).not.toContain("unnamed");
    await waitFor("a conn_close for the mapped connect", () => (closes().length > before ? true : undefined));
    expect(closes().at(-1)).toMatchObject({ dst: { addr: "127.0.0.5", port: 80 }, outcome: "refused", reason: "no_rule" });
    expect(accepted.unnamed ?? 0).toBe(0);
  }, T);

  test("TCP Fast Open (sendto with MSG_FASTOPEN, no connect()) is judged as a connect(): denied, passed through, refused at the listener", async () => {
    // the client side of Fast Open must be on, or Python's sendto would not take this path at all
    expect(Number(readFileSync("/proc/sys/net/ipv4/tcp_fastopen", "utf8")) & 1).toBe(1);
    expect(await py("127.0.0.3", ports.blocked, "tcp-fastopen")).toBe("EPERM");
    expect(accepted.blocked ?? 0).toBe(0);
    const before = accepted.original ?? 0;
    expect(await py("127.0.0.4", 80, "tcp-fastopen")).toBe("connected original");
    expect(accepted.original).toBe(before + 1);
    const r = await run(["sh", "-c", `echo pid=$$; exec python3 -c "$0" 127.0.0.5 80 tcp-fastopen`, PY_CONNECT]);
    const pid = Number(/pid=(\d+)/.exec(r.stdout)![1]);
    expect(r.stdout).toContain("connected tidegate: no_rule");
    expect(accepted.unnamed ?? 0).toBe(0);
    const line = await waitFor("the listener's conn_close of the Fast Open connection", () => closes().find((l) => srcOf(l).pid === pid));
    expect(line).toMatchObject({ dst: { addr: "127.0.0.5", port: 80, name: "fastopen.test" }, src: { workload: "w1" }, decision: "deny", outcome: "refused", reason: "no_rule" });
    // the control: outside the instance's tree the same sendto reaches the denied listener
    expect(await outside(["python3", "-c", PY_CONNECT, "127.0.0.3", String(ports.blocked), "tcp-fastopen"])).toBe("connected blocked");
    expect(accepted.blocked).toBe(1);
    accepted.blocked = 0;
  }, T);

  test("UDP: only the direct resolver, connected or not", async () => {
    expect(await py("127.0.0.2", udpPort, "udp-sendto")).toBe("sent");
    expect(await py("127.0.0.2", udpPort, "udp-connect")).toBe("sent");
    await waitFor("the resolver's packets", () => (udpReceived.length >= 2 ? true : undefined));
    expect(await py("127.0.0.9", 53, "udp-sendto")).toBe("EPERM");
    expect(await py("127.0.0.9", 53, "udp-connect")).toBe("EPERM");
    expect(await py("127.0.0.2", udpPort + 1 === 65536 ? 1 : udpPort + 1, "udp-sendto")).toBe("EPERM");
  }, T);

  test("processes outside the instance's tree are unaffected", async () => {
    // (asynchronously: the listeners answer from this process's event loop)
    expect(await outside(["python3", "-c", PY_CONNECT, "127.0.0.3", String(ports.blocked), "tcp"])).toBe("connected blocked");
    expect(await outside(["python3", "-c", PY_CONNECT, "127.0.0.4", "80", "tcp"])).toBe("connected original");
    accepted.original = 0;
  });

  test("the workload has no capabilities, cannot leave its cgroup, cannot see the pins; exit codes pass", async () => {
    const r = await run(["sh", "-c", `grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs)' /proc/self/status; echo $$ > ${cgroupRoot}/cgroup.procs && echo ESCAPED; ls ${pinDir} >/dev/null 2>&1 && echo PINS_VISIBLE; exit 7`]);
    expect(r.code).toBe(7);
    expect(r.stdout).toContain("CapEff:\t0000000000000000");
    expect(r.stdout).toContain("CapBnd:\t0000000000000000");
    expect(r.stdout).toContain("NoNewPrivs:\t1");
    expect(r.stdout).not.toContain("ESCAPED");
    expect(r.stdout).not.toContain("PINS_VISIBLE");
  }, T);

  test("root of a user namespace of its own is still inside: it cannot leave its cgroup or see the pins, and its connections are judged", async () => {
    // unshare -Ur: uid 0, with every capability, in a user namespace the workload made itself
    const inner = `id -u; grep -E '^CapEff' /proc/self/status; echo $$ > ${cgroupRoot}/cgroup.procs && echo ESCAPED; ls ${pinDir} >/dev/null 2>&1 && echo PINS_VISIBLE; python3 -c "$0" 127.0.0.3 ${ports.blocked} tcp`;
    const blockedBefore = accepted.blocked ?? 0; // "processes outside the tree" reached it on purpose
    const r = await run(["unshare", "-Ur", "sh", "-c", inner, PY_CONNECT]);
    const [uid, capEff] = r.stdout.split("\n");
    expect(uid).toBe("0");
    expect(capEff).not.toBe("CapEff:\t0000000000000000");
    expect(r.stdout).not.toContain("ESCAPED");
    expect(r.stdout).not.toContain("PINS_VISIBLE");
    expect(r.stdout.trim().split("\n").at(-1)).toBe("EPERM");
    expect(accepted.blocked ?? 0).toBe(blockedBefore);
  }, T);

  test("a workload cannot ptrace, signal or read the environment of another workload of the same uid; its own children it can", async () => {
    // w3 runs as nobody too (its own cgroup, no identity: it needs none to be a target)
    const other = startTidegate(["run", ...nodeFlags, "--workload", "w3", "--user", "nobody", "--", "sleep", "30"], WORKLOAD_ENV);
    try {
      const procs = join(cgroupRoot, "workloads", "w3", "cgroup.procs");
      // the launcher enters the cgroup as root before it drops to nobody and execs: wait for `sleep` itself
      const pid = await waitFor("sleep in w3's cgroup", () => {
        if (!existsSync(procs)) return undefined;
        for (const p of readFileSync(procs, "utf8").split("\n").filter((l) => l !== "")) {
          try {
            if (readFileSync(`/proc/${p}/comm`, "utf8").trim() === "sleep") return Number(p);
          } catch {
            // gone meanwhile
          }
        }
        return undefined;
      });
      expect(readFileSync(`/proc/${pid}/status`, "utf8")).toMatch(/^Uid:\t65534\t/m);
      const r = await run(["python3", "-c", `import ctypes, os, errno, subprocess, sys
pid = int(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
r = libc.ptrace(16, pid, 0, 0)  # PTRACE_ATTACH
print('ptrace', 'ATTACHED' if r == 0 else errno.errorcode[ctypes.get_errno()])
if r == 0: libc.ptrace(17, pid, 0, 0)  # PTRACE_DETACH
for what, f in (('kill', lambda: os.kill(pid, 0)), ('environ', lambda: open(f'/proc/{pid}/environ', 'rb').read())):
    try:
        f(); print(what, 'ALLOWED')
    except OSError as e:
        print(what, errno.errorcode[e.errno])
child = subprocess.Popen(['sleep', '5'])
os.kill(child.pid, 9)
print('own child', child.wait())`, String(pid)]);
      expect([r.code, r.stdout.trim().split("\n")]).toEqual([0, ["ptrace EPERM", "kill EPERM", "environ EACCES", "own child -9"]]);
      expect(r.stderr).not.toContain("warning");
      // the agent, outside any workload's domain, still reads it: attestation needs that
      expect(readFileSync(`/proc/${pid}/environ`).length).toBeGreaterThan(0);
    } finally {
      other.proc.kill("SIGTERM");
      await other.proc.exited;
    }
  }, T);

  test("signals pass through tidegate run: SIGTERM ends the command, the exit code says so", async () => {
    const r = startTidegate(["run", ...nodeFlags, "--workload", "w1", "--user", "nobody", "--", "sleep", "30"], WORKLOAD_ENV);
    await waitFor("sleep in the workload's cgroup", () => (readFileSync(join(cgroupRoot, "workloads", "w1", "cgroup.procs"), "utf8").trim() !== "" ? true : undefined));
    await Bun.sleep(200);
    r.proc.kill("SIGTERM");
    expect(await r.proc.exited).toBe(143);
  }, T);

  test("a member of the run group runs the workload whose run_by names it, as its user, and nothing else", async () => {
    const www = Number(/^www-data:[^:]*:(\d+):/m.exec(readFileSync("/etc/passwd", "utf8"))![1]);
    const id = await asUser(65534, ["--workload", "w1", "--", "id", "-u"]);
    expect([id.code, id.stdout, id.stderr]).toEqual([0, `${www}\n`, ""]);
    const started = await waitFor("run_started", () => agentLog().find((l) => l.event === "run_started" && l.caller_pid === id.pid));
    expect(started).toMatchObject({ caller_uid: 65534, workload: "w1", user: "www-data", uid: www, spiffe_id: "spiffe://example.org/w1" });
    expect(await waitFor("run_ended", () => agentLog().find((l) => l.event === "run_ended" && l.caller_pid === id.pid))).toMatchObject({ exit: 0, pid: started.pid });
    // captured as w1: a denied destination fails at once with EPERM
    const blockedBefore = accepted.blocked ?? 0;
    const denied = await asUser(65534, ["--workload", "w1", "--", "python3", "-c", PY_CONNECT, "127.0.0.3", String(ports.blocked), "tcp"]);
    expect(denied.stdout.trim()).toBe("EPERM");
    expect(accepted.blocked ?? 0).toBe(blockedBefore);
    // the caller's stdin, stdout, stderr and the exit code pass through
    const cat = await asUser(65534, ["--workload", "w1", "--", "sh", "-c", "cat; echo oops >&2; exit 5"], "hi\n");
    expect([cat.code, cat.stdout, cat.stderr]).toEqual([5, "hi\n", "oops\n"]);
    // a workload no entry names runs, and its caller is told that its connections are refused
    const w3 = await asUser(65534, ["--workload", "w3", "--", "true"]);
    expect([w3.code, w3.stdout, w3.stderr]).toEqual([0, "", "tidegate run: warning: workload w3 has no identity (no registration entry has the selector tidegate:workload:w3): its connections are refused until the agent holds one\n"]);
    // nothing else: another workload, another user, root
    const w2 = await asUser(65534, ["--workload", "w2", "--", "id", "-u"]);
    expect([w2.code, w2.stdout]).toEqual([1, ""]);
    expect(w2.stderr).toContain(`workload "w2"'s run_by does not name uid 65534`);
    for (const user of ["root", "nobody"]) {
      const r = await asUser(65534, ["--workload", "w1", "--user", user, "--", "id", "-u"]);
      expect([r.code, r.stdout]).toEqual([1, ""]);
      expect(r.stderr).toContain(`runs as "www-data" only; --user "${user}" is for root`);
    }
    const allow = await asUser(65534, ["--workload", "w1", "--allow-root", "--", "id", "-u"]);
    expect([allow.code, allow.stderr.includes("--allow-root is for root only")]).toEqual([1, true]);
    const refused = await waitFor("four refusals", () => {
      const lines = agentLog().filter((l) => l.event === "run_refused" && l.caller_uid === 65534);
      return lines.length >= 4 ? lines : undefined;
    });
    expect(refused.map((l) => l.code)).toEqual(["run_not_in_run_by", "run_user_not_allowed", "run_user_not_allowed", "run_root_refused"]);
    expect(refused[0]).toMatchObject({ caller_pid: w2.pid, workload: "w2" });
    // the agent's admin socket stays root's
    const sock = Bun.spawnSync(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ntry:\n  s.connect(sys.argv[1]); print('connected')\nexcept OSError as e: print(type(e).__name__)", join(dirs.noderun, "agent.sock")]);
    expect(sock.stdout.toString().trim()).toBe("PermissionError");
  }, T);

  test("a run group member's tidegate run passes SIGTERM on; the exit code says so", async () => {
    const p = spawnAs(65534, ["--workload", "w1", "--", "sleep", "30"], "pipe");
    await waitFor("sleep in the workload's cgroup", () => (readFileSync(join(cgroupRoot, "workloads", "w1", "cgroup.procs"), "utf8").trim() !== "" ? true : undefined));
    await Bun.sleep(200);
    p.kill("SIGTERM");
    expect(await p.exited).toBe(143);
    expect(await waitFor("run_ended", () => agentLog().find((l) => l.event === "run_ended" && l.caller_pid === p.pid))).toMatchObject({ signal: "SIGTERM" });
  }, T);

  test("kill -9 of the agent: denies still deny, directs pass, nothing reaches a redirected destination; a restart adopts the pins", async () => {
    // A workload that keeps connecting across the agent's death and restart.
    const looper = startTidegate(["run", ...nodeFlags, "--workload", "w1", "--user", "nobody", "--", "python3", "-c", `
import socket, time, errno
end = time.time() + 12
while time.time() < end:
    for host, port in (('127.0.0.5', 80), ('127.0.0.3', ${ports.blocked})):
        s = socket.socket(); s.settimeout(1)
        try:
            s.connect((host, port)); data = s.recv(100)
            print(host, 'DATA' if data else 'closed', flush=True)
        except OSError as e:
            print(host, errno.errorcode.get(e.errno, str(e)), flush=True)
        s.close()
    time.sleep(0.05)
`], WORKLOAD_ENV);
    await Bun.sleep(1500);
    agent!.proc.kill("SIGKILL");
    await agent!.proc.exited;
    expect(existsSync(join(pinDir, "link_tg_connect4"))).toBe(true);
    // meanwhile: the direct still works, the deny still denies, the egress port cannot be taken
    expect(await outside(["sh", "-c", `echo $$ > ${cgroupRoot}/workloads/w1/cgroup.procs && exec python3 -c "$0" 127.0.0.2 ${ports.direct} tcp`, PY_CONNECT])).toBe("connected direct");
    expect(await outside(["sh", "-c", `echo $$ > ${cgroupRoot}/workloads/w1/cgroup.procs && exec python3 -c "$0" 127.0.0.3 ${ports.blocked} tcp`, PY_CONNECT])).toBe("EPERM");
    const steal = Bun.spawnSync(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", "import socket,sys\nfor p in range(900,1024):\n  s=socket.socket()\n  try:\n    s.bind(('127.0.0.1',p)); print('BOUND',p); sys.exit(0)\n  except OSError as e: pass\nprint('none')"]);
    expect(steal.stdout.toString().trim()).toBe("none");
    await Bun.sleep(1500);
    agent = await startAgent();
    expect((await agentStatus()).capture.adopted).toBe(true);
    await looper.ended();
    const lines = looper.output().split("\n").filter((l) => l.startsWith("127."));
    expect(lines.filter((l) => l.startsWith("127.0.0.3") && !l.endsWith("EPERM"))).toEqual([]);
    expect(lines.some((l) => l.startsWith("127.0.0.5") && l.endsWith("ECONNREFUSED"))).toBe(true);
    expect(accepted.unnamed ?? 0).toBe(0);
    expect(lines.filter((l) => l.includes("DATA"))).toEqual([]);
    // after the restart, redirected connections reach the listener again, and a passthrough passes
    expect((await run(["curl", "-sS", "--max-time", "5", "http://127.0.0.4:80/"])).stdout).toBe("original");
  }, T);

  test("a rejected reload keeps the last good policy; a good one changes the kernel's answer", async () => {
    const file = join(dirs.etc, "tidegate.yaml");
    const good = readFileSync(file, "utf8");
    writeFileSync(file, good.replace("action: deny", "action: nope"));
    agent!.proc.kill("SIGHUP");
    await waitFor("policy_rejected", () => agentLog().find((l) => l.event === "policy_rejected"));
    expect(await py("127.0.0.3", ports.blocked)).toBe("EPERM");
    const loaded = () => agentLog().filter((l) => l.event === "policy_loaded").length;
    const beforeHup = loaded();
    writeFileSync(file, good.replace(`cidr: 127.0.0.3/32, port: any }\n    action: deny`, `cidr: 127.0.0.3/32, port: any }\n    action: direct`));
    agent!.proc.kill("SIGHUP");
    await waitFor("the kernel to let 127.0.0.3 through", async () => ((await py("127.0.0.3", ports.blocked)) === "connected blocked" ? true : undefined), 10_000, 200);
    // a change of the file is enough, without SIGHUP; the agent's log comes through a pipe, so
    // its lines are counted once the SIGHUP's own policy_loaded has come through
    const loads = await waitFor("policy_loaded of the SIGHUP", () => (loaded() > beforeHup ? loaded() : undefined));
    writeFileSync(file, good);
    await waitFor("the deny back, from the file's change alone", async () => ((await py("127.0.0.3", ports.blocked)) === "EPERM" ? true : undefined), 10_000, 200);
    await waitFor("policy_loaded of the file's change", () => (loaded() > loads ? true : undefined));
  }, T);

  test("agent.max_connections_per_workload: the kernel refuses a workload's connect past it, the audit log says connection_limit; a reload changes it", async () => {
    const file = join(dirs.etc, "tidegate.yaml");
    const good = readFileSync(file, "utf8");
    // Three sockets to the passthrough destination, held open together, then closed at exit.
    const three = async () => (await run(["python3", "-c", `import socket,errno
socks=[]
out=[]
for _ in range(3):
  s=socket.socket(); s.settimeout(3)
  try:
    s.connect(('127.0.0.4',80)); socks.append(s); out.append('ok')
  except OSError as e:
    out.append(errno.errorcode.get(e.errno,str(e)))
print(' '.join(out))`])).stdout.trim();
    expect(await three()).toBe("ok ok ok");
    try {
      writeFileSync(file, good.replace("agent: { run_group: nogroup }", "agent: { run_group: nogroup, max_connections_per_workload: 2 }"));
      agent!.proc.kill("SIGHUP");
      await waitFor("the kernel to hold w1 at two open connections", async () => ((await three()) === "ok ok EPERM" ? true : undefined), 10_000, 200);
      const deny = await waitFor("the kernel's connection_limit deny in the audit log", () => audit().find((l) => l.type === "deny" && l.reason === "connection_limit"));
      expect(deny).toMatchObject({ source: "kernel", rule: null, dst: { addr: "127.0.0.4", port: 80, proto: "tcp" }, src: { uid: 65534, workload: "w1", spiffe_id: "spiffe://example.org/w1" } });
      expect((await agentStatus()).capture.workload_connections.max).toBe(2);
    } finally {
      writeFileSync(file, good);
      agent!.proc.kill("SIGHUP");
    }
    await waitFor("the default bound back", async () => ((await three()) === "ok ok ok" ? true : undefined), 10_000, 200);
  }, T);

  test("a workload's listener takes no connection from another address; loopback ones still connect", async () => {
    const hostIp = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(Bun.spawnSync(["ip", "-4", "-o", "addr", "show", "scope", "global"]).stdout.toString())?.[1];
    if (hostIp === undefined) throw new Error("this test needs the host's own global IPv4 address (traffic to it stays on the host)");
    // The kernel picks the port (a fixed one could be in use as another connection's ephemeral port).
    const server = startTidegate(["run", ...nodeFlags, "--workload", "w1", "--user", "nobody", "--", "python3", "-c",
      `import socket\ns=socket.socket(); s.bind(('0.0.0.0', 0)); s.listen(8); s.settimeout(8)\nprint('listening', s.getsockname()[1], flush=True)\nwhile True:\n  try:\n    c, a = s.accept(); c.sendall(b'served'); c.close()\n  except OSError: break`], WORKLOAD_ENV);
    const port = Number(await waitFor("the workload's listener", () => /listening (\d+)/.exec(server.output())?.[1]));
    const from = (host: string) => outside(["python3", "-c", `import socket\ns=socket.socket(); s.settimeout(2)\ntry:\n  s.connect(('${host}', ${port})); print(s.recv(10).decode())\nexcept OSError as e: print(type(e).__name__)`]);
    expect(await from("127.0.0.1")).toBe("served");
    expect(await from(hostIp)).toBe("TimeoutError");
    await server.stop();
  }, T);

  test("no socket the hooks cannot judge: even a root workload gets EPERM for a raw ICMP socket, TCP and UDP still open", async () => {
    const r = await tidegate(["run", ...nodeFlags, "--workload", "w1", "--user", "root", "--allow-root", "--", "python3", "-c",
      "import socket\nfor a in ((socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP), (socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6), (socket.AF_INET, socket.SOCK_STREAM, 0), (socket.AF_INET, socket.SOCK_DGRAM, 0)):\n  try:\n    socket.socket(*a).close(); print('open')\n  except OSError as e: print(e.errno)"], { env: WORKLOAD_ENV });
    expect(r.stdout.trim().split("\n")).toEqual(["1", "1", "open", "open"]);
    const outside = Bun.spawnSync(["python3", "-c", "import socket\nsocket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close(); print('open')"]);
    expect(outside.stdout.toString().trim()).toBe("open");
  }, T);

  test("--allow-root runs a root workload, uncontained, and the agent records it; a finished run's cgroup is removed", async () => {
    const r = await tidegate(["run", ...nodeFlags, "--workload", "w1", "--user", "root", "--allow-root", "--", "id", "-u"], { env: WORKLOAD_ENV });
    expect(r.stdout).toBe("0\n");
    expect(r.stderr).toContain("uncontained");
    expect(await waitFor("workload_uncontained in the agent's log", () => agentLog().find((l) => l.event === "workload_uncontained"))).toMatchObject({ workload: "w1" });
    await waitFor("w1's cgroup to go once nothing runs in it", () => (existsSync(join(cgroupRoot, "workloads", "w1")) ? undefined : true));
  }, T);

  test("run refuses what it must: an unknown user, root without --allow-root, a caller outside the run group", async () => {
    const u = await run(["true"], { user: "no-such-user-xyz" });
    expect(u.code).toBe(1);
    expect(u.stderr).toContain("no such user");
    // refused after the agent made the cgroup: it is released at once (the sweep would take 30 s),
    // and a workload without an identity is not warned about, since nothing ran
    const w3 = await run(["true"], { workload: "w3", user: "no-such-user-xyz" });
    expect([w3.code, w3.stderr]).toEqual([1, 'tidegate run: run: no such user "no-such-user-xyz" [run_bad_user]\n']);
    await waitFor("w3's cgroup to go", () => (existsSync(join(cgroupRoot, "workloads", "w3")) ? undefined : true), 10_000);
    const r = await run(["true"], { user: "root" });
    expect(r.code).toBe(126);
    expect(r.stderr).toContain("--allow-root");
    const n = await asUser(33, ["--workload", "w1", "--", "true"]); // www-data: not in nogroup
    expect(n.code).toBe(1);
    expect(n.stderr).toContain("run.sock is for root and the members of the agent's run group");
    expect(n.stdout).toBe("");
  }, T);

  test("uninstall: the workloads are killed and no cgroup, pin or program of the instance is left", async () => {
    const ids = JSON.parse(Bun.spawnSync(["bpftool", "cgroup", "show", cgroupRoot, "-j"]).stdout.toString()).map((p: { id: number }) => p.id);
    expect(ids).toHaveLength(7); // connect4/6, sendmsg4/6, sock_create, ingress, sock_release
    const sleeper = startTidegate(["run", ...nodeFlags, "--workload", "w1", "--user", "nobody", "--", "sleep", "60"], WORKLOAD_ENV);
    await waitFor("the sleeper in its cgroup", () => (readFileSync(join(cgroupRoot, "workloads", "w1", "cgroup.procs"), "utf8").trim() !== "" ? true : undefined));
    await agent!.stop();
    const r = await tidegate(["agent", "--uninstall", ...nodeFlags]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("killed 1 process");
    expect(r.stdout).toContain("pins removed");
    await sleeper.proc.exited;
    expect(existsSync(cgroupRoot)).toBe(false);
    expect(existsSync(pinDir)).toBe(false);
    const alive = () => ids.filter((id: number) => Bun.spawnSync(["bpftool", "prog", "show", "id", String(id)]).exitCode === 0);
    await waitFor("the programs to be freed", () => (alive().length === 0 ? true : undefined), 10_000);
    agent = undefined;
  }, T);
});
