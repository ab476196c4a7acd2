/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The structs and constants that cross between the eBPF programs and the agent: the single source
 * of truth. src/bpf/ mirrors them by hand and a test checks that mirror against the BTF of the
 * built bpf/tidegate.bpf.o, so every struct here has fixed-width fields, explicit padding, no
 * implicit holes, and a _Static_assert on its size and on each member's offset.
 *
 * Byte order: addresses are in network order (as the kernel hands them over); ports and every
 * other field are in host order (little-endian on x86_64). An IPv4 address in a 4-word array sits
 * in word 0 with words 1..3 zero.
 *
 * Any change to a layout here, or to the set of programs, bumps TG_LAYOUT_VERSION: the agent
 * refuses to adopt pinned maps whose tg_settings.layout_version differs.
 * Version 2: tg_sock_create joined the programs. Version 3: tg_ingress. Version 4: tg_sockops,
 * tg_rec_peer, struct tg_peer_key and the REKEY counter removed (records stay keyed by socket
 * cookie; the proxy finds a connection's cookie through sock_diag). Version 5: tg_record.start_ns,
 * the caller's start time, so the proxy binds its attestation to the process that connected.
 * Version 6: tg_sock_release, tg_sk_owner and tg_rec_count, tg_settings.max_open, the RECORD_LIMIT
 * reason and counter: a cgroup's redirected sockets are counted while they are open and bounded,
 * and tg_rec_cookie is a plain hash whose records go with their socket (no eviction).
 */
#ifndef __TIDEGATE_H
#define __TIDEGATE_H

#ifndef __VMLINUX_H__
#include <linux/types.h> /* user space C; BPF code gets the __u* types from vmlinux.h */
#endif

#define TG_LAYOUT_VERSION 6
#define TG_MAX_PORT_RULES 16 /* port rules per LPM value */
#define TG_RULE_NONE 0xffff  /* rule_id when no egress rule decided */

/* Protocols, as in the IP header: IPPROTO_TCP 6, IPPROTO_UDP 17. */
#define TG_PROTO_TCP 6
#define TG_PROTO_UDP 17

enum tg_action {
	TG_ACT_DENY = 1,
	TG_ACT_DIRECT = 2,
};

enum tg_reason {
	TG_REASON_RULE = 1,           /* a deny rule of the cgroup's share */
	TG_REASON_NO_RULE = 2,        /* UDP (or another non-TCP protocol) that no rule names */
	TG_REASON_UNKNOWN_CGROUP = 3, /* the cgroup has no entry in the policy maps */
	TG_REASON_NO_PROXY = 4,       /* TCP to redirect, but tg_settings names no proxy */
	TG_REASON_RECORD_LIMIT = 5,   /* TCP to redirect, but the caller's cgroup has max_open redirected
				       * sockets open already */
};

enum tg_hook {
	TG_HOOK_CONNECT4 = 1,
	TG_HOOK_CONNECT6 = 2,
	TG_HOOK_SENDMSG4 = 3,
	TG_HOOK_SENDMSG6 = 4,
};

/* Indexes of tg_counters (a per-CPU array: user space sums the CPUs). */
enum tg_counter {
	TG_CNT_CONNECT = 0,     /* connect4/6 calls */
	TG_CNT_DENY,            /* connects and sendmsgs refused with EPERM, whatever the reason */
	TG_CNT_DIRECT,          /* connects and sendmsgs let through untouched by a direct rule */
	TG_CNT_REDIRECT,        /* TCP connects rewritten to the proxy, with a record stored */
	TG_CNT_SENDMSG,         /* sendmsg4/6 calls (unconnected UDP) */
	TG_CNT_UNKNOWN_CGROUP,  /* calls from a cgroup with no policy entry */
	TG_CNT_RECORD_FAIL,     /* a record could not be stored: the connect is denied */
	TG_CNT_EVENT_DROP,      /* the ring buffer was full: the deny happened, its event is lost */
	TG_CNT_RECORD_LIMIT,    /* a redirect refused: its cgroup had max_open redirected sockets open */
	TG_CNT__MAX,
};

struct tg_port_rule {
	__u16 port_lo; /* host order, inclusive */
	__u16 port_hi; /* host order, inclusive */
	__u8 proto;    /* TG_PROTO_TCP or TG_PROTO_UDP */
	__u8 action;   /* enum tg_action; any other value is treated as a deny */
	__u16 rule_id; /* index of the egress rule in the loaded policy, or TG_RULE_NONE */
};

/* Value of tg_policy4/tg_policy6: the port rules of one prefix merged with those of every
 * enclosing prefix of the same cgroup. Rules never overlap, so at most one matches. */
struct tg_policy_value {
	__u32 count; /* used entries of rules[]; values above TG_MAX_PORT_RULES are capped */
	__u32 flags; /* reserved, 0 */
	struct tg_port_rule rules[TG_MAX_PORT_RULES];
};

/* LPM trie keys. prefixlen counts the bits of what follows it: 64 for the cgroup id (always
 * matched in full) plus the address prefix, so 64..96 and 64..192. The cgroup id is split into
 * cgroup_hi = id >> 32 and cgroup_lo = id & 0xffffffff, both in host order (prefixlen >= 64 makes
 * only equality matter). Addresses in network order. */
struct tg_policy4_key {
	__u32 prefixlen;
	__u32 cgroup_hi;
	__u32 cgroup_lo;
	__u32 addr;
};

struct tg_policy6_key {
	__u32 prefixlen;
	__u32 cgroup_hi;
	__u32 cgroup_lo;
	__u32 addr[4];
};

/* What connect4/6 saw for a redirected TCP connection: the value of tg_rec_cookie, keyed by cookie. */
struct tg_record {
	__u32 orig_addr[4]; /* network order; IPv4 in orig_addr[0], rest 0 */
	__u16 orig_port;    /* host order */
	__u8 family;        /* 4 or 6; an IPv4-mapped IPv6 destination is recorded as 4 */
	__u8 proto;
	__u32 pid;          /* thread id: lower 32 bits of bpf_get_current_pid_tgid() */
	__u32 tgid;         /* process id: upper 32 bits */
	__u32 uid;
	__u32 gid;
	__u32 pad0;         /* 0 */
	__u64 cgroup_id;    /* bpf_get_current_cgroup_id() of the caller */
	__u64 cookie;       /* socket cookie */
	__u64 time_ns;      /* bpf_ktime_get_ns() at connect */
	__u64 start_ns;     /* the caller's process (thread group leader) start_boottime: ns after boot,
			     * what /proc/PID/stat field 22 shows in clock ticks */
};

/* A ring buffer record (tg_events): one denied connect or sendmsg. */
struct tg_event {
	__u64 time_ns;
	__u64 cgroup_id;
	__u32 pid;
	__u32 tgid;
	__u32 uid;
	__u32 gid;
	__u32 addr[4];  /* destination, network order; IPv4 (v4-mapped included) in addr[0] */
	__u16 port;     /* destination, host order */
	__u16 rule_id;  /* TG_RULE_NONE unless reason is TG_REASON_RULE */
	__u8 family;    /* 4 or 6 */
	__u8 proto;
	__u8 reason;    /* enum tg_reason */
	__u8 hook;      /* enum tg_hook */
};

/* The single entry (key 0) of tg_settings, written by the agent. */
struct tg_settings {
	__u32 layout_version; /* TG_LAYOUT_VERSION */
	__u16 proxy_port;     /* host order; 0 = no proxy: TCP to redirect is denied (NO_PROXY) */
	__u16 pad;            /* 0 */
	__u32 proxy4;         /* network order, e.g. 127.0.0.1; 0 = no IPv4 proxy (NO_PROXY) */
	__u32 proxy6[4];      /* network order, e.g. ::1; all zero = no IPv6 proxy (NO_PROXY) */
	__u32 max_open;       /* redirected sockets one cgroup may hold open at once; 0 = no bound */
};

/* The value of tg_sk_owner, a socket's local storage: the cgroup whose count (tg_rec_count) its
 * redirect raised, 0 while it raised none. tg_sock_release lowers that count again. */
struct tg_sk_owner {
	__u64 cgroup_id;
};

#define TG_ASSERT_SIZE(type, size) _Static_assert(sizeof(struct type) == (size), #type " size")
#define TG_ASSERT_AT(type, member, off) \
	_Static_assert(__builtin_offsetof(struct type, member) == (off), #type "." #member " offset")

TG_ASSERT_SIZE(tg_port_rule, 8);
TG_ASSERT_AT(tg_port_rule, port_hi, 2);
TG_ASSERT_AT(tg_port_rule, proto, 4);
TG_ASSERT_AT(tg_port_rule, action, 5);
TG_ASSERT_AT(tg_port_rule, rule_id, 6);

TG_ASSERT_SIZE(tg_policy_value, 8 + 8 * TG_MAX_PORT_RULES);
TG_ASSERT_AT(tg_policy_value, flags, 4);
TG_ASSERT_AT(tg_policy_value, rules, 8);

TG_ASSERT_SIZE(tg_policy4_key, 16);
TG_ASSERT_AT(tg_policy4_key, cgroup_hi, 4);
TG_ASSERT_AT(tg_policy4_key, cgroup_lo, 8);
TG_ASSERT_AT(tg_policy4_key, addr, 12);

TG_ASSERT_SIZE(tg_policy6_key, 28);
TG_ASSERT_AT(tg_policy6_key, cgroup_hi, 4);
TG_ASSERT_AT(tg_policy6_key, cgroup_lo, 8);
TG_ASSERT_AT(tg_policy6_key, addr, 12);

TG_ASSERT_SIZE(tg_record, 72);
TG_ASSERT_AT(tg_record, orig_port, 16);
TG_ASSERT_AT(tg_record, family, 18);
TG_ASSERT_AT(tg_record, proto, 19);
TG_ASSERT_AT(tg_record, pid, 20);
TG_ASSERT_AT(tg_record, tgid, 24);
TG_ASSERT_AT(tg_record, uid, 28);
TG_ASSERT_AT(tg_record, gid, 32);
TG_ASSERT_AT(tg_record, pad0, 36);
TG_ASSERT_AT(tg_record, cgroup_id, 40);
TG_ASSERT_AT(tg_record, cookie, 48);
TG_ASSERT_AT(tg_record, time_ns, 56);
TG_ASSERT_AT(tg_record, start_ns, 64);

TG_ASSERT_SIZE(tg_event, 56);
TG_ASSERT_AT(tg_event, cgroup_id, 8);
TG_ASSERT_AT(tg_event, pid, 16);
TG_ASSERT_AT(tg_event, tgid, 20);
TG_ASSERT_AT(tg_event, uid, 24);
TG_ASSERT_AT(tg_event, gid, 28);
TG_ASSERT_AT(tg_event, addr, 32);
TG_ASSERT_AT(tg_event, port, 48);
TG_ASSERT_AT(tg_event, rule_id, 50);
TG_ASSERT_AT(tg_event, family, 52);
TG_ASSERT_AT(tg_event, proto, 53);
TG_ASSERT_AT(tg_event, reason, 54);
TG_ASSERT_AT(tg_event, hook, 55);

TG_ASSERT_SIZE(tg_settings, 32);
TG_ASSERT_AT(tg_settings, max_open, 28);
TG_ASSERT_SIZE(tg_sk_owner, 8);
TG_ASSERT_AT(tg_settings, proxy_port, 4);
TG_ASSERT_AT(tg_settings, pad, 6);
TG_ASSERT_AT(tg_settings, proxy4, 8);
TG_ASSERT_AT(tg_settings, proxy6, 12);

#endif /* __TIDEGATE_H */
