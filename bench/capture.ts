/**
 * Kernel capture benchmark (issue 6), as root, in one run on a throwaway instance
 * (`tidegate-test-bench-PID`: its cgroup, pins and a sibling cgroup `...-aux` for everything else):
 *
 * - direct connect: sequential connect()+close() from a python3 client to a server on 127.0.0.2
 *   that a DIRECT rule names, from the instance's workload cgroup (programs attached) against the
 *   same from `...-aux/off` outside the tree (no programs; nothing else differs). Two clients run
 *   --batch connects in turn (A B B A ...) until each made --connects, after --warmup untimed
 *   ones; which goes first alternates by repetition. Per repetition, the attached/detached ratios
 *   of connect() p50 and of connections per second (over a batch's own time), each the median
 *   over back-to-back batch pairs (the rate ratio over the total time is shown beside it); the
 *   medians of the repetitions' ratios are judged. Target: at most 5 % worse p50 and
 *   connections per second.
 * - redirected connect: from the workload cgroup to 127.0.0.3:9 (no rule names it: redirected to
 *   the proxy port, a listener on 127.0.0.1 and [::1] below 1024), the time from before connect()
 *   to the listener's return from accept(), both CLOCK_MONOTONIC; p50/p99 over all repetitions.
 *   Interleaved in the same way with, for reference, connects straight to that listener from
 *   outside the tree.
 * - the programs' run time per call (kernel BPF statistics, run_time_ns / run_cnt) of connect4
 *   and of sock_release (which counts a redirected socket down at its close, layout 6),
 *   over one attached direct run and one redirected run made with statistics on; the runs above
 *   are made with them off, since they add two clock reads to every program call. Target: at
 *   most 10 us per call. (There is no sockops program since layout 4: the listener finds a
 *   record by the client socket's cookie through sock_diag, which this stand-in listener skips;
 *   the bench takes the records it leaves between batches, since the record map evicts nothing.)
 *
 * The servers and this process run on one core, the client on another (when two are allowed).
 * --entries adds that many /32 deny entries to the policy maps (for the workload and nine other
 * cgroup ids), so the LPM lookups walk a trie of a realistic size.
 *
 *   taskset -c 0,1 bun bench/capture.ts [--connects 5000] [--redirects 2000] [--reps 5] [--batch 250]
 *                                       [--warmup 200] [--entries 1000]
 */
import { parseArgs } from "node:util";
import { existsSync, readdirSync, readFileSync, rmdirSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { Capture } from "../src/bpf/capture.ts";
import { closeFd, enableStats, linkInfo, openPinnedLink } from "../src/bpf/libbpf.ts";
import { MAPS, TG_ACT, TG_PROTO, type PortRule, type TgAction } from "../src/bpf/layout.ts";
import { MapHandle } from "../src/bpf/map-handle.ts";
import { lineReader } from "../test/helpers/lines.ts";
import type { LpmEntry } from "../src/bpf/lpm-entries.ts";
import { parseCidr } from "../src/policy/address.ts";
import { probeHost } from "../src/runtime/host.ts";

const P50_TARGET = 1.05;
const RATE_TARGET = 0.95;
const CALL_TARGET_NS = 10_000;
const PREFIX = "tidegate-test-bench-";
const REDIRECT_HOST = "127.0.0.3";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    connects: { type: "string", default: "5000" },
    redirects: { type: "string", default: "2000" },
    reps: { type: "string", default: "5" },
    warmup: { type: "string", default: "200" },
    entries: { type: "string", default: "1000" },
    batch: { type: "string", default: "250" },
  },
});
const [N, NR, reps, warmup, nEntries, batch] = [values.connects, values.redirects, values.reps, values.warmup, values.entries, values.batch].map(Number) as [number, number, number, number, number, number];
if (![N, NR, reps, batch].every((x) => Number.isInteger(x) && x >= 1) || !(Number.isInteger(warmup) && warmup >= 0) || !(Number.isInteger(nEntries) && nEntries >= 0 && nEntries <= 16000)) {
  throw new Error("bench: --connects, --redirects, --reps and --batch must be positive integers, --warmup >= 0, --entries 0..16000");
}
const mount = probeHost().cgroup2;
if (mount === null || process.getuid?.() !== 0) throw new Error("bench: needs root and cgroup v2");

// Client: on each line N read from stdin, N connects, then one JSON line: the batch's time and each
// connect()'s. "close" mode closes at once with SO_LINGER 0 (a reset, no TIME_WAIT: at these rates
// TIME_WAIT sockets take every even ephemeral port to the one destination within a second, and
// connect() then spends milliseconds searching for a port). "accept" mode waits for the listener
// to end the connection, and reports when each connect() began and from which local port.
const CLIENT = `import socket,sys,time,json,struct
mode,host,port=sys.argv[1],sys.argv[2],int(sys.argv[3])
fam=socket.AF_INET6 if ':' in host else socket.AF_INET
addr=(host,port); mono=time.monotonic_ns; wait=mode=='accept'; linger=struct.pack('ii',1,0)
while True:
  line=sys.stdin.readline()
  if not line: break
  lat=[]; starts=[]; ports=[]; T0=mono()
  for i in range(int(line)):
    s=socket.socket(fam,socket.SOCK_STREAM)
    if not wait: s.setsockopt(socket.SOL_SOCKET,socket.SO_LINGER,linger)
    t0=mono(); s.connect(addr); t1=mono()
    lat.append(t1-t0)
    if wait:
      starts.append(t0); ports.append(s.getsockname()[1])
      if s.recv(1)!=b'': sys.exit('unexpected data')
    s.close()
  print(json.dumps({'ns':mono()-T0,'lat':lat,'starts':starts,'ports':ports}),flush=True)`;

// Direct destination: accepts and closes.
const SERVER = `import socket
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(('127.0.0.2',0)); s.listen(4096)
print(s.getsockname()[1],flush=True)
while True:
  c,_=s.accept(); c.close()`;

// The proxy's stand-in: 127.0.0.1:P and [::1]:P, P the highest free port below 1024; records
// (accept time, peer port) and prints them, then forgets them, on each line read from stdin.
const LISTENER = `import socket,sys,selectors,json,time
def pair():
  for p in range(1023,899,-1):
    a=socket.socket(socket.AF_INET); b=socket.socket(socket.AF_INET6)
    for l in (a,b): l.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
    b.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,1)
    try:
      a.bind(('127.0.0.1',p)); b.bind(('::1',p)); return p,a,b
    except OSError:
      a.close(); b.close()
  sys.exit('no free port below 1024')
p,a,b=pair(); sel=selectors.DefaultSelector()
for l in (a,b): l.listen(4096); l.setblocking(False); sel.register(l,selectors.EVENT_READ)
sel.register(sys.stdin,selectors.EVENT_READ)
rec=[]; print(p,flush=True)
while True:
  for k,_ in sel.select():
    if k.fileobj is sys.stdin:
      if not sys.stdin.readline(): sys.exit(0)
      print(json.dumps(rec),flush=True); rec=[]
      continue
    while True:
      try: c,peer=k.fileobj.accept()
      except BlockingIOError: break
      rec.append((time.monotonic_ns(),peer[1])); c.close()`;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
const us = (ns: number, d = 1) => (ns / 1000).toFixed(d);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Kills what is in an aux cgroup tree and removes it. */
async function removeAux(dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  writeFileSync(join(dir, "cgroup.kill"), "1");
  const deadline = Date.now() + 5000;
  while (/^populated 1$/m.test(readFileSync(join(dir, "cgroup.events"), "utf8")) && Date.now() < deadline) await Bun.sleep(10);
  for (const d of readdirSync(dir, { withFileTypes: true })) if (d.isDirectory()) rmdirSync(join(dir, d.name));
  rmdirSync(dir);
}

/** Instances and aux cgroups of earlier runs whose process is gone. */
async function removeLeftovers(): Promise<void> {
  const names = new Set([...readdirSync(mount!), ...(existsSync("/sys/fs/bpf") ? readdirSync("/sys/fs/bpf") : [])].filter((d) => d.startsWith(PREFIX)));
  for (const d of names) {
    const m = /^tidegate-test-bench-(\d+)(-aux)?$/.exec(d);
    if (m === null || alive(Number(m[1]))) continue;
    if (m[2] !== undefined) await removeAux(join(mount!, d));
    else await Capture.uninstall({ mount: mount!, cgroupName: d, pinDir: join("/sys/fs/bpf", d) });
    console.error(`bench: removed leftover ${d}`);
  }
}

const allowed = (/Cpus_allowed_list:\s*(\S+)/.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? "").split(",").flatMap((r) => {
  const [lo, hi] = r.split("-").map(Number) as [number, number | undefined];
  return Array.from({ length: (hi ?? lo) - lo + 1 }, (_, i) => lo + i);
});
const serverCpu = allowed.length >= 2 ? String(allowed[0]) : null;
const clientCpu = allowed.length >= 2 ? String(allowed[1]) : null;
if (serverCpu === null) console.error("bench: warning: fewer than 2 cores allowed, client and servers share them");
else Bun.spawnSync(["taskset", "-a", "-p", "-c", serverCpu, String(process.pid)], { stdout: "ignore" });

const name = `${PREFIX}${process.pid}`;
const opts = { mount, cgroupName: name, pinDir: `/sys/fs/bpf/${name}` };
const aux = join(mount, `${name}-aux`);
const offDir = join(aux, "off");
const srvDir = join(aux, "srv");
const children: Bun.Subprocess<"pipe", "pipe", "pipe">[] = [];
let capture: Capture | null = null;
let statsFd: number | null = null;
/** tg_rec_cookie, through which the bench takes the records its stand-in listener leaves. */
let records: MapHandle | null = null;

let cleaning: Promise<void> | null = null;
const cleanup = () =>
  (cleaning ??= (async () => {
    for (const p of children) p.kill("SIGKILL");
    await Promise.all(children.map((p) => p.exited));
    if (statsFd !== null) closeFd(statsFd);
    records?.close();
    capture?.close();
    await Capture.uninstall(opts);
    await removeAux(aux);
  })());
for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => void cleanup().finally(() => process.exit(130)));

function spawnIn(dir: string, cpu: string | null, argv: string[]): Bun.Subprocess<"pipe", "pipe", "pipe"> {
  const pin = cpu === null ? "" : `taskset -c ${cpu} `;
  return Bun.spawn(["sh", "-c", `echo $$ > "$0/cgroup.procs" && exec ${pin}"$@"`, dir, ...argv], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
}

/** Lines of a child's stdout, one at a time. */
function lines(p: Bun.Subprocess<"pipe", "pipe", "pipe">): () => Promise<string> {
  return lineReader(p.stdout, async () => `bench: child ${p.pid} ended: ${await new Response(p.stderr).text()}`);
}

interface Batch {
  ns: number;
  lat: number[];
  starts: number[];
  ports: number[];
}

/** A python3 client in a cgroup, pinned to the client core, running batches on demand. */
class Client {
  private readonly p: Bun.Subprocess<"pipe", "pipe", "pipe">;
  private readonly next: () => Promise<string>;
  constructor(dir: string, mode: "close" | "accept", host: string, port: number) {
    this.p = spawnIn(dir, clientCpu, ["python3", "-c", CLIENT, mode, host, String(port)]);
    children.push(this.p);
    this.next = lines(this.p);
  }
  async run(n: number): Promise<Batch> {
    this.p.stdin.write(`${n}\n`);
    this.p.stdin.flush();
    return JSON.parse(await this.next()) as Batch;
  }
  async end(): Promise<void> {
    this.p.stdin.end();
    await this.p.exited;
  }
}

class Arm {
  readonly lat: number[] = [];
  readonly accept: number[] = [];
  /** Connects per second and connect() p50 of each batch, in order. */
  readonly rates: number[] = [];
  readonly p50s: number[] = [];
  ns = 0;
  add(b: Batch, accepts: number[]): void {
    this.lat.push(...b.lat);
    this.accept.push(...accepts);
    this.rates.push(b.lat.length / (b.ns / 1e9));
    this.p50s.push(pct(b.lat, 50));
    this.ns += b.ns;
  }
  /** Over the batches' own time. */
  get perS(): number {
    return this.lat.length / (this.ns / 1e9);
  }
}

/**
 * Attached over detached, as the median over batch pairs taken back to back: this VM's speed
 * shifts by tens of percent over seconds and stalls now and then for milliseconds, which moves
 * one pair's ratio, not the repetition's.
 */
function pairRatio(att: readonly number[], det: readonly number[]): number {
  return median(att.map((x, i) => x / det[i]!));
}

/**
 * n connects for each of two clients, in batches taken in turn (ABBA...: the machine's speed
 * drifts over seconds on this VM, a batch lasts milliseconds), after `warmup` untimed ones each.
 * With a listener, each batch's accepts are matched to its connects in order (the client waits
 * for each accept) and checked by port.
 */
async function interleave(a: Client, b: Client, n: number, dump: (() => Promise<number[][]>) | null): Promise<[Arm, Arm]> {
  const arms: [Arm, Arm] = [new Arm(), new Arm()];
  const one = async (c: Client, k: number, arm: Arm | null) => {
    const r = await c.run(k);
    const rec = dump === null ? [] : await dump();
    if (dump !== null && (rec.length !== k || rec.some((x, i) => x[1] !== r.ports[i]))) throw new Error(`bench: listener saw ${rec.length} accepts, not the client's ${k} in order`);
    arm?.add(r, rec.map((x, i) => x[0]! - r.starts[i]!));
  };
  if (warmup > 0) for (const c of [a, b]) await one(c, warmup, null);
  for (let i = 0, done = 0; done < n; i++, done += batch) {
    const k = Math.min(batch, n - done);
    for (const j of i % 2 === 0 ? [0, 1] : [1, 0]) await one(j === 0 ? a : b, k, arms[j]!);
  }
  return arms;
}

function progIds(pinDir: string): { connect4: number; sock_release: number } {
  const id = (p: string) => {
    const fd = openPinnedLink(join(pinDir, `link_${p}`));
    try {
      return linkInfo(fd).progId;
    } finally {
      closeFd(fd);
    }
  };
  return { connect4: id("tg_connect4"), sock_release: id("tg_sock_release") };
}
/** The programs whose run time is measured: the one that decides a connect, the one that counts its socket down at close. */
const PROGRAMS = ["connect4", "sock_release"] as const;
type Program = (typeof PROGRAMS)[number];
/** run_time_ns and run_cnt through bpftool (the wrapper has no bpf_prog_get_fd_by_id); absent while 0. */
function progStats(id: number): { ns: number; cnt: number } {
  const out = Bun.spawnSync(["bpftool", "prog", "show", "id", String(id), "-j"]);
  if (out.exitCode !== 0) throw new Error(`bench: bpftool prog show id ${id}: ${out.stderr.toString()}`);
  const j = JSON.parse(out.stdout.toString()) as { run_time_ns?: number; run_cnt?: number };
  return { ns: j.run_time_ns ?? 0, cnt: j.run_cnt ?? 0 };
}

try {
  await removeLeftovers();
  await Capture.uninstall(opts);
  await removeAux(aux);
  for (const d of [aux, offDir, srvDir]) mkdirSync(d);
  const statsWasOn = readFileSync("/proc/sys/kernel/bpf_stats_enabled", "utf8").trim() !== "0";
  if (statsWasOn) console.error("bench: warning: kernel.bpf_stats_enabled is already 1: the attached runs carry the statistics' cost");

  const server = spawnIn(srvDir, serverCpu, ["python3", "-c", SERVER]);
  const listener = spawnIn(srvDir, serverCpu, ["python3", "-c", LISTENER]);
  children.push(server, listener);
  const serverPort = Number(await lines(server)());
  const listenerLine = lines(listener);
  const proxyPort = Number(await listenerLine());
  // This listener takes no record, as the agent's does at each accept; between batches the bench
  // takes them instead, so that runs of any length never fill the record map (65,536, no eviction).
  const dump = async () => {
    listener.stdin.write("dump\n");
    listener.stdin.flush();
    const rec = JSON.parse(await listenerLine()) as number[][];
    records ??= MapHandle.fromPinned(join(opts.pinDir, "tg_rec_cookie"), MAPS.tg_rec_cookie.keySize, MAPS.tg_rec_cookie.valueSize);
    for (const k of records.keys()) records.delete(k);
    return rec;
  };

  capture = await Capture.open(opts);
  const w = capture.tree.ensureWorkload("bench");
  const tcp = (action: TgAction, port: number, ruleId: number): PortRule => ({ portLo: port, portHi: port, proto: TG_PROTO.TCP, action, ruleId });
  const filler = (cg: bigint, k: number): LpmEntry[] =>
    Array.from({ length: k }, (_, i) => ({ cgroupId: cg, cidr: parseCidr(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32`), rules: [tcp(TG_ACT.DENY, 443, 10)] }));
  const zero = (cg: bigint): LpmEntry[] => [
    { cgroupId: cg, cidr: parseCidr("0.0.0.0/0"), rules: [] },
    { cgroupId: cg, cidr: parseCidr("::/0"), rules: [] },
  ];
  const perCgroup = Math.floor(nEntries / 10);
  capture.syncCgroup(w.id, [...zero(w.id), { cgroupId: w.id, cidr: parseCidr("127.0.0.2/32"), rules: [tcp(TG_ACT.DIRECT, serverPort, 1)] }, ...filler(w.id, nEntries - 9 * perCgroup)]);
  for (let c = 1; c <= 9; c++) capture.syncCgroup((1n << 40n) + BigInt(c), [...zero((1n << 40n) + BigInt(c)), ...filler((1n << 40n) + BigInt(c), perCgroup)]);
  capture.setProxyPort(proxyPort);
  const ids = progIds(opts.pinDir);

  // Per repetition: attached against detached direct connects, then redirected against straight
  // to the listener; which arm goes first alternates.
  const rows: { first: string; att: Arm; det: Arm; p50Ratio: number; rateRatio: number; totalRatio: number; red: Arm; ref: Arm }[] = [];
  const pair = async (dirA: string, dirB: string, hostA: string, hostB: string, portA: number, portB: number, n: number, attFirst: boolean, withListener: boolean) => {
    const mode = withListener ? "accept" : "close";
    const a = new Client(dirA, mode, hostA, portA);
    const b = new Client(dirB, mode, hostB, portB);
    const arms = attFirst ? await interleave(a, b, n, withListener ? dump : null) : await interleave(b, a, n, withListener ? dump : null);
    await Promise.all([a.end(), b.end()]);
    return attFirst ? arms : ([arms[1], arms[0]] as const);
  };
  for (let r = 0; r < reps; r++) {
    const attFirst = r % 2 === 0;
    const [att, det] = await pair(w.dir, offDir, "127.0.0.2", "127.0.0.2", serverPort, serverPort, N, attFirst, false);
    const [red, ref] = await pair(w.dir, offDir, REDIRECT_HOST, "127.0.0.1", 9, proxyPort, NR, attFirst, true);
    const row = { first: attFirst ? "attached" : "detached", att, det, p50Ratio: pairRatio(att.p50s, det.p50s), rateRatio: pairRatio(att.rates, det.rates), totalRatio: att.perS / det.perS, red, ref };
    rows.push(row);
    console.error(
      `rep ${r + 1}/${reps}: direct p50 ${us(pct(att.lat, 50), 2)}/${us(pct(det.lat, 50), 2)} us (x${row.p50Ratio.toFixed(3)}), ${att.perS.toFixed(0)}/${det.perS.toFixed(0)} conn/s (x${row.rateRatio.toFixed(3)}); redirected accept p50 ${us(pct(red.accept, 50))} us, reference ${us(pct(ref.accept, 50))} us`,
    );
  }
  const redirected = rows.flatMap((x) => x.red.accept);
  const redirectedConnect = rows.flatMap((x) => x.red.lat);
  const reference = rows.flatMap((x) => x.ref.accept);

  // Statistics on: attached direct connects, then redirected ones; deltas per program.
  const cd = new Client(w.dir, "close", "127.0.0.2", serverPort);
  const cr = new Client(w.dir, "accept", REDIRECT_HOST, 9);
  if (warmup > 0) await Promise.all([cd.run(warmup), cr.run(warmup).then(dump)]);
  statsFd = enableStats();
  const snap = () => ({ connect4: progStats(ids.connect4), sock_release: progStats(ids.sock_release) });
  const s0 = snap();
  await cd.run(N);
  const s1 = snap();
  await cr.run(NR);
  await dump();
  const s2 = snap();
  closeFd(statsFd);
  statsFd = null;
  await Promise.all([cd.end(), cr.end()]);
  const perCall = (a: ReturnType<typeof snap>, b: ReturnType<typeof snap>, n: number) => {
    const one = (p: Program) => {
      const ns = b[p].ns - a[p].ns;
      const cnt = b[p].cnt - a[p].cnt;
      return { ns_per_call: cnt > 0 ? ns / cnt : 0, calls_per_connect: cnt / n, ns_per_connect: ns / n };
    };
    return { connect4: one("connect4"), sock_release: one("sock_release") };
  };
  const stats = { direct: perCall(s0, s1, N), redirected: perCall(s1, s2, NR) };
  const worstCall = Math.max(...Object.values(stats).flatMap((s) => PROGRAMS.map((p) => s[p].ns_per_call)));

  const p50Ratio = median(rows.map((x) => x.p50Ratio));
  const rateMedian = median(rows.map((x) => x.rateRatio));
  const met = { direct_p50: p50Ratio <= P50_TARGET, direct_rate: rateMedian >= RATE_TARGET, per_call: worstCall <= CALL_TARGET_NS };
  const f = (x: number, d = 2) => Number(x.toFixed(d));
  console.log(
    JSON.stringify({
      bench: "capture",
      bun: Bun.version,
      kernel: readFileSync("/proc/sys/kernel/osrelease", "utf8").trim(),
      cpus: { server: serverCpu, client: clientCpu },
      connects: N,
      redirects: NR,
      reps,
      warmup,
      entries: nEntries,
      proxy_port: proxyPort,
      direct: rows.map((x) => ({ first: x.first, attached_p50_us: f(pct(x.att.lat, 50) / 1e3), detached_p50_us: f(pct(x.det.lat, 50) / 1e3), p50_ratio: f(x.p50Ratio, 4), attached_per_s: Math.round(x.att.perS), detached_per_s: Math.round(x.det.perS), rate_ratio: f(x.rateRatio, 4), rate_ratio_total_time: f(x.totalRatio, 4) })),
      direct_p50_ratio: f(p50Ratio, 4),
      direct_rate_ratio: f(rateMedian, 4),
      redirected_accept_us: { p50: f(pct(redirected, 50) / 1e3), p99: f(pct(redirected, 99) / 1e3) },
      redirected_connect_us: { p50: f(pct(redirectedConnect, 50) / 1e3), p99: f(pct(redirectedConnect, 99) / 1e3) },
      reference_accept_us: { p50: f(pct(reference, 50) / 1e3), p99: f(pct(reference, 99) / 1e3) },
      bpf_stats: stats,
      targets: { direct_p50_ratio_max: P50_TARGET, direct_rate_ratio_min: RATE_TARGET, ns_per_call_max: CALL_TARGET_NS },
      met,
    }),
  );

  const ok = (b: boolean) => (b ? "met" : "MISSED");
  const table: [string, string][] = [
    ["direct connect() p50, attached / detached (median)", `${us(median(rows.map((x) => pct(x.att.lat, 50))), 2)} / ${us(median(rows.map((x) => pct(x.det.lat, 50))), 2)} us`],
    ["  ratio per rep: median of batch pairs", rows.map((x) => x.p50Ratio.toFixed(3)).join(", ")],
    ["direct connects/s over batch time, attached / detached (median)", `${median(rows.map((x) => x.att.perS)).toFixed(0)} / ${median(rows.map((x) => x.det.perS)).toFixed(0)}`],
    ["  ratio per rep: median of batch pairs (of total time)", rows.map((x) => `${x.rateRatio.toFixed(3)} (${x.totalRatio.toFixed(3)})`).join(", ")],
    [`target: p50 at most ${((P50_TARGET - 1) * 100).toFixed(0)} % worse (median ratio ${p50Ratio.toFixed(3)})`, ok(met.direct_p50)],
    [`target: conn/s at most ${((1 - RATE_TARGET) * 100).toFixed(0)} % worse (median ratio ${rateMedian.toFixed(3)})`, ok(met.direct_rate)],
    [`redirected connect() to accept, p50 / p99 (${redirected.length})`, `${us(pct(redirected, 50))} / ${us(pct(redirected, 99))} us`],
    ["  its connect() alone, p50 / p99", `${us(pct(redirectedConnect, 50))} / ${us(pct(redirectedConnect, 99))} us`],
    ["  reference: straight to the listener, detached, p50 / p99", `${us(pct(reference, 50))} / ${us(pct(reference, 99))} us`],
  ];
  for (const [k, s] of Object.entries(stats)) {
    for (const p of PROGRAMS) {
      table.push([`${p} per call, ${k} (calls per connect)`, `${s[p].ns_per_call.toFixed(0)} ns (${s[p].calls_per_connect.toFixed(2)}; ${s[p].ns_per_connect.toFixed(0)} ns per connect)`]);
    }
  }
  table.push([`target: at most ${CALL_TARGET_NS / 1000} us per program call (worst ${worstCall.toFixed(0)} ns)`, ok(met.per_call)]);
  const width = Math.max(...table.map((r) => r[0].length));
  console.log(`kernel capture, client on CPU ${clientCpu ?? "any"}, servers on CPU ${serverCpu ?? "any"}, bun ${Bun.version}, ${N} direct and ${NR} redirected connects x ${reps} reps, ${nEntries} extra LPM entries`);
  for (const [k, v] of table) console.log(`${k.padEnd(width)}  ${v}`);
} finally {
  await cleanup();
}
