/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The maps of bpf/tidegate.bpf.o (the contract table is in bpf/README.md) and the two ways the
 * programs report: per-CPU counters and deny events on the ring buffer. Kernel side only; include
 * after vmlinux.h, bpf_helpers.h and tidegate.h.
 */
#ifndef __TIDEGATE_MAPS_H
#define __TIDEGATE_MAPS_H

/* The kernel's share of the policy per cgroup; written by the agent only. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct tg_policy4_key);
	__type(value, struct tg_policy_value);
	__uint(max_entries, 16384);
} tg_policy4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct tg_policy6_key);
	__type(value, struct tg_policy_value);
	__uint(max_entries, 16384);
} tg_policy6 SEC(".maps");

/* Records of redirected connects by the client socket's cookie (written by connect4/6; the proxy
 * reads each once and deletes it; tg_sock_release deletes one the proxy never read). A plain hash:
 * no record is ever evicted to make room for another, so one cgroup's connects cannot push out
 * another's; a full map refuses the connect (RECORD_FAIL). tg_settings.max_open bounds each
 * cgroup's share. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u64);
	__type(value, struct tg_record);
	__uint(max_entries, 65536);
} tg_rec_cookie SEC(".maps");

/* Redirected sockets open per cgroup id: raised by connect4/6 at a socket's first redirect,
 * lowered by tg_sock_release when it closes. The agent deletes a cgroup's entry with the cgroup. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u64);
	__type(value, __u64);
	__uint(max_entries, 16384);
} tg_rec_count SEC(".maps");

/* Per socket, which cgroup's count its redirect raised (local storage: freed with the socket). */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct tg_sk_owner);
} tg_sk_owner SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, TG_CNT__MAX);
} tg_counters SEC(".maps");

/* struct tg_event records; a ring buffer map carries no value type. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} tg_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct tg_settings);
	__uint(max_entries, 1);
} tg_settings SEC(".maps");

/* BTF anchors: struct tg_event travels in the ring buffer and the enums are in no map, so these
 * otherwise unused globals put them into the object's BTF, where the agent's layout test reads
 * them. The programs never read or write them (they land in the object's .bss). */
struct tg_event tg_btf_event __attribute__((used));
enum tg_action tg_btf_action __attribute__((used));
enum tg_reason tg_btf_reason __attribute__((used));
enum tg_hook tg_btf_hook __attribute__((used));
enum tg_counter tg_btf_counter __attribute__((used));

/* Per-CPU, but a program can be preempted by another on the same CPU: the add is atomic. */
static __always_inline void tg_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&tg_counters, &idx);

	if (v)
		__sync_fetch_and_add(v, 1);
}

/* The caller as both a record and an event name it. */
struct tg_caller {
	__u64 cgroup_id;
	__u32 pid;
	__u32 tgid;
	__u32 uid;
	__u32 gid;
};

/* The two members of the kernel's task_struct read here, relocated by CO-RE (libbpf matches the
 * name before "___"); declaring only them keeps the rest of task_struct's types out of the
 * object's BTF. */
struct task_struct___tg {
	struct task_struct___tg *group_leader;
	__u64 start_boottime;
} __attribute__((preserve_access_index));

/* When the caller's process started (its thread group leader's start_boottime, ns after boot):
 * with its pid, it names the one process that connected, whatever reuses the pid later. */
static __always_inline __u64 tg_caller_start_ns(void)
{
	struct task_struct___tg *task = (struct task_struct___tg *)bpf_get_current_task_btf();

	return task->group_leader->start_boottime;
}

static __always_inline void tg_caller_get(struct tg_caller *c)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 uid_gid = bpf_get_current_uid_gid();

	c->cgroup_id = bpf_get_current_cgroup_id();
	c->pid = (__u32)pid_tgid;
	c->tgid = (__u32)(pid_tgid >> 32);
	c->uid = (__u32)uid_gid;
	c->gid = (__u32)(uid_gid >> 32);
}

/* A destination as the programs see it: an IPv4-mapped IPv6 address is already turned into
 * family 4 with the address in addr[0]. */
struct tg_dest {
	__u32 addr[4]; /* network order */
	__u16 port;    /* host order */
	__u8 family;   /* 4 or 6 */
	__u8 proto;
};

/* Queues a deny event; a full ring buffer loses the event (counted), never the deny. */
static __always_inline void tg_emit_deny(const struct tg_caller *c, const struct tg_dest *d, __u8 reason,
					 __u16 rule_id, __u8 hook)
{
	struct tg_event *e = bpf_ringbuf_reserve(&tg_events, sizeof(*e), 0);

	if (!e) {
		tg_count(TG_CNT_EVENT_DROP);
		return;
	}
	e->time_ns = bpf_ktime_get_ns();
	e->cgroup_id = c->cgroup_id;
	e->pid = c->pid;
	e->tgid = c->tgid;
	e->uid = c->uid;
	e->gid = c->gid;
	e->addr[0] = d->addr[0];
	e->addr[1] = d->addr[1];
	e->addr[2] = d->addr[2];
	e->addr[3] = d->addr[3];
	e->port = d->port;
	e->rule_id = rule_id;
	e->family = d->family;
	e->proto = d->proto;
	e->reason = reason;
	e->hook = hook;
	bpf_ringbuf_submit(e, 0);
}

#endif /* __TIDEGATE_MAPS_H */
