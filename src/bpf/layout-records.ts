/**
 * The connection records (tg_record, keyed by socket cookie in tg_rec_cookie), the deny events
 * of the ring buffer (tg_event), the settings entry (tg_settings) and the per-CPU counters.
 */
import { ipFromBytes, type IpAddress } from "../policy/address.ts";
import { bad, getAddr, LE, putAddr, u64, uint, view } from "./layout-codec.ts";
import { COUNTER_NAMES, LAYOUT, TG_LAYOUT_VERSION, TG_RULE_NONE, type CounterName } from "./layout-table.ts";

/** A u32 map key (tg_counters index, tg_settings' 0) in host order. */
export function u32Key(n: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, uint("u32Key", "key", n, 0xffffffff), LE);
  return out;
}

/** A u64 map key (tg_rec_cookie's socket cookie) in host order. */
export function u64Key(n: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, u64("u64Key", "key", n), LE);
  return out;
}

export interface TgRecord {
  /** The original destination (an IPv4-mapped one recorded as IPv4). */
  readonly address: IpAddress;
  readonly port: number;
  readonly proto: number;
  /** Thread id; tgid is the process id. */
  readonly pid: number;
  readonly tgid: number;
  readonly uid: number;
  readonly gid: number;
  readonly cgroupId: bigint;
  readonly cookie: bigint;
  /** bpf_ktime_get_ns() at connect (CLOCK_MONOTONIC). */
  readonly timeNs: bigint;
  /** When the caller's process (its thread group leader) started: start_boottime, ns after boot. */
  readonly startNs: bigint;
}

export function decodeRecord(bytes: Uint8Array): TgRecord {
  const op = "decodeRecord";
  const s = LAYOUT.tg_record.members;
  const v = view(bytes, "tg_record", op);
  return Object.freeze({
    address: getAddr(bytes, s.orig_addr.offset, v.getUint8(s.family.offset), op),
    port: v.getUint16(s.orig_port.offset, LE),
    proto: v.getUint8(s.proto.offset),
    pid: v.getUint32(s.pid.offset, LE),
    tgid: v.getUint32(s.tgid.offset, LE),
    uid: v.getUint32(s.uid.offset, LE),
    gid: v.getUint32(s.gid.offset, LE),
    cgroupId: v.getBigUint64(s.cgroup_id.offset, LE),
    cookie: v.getBigUint64(s.cookie.offset, LE),
    timeNs: v.getBigUint64(s.time_ns.offset, LE),
    startNs: v.getBigUint64(s.start_ns.offset, LE),
  });
}

export interface TgEvent {
  readonly timeNs: bigint;
  readonly cgroupId: bigint;
  readonly pid: number;
  readonly tgid: number;
  readonly uid: number;
  readonly gid: number;
  /** The destination refused. */
  readonly address: IpAddress;
  readonly port: number;
  /** The egress rule's index, or null for TG_RULE_NONE (no rule decided). */
  readonly ruleId: number | null;
  readonly proto: number;
  /** TG_REASON.* */
  readonly reason: number;
  /** TG_HOOK.* */
  readonly hook: number;
}

/** One ring buffer record of tg_events (exactly 56 bytes). */
export function decodeEvent(bytes: Uint8Array): TgEvent {
  const op = "decodeEvent";
  const s = LAYOUT.tg_event.members;
  const v = view(bytes, "tg_event", op);
  const ruleId = v.getUint16(s.rule_id.offset, LE);
  return Object.freeze({
    timeNs: v.getBigUint64(s.time_ns.offset, LE),
    cgroupId: v.getBigUint64(s.cgroup_id.offset, LE),
    pid: v.getUint32(s.pid.offset, LE),
    tgid: v.getUint32(s.tgid.offset, LE),
    uid: v.getUint32(s.uid.offset, LE),
    gid: v.getUint32(s.gid.offset, LE),
    address: getAddr(bytes, s.addr.offset, v.getUint8(s.family.offset), op),
    port: v.getUint16(s.port.offset, LE),
    ruleId: ruleId === TG_RULE_NONE ? null : ruleId,
    proto: v.getUint8(s.proto.offset),
    reason: v.getUint8(s.reason.offset),
    hook: v.getUint8(s.hook.offset),
  });
}

export interface TgSettings {
  readonly layoutVersion: number;
  /** 0: no proxy yet (TCP that would be redirected is denied). */
  readonly proxyPort: number;
  /** IPv4 proxy address, or null for none. */
  readonly proxy4: IpAddress | null;
  /** IPv6 proxy address, or null for none. */
  readonly proxy6: IpAddress | null;
  /** Redirected sockets one cgroup may hold open at once; 0: no bound. */
  readonly maxOpen: number;
}

/** tg_settings; layoutVersion defaults to TG_LAYOUT_VERSION. proxy4 must be IPv4, proxy6 IPv6. */
export function encodeSettings(s: Omit<TgSettings, "layoutVersion"> & { readonly layoutVersion?: number }): Uint8Array {
  const op = "encodeSettings";
  const L = LAYOUT.tg_settings;
  const out = new Uint8Array(L.size);
  const v = new DataView(out.buffer);
  v.setUint32(L.members.layout_version.offset, uint(op, "layout version", s.layoutVersion ?? TG_LAYOUT_VERSION, 0xffffffff), LE);
  v.setUint16(L.members.proxy_port.offset, uint(op, "proxy port", s.proxyPort, 0xffff), LE);
  v.setUint32(L.members.max_open.offset, uint(op, "max open", s.maxOpen, 0xffffffff), LE);
  if (s.proxy4 !== null) {
    if (s.proxy4.family !== 4) throw bad(op, `proxy4 ${s.proxy4.text} is not IPv4`);
    putAddr(out, L.members.proxy4.offset, s.proxy4);
  }
  if (s.proxy6 !== null) {
    if (s.proxy6.family !== 6) throw bad(op, `proxy6 ${s.proxy6.text} is not IPv6`);
    putAddr(out, L.members.proxy6.offset, s.proxy6);
  }
  return out;
}

export function decodeSettings(bytes: Uint8Array): TgSettings {
  const L = LAYOUT.tg_settings.members;
  const v = view(bytes, "tg_settings", "decodeSettings");
  const p4 = bytes.slice(L.proxy4.offset, L.proxy4.offset + 4);
  const p6 = bytes.slice(L.proxy6.offset, L.proxy6.offset + 16);
  return Object.freeze({
    layoutVersion: v.getUint32(L.layout_version.offset, LE),
    proxyPort: v.getUint16(L.proxy_port.offset, LE),
    proxy4: p4.every((b) => b === 0) ? null : ipFromBytes(p4),
    proxy6: p6.every((b) => b === 0) ? null : ipFromBytes(p6),
    maxOpen: v.getUint32(L.max_open.offset, LE),
  });
}

/** The sum over CPUs of one per-CPU u64 counter (each value 8 bytes, host order). */
export function sumPerCpu(values: readonly Uint8Array[]): bigint {
  let sum = 0n;
  for (const value of values) sum += view(value, 8, "sumPerCpu").getBigUint64(0, LE);
  return sum;
}

/** Every counter by name, from a reader of one index's per-CPU values (e.g. MapHandle.lookupPerCpu). */
export function readCounters(perCpu: (key: Uint8Array) => readonly Uint8Array[]): Record<CounterName, bigint> {
  const out = {} as Record<CounterName, bigint>;
  COUNTER_NAMES.forEach((name, i) => {
    out[name] = sumPerCpu(perCpu(u32Key(i)));
  });
  return out;
}
