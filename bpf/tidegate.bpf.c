// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Kernel capture for tidegate (DESIGN.md section 3): the programs attach to the instance's cgroup
 * root and judge every connect and unconnected UDP send of the workloads below it against the
 * kernel's share of their cgroup's policy (src/policy/kernel-share.ts, loaded by src/bpf/).
 *
 * Decision, per call (hook = connect4/6 for TCP and connected UDP, sendmsg4/6 for unconnected UDP):
 * - the caller's cgroup has no entry:  TCP connect -> redirect; anything else -> deny (UNKNOWN_CGROUP)
 * - a rule matches, action direct:     untouched (return 1)
 * - a rule matches, any other action:  deny (RULE, with its rule id)
 * - no rule, TCP connect:              redirect to the egress proxy with a record of the original
 *                                      destination; no proxy configured or no record stored -> deny
 * - no rule, anything else:            deny (NO_RULE)
 * A deny returns 0, so the syscall fails with EPERM, and queues a tg_event. Nothing is ever sent to
 * the original destination of a redirected connect: the proxy decides by name.
 *
 * ingress: a workload's listening socket accepts no connection from another host: a TCP SYN
 * without ACK whose source is not loopback is dropped (replies to the workload's own connections,
 * UDP, ICMP and loopback pass), so a workload cannot serve what it holds to whoever reaches the host.
 *
 * sock_create: in a managed cgroup, an IPv4 or IPv6 socket must be TCP or UDP. Any other protocol
 * (ICMP "ping" sockets, which a ping_group_range can open to users; raw, SCTP...) would send with
 * neither a connect nor a UDP sendmsg hook to judge it, so it is refused at socket(2) with EPERM.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include "tidegate.h"
#include "maps.h"
#include "lookup.h"

#define TG_AF_INET 2
#define TG_AF_INET6 10

#define TG_ALLOW 1
#define TG_DENY 0 /* the syscall fails with EPERM */

static __always_inline int tg_deny(const struct tg_caller *c, const struct tg_dest *d, __u8 reason, __u16 rule_id,
				   __u8 hook)
{
	tg_count(TG_CNT_DENY);
	tg_emit_deny(c, d, reason, rule_id, hook);
	return TG_DENY;
}

/* Counts the socket as one of its caller's cgroup's open redirected sockets, at its first redirect
 * (a socket connected again after a failed connect is already counted): TG_OPEN_OK, or why not.
 * The socket's local storage keeps which cgroup's count it raised, for tg_sock_release. The
 * increment and the bound are one atomic step, so concurrent connects never exceed max_open. */
#define TG_OPEN_OK 0
#define TG_OPEN_FAIL 1
#define TG_OPEN_LIMIT 2
static __always_inline int tg_count_open(struct bpf_sock_addr *ctx, const struct tg_caller *c, __u32 max_open)
{
	struct tg_sk_owner *owner = bpf_sk_storage_get(&tg_sk_owner, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	__u64 zero = 0;
	__u64 *open;

	if (!owner)
		return TG_OPEN_FAIL;
	if (owner->cgroup_id != 0)
		return TG_OPEN_OK;
	open = bpf_map_lookup_elem(&tg_rec_count, &c->cgroup_id);
	if (!open) {
		bpf_map_update_elem(&tg_rec_count, &c->cgroup_id, &zero, BPF_NOEXIST);
		open = bpf_map_lookup_elem(&tg_rec_count, &c->cgroup_id);
		if (!open)
			return TG_OPEN_FAIL;
	}
	if (__sync_fetch_and_add(open, 1) >= max_open && max_open != 0) {
		__sync_fetch_and_sub(open, 1);
		return TG_OPEN_LIMIT;
	}
	owner->cgroup_id = c->cgroup_id;
	return TG_OPEN_OK;
}

/* Stores the record under the socket cookie, then points the connect at the proxy. A connect is
 * never redirected without a record: the proxy refuses peers it has no record for. The proxy finds
 * the record by the cookie of its peer's socket, which it asks the kernel for (sock_diag); no
 * program runs once the connection is established, until the socket closes (tg_sock_release). */
static __always_inline int tg_redirect(struct bpf_sock_addr *ctx, const struct tg_caller *c, const struct tg_dest *d,
				       int v6, __u8 hook)
{
	__u32 zero = 0;
	const struct tg_settings *s = bpf_map_lookup_elem(&tg_settings, &zero);
	__u32 proxy6[4];
	__u32 proxy4;
	__u16 proxy_port;

	if (!s)
		return tg_deny(c, d, TG_REASON_NO_PROXY, TG_RULE_NONE, hook);
	proxy_port = s->proxy_port;
	proxy4 = s->proxy4;
	proxy6[0] = s->proxy6[0];
	proxy6[1] = s->proxy6[1];
	proxy6[2] = s->proxy6[2];
	proxy6[3] = s->proxy6[3];
	if (proxy_port == 0 || (d->family == 4 && proxy4 == 0) ||
	    (d->family == 6 && (proxy6[0] | proxy6[1] | proxy6[2] | proxy6[3]) == 0))
		return tg_deny(c, d, TG_REASON_NO_PROXY, TG_RULE_NONE, hook);

	switch (tg_count_open(ctx, c, s->max_open)) {
	case TG_OPEN_OK:
		break;
	case TG_OPEN_LIMIT:
		tg_count(TG_CNT_RECORD_LIMIT);
		return tg_deny(c, d, TG_REASON_RECORD_LIMIT, TG_RULE_NONE, hook);
	default:
		tg_count(TG_CNT_RECORD_FAIL);
		tg_count(TG_CNT_DENY);
		return TG_DENY;
	}

	struct tg_record rec = {
		.orig_addr = { d->addr[0], d->addr[1], d->addr[2], d->addr[3] },
		.orig_port = d->port,
		.family = d->family,
		.proto = d->proto,
		.pid = c->pid,
		.tgid = c->tgid,
		.uid = c->uid,
		.gid = c->gid,
		.cgroup_id = c->cgroup_id,
		.cookie = bpf_get_socket_cookie(ctx),
		.time_ns = bpf_ktime_get_ns(),
		.start_ns = tg_caller_start_ns(),
	};

	if (bpf_map_update_elem(&tg_rec_cookie, &rec.cookie, &rec, BPF_ANY) != 0) {
		tg_count(TG_CNT_RECORD_FAIL);
		tg_count(TG_CNT_DENY);
		return TG_DENY;
	}
	if (!v6) {
		ctx->user_ip4 = proxy4;
	} else if (d->family == 4) { /* v4-mapped destination: ::ffff:<proxy4> keeps the socket dual-stack */
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
		ctx->user_ip6[3] = proxy4;
	} else {
		ctx->user_ip6[0] = proxy6[0];
		ctx->user_ip6[1] = proxy6[1];
		ctx->user_ip6[2] = proxy6[2];
		ctx->user_ip6[3] = proxy6[3];
	}
	ctx->user_port = bpf_htons(proxy_port);
	tg_count(TG_CNT_REDIRECT);
	return TG_ALLOW;
}

static __always_inline int tg_connect(struct bpf_sock_addr *ctx, int v6)
{
	__u8 hook = v6 ? TG_HOOK_CONNECT6 : TG_HOOK_CONNECT4;
	struct tg_caller c;
	struct tg_dest d = {};
	struct tg_match m;

	tg_count(TG_CNT_CONNECT);
	tg_caller_get(&c);
	tg_dest_of(ctx, v6, &d);
	tg_lookup(c.cgroup_id, &d, &m);
	if (!m.known) {
		tg_count(TG_CNT_UNKNOWN_CGROUP);
		if (d.proto != TG_PROTO_TCP)
			return tg_deny(&c, &d, TG_REASON_UNKNOWN_CGROUP, TG_RULE_NONE, hook);
		return tg_redirect(ctx, &c, &d, v6, hook); /* the proxy refuses callers it does not know */
	}
	if (m.action == TG_ACT_DIRECT) {
		tg_count(TG_CNT_DIRECT);
		return TG_ALLOW;
	}
	if (m.action != 0)
		return tg_deny(&c, &d, TG_REASON_RULE, m.rule_id, hook);
	if (d.proto != TG_PROTO_TCP)
		return tg_deny(&c, &d, TG_REASON_NO_RULE, TG_RULE_NONE, hook);
	return tg_redirect(ctx, &c, &d, v6, hook);
}

/* Unconnected UDP (sendto/sendmsg with an address): only direct rules let a datagram out. */
static __always_inline int tg_sendmsg(struct bpf_sock_addr *ctx, int v6)
{
	__u8 hook = v6 ? TG_HOOK_SENDMSG6 : TG_HOOK_SENDMSG4;
	struct tg_caller c;
	struct tg_dest d = {};
	struct tg_match m;

	tg_count(TG_CNT_SENDMSG);
	tg_caller_get(&c);
	tg_dest_of(ctx, v6, &d);
	tg_lookup(c.cgroup_id, &d, &m);
	if (!m.known) {
		tg_count(TG_CNT_UNKNOWN_CGROUP);
		return tg_deny(&c, &d, TG_REASON_UNKNOWN_CGROUP, TG_RULE_NONE, hook);
	}
	if (m.action == TG_ACT_DIRECT) {
		tg_count(TG_CNT_DIRECT);
		return TG_ALLOW;
	}
	if (m.action != 0)
		return tg_deny(&c, &d, TG_REASON_RULE, m.rule_id, hook);
	return tg_deny(&c, &d, TG_REASON_NO_RULE, TG_RULE_NONE, hook);
}

SEC("cgroup/connect4")
int tg_connect4(struct bpf_sock_addr *ctx)
{
	return tg_connect(ctx, 0);
}

SEC("cgroup/connect6")
int tg_connect6(struct bpf_sock_addr *ctx)
{
	return tg_connect(ctx, 1);
}

SEC("cgroup/sendmsg4")
int tg_sendmsg4(struct bpf_sock_addr *ctx)
{
	return tg_sendmsg(ctx, 0);
}

SEC("cgroup/sendmsg6")
int tg_sendmsg6(struct bpf_sock_addr *ctx)
{
	return tg_sendmsg(ctx, 1);
}

SEC("cgroup/sock_create")
int tg_sock_create(struct bpf_sock *sk)
{
	if (sk->family != TG_AF_INET && sk->family != TG_AF_INET6)
		return TG_ALLOW;
	if (sk->protocol == IPPROTO_TCP || sk->protocol == IPPROTO_UDP)
		return TG_ALLOW;
	return TG_DENY;
}

/* A managed socket closes (its last file reference is gone; the protocol may linger on, in
 * TIME_WAIT say). If its redirect was counted, its cgroup's count of open redirected sockets goes
 * down by one, so a cgroup's share is what it holds open. Its record goes too if the connection
 * never reached the proxy (still SYN_SENT, or CLOSE: refused, reset, timed out): nothing would
 * ever take it. A connection that did reach the proxy keeps its record until the proxy takes it
 * at accept, so a client that connects and closes at once is still named in the audit log; such
 * records are bounded by the proxy's accept queue. */
SEC("cgroup/sock_release")
int tg_sock_release(struct bpf_sock *sk)
{
	struct tg_sk_owner *owner;
	__u64 cookie;
	__u64 *open;

	if (sk->protocol != IPPROTO_TCP)
		return TG_ALLOW;
	owner = bpf_sk_storage_get(&tg_sk_owner, sk, 0, 0);
	if (!owner || owner->cgroup_id == 0)
		return TG_ALLOW;
	if (sk->state == BPF_TCP_SYN_SENT || sk->state == BPF_TCP_CLOSE) {
		cookie = bpf_get_socket_cookie(sk);
		bpf_map_delete_elem(&tg_rec_cookie, &cookie);
	}
	open = bpf_map_lookup_elem(&tg_rec_count, &owner->cgroup_id);
	if (open && *open > 0)
		__sync_fetch_and_sub(open, 1);
	owner->cgroup_id = 0;
	return TG_ALLOW;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define TG_ETH_P_IP 0x0800
#define TG_ETH_P_IPV6 0x86DD
#define TG_SYN 0x02
#define TG_ACK 0x10
#define TG_DROP 0
#define TG_PASS 1

/* The TCP flags byte at `off` (the TCP header's start) + 13: SYN without ACK is a new connection. */
static __always_inline int tg_new_connection(struct __sk_buff *skb, __u32 off)
{
	__u8 flags = 0;
	if (bpf_skb_load_bytes(skb, off + 13, &flags, 1))
		return 1; /* unreadable: treat as new, fail closed */
	return (flags & (TG_SYN | TG_ACK)) == TG_SYN;
}

SEC("cgroup_skb/ingress")
int tg_ingress(struct __sk_buff *skb)
{
	if (skb->protocol == bpf_htons(TG_ETH_P_IP)) {
		/* Most packets come over loopback (the egress listener is there): read the header in place
		   when it is in the linear part, without a helper call. */
		void *data = (void *)(long)skb->data;
		void *end = (void *)(long)skb->data_end;
		struct iphdr *hdr = data;
		struct iphdr ip = {};
		if ((void *)(hdr + 1) <= end)
			ip = *hdr;
		else if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return TG_PASS;
		if (ip.protocol != IPPROTO_TCP || (bpf_ntohl(ip.saddr) >> 24) == 127)
			return TG_PASS;
		return tg_new_connection(skb, ip.ihl * 4) ? TG_DROP : TG_PASS;
	}
	if (skb->protocol == bpf_htons(TG_ETH_P_IPV6)) {
		struct ipv6hdr ip6 = {};
		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return TG_PASS;
		__u32 *s = ip6.saddr.in6_u.u6_addr32;
		int loopback = s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == bpf_htonl(1);
		int mapped_loopback = s[0] == 0 && s[1] == 0 && s[2] == bpf_htonl(0xffff) && (bpf_ntohl(s[3]) >> 24) == 127;
		if (loopback || mapped_loopback)
			return TG_PASS;
		if (ip6.nexthdr == IPPROTO_UDP || ip6.nexthdr == 58 /* ICMPv6 */)
			return TG_PASS;
		if (ip6.nexthdr != IPPROTO_TCP)
			return TG_DROP; /* an extension header could hide a SYN: not from another host */
		return tg_new_connection(skb, sizeof(ip6)) ? TG_DROP : TG_PASS;
	}
	return TG_PASS;
}
