/**
 * Kernel capture for one instance (DESIGN.md section 3, "Fail closed"): the programs attached to
 * the instance's cgroup root through pinned links, the maps pinned beside them under bpffs.
 *
 * Guarantees:
 * - install: bpffs is mounted in the host's mount namespace when absent (pins made in a private
 *   namespace would vanish with it and fail open); the pin folder is root's, 0700; every map is
 *   pinned and every program attached and its link pinned before `open` returns;
 * - a pin folder that is not root's own folder on bpffs is refused before anything is changed
 *   (`pinDirProblem`): bpffs is mounted 1777, so any local user can make a folder or a symlink at
 *   its path first; one who owns the folder could unlink the pinned links (detaching the programs),
 *   and a symlink would have root chmod, or on uninstall empty, the folder it points to;
 * - adoption: pins left by an earlier agent are reused as they are (enforcement never stops
 *   across a restart), after checking their layout version and that each link is attached to this
 *   instance's cgroup; pins of another layout, or a partial set, are refused with what to do;
 * - the agent's own process is never in the tree, so it is never captured;
 * - `close` releases this process's handles and leaves the pins: enforcement goes on without the
 *   agent (denies deny, directs pass, redirected connects find no listener and fail);
 * - `uninstall` is the one way out: it kills what is left in the cgroups (and says how many),
 *   removes the links (detaching the programs), the map pins and the cgroups.
 */
import { existsSync, mkdirSync, chmodSync, openSync, closeSync, readdirSync, rmdirSync, unlinkSync, statSync, lstatSync, statfsSync } from "node:fs";
import { dirname, join } from "node:path";
import { TidegateError } from "../errors.ts";
import type { CaptureRecord } from "../proxy/egress-listener.ts";
import { CgroupTree, cgroupId } from "./cgroup-tree.ts";
import { closeFd, linkInfo, MapHandle, mountBpffsIfNeeded, openObject, openPinnedLink, RingBuffer } from "./libbpf.ts";
import {
  decodeEvent,
  decodePolicyKey,
  decodeRecord,
  decodeSettings,
  encodePolicyKey,
  encodePolicyValue,
  encodeSettings,
  MAPS,
  PROGRAMS,
  policyKeyOf,
  readCounters,
  TG_LAYOUT_VERSION,
  u32Key,
  u64Key,
  type CounterName,
  type TgSettings,
  type MapName,
  type TgEvent,
} from "./layout.ts";
import type { LpmEntry } from "./lpm-entries.ts";
import { tidegateObject } from "./object.ts";
import { parseIp } from "../policy/address.ts";
import { SockDiag, SockDiagError, type Endpoint } from "../runtime/sock-diag.ts";
import { startTicks } from "../attest/proc-text.ts";
import { bootOffsetNs } from "./task-print.ts";
import { DEFAULT_MAX_OPEN } from "../policy/model.ts";

export class CaptureError extends TidegateError<"capture_unavailable" | "capture_pins_foreign" | "capture_io"> {}

const LINK_PREFIX = "link_";
const PROXY4 = parseIp("127.0.0.1");
const PROXY6 = parseIp("::1");

export interface CaptureOptions {
  /** cgroup2 mount point. */
  readonly mount: string;
  readonly cgroupName: string;
  readonly pinDir: string;
}

/** Throws capture_pins_foreign when the pinned settings name another layout version. */
function checkVersion(pinDir: string): void {
  const settings = MapHandle.fromPinned(join(pinDir, "tg_settings"), MAPS.tg_settings.keySize, MAPS.tg_settings.valueSize);
  try {
    const raw = settings.lookup(u32Key(0));
    const version = raw === null ? -1 : decodeSettings(raw).layoutVersion;
    if (version !== TG_LAYOUT_VERSION) {
      throw new CaptureError(
        "capture_pins_foreign",
        `capture: the pins in ${pinDir} have layout version ${version}, this agent has ${TG_LAYOUT_VERSION}: stop, run 'tidegate agent --uninstall' with the binary that made them, and start this one`,
      );
    }
  } finally {
    settings.close();
  }
}

/** The netlink socket of the listener's record lookups: refused here, not at the first connection. */
function openDiag(): SockDiag {
  try {
    return SockDiag.open();
  } catch (e) {
    if (!(e instanceof SockDiagError)) throw e;
    throw new CaptureError("capture_unavailable", `capture: the egress listener finds records through sock_diag: ${e.message}`, { cause: e });
  }
}

/** statfs(2) f_type of bpffs. */
const BPF_FS_MAGIC = 0xcafe4a11;

/**
 * Why `dir` cannot hold this instance's pins; null when it can (or is absent and may be made).
 * It must be a real folder (not a symlink) on bpffs; with `owned`, root's own, and every folder
 * above it root's and not writable by others unless sticky (else its owner could swap it).
 */
export function pinDirProblem(dir: string, owned = true): string | null {
  let st;
  try {
    st = lstatSync(dir);
  } catch (e) {
    if ((e as { code?: string }).code !== "ENOENT") return `${dir}: ${(e as { code?: string }).code ?? String(e)}`;
    st = null;
  }
  if (st !== null) {
    if (st.isSymbolicLink()) return `${dir} is a symbolic link`;
    if (!st.isDirectory()) return `${dir} is not a folder`;
    if (statfsSync(dir).type !== BPF_FS_MAGIC) return `${dir} is not on a bpf filesystem`;
    if (owned && st.uid !== 0) return `${dir} belongs to uid ${st.uid}, not root`;
  }
  if (!owned) return null;
  for (let d = dirname(dir); ; d = dirname(d)) {
    let a;
    try {
      a = lstatSync(d);
    } catch {
      a = null; // not made yet: mkdir makes it root's
    }
    if (a !== null) {
      if (a.isSymbolicLink()) return `${d}, above it, is a symbolic link`;
      if (a.uid !== 0) return `${d}, above it, belongs to uid ${a.uid}`;
      if ((a.mode & 0o022) !== 0 && (a.mode & 0o1000) === 0) return `${d}, above it, is writable by other users and not sticky`;
    }
    if (d === dirname(d)) return null;
  }
}

function refuseForeign(dir: string, problem: string): never {
  throw new CaptureError("capture_pins_foreign", `capture: ${problem}: the pin folder must be root's own folder on bpffs (anyone can make one in /sys/fs/bpf first; its owner could unlink the pins and detach the programs); look at what ${dir} is, remove it by hand, then start again`);
}

function pinned(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir) : [];
}

export class Capture {
  readonly tree: CgroupTree;
  readonly pinDir: string;
  readonly adopted: boolean;
  private readonly maps: Record<"tg_policy4" | "tg_policy6" | "tg_rec_cookie" | "tg_rec_count" | "tg_counters" | "tg_settings" | "tg_events", MapHandle>;
  /** Finds a redirected connection's cookie, the key of its record; opened once, reused. */
  private readonly diag: SockDiag;
  /** bootOffsetNs(), read once: a time namespace's offsets never change. */
  private readonly bootOffset = bootOffsetNs();
  /** The key lookupPeer writes each cookie into (one lookup at a time: they are synchronous). */
  private readonly cookieKey = new Uint8Array(8);
  private ring: RingBuffer | null = null;

  private constructor(tree: CgroupTree, pinDir: string, adopted: boolean, diag: SockDiag) {
    this.tree = tree;
    this.pinDir = pinDir;
    this.adopted = adopted;
    this.diag = diag;
    const open = (name: MapName) => MapHandle.fromPinned(join(pinDir, name), MAPS[name].keySize, MAPS[name].valueSize);
    this.maps = {
      tg_policy4: open("tg_policy4"),
      tg_policy6: open("tg_policy6"),
      tg_rec_cookie: open("tg_rec_cookie"),
      tg_rec_count: open("tg_rec_count"),
      tg_counters: open("tg_counters"),
      tg_settings: open("tg_settings"),
      tg_events: open("tg_events"),
    };
  }

  /** Installs, or adopts what an earlier agent of this instance pinned. */
  static async open(o: CaptureOptions): Promise<Capture> {
    const diag = openDiag();
    try {
      return await Capture.openWith(o, diag);
    } catch (e) {
      diag.close();
      throw e;
    }
  }

  private static async openWith(o: CaptureOptions, diag: SockDiag): Promise<Capture> {
    const tree = new CgroupTree(o.mount, o.cgroupName);
    tree.ensure();
    if (o.pinDir.startsWith("/sys/fs/bpf/") || o.pinDir === "/sys/fs/bpf") mountBpffsIfNeeded("/sys/fs/bpf");
    const before = pinDirProblem(o.pinDir);
    if (before !== null) refuseForeign(o.pinDir, before);
    mkdirSync(o.pinDir, { recursive: true, mode: 0o700 });
    const after = pinDirProblem(o.pinDir);
    if (after !== null) refuseForeign(o.pinDir, after);
    chmodSync(o.pinDir, 0o700);
    const rootId = cgroupId(tree.root);
    tree.attachedRootId = rootId;
    const present = pinned(o.pinDir);
    const wanted = [...Object.keys(MAPS), ...Object.keys(PROGRAMS).map((p) => LINK_PREFIX + p)];
    if (present.length > 0) {
      // The layout version first: an older agent's pins differ in their set as well.
      if (present.includes("tg_settings")) checkVersion(o.pinDir);
      const missing = wanted.filter((n) => !present.includes(n));
      if (missing.length > 0) {
        throw new CaptureError("capture_pins_foreign", `capture: ${o.pinDir} holds a partial set of pins (missing ${missing.join(", ")}): run 'tidegate agent --uninstall' for this instance, then start the agent again`);
      }
      for (const p of Object.keys(PROGRAMS)) {
        const fd = openPinnedLink(join(o.pinDir, LINK_PREFIX + p));
        try {
          const info = linkInfo(fd);
          if (info.cgroupId !== rootId) {
            throw new CaptureError("capture_pins_foreign", `capture: the link ${LINK_PREFIX + p} in ${o.pinDir} is attached to cgroup ${info.cgroupId}, not ${tree.root} (${rootId})`);
          }
        } finally {
          closeFd(fd);
        }
      }
      return new Capture(tree, o.pinDir, true, diag);
    }
    const obj = openObject(await tidegateObject(), "tidegate");
    const rootFd = openSync(tree.root, "r");
    try {
      obj.load();
      for (const name of Object.keys(MAPS)) obj.map(name).pin(join(o.pinDir, name));
      const settings = MapHandle.fromMap(obj.map("tg_settings"));
      settings.update(u32Key(0), encodeSettings({ proxyPort: 0, proxy4: PROXY4, proxy6: PROXY6, maxOpen: DEFAULT_MAX_OPEN }));
      settings.close();
      for (const name of Object.keys(PROGRAMS)) {
        const link = obj.program(name).attachCgroup(rootFd);
        try {
          link.pin(join(o.pinDir, LINK_PREFIX + name));
        } finally {
          // Only the pin may hold the link: an fd kept here would keep the program attached
          // after uninstall removed the pin.
          link.destroy();
        }
      }
    } finally {
      closeSync(rootFd);
      obj.close();
    }
    return new Capture(tree, o.pinDir, false, diag);
  }

  private settings(): TgSettings {
    const raw = this.maps.tg_settings.lookup(u32Key(0));
    return raw === null ? { layoutVersion: TG_LAYOUT_VERSION, proxyPort: 0, proxy4: PROXY4, proxy6: PROXY6, maxOpen: DEFAULT_MAX_OPEN } : decodeSettings(raw);
  }

  /** The egress listener's port (0: none; redirected connects are then denied in the kernel). */
  get proxyPort(): number {
    return this.settings().proxyPort;
  }

  setProxyPort(port: number): void {
    this.maps.tg_settings.update(u32Key(0), encodeSettings({ ...this.settings(), proxyPort: port, proxy4: PROXY4, proxy6: PROXY6 }));
  }

  /** How many redirected sockets one workload cgroup may hold open at once (docs/capture.md, "Open connections"). */
  get maxOpen(): number {
    return this.settings().maxOpen;
  }

  /** Sets that bound; written only when it changes. A bound lowered below what a cgroup holds refuses its next redirects until it closes enough. */
  setMaxOpen(n: number): void {
    const now = this.settings();
    if (now.maxOpen !== n) this.maps.tg_settings.update(u32Key(0), encodeSettings({ ...now, maxOpen: n }));
  }

  /** The redirected sockets a cgroup holds open now, as the kernel counts them (0 when it never had one). */
  openCount(id: bigint): bigint {
    const raw = this.maps.tg_rec_count.lookup(u64Key(id));
    return raw === null ? 0n : new DataView(raw.buffer, raw.byteOffset, 8).getBigUint64(0, true);
  }

  /** The policy-map keys of each cgroup, by hex: read from the maps once, then kept as they are written. */
  private keysOf: Map<bigint, Map<string, { readonly family: 4 | 6; readonly key: Uint8Array }>> | null = null;

  private index(): Map<bigint, Map<string, { readonly family: 4 | 6; readonly key: Uint8Array }>> {
    if (this.keysOf !== null) return this.keysOf;
    const index = new Map<bigint, Map<string, { family: 4 | 6; key: Uint8Array }>>();
    for (const [family, map] of [[4, this.maps.tg_policy4], [6, this.maps.tg_policy6]] as const) {
      for (const key of map.keys()) {
        const id = decodePolicyKey(key).cgroupId;
        if (!index.has(id)) index.set(id, new Map());
        index.get(id)!.set(`${family}:${key.toHex()}`, { family, key });
      }
    }
    this.keysOf = index;
    return index;
  }

  /** Replaces what the policy maps hold for one cgroup: upserts first, then deletes the stale keys. */
  syncCgroup(id: bigint, entries: readonly LpmEntry[]): void {
    const index = this.index();
    const before = index.get(id) ?? new Map();
    const after = new Map<string, { family: 4 | 6; key: Uint8Array }>();
    for (const e of entries) {
      const key = encodePolicyKey(policyKeyOf(id, e.cidr));
      const map = e.cidr.family === 4 ? this.maps.tg_policy4 : this.maps.tg_policy6;
      map.update(key, encodePolicyValue(e.rules));
      after.set(`${e.cidr.family}:${key.toHex()}`, { family: e.cidr.family, key });
    }
    for (const [hex, k] of before) if (!after.has(hex)) this.mapOf(k.family).delete(k.key);
    index.set(id, after);
  }

  removeCgroup(id: bigint): void {
    const index = this.index();
    for (const k of (index.get(id) ?? new Map()).values()) this.mapOf(k.family).delete(k.key);
    index.delete(id);
    // A removed cgroup connects no more; its sockets still open find no count to lower, and stop there.
    this.maps.tg_rec_count.delete(u64Key(id));
  }

  private mapOf(family: 4 | 6): MapHandle {
    return family === 4 ? this.maps.tg_policy4 : this.maps.tg_policy6;
  }

  /**
   * The record of a redirected connection from `peer` (the client's address and port as the
   * listener sees them) to the listener's `local` end, consumed once read: the kernel gives the
   * client socket's cookie for that pair (sock_diag), under which connect4/6 stored the record.
   * null when the client socket is gone or has no record. Throws SockDiagError when the kernel
   * cannot be asked.
   */
  lookupPeer(peer: Endpoint, local: Endpoint): CaptureRecord | null {
    const key = this.cookieKey;
    if (!this.diag.cookieInto(peer, local, key)) return null;
    const raw = this.maps.tg_rec_cookie.take(key);
    if (raw === null) return null;
    const r = decodeRecord(raw);
    return { address: r.address, port: r.port, proto: r.proto === 17 ? "udp" : "tcp", pid: r.pid, tgid: r.tgid, uid: r.uid, gid: r.gid, cgroupId: r.cgroupId, startTime: startTicks(r.startNs, this.bootOffset) ?? undefined };
  }

  /** Where the ring buffer's records go during the current drainEvents call. */
  private onEvent: (e: TgEvent) => void = () => {};

  /** Reads the deny events queued since the last call, each to this call's `onEvent`. */
  drainEvents(onEvent: (e: TgEvent) => void): number {
    this.ring ??= new RingBuffer(this.maps.tg_events.fd, (bytes) => this.onEvent(decodeEvent(bytes)));
    this.onEvent = onEvent;
    try {
      return this.ring.consume();
    } finally {
      this.onEvent = () => {};
    }
  }

  counters(): Record<CounterName, bigint> {
    return readCounters((key) => this.maps.tg_counters.lookupPerCpu(key));
  }

  /** Releases this process's handles; the pins, and so enforcement, stay. */
  close(): void {
    this.ring?.close();
    this.ring = null;
    for (const m of Object.values(this.maps)) m.close();
    this.diag.close();
  }

  /** Kills the instance's workloads, detaches and removes every link, map pin and cgroup. */
  static async uninstall(o: CaptureOptions): Promise<{ killed: number; pins: number; cgroups: boolean }> {
    // A folder another user owns is still emptied (only pins, folders and symlinks live on bpffs,
    // and unlinking one follows nothing); a symlink, or a folder elsewhere, is not touched.
    const problem = pinDirProblem(o.pinDir, false);
    if (problem !== null) refuseForeign(o.pinDir, problem);
    const tree = new CgroupTree(o.mount, o.cgroupName);
    const hadTree = existsSync(tree.root);
    const killed = await tree.removeAll();
    let pins = 0;
    for (const name of pinned(o.pinDir)) {
      try {
        unlinkSync(join(o.pinDir, name));
        pins++;
      } catch (e) {
        throw new CaptureError("capture_io", `capture: cannot remove pin ${join(o.pinDir, name)}: ${(e as { code?: string }).code ?? String(e)}`);
      }
    }
    if (existsSync(o.pinDir) && lstatSync(o.pinDir).isDirectory()) rmdirSync(o.pinDir);
    return { killed, pins, cgroups: hadTree };
  }
}
