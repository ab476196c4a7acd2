/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The policy lookup shared by the connect and sendmsg programs: the longest prefix of the
 * destination for the caller's cgroup, then the one port rule (if any) for the protocol and port.
 * Kernel side only; include after maps.h.
 */
#ifndef __TIDEGATE_LOOKUP_H
#define __TIDEGATE_LOOKUP_H

struct tg_match {
	__u8 known;    /* the cgroup has an entry in the family's map (a managed cgroup always has /0) */
	__u8 action;   /* 0 = no rule names the destination; else enum tg_action as stored */
	__u16 rule_id; /* of the matching rule, else TG_RULE_NONE */
};

/* ::ffff:a.b.c.d. All four words in network order. */
static __always_inline int tg_is_v4_mapped(__u32 w0, __u32 w1, __u32 w2)
{
	return w0 == 0 && w1 == 0 && w2 == bpf_htonl(0x0000ffff);
}

/* Reads the destination of a connect4/6 or sendmsg4/6 call (ctx fields, no kernel structs). */
static __always_inline void tg_dest_of(struct bpf_sock_addr *ctx, int v6, struct tg_dest *d)
{
	d->port = bpf_ntohs((__u16)ctx->user_port);
	d->proto = (__u8)ctx->protocol;
	if (!v6) {
		d->family = 4;
		d->addr[0] = ctx->user_ip4;
		return;
	}
	d->addr[0] = ctx->user_ip6[0];
	d->addr[1] = ctx->user_ip6[1];
	d->addr[2] = ctx->user_ip6[2];
	d->addr[3] = ctx->user_ip6[3];
	if (tg_is_v4_mapped(d->addr[0], d->addr[1], d->addr[2])) {
		d->family = 4;
		d->addr[0] = d->addr[3];
		d->addr[1] = 0;
		d->addr[2] = 0;
		d->addr[3] = 0;
	} else {
		d->family = 6;
	}
}

/* Rules never overlap (the agent guarantees it), so the first match is the only one. */
static __always_inline void tg_match_rules(const struct tg_policy_value *v, const struct tg_dest *d,
					   struct tg_match *m)
{
	__u32 count = v->count;

	for (__u32 i = 0; i < TG_MAX_PORT_RULES; i++) {
		const struct tg_port_rule *r = &v->rules[i];

		if (i >= count)
			break;
		if (r->proto == d->proto && d->port >= r->port_lo && d->port <= r->port_hi) {
			m->action = r->action;
			m->rule_id = r->rule_id;
			return;
		}
	}
}

static __always_inline void tg_lookup(__u64 cgroup_id, const struct tg_dest *d, struct tg_match *m)
{
	const struct tg_policy_value *v;

	m->known = 0;
	m->action = 0;
	m->rule_id = TG_RULE_NONE;
	if (d->family == 4) {
		struct tg_policy4_key k = {
			.prefixlen = 64 + 32,
			.cgroup_hi = (__u32)(cgroup_id >> 32),
			.cgroup_lo = (__u32)cgroup_id,
			.addr = d->addr[0],
		};

		v = bpf_map_lookup_elem(&tg_policy4, &k);
	} else {
		struct tg_policy6_key k = {
			.prefixlen = 64 + 128,
			.cgroup_hi = (__u32)(cgroup_id >> 32),
			.cgroup_lo = (__u32)cgroup_id,
			.addr = { d->addr[0], d->addr[1], d->addr[2], d->addr[3] },
		};

		v = bpf_map_lookup_elem(&tg_policy6, &k);
	}
	if (!v)
		return;
	m->known = 1;
	tg_match_rules(v, d, m);
}

#endif /* __TIDEGATE_LOOKUP_H */
