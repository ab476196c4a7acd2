/**
 * libbpf through bun:ffi against the real kernel (STYLE.md point 8): bpf/tidegate.bpf.o is loaded,
 * tg_connect4 attached to a test cgroup, a link and maps pinned in bpffs, and a process moved into
 * the cgroup is denied a connect, which shows up as one decoded tg_event. Needs root and cgroup2;
 * without them the tests are skipped with a reason, except under CI where they fail.
 *
 * Every kernel object is named tidegate-test-ffi-PID-RANDOM and removed in afterAll (leftovers of
 * dead runs are removed first).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { parseIp } from "../policy/address.ts";
import { findCgroup2, parseMounts } from "../runtime/host.ts";
import {
  BPF_LINK_TYPE_CGROUP,
  BpfError,
  type BpfErrorCode,
  closeFd,
  enableStats,
  libbpfVersion,
  linkInfo,
  MapHandle,
  mountBpffsIfNeeded,
  objGet,
  openObject,
  openPinnedLink,
  programInfo,
  RingBuffer,
  type BpfLink,
  type BpfObject,
} from "./libbpf.ts";
import {
  decodeEvent,
  decodePolicyKey,
  decodePolicyValue,
  decodeSettings,
  encodePolicyKey,
  encodePolicyValue,
  encodeSettings,
  MAPS,
  PROGRAMS,
  readCounters,
  TG_HOOK,
  TG_LAYOUT_VERSION,
  TG_REASON,
  u32Key,
  u64Key,
  type TgEvent,
} from "./layout.ts";
import { tidegateObject } from "./object.ts";
import { errorOf } from "../../test/shim.ts";

const BPFFS = "/sys/fs/bpf";
const PREFIX = "tidegate-test-ffi-";
const cgroup2 = findCgroup2(parseMounts(readFileSync("/proc/self/mounts", "utf8")));
const why = process.getuid?.() !== 0 ? "not root" : cgroup2 === null ? "no cgroup2 mount" : null;
const skip = why !== null && process.env.CI === undefined;
if (skip) console.error(`libbpf.test.ts: skipped: ${why} (under CI this is a failure)`);

function expectBpfError(fn: () => unknown, code: BpfErrorCode, errno: number, op: string): BpfError {
  const e = errorOf(fn, BpfError);
  expect({ code: e.code, errno: e.errno, op: e.op }).toEqual({ code, errno, op });
  expect(e.message).toStartWith("bpf: ");
  return e;
}

function alive(pid: number): boolean {
  return existsSync(`/proc/${pid}`);
}

/** Pins and cgroups of earlier runs whose process is gone. */
function removeLeftovers(): void {
  const dead = (name: string) => name.startsWith(PREFIX) && !alive(Number(name.slice(PREFIX.length).split("-")[0]));
  if (existsSync(BPFFS)) for (const n of readdirSync(BPFFS).filter(dead)) rmSync(`${BPFFS}/${n}`, { recursive: true, force: true });
  if (cgroup2 !== null) {
    for (const n of readdirSync(cgroup2).filter(dead)) {
      try {
        rmdirSync(`${cgroup2}/${n}`);
      } catch {
        // still has processes: left for a later run
      }
    }
  }
}

describe.skipIf(skip)("libbpf against the kernel", () => {
  const tag = `${PREFIX}${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const pinDir = `${BPFFS}/${tag}`;
  const cgDir = `${cgroup2}/${tag}`;
  let obj: BpfObject;
  let cgFd = -1;
  let cgroupId = 0n;
  const links: BpfLink[] = [];
  const handles: MapHandle[] = [];
  const rings: RingBuffer[] = [];
  const fds: number[] = [];

  beforeAll(async () => {
    removeLeftovers();
    mountBpffsIfNeeded(BPFFS);
    mkdirSync(pinDir, { mode: 0o700 });
    mkdirSync(cgDir);
    cgFd = openSync(cgDir, "r");
    cgroupId = statSync(cgDir, { bigint: true }).ino;
    obj = openObject(await tidegateObject(), "tidegate");
    obj.load();
  });

  afterAll(() => {
    const steps: (() => void)[] = [
      ...rings.map((r) => () => r.close()),
      ...handles.map((h) => () => h.close()),
      ...fds.map((fd) => () => closeFd(fd)),
      ...links.map((l) => () => l.destroy()),
      () => obj?.close(),
      () => rmSync(pinDir, { recursive: true, force: true }),
      () => cgFd >= 0 && closeSync(cgFd),
      () => existsSync(cgDir) && rmdirSync(cgDir),
    ];
    for (const step of steps) {
      try {
        step();
      } catch (e) {
        console.error(`libbpf.test.ts: cleanup step failed: ${String(e)}`);
      }
    }
  });

  test("libbpf 1.x is loaded and the object has every program and map of the contract", () => {
    expect(libbpfVersion()).toMatch(/^1\.\d+$/);
    for (const [name, section] of Object.entries(PROGRAMS)) {
      const p = obj.program(name);
      expect({ name: p.name, section: p.section }).toEqual({ name, section });
      expect(p.fd()).toBeGreaterThan(2);
    }
    for (const [name, spec] of Object.entries(MAPS)) {
      const m = obj.map(name);
      expect({ name, type: m.type, keySize: m.keySize, valueSize: m.valueSize, maxEntries: m.maxEntries }).toEqual({ name, ...spec });
      expect(m.fd()).toBeGreaterThan(2);
    }
  });

  test("names that are not in the object, and pins that do not exist, are bpf_not_found", () => {
    expectBpfError(() => obj.program("tg_nope"), "bpf_not_found", 2, "bpf_object__find_program_by_name");
    expectBpfError(() => obj.map("tg_nope"), "bpf_not_found", 2, "bpf_object__find_map_by_name");
    expectBpfError(() => objGet(`${pinDir}/absent`), "bpf_not_found", 2, "bpf_obj_get");
    expectBpfError(() => openPinnedLink(`${pinDir}/absent`), "bpf_not_found", 2, "bpf_obj_get");
    expectBpfError(() => MapHandle.fromPinned(`${pinDir}/absent`, 4, 28), "bpf_not_found", 2, "bpf_obj_get");
  });

  test("tg_connect4 attaches to the test cgroup; its pinned link reopens and names the program and cgroup", () => {
    const prog = obj.program("tg_connect4");
    const link = prog.attachCgroup(cgFd);
    links.push(link);
    link.pin(`${pinDir}/link_connect4`);
    const fd = openPinnedLink(`${pinDir}/link_connect4`);
    fds.push(fd);
    const info = linkInfo(fd);
    expect(info.type).toBe(BPF_LINK_TYPE_CGROUP);
    expect(info.attachType).toBe(10); // BPF_CGROUP_INET4_CONNECT
    expect(info.cgroupId).toBe(cgroupId);
    expect(info.progId).toBe(programInfo(prog.fd()).id);
    expect(programInfo(prog.fd()).name).toBe("tg_connect4");
    expectBpfError(() => prog.attachCgroup(-1), "bpf_attach", 9, "bpf_program__attach_cgroup");
    expectBpfError(() => link.pin(`${pinDir}/link_connect4_again`), "bpf_pin", 16, "bpf_link__pin"); // EBUSY: already pinned
  });

  test("a pinned map reopens with its sizes checked; tg_settings written through the pin reads back through the object", () => {
    obj.map("tg_settings").pin(`${pinDir}/tg_settings`);
    expectBpfError(() => openPinnedLink(`${pinDir}/tg_settings`), "bpf_pin", 22, "bpf_obj_get");
    expectBpfError(() => MapHandle.fromPinned(`${pinDir}/tg_settings`, 4, 28), "bpf_map", 0, "bpf_obj_get_info_by_fd");
    const pinned = MapHandle.fromPinned(`${pinDir}/tg_settings`, 4, 32);
    const fromObject = MapHandle.fromMap(obj.map("tg_settings"));
    handles.push(pinned, fromObject);
    expect(pinned.fd).not.toBe(fromObject.fd);
    const settings = { proxyPort: 15001, proxy4: parseIp("127.0.0.1"), proxy6: parseIp("::1"), maxOpen: 7 };
    pinned.update(u32Key(0), encodeSettings(settings));
    expect(decodeSettings(fromObject.lookup(u32Key(0))!)).toEqual({ layoutVersion: TG_LAYOUT_VERSION, ...settings });
    expectBpfError(() => pinned.update(u32Key(0), new Uint8Array(31)), "bpf_map", 0, "bpf_map_update_elem");
    expect(pinned.lookup(u32Key(1))).toBeNull(); // past the array's end: ENOENT
    obj.map("tg_settings").unpin(`${pinDir}/tg_settings`);
    expect(existsSync(`${pinDir}/tg_settings`)).toBe(false);
  });

  test("policy entries: write, read, walk the keys, delete", () => {
    const policy = MapHandle.fromMap(obj.map("tg_policy4"));
    handles.push(policy);
    const wide = encodePolicyKey({ cgroupId: 99n, address: parseIp("0.0.0.0"), prefixLen: 0 });
    const narrow = encodePolicyKey({ cgroupId: 99n, address: parseIp("10.1.0.0"), prefixLen: 16 });
    const rules = [{ portLo: 80, portHi: 90, proto: 6 as const, action: 2 as const, ruleId: 4 }];
    policy.update(wide, encodePolicyValue([]));
    policy.update(narrow, encodePolicyValue(rules), "noexist");
    expectBpfError(() => policy.update(narrow, encodePolicyValue(rules), "noexist"), "bpf_map", 17, "bpf_map_update_elem");
    expect(decodePolicyValue(policy.lookup(narrow)!)).toEqual(rules);
    const keys = policy.keys().map((k) => decodePolicyKey(k)).filter((k) => k.cgroupId === 99n);
    expect(keys.map((k) => `${k.address.text}/${k.prefixLen}`).sort()).toEqual(["0.0.0.0/0", "10.1.0.0/16"]);
    expect(policy.delete(narrow)).toBe(true);
    expect(policy.delete(narrow)).toBe(false);
    // An LPM lookup is a longest-prefix match, not an exact one: the /0 answers now.
    expect(decodePolicyValue(policy.lookup(narrow)!)).toEqual([]);
    expect(policy.delete(wide)).toBe(true);
    expect(policy.lookup(narrow)).toBeNull();
    expectBpfError(() => policy.lookup(new Uint8Array(15)), "bpf_map", 0, "bpf_map_lookup_elem");
    const counters = MapHandle.fromMap(obj.map("tg_counters"));
    handles.push(counters);
    expectBpfError(() => counters.lookup(u32Key(0)), "bpf_map", 0, "bpf_map_lookup_elem");
  });

  test("take: a record's value and its deletion in one call, null when absent; a map without the combined command falls back to lookup and delete", () => {
    const records = MapHandle.fromMap(obj.map("tg_rec_cookie"));
    handles.push(records);
    const key = u64Key(0x1234_5678_9abcn);
    const value = new Uint8Array(records.valueSize).map((_, i) => i);
    records.update(key, value);
    expect(records.take(key)).toEqual(value);
    expect(records.lookup(key)).toBeNull();
    expect(records.take(key)).toBeNull();
    expectBpfError(() => records.take(new Uint8Array(7)), "bpf_map", 0, "bpf_map_lookup_and_delete_elem");
    // An LPM trie has no BPF_MAP_LOOKUP_AND_DELETE_ELEM: the same result through two calls.
    const policy = MapHandle.fromMap(obj.map("tg_policy4"));
    handles.push(policy);
    const exact = encodePolicyKey({ cgroupId: 98n, address: parseIp("10.2.0.0"), prefixLen: 16 });
    const rules = [{ portLo: 443, portHi: 443, proto: 6 as const, action: 2 as const, ruleId: 1 }];
    policy.update(exact, encodePolicyValue(rules));
    expect(decodePolicyValue(policy.take(exact)!)).toEqual(rules);
    expect(policy.lookup(exact)).toBeNull();
    expect(policy.take(exact)).toBeNull();
  });

  test("a denied connect from the cgroup: EPERM, its events in the ring buffer, counters and run count", async () => {
    const prog = obj.program("tg_connect4");
    if (links.length === 0) links.push(prog.attachCgroup(cgFd));
    const policy = MapHandle.fromMap(obj.map("tg_policy4"));
    const counters = MapHandle.fromMap(obj.map("tg_counters"));
    handles.push(policy, counters);
    policy.update(encodePolicyKey({ cgroupId, address: parseIp("0.0.0.0"), prefixLen: 0 }), encodePolicyValue([]));
    policy.update(
      encodePolicyKey({ cgroupId, address: parseIp("10.255.255.1"), prefixLen: 32 }),
      encodePolicyValue([{ portLo: 9, portHi: 9, proto: 6, action: 1, ruleId: 7 }]),
    );
    const events: TgEvent[] = [];
    let throwOnce = true;
    const ring = new RingBuffer(obj.map("tg_events").fd(), (data) => {
      if (throwOnce) {
        throwOnce = false;
        throw new Error("first record refused by the test");
      }
      events.push(decodeEvent(data));
    });
    rings.push(ring);
    expect(ring.epollFd()).toBeGreaterThan(2);
    expect(ring.poll(0)).toBe(0);
    const stats = enableStats();
    fds.push(stats);
    const before = programInfo(prog.fd()).runCount;

    // The shell joins the cgroup, then execs python (same pid), which connects twice.
    const py = "import socket,sys\nfor _ in range(2):\n  try:\n    socket.create_connection(('10.255.255.1', 9), timeout=2)\n    sys.exit(1)\n  except PermissionError:\n    pass\n";
    const child = Bun.spawn(["sh", "-c", `echo $$ > ${cgDir}/cgroup.procs && exec python3 -c "$0"`, py], { stdout: "pipe", stderr: "pipe" });
    expect(await child.exited).toBe(0);

    const deadline = Date.now() + 5000;
    let thrown: unknown = null;
    while (events.length < 1 && Date.now() < deadline) {
      try {
        ring.poll(100);
      } catch (e) {
        thrown = e;
      }
    }
    expect((thrown as Error).message).toBe("first record refused by the test");
    expect(events.length).toBe(1);
    const e = events[0]!;
    expect({ pid: e.pid, tgid: e.tgid, address: e.address.text, port: e.port, ruleId: e.ruleId, proto: e.proto, reason: e.reason, hook: e.hook, cgroupId: e.cgroupId, uid: e.uid })
      .toEqual({ pid: child.pid, tgid: child.pid, address: "10.255.255.1", port: 9, ruleId: 7, proto: 6, reason: TG_REASON.RULE, hook: TG_HOOK.CONNECT4, cgroupId, uid: 0 });
    expect(ring.consume()).toBe(0);

    const c = readCounters((key) => counters.lookupPerCpu(key));
    expect(c.connect).toBeGreaterThanOrEqual(2n);
    expect(c.deny).toBeGreaterThanOrEqual(2n);
    const after = programInfo(prog.fd());
    expect(after.runCount - before).toBeGreaterThanOrEqual(2n);
    expect(after.runTimeNs).toBeGreaterThan(0n);
  }, 20_000);

  test("a program the verifier refuses: bpf_load with errno and the verifier's last lines", () => {
    const clang = Bun.which("clang-14") ?? Bun.which("clang");
    if (clang === null && process.env.CI === undefined) {
      console.error("libbpf.test.ts: verifier test skipped: no clang");
      return;
    }
    const dir = `${tmpdir()}/${tag}`;
    mkdirSync(dir, { recursive: true });
    try {
      writeFileSync(
        `${dir}/bad.bpf.c`,
        [
          "#include <linux/bpf.h>",
          "#include <bpf/bpf_helpers.h>",
          'SEC("cgroup/connect4") int tg_bad(struct bpf_sock_addr *ctx) { return *(int *)(long)ctx->user_ip4; }',
          'char LICENSE[] SEC("license") = "Dual BSD/GPL";',
        ].join("\n"),
      );
      const cc = Bun.spawnSync([clang!, "-O2", "-g", "-target", "bpf", `-I/usr/include/${process.arch === "x64" ? "x86_64" : "aarch64"}-linux-gnu`, "-c", `${dir}/bad.bpf.c`, "-o", `${dir}/bad.bpf.o`], { stderr: "pipe" });
      expect(cc.stderr.toString()).toBe("");
      using bad = openObject(readFileSync(`${dir}/bad.bpf.o`), "tidegate-test-bad");
      const e = expectBpfError(() => bad.load(), "bpf_load", 13, "bpf_object__load");
      expect(e.message).toContain("invalid mem access");
      expect(e.message).toContain("libbpf log (last");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("not an ELF object: bpf_open with libbpf's own errno", () => {
    const e = expectBpfError(() => openObject(new Uint8Array(64), "tidegate-test-junk"), "bpf_open", 4001, "bpf_object__open_mem");
    expect(e.message).toContain("not a proper ELF object");
  });

  test("bpffs is reported present once mounted", () => {
    expect(mountBpffsIfNeeded(BPFFS)).toBe("present");
  });
});
