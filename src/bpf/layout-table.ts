/**
 * bpf/tidegate.h as data: its constants and enums, the byte layout of every struct (size, and
 * each member's offset and size), and the maps and programs of bpf/tidegate.bpf.o.
 * layout-btf.test.ts checks ENUMS and LAYOUT against the BTF of the built object and the
 * #defines against the header; the encoders read their offsets from LAYOUT.
 */

export const TG_LAYOUT_VERSION = 6;
export const TG_MAX_PORT_RULES = 16;
export const TG_RULE_NONE = 0xffff;

/** The header's enums with their C names, as BTF names them (checked by layout-btf.test.ts). */
export const ENUMS = {
  tg_action: { TG_ACT_DENY: 1, TG_ACT_DIRECT: 2 },
  tg_reason: { TG_REASON_RULE: 1, TG_REASON_NO_RULE: 2, TG_REASON_UNKNOWN_CGROUP: 3, TG_REASON_NO_PROXY: 4, TG_REASON_RECORD_LIMIT: 5 },
  tg_hook: { TG_HOOK_CONNECT4: 1, TG_HOOK_CONNECT6: 2, TG_HOOK_SENDMSG4: 3, TG_HOOK_SENDMSG6: 4 },
  tg_counter: {
    TG_CNT_CONNECT: 0, TG_CNT_DENY: 1, TG_CNT_DIRECT: 2, TG_CNT_REDIRECT: 3, TG_CNT_SENDMSG: 4,
    TG_CNT_UNKNOWN_CGROUP: 5, TG_CNT_RECORD_FAIL: 6, TG_CNT_EVENT_DROP: 7, TG_CNT_RECORD_LIMIT: 8, TG_CNT__MAX: 9,
  },
} as const;

export const TG_PROTO = { TCP: 6, UDP: 17 } as const;
export const TG_ACT = { DENY: 1, DIRECT: 2 } as const;
export const TG_REASON = { RULE: 1, NO_RULE: 2, UNKNOWN_CGROUP: 3, NO_PROXY: 4, RECORD_LIMIT: 5 } as const;
export const TG_HOOK = { CONNECT4: 1, CONNECT6: 2, SENDMSG4: 3, SENDMSG6: 4 } as const;
/** tg_counters indexes, in order; COUNTER_NAMES[i] names index i. */
export const COUNTER_NAMES = ["connect", "deny", "direct", "redirect", "sendmsg", "unknown_cgroup", "record_fail", "event_drop", "record_limit"] as const;
export type CounterName = (typeof COUNTER_NAMES)[number];
export const TG_CNT_MAX = COUNTER_NAMES.length;

export type TgProto = 6 | 17;
export type TgAction = 1 | 2;

interface Member {
  readonly offset: number;
  readonly size: number;
}
const m = (offset: number, size: number): Member => ({ offset, size });

/** Each struct of tidegate.h: its size, and each member's byte offset and size. */
export const LAYOUT = {
  tg_port_rule: { size: 8, members: { port_lo: m(0, 2), port_hi: m(2, 2), proto: m(4, 1), action: m(5, 1), rule_id: m(6, 2) } },
  tg_policy_value: { size: 136, members: { count: m(0, 4), flags: m(4, 4), rules: m(8, 128) } },
  tg_policy4_key: { size: 16, members: { prefixlen: m(0, 4), cgroup_hi: m(4, 4), cgroup_lo: m(8, 4), addr: m(12, 4) } },
  tg_policy6_key: { size: 28, members: { prefixlen: m(0, 4), cgroup_hi: m(4, 4), cgroup_lo: m(8, 4), addr: m(12, 16) } },
  tg_record: {
    size: 72,
    members: {
      orig_addr: m(0, 16), orig_port: m(16, 2), family: m(18, 1), proto: m(19, 1), pid: m(20, 4), tgid: m(24, 4),
      uid: m(28, 4), gid: m(32, 4), pad0: m(36, 4), cgroup_id: m(40, 8), cookie: m(48, 8), time_ns: m(56, 8),
      start_ns: m(64, 8),
    },
  },
  tg_event: {
    size: 56,
    members: {
      time_ns: m(0, 8), cgroup_id: m(8, 8), pid: m(16, 4), tgid: m(20, 4), uid: m(24, 4), gid: m(28, 4), addr: m(32, 16),
      port: m(48, 2), rule_id: m(50, 2), family: m(52, 1), proto: m(53, 1), reason: m(54, 1), hook: m(55, 1),
    },
  },
  tg_settings: { size: 32, members: { layout_version: m(0, 4), proxy_port: m(4, 2), pad: m(6, 2), proxy4: m(8, 4), proxy6: m(12, 16), max_open: m(28, 4) } },
  tg_sk_owner: { size: 8, members: { cgroup_id: m(0, 8) } },
} as const;

/** The maps of bpf/tidegate.bpf.o (contract table): BPF_MAP_TYPE_*, key and value sizes, max_entries. */
export const MAPS = {
  tg_policy4: { type: 11, keySize: 16, valueSize: 136, maxEntries: 16384 },
  tg_policy6: { type: 11, keySize: 28, valueSize: 136, maxEntries: 16384 },
  tg_rec_cookie: { type: 1, keySize: 8, valueSize: 72, maxEntries: 65536 },
  tg_rec_count: { type: 1, keySize: 8, valueSize: 8, maxEntries: 16384 },
  tg_sk_owner: { type: 24, keySize: 4, valueSize: 8, maxEntries: 0 },
  tg_counters: { type: 6, keySize: 4, valueSize: 8, maxEntries: TG_CNT_MAX },
  tg_events: { type: 27, keySize: 0, valueSize: 0, maxEntries: 256 * 1024 },
  tg_settings: { type: 2, keySize: 4, valueSize: 32, maxEntries: 1 },
} as const;
export type MapName = keyof typeof MAPS;

/** The programs (C function names) and their sections. */
export const PROGRAMS = {
  tg_connect4: "cgroup/connect4",
  tg_connect6: "cgroup/connect6",
  tg_sendmsg4: "cgroup/sendmsg4",
  tg_sendmsg6: "cgroup/sendmsg6",
  tg_sock_create: "cgroup/sock_create",
  tg_ingress: "cgroup_skb/ingress",
  tg_sock_release: "cgroup/sock_release",
} as const;
export type ProgramName = keyof typeof PROGRAMS;
