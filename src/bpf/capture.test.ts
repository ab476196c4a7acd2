// Capture on the real kernel (root; CI runs it): install, a deny and a direct from a process in a
// workload cgroup, the deny event, redirected connections found by their socket cookie (IPv4,
// IPv6, v4-mapped), adoption after close, a foreign layout refused, uninstall leaving nothing
// behind.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import { chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, rmdirSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { probeHost } from "../runtime/host.ts";
import { parseCidr, parseIp } from "../policy/address.ts";
import { Capture, CaptureError } from "./capture.ts";
import { MapHandle } from "./libbpf.ts";
import { decodeRecord, encodeSettings, MAPS, TG_ACT, TG_PROTO, u32Key, u64Key, type TgEvent } from "./layout.ts";
import type { CaptureRecord } from "../proxy/egress-listener.ts";
import { SockDiag } from "../runtime/sock-diag.ts";
import { parseStartTime } from "../attest/proc-text.ts";
import { lineReader } from "../../test/helpers/lines.ts";
import { waitFor } from "../../test/helpers/processes.ts";

const mount = probeHost().cgroup2;
const root = process.getuid?.() === 0;
const run = mount !== null && root;
if (!run && !process.env.CI) console.warn("capture.test: skipped (needs root and cgroup v2)");
const name = `tidegate-test-capture-${process.pid}`;
const opts = { mount: mount ?? "/nonexistent", cgroupName: name, pinDir: `/sys/fs/bpf/${name}` };

function removeLeftovers(): void {
  if (mount === null) return;
  for (const d of readdirSync(mount)) {
    if (!d.startsWith("tidegate-test-capture-")) continue;
    const dir = join(mount, d);
    for (const w of existsSync(join(dir, "workloads")) ? readdirSync(join(dir, "workloads")) : []) rmdirSync(join(dir, "workloads", w));
    if (existsSync(join(dir, "workloads"))) rmdirSync(join(dir, "workloads"));
    rmdirSync(dir);
  }
  if (existsSync("/sys/fs/bpf")) for (const d of readdirSync("/sys/fs/bpf")) if (d.startsWith("tidegate-test-capture-")) rmSync(join("/sys/fs/bpf", d), { recursive: true, force: true });
}

async function connectFrom(cgroupDir: string, host: string, port: number): Promise<string> {
  const py = `import socket,errno\ns=socket.socket(socket.AF_INET6 if ':' in '${host}' else socket.AF_INET)\ns.settimeout(2)\ntry:\n  s.connect(('${host}',${port}))\n  print('ok')\nexcept OSError as e:\n  print(errno.errorcode.get(e.errno,str(e)))`;
  const p = Bun.spawn(["sh", "-c", `echo $$ > ${cgroupDir}/cgroup.procs && exec python3 -c "$0"`, py], { stdout: "pipe", stderr: "pipe" });
  const out = (await new Response(p.stdout).text()).trim();
  await p.exited;
  return out;
}

/** A TCP client in `cgroupDir` that connects to `host`:80, prints its pid, then waits for the far end to close. */
async function redirectFrom(cgroupDir: string, host: string): Promise<{ pid: number; out: string }> {
  const py = `import socket,os\ns=socket.socket(socket.AF_INET6 if ':' in '${host}' else socket.AF_INET)\ns.settimeout(5)\ns.connect(('${host}',80))\nprint(os.getpid(),flush=True)\nprint('ok' if s.recv(1)==b'' else 'data')`;
  const p = Bun.spawn(["sh", "-c", `echo $$ > ${cgroupDir}/cgroup.procs && exec python3 -c "$0"`, py], { stdout: "pipe", stderr: "pipe" });
  const [out, err] = [(await new Response(p.stdout).text()).trim(), (await new Response(p.stderr).text()).trim()];
  await p.exited;
  return { pid: p.pid, out: err === "" ? out : `${out} ${err}` };
}

/**
 * A python3 process in `cgroupDir` that holds TCP sockets to 127.0.0.9:80 open, told what to do a
 * line at a time: `open N` connects N more (answering ok or the errno of each), `close N` closes
 * the N last; `end` (or stdin's end) exits, closing the rest.
 */
function holder(cgroupDir: string): { say(line: string): Promise<string>; end(): Promise<void> } {
  const py = `import socket,errno,sys
socks=[]
def one():
  s=socket.socket(); s.settimeout(2)
  try:
    s.connect(('127.0.0.9',80)); socks.append(s); return 'ok'
  except OSError as e:
    s.close(); return errno.errorcode.get(e.errno,str(e))
for line in sys.stdin:
  cmd,_,n=line.strip().partition(' ')
  if cmd=='open': print(' '.join(one() for _ in range(int(n))),flush=True)
  elif cmd=='close':
    for _ in range(int(n)): socks.pop().close()
    print('closed',flush=True)
  else: break`;
  const p = Bun.spawn(["sh", "-c", `echo $$ > ${cgroupDir}/cgroup.procs && exec python3 -c "$0"`, py], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  const line = lineReader(p.stdout, async () => `the holder exited (${await p.exited}) before answering`);
  let ended = false;
  return {
    say: async (l) => {
      p.stdin.write(`${l}\n`);
      p.stdin.flush();
      return line();
    },
    end: async () => {
      if (ended) return;
      ended = true;
      p.stdin.end();
      await p.exited;
    },
  };
}

/** A stand-in egress listener on 127.0.0.1 and [::1] at one port (the proxy address capture installs). */
function listenPair(socket: { open(s: Socket<undefined>): void; data(): void }): { port: number; stop(): void } {
  for (let tries = 0; ; tries++) {
    const v4 = Bun.listen<undefined>({ hostname: "127.0.0.1", port: 0, socket });
    try {
      const v6 = Bun.listen<undefined>({ hostname: "::1", port: v4.port, socket });
      return { port: v4.port, stop: () => (v4.stop(true), v6.stop(true)) };
    } catch (e) {
      v4.stop(true);
      if (tries > 20) throw e;
    }
  }
}

describe.skipIf(!run)("capture on the real kernel", () => {
  let capture: Capture;
  let listener: { port: number; stop(force?: boolean): void } | null = null;
  let programIds: number[] = [];
  beforeAll(async () => {
    removeLeftovers();
    await Capture.uninstall(opts);
    capture = await Capture.open(opts);
  });
  afterAll(async () => {
    listener?.stop(true);
    capture?.close();
    await Capture.uninstall(opts);
  });

  test("installs: pins for every map and link, programs attached to the instance root", () => {
    expect(capture.adopted).toBe(false);
    expect(readdirSync(opts.pinDir).sort()).toEqual([...Object.keys(MAPS), "link_tg_connect4", "link_tg_connect6", "link_tg_ingress", "link_tg_sendmsg4", "link_tg_sendmsg6", "link_tg_sock_create", "link_tg_sock_release"].sort());
    expect(readdirSync(opts.pinDir)).not.toContain("tg_rec_peer");
    const shown = JSON.parse(Bun.spawnSync(["bpftool", "cgroup", "show", capture.tree.root, "-j"]).stdout.toString()) as { id: number; attach_type: string }[];
    expect(shown.map((p) => p.attach_type).sort()).toEqual(["cgroup_inet4_connect", "cgroup_inet6_connect", "cgroup_inet_ingress", "cgroup_inet_sock_create", "cgroup_inet_sock_release", "cgroup_udp4_sendmsg", "cgroup_udp6_sendmsg"]);
    programIds = shown.map((p) => p.id);
  });

  test("a workload's deny range fails with EPERM at once and queues an event; a direct range connects", async () => {
    const l = Bun.listen({ hostname: "127.0.0.2", port: 0, socket: { data() {}, open(s) { s.end(); } } });
    listener = l;
    const w = capture.tree.ensureWorkload("w1");
    capture.syncCgroup(w.id, [
      { cgroupId: w.id, cidr: parseCidr("0.0.0.0/0"), rules: [] },
      { cgroupId: w.id, cidr: parseCidr("::/0"), rules: [] },
      { cgroupId: w.id, cidr: parseCidr("10.255.255.1/32"), rules: [{ portLo: 1, portHi: 65535, proto: TG_PROTO.TCP, action: TG_ACT.DENY, ruleId: 3 }] },
      { cgroupId: w.id, cidr: parseCidr("127.0.0.2/32"), rules: [{ portLo: l.port, portHi: l.port, proto: TG_PROTO.TCP, action: TG_ACT.DIRECT, ruleId: 4 }] },
    ]);
    expect(await connectFrom(w.dir, "10.255.255.1", 9)).toBe("EPERM");
    expect(await connectFrom(w.dir, "127.0.0.2", l.port)).toBe("ok");
    const events: TgEvent[] = [];
    capture.drainEvents((e) => events.push(e));
    expect(events.map((e) => [e.address.text, e.port, e.ruleId, e.cgroupId])).toEqual([["10.255.255.1", 9, 3, w.id]]);
    expect(capture.counters().deny).toBeGreaterThanOrEqual(1n);
  }, 20_000);

  test("no proxy yet: a connection no rule names is denied (redirect needs a listener port)", async () => {
    const w = capture.tree.ensureWorkload("w1");
    expect(capture.proxyPort).toBe(0);
    expect(await connectFrom(w.dir, "127.0.0.9", 80)).toBe("EPERM");
  }, 20_000);

  test("a resync replaces the cgroup's entries: the deny is gone, the direct stays", async () => {
    const w = capture.tree.ensureWorkload("w1");
    capture.syncCgroup(w.id, [
      { cgroupId: w.id, cidr: parseCidr("0.0.0.0/0"), rules: [] },
      { cgroupId: w.id, cidr: parseCidr("127.0.0.2/32"), rules: [{ portLo: listener!.port, portHi: listener!.port, proto: TG_PROTO.TCP, action: TG_ACT.DIRECT, ruleId: 4 }] },
    ]);
    const v4 = MapHandle.fromPinned(join(opts.pinDir, "tg_policy4"), MAPS.tg_policy4.keySize, MAPS.tg_policy4.valueSize);
    const v6 = MapHandle.fromPinned(join(opts.pinDir, "tg_policy6"), MAPS.tg_policy6.keySize, MAPS.tg_policy6.valueSize);
    expect(v4.keys().length).toBe(2);
    expect(v6.keys().length).toBe(0);
    v4.close();
    v6.close();
    capture.removeCgroup(w.id);
    const again = MapHandle.fromPinned(join(opts.pinDir, "tg_policy4"), MAPS.tg_policy4.keySize, MAPS.tg_policy4.valueSize);
    expect(again.keys().length).toBe(0);
    again.close();
  });

  test("a redirected connection's record is found by its client socket's cookie, once: IPv4, IPv6, v4-mapped", async () => {
    const w = capture.tree.ensureWorkload("w3");
    capture.syncCgroup(w.id, [
      { cgroupId: w.id, cidr: parseCidr("0.0.0.0/0"), rules: [] },
      { cgroupId: w.id, cidr: parseCidr("::/0"), rules: [] },
    ]);
    // The oracle: the record's own cookie field, which connect4/6 wrote from bpf_get_socket_cookie.
    const records = MapHandle.fromPinned(join(opts.pinDir, "tg_rec_cookie"), MAPS.tg_rec_cookie.keySize, MAPS.tg_rec_cookie.valueSize);
    const diag = SockDiag.open();
    const seen: { peer: string; cookie: bigint | null; stored: bigint | null; record: CaptureRecord | null; again: CaptureRecord | null; procStart: number | null }[] = [];
    const l = listenPair({
      open(sock) {
        const peer = { address: parseIp(sock.remoteAddress), port: sock.remotePort };
        const local = { address: parseIp(sock.localAddress), port: sock.localPort };
        const cookie = diag.cookie(peer, local);
        const raw = cookie === null ? null : records.lookup(u64Key(cookie));
        const record = capture.lookupPeer(peer, local);
        // the caller waits for this end to close, so its /proc entry is still there
        const procStart = record === null ? null : parseStartTime(readFileSync(`/proc/${record.tgid}/stat`, "utf8"));
        seen.push({ peer: peer.address.text, cookie, stored: raw === null ? null : decodeRecord(raw).cookie, record, again: capture.lookupPeer(peer, local), procStart });
        sock.end();
      },
      data() {},
    });
    try {
      capture.setProxyPort(l.port);
      const cases = [
        { host: "127.0.0.9", dst: "127.0.0.9", peer: "127.0.0.1" },
        { host: "2001:db8::9", dst: "2001:db8::9", peer: "::1" },
        { host: "::ffff:127.0.0.9", dst: "127.0.0.9", peer: "127.0.0.1" }, // an IPv6 socket to a v4-mapped address
      ];
      for (const c of cases) {
        seen.length = 0;
        const r = await redirectFrom(w.dir, c.host);
        expect(r.out).toBe(`${r.pid}\nok`);
        expect(seen.length).toBe(1);
        const s = seen[0]!;
        expect(s.peer).toBe(c.peer);
        expect(typeof s.cookie).toBe("bigint");
        expect(s.stored).toBe(s.cookie);
        expect(s.record).toMatchObject({ port: 80, proto: "tcp", tgid: r.pid, uid: 0, cgroupId: w.id });
        // the kernel's start time of the caller, as /proc/PID/stat field 22 shows it
        expect(typeof s.record?.startTime).toBe("number");
        expect(s.record?.startTime).toBe(s.procStart!);
        expect(s.record?.address.text).toBe(c.dst);
        expect(s.again).toBeNull();
      }
      // A connection from outside the tree reaches the listener unredirected: no record.
      seen.length = 0;
      const direct = await Bun.connect({ hostname: "127.0.0.1", port: l.port, socket: { data() {} } });
      const deadline = Date.now() + 2000;
      while (seen.length === 0 && Date.now() < deadline) await Bun.sleep(10);
      direct.end();
      expect(seen.map((s) => [typeof s.cookie, s.stored, s.record])).toEqual([["bigint", null, null]]);
    } finally {
      l.stop();
      diag.close();
      records.close();
      capture.setProxyPort(0);
      capture.removeCgroup(w.id);
    }
  }, 30_000);

  test("a workload holds at most max_open redirected sockets: the next connect is EPERM with an event, a closed one frees its place, another workload is not touched; a record goes at close only if its connection never reached the proxy", async () => {
    const a = capture.tree.ensureWorkload("w-many");
    const b = capture.tree.ensureWorkload("w-other");
    for (const w of [a, b]) capture.syncCgroup(w.id, [{ cgroupId: w.id, cidr: parseCidr("0.0.0.0/0"), rules: [] }]);
    const records = MapHandle.fromPinned(join(opts.pinDir, "tg_rec_cookie"), MAPS.tg_rec_cookie.keySize, MAPS.tg_rec_cookie.valueSize);
    const recordsOf = (id: bigint) => records.keys().filter((k) => {
      const raw = records.lookup(k);
      return raw !== null && decodeRecord(raw).cgroupId === id;
    }).length;
    // This listener takes no record (the proxy takes each at accept): they stay to be counted.
    const l = listenPair({ open() {}, data() {} });
    const before = capture.counters().record_limit;
    capture.drainEvents(() => {});
    const many = holder(a.dir);
    try {
      capture.setProxyPort(l.port);
      capture.setMaxOpen(3);
      expect(capture.maxOpen).toBe(3);
      expect(await many.say("open 5")).toBe("ok ok ok EPERM EPERM");
      expect(capture.openCount(a.id)).toBe(3n);
      expect(recordsOf(a.id)).toBe(3); // the refused two stored none
      // another workload connects while the first is at its bound
      expect(await connectFrom(b.dir, "127.0.0.9", 80)).toBe("ok");
      expect(capture.openCount(b.id)).toBe(0n); // its one socket closed with its process
      expect(recordsOf(b.id)).toBe(1); // it reached the listener: its record waits there to be taken
      // a socket closed frees its place; refused ones never took one
      expect(await many.say("close 1")).toBe("closed");
      expect(capture.openCount(a.id)).toBe(2n);
      expect(await many.say("open 2")).toBe("ok EPERM");
      const events: TgEvent[] = [];
      capture.drainEvents((e) => events.push(e));
      expect(events.filter((e) => e.cgroupId === a.id).map((e) => [e.reason, e.ruleId, e.address.text, e.port])).toEqual(Array(3).fill([5, null, "127.0.0.9", 80]));
      expect(events.filter((e) => e.cgroupId === b.id)).toEqual([]);
      expect(capture.counters().record_limit - before).toBe(3n);
      // the bound raised: the same workload gets one more
      capture.setMaxOpen(4);
      expect(await many.say("open 2")).toBe("ok EPERM");
      expect(capture.openCount(a.id)).toBe(4n);
      expect(recordsOf(a.id)).toBe(5);
      // Connections that never reach a listener: counted while open, their records gone at close.
      expect(await many.say("close 4")).toBe("closed");
      expect(capture.openCount(a.id)).toBe(0n);
      l.stop();
      expect(await many.say("open 2")).toBe("ECONNREFUSED ECONNREFUSED");
      expect(capture.openCount(a.id)).toBe(0n);
      expect(recordsOf(a.id)).toBe(5);
    } finally {
      await many.end();
      l.stop();
      records.close();
      capture.setProxyPort(0);
      capture.setMaxOpen(1024);
      capture.removeCgroup(a.id);
      capture.removeCgroup(b.id);
    }
    expect(capture.openCount(a.id)).toBe(0n);
  }, 30_000);

  test("after close the pins stay and a new agent adopts them", async () => {
    capture.setProxyPort(1001);
    capture.close();
    capture = await Capture.open(opts);
    expect(capture.adopted).toBe(true);
    expect(capture.proxyPort).toBe(1001);
  });

  test("pins of another layout version (3: the one with sockops) are refused, naming what to do", async () => {
    const s = MapHandle.fromPinned(join(opts.pinDir, "tg_settings"), MAPS.tg_settings.keySize, MAPS.tg_settings.valueSize);
    s.update(u32Key(0), encodeSettings({ layoutVersion: 3, proxyPort: 0, proxy4: parseIp("127.0.0.1"), proxy6: parseIp("::1"), maxOpen: 0 }));
    s.close();
    const err = await Capture.open(opts).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(CaptureError);
    expect((err as CaptureError).code).toBe("capture_pins_foreign");
    expect((err as Error).message).toContain("layout version 3, this agent has 6");
    expect((err as Error).message).toContain("tidegate agent --uninstall");
  });

  test("uninstall kills what is left, detaches and removes every pin and cgroup", async () => {
    const w = capture.tree.ensureWorkload("w2");
    const sleeper = Bun.spawn(["sh", "-c", `echo $$ > ${w.dir}/cgroup.procs && exec sleep 60`]);
    await waitFor("the sleeper in w2's cgroup", () => (readFileSync(join(w.dir, "cgroup.procs"), "utf8").trim() !== "" ? true : undefined), 5000, 10);
    capture.close();
    const r = await Capture.uninstall(opts);
    expect(r.killed).toBe(1);
    expect(await sleeper.exited).not.toBe(0);
    expect(existsSync(opts.pinDir)).toBe(false);
    expect(existsSync(join(mount!, name))).toBe(false);
    // The kernel frees a program once its last link is gone, from a work queue: poll with a deadline.
    const alive = () => programIds.filter((id) => Bun.spawnSync(["bpftool", "prog", "show", "id", String(id)]).exitCode === 0);
    const deadline = Date.now() + 5000;
    while (alive().length > 0 && Date.now() < deadline) await Bun.sleep(50);
    expect(alive()).toEqual([]);
    capture = await Capture.open(opts);
  }, 20_000);
});

// bpffs is mounted 1777 (sticky, world-writable): any local user may make a folder or a symlink at
// the pin folder's path before the agent first runs. A folder of theirs would let them unlink the
// pinned links (detaching every program: fail open); a symlink would make root chmod, fill or,
// on uninstall, empty whatever folder it points to.
describe.skipIf(!run)("a pin folder a local user made first", () => {
  const other = { ...opts, cgroupName: `${name}-planted`, pinDir: `/sys/fs/bpf/${name}-planted` };
  const attached = () => JSON.parse(Bun.spawnSync(["bpftool", "cgroup", "show", join(mount!, other.cgroupName), "-j"]).stdout.toString().trim() || "[]") as unknown[];
  afterAll(async () => {
    rmSync(other.pinDir, { recursive: true, force: true });
    await Capture.uninstall(other).catch(() => undefined);
    rmSync(other.pinDir, { recursive: true, force: true });
  });

  test("a folder of another user's is refused before anything is pinned or attached", async () => {
    mkdirSync(other.pinDir, { mode: 0o755 });
    chownSync(other.pinDir, 65534, 65534);
    const err = await Capture.open(other).then((c) => (c.close(), null), (e: unknown) => e);
    expect(err).toBeInstanceOf(CaptureError);
    expect((err as CaptureError).code).toBe("capture_pins_foreign");
    expect((err as Error).message).toContain("belongs to uid 65534");
    expect(readdirSync(other.pinDir)).toEqual([]);
    expect(attached()).toEqual([]);
    rmdirSync(other.pinDir);
  });

  test("a symlink is refused: the folder it points to is neither chmodded nor, on uninstall, emptied", async () => {
    const target = mkdtempSync(join(tmpdir(), "tidegate-test-pin-target-"));
    try {
      writeFileSync(join(target, "precious"), "made-up\n");
      const mode = statSync(target).mode & 0o7777;
      symlinkSync(target, other.pinDir);
      const err = await Capture.open(other).then((c) => (c.close(), null), (e: unknown) => e);
      expect(err).toBeInstanceOf(CaptureError);
      expect((err as Error).message).toContain("symbolic link");
      expect(statSync(target).mode & 0o7777).toBe(mode);
      const gone = await Capture.uninstall(other).then(() => null, (e: unknown) => e);
      expect(gone).toBeInstanceOf(CaptureError);
      expect(readdirSync(target)).toEqual(["precious"]);
      expect(lstatSync(other.pinDir).isSymbolicLink()).toBe(true);
    } finally {
      rmSync(other.pinDir, { force: true });
      rmSync(target, { recursive: true, force: true });
    }
  });
});
