/* Service load balancing: frontend lookup, backend choice with connection
 * affinity (a CT_SERVICE entry pins the flow), DNAT and reverse NAT. */
#pragma once

#include "conntrack.h"
#include "nat.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb4_key);
	__type(value, struct lb4_service);
	__uint(max_entries, 1048576); /* frontends plus one slot per backend */
	__uint(map_flags, BPF_F_NO_PREALLOC);
} pinion_services_v2 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct lb4_backend);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} pinion_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct lb4_reverse_nat);
	__uint(max_entries, REV_NAT_MAX + 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} pinion_revnat_v2 SEC(".maps");

struct lb_result {
	struct ct4_key affinity_key; /* the pre-DNAT tuple, CT_SERVICE scope */
	struct ct_entry *affinity;   /* the flow's live CT_SERVICE entry, if it kept its backend */
	__u32 backend_id;
	__u32 rev_nat_index;
	__u8 applied;
	__u8 pin; /* a backend was picked: record it once the flow is allowed */
};

static __always_inline struct lb4_service *lb_frontend(const struct packet *pkt, struct lb4_key *key)
{
	struct lb4_service *svc;

	key->address = pkt->daddr;
	key->dport = pkt->dport;
	key->backend_slot = 0;
	key->proto = pkt->proto;
	key->scope = 0;
	key->pad[0] = key->pad[1] = 0;
	svc = bpf_map_lookup_elem(&pinion_services_v2, key);
	if (svc || pkt->proto != IPPROTO_ICMP)
		return svc;
	/* ICMP has no port: the control plane installs a port-0 frontend for it. */
	key->dport = 0;
	return bpf_map_lookup_elem(&pinion_services_v2, key);
}

static __always_inline struct lb4_backend *lb_pick(struct lb4_key *key, const struct lb4_service *svc,
						   __u32 saddr, __u32 *backend_id)
{
	struct lb4_service *slot;

	struct lb4_backend *backend;
	__u16 pick = bpf_get_prandom_u32() % svc->count;

	key->backend_slot = pick + 1;
	slot = bpf_map_lookup_elem(&pinion_services_v2, key);
	if (!slot)
		return 0;
	*backend_id = slot->backend_id;
	backend = bpf_map_lookup_elem(&pinion_backends, backend_id);
	/* A pod calling its own Service would get its own packet back without
	 * reverse NAT (hairpin needs SNAT, not in v1): prefer another backend. */
	if (backend && backend->address == saddr && svc->count > 1) {
		/* Uniform over the other slots. */
		key->backend_slot = ((pick + 1 + bpf_get_prandom_u32() % (svc->count - 1)) % svc->count) + 1;
		slot = bpf_map_lookup_elem(&pinion_services_v2, key);
		if (!slot)
			return 0;
		*backend_id = slot->backend_id;
		backend = bpf_map_lookup_elem(&pinion_backends, backend_id);
	}
	return backend;
}

/* DNAT a packet addressed to a Service frontend; 0 or a drop reason. A flow
 * keeps its backend (the CT_SERVICE entry) while the backend exists. */
static __always_inline int lb_dnat(struct __sk_buff *skb, struct packet *pkt, struct lb_result *res, __u32 now)
{
	struct lb4_key key;
	struct lb4_service *svc = lb_frontend(pkt, &key);
	struct lb4_backend *backend = 0;
	struct ct_entry *affinity;
	__u32 backend_id = 0;

	res->applied = 0;
	res->pin = 0;
	res->affinity = 0;
	if (!svc)
		return 0;
	res->applied = 1;
	res->rev_nat_index = svc->rev_nat_index;
	if (svc->count == 0)
		return DROP_NO_SERVICE_BACKEND;

	ct_key_forward(pkt, CT_SERVICE, &res->affinity_key);
	affinity = bpf_map_lookup_elem(&pinion_ct4_v2, &res->affinity_key);
	if (affinity && !ct_expired(affinity, now)) {
		backend_id = affinity->backend_id;
		backend = bpf_map_lookup_elem(&pinion_backends, &backend_id);
		if (backend) {
			ct_update(skb, pkt, affinity, 0, now);
			res->affinity = affinity;
		}
	}
	if (!backend) {
		backend = lb_pick(&key, svc, pkt->saddr, &backend_id);
		if (!backend)
			return DROP_BACKEND_MISSING;
		res->pin = 1;
	}
	res->backend_id = backend_id;
	/* Port 0 frontends (ICMP) keep the packet's own port. */
	return rewrite_endpoint(skb, pkt, 1, backend->address, backend->port ?: pkt->dport);
}

/* A Service flow that kept its backend and whose egress entry was refreshed
 * this second skips that lookup, unless the packet opens or closes the
 * connection (the egress entry's lifetime follows SYN, FIN and RST). */
static __always_inline int lb_egress_fresh(struct __sk_buff *skb, const struct packet *pkt,
					   const struct lb_result *res, __u32 now)
{
	return res->affinity && !is_dryrun(skb) && res->affinity->egress_refreshed == (__u16)now &&
	       !(pkt->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_FIN | TCP_FLAG_RST));
}

/* The egress entry was looked up (and refreshed or created) at `now`. */
static __always_inline void lb_egress_refreshed(struct __sk_buff *skb, const struct lb_result *res, __u32 cookie,
						__u32 now)
{
	if (!res->affinity || is_dryrun(skb))
		return;
	res->affinity->egress_refreshed = now;
	res->affinity->policy_cookie = cookie;
}

/* Record the backend a new flow was given; 0 or a drop reason. */
static __always_inline int lb_pin(struct __sk_buff *skb, const struct packet *pkt, const struct lb_result *res,
				  __u32 cookie, __u32 now)
{
	struct ct_entry entry = {
		.backend_id = res->backend_id,
		.rev_nat_index = res->rev_nat_index,
		.policy_cookie = cookie,
		.egress_refreshed = now,
		.tx_packets = 1,
		.tx_bytes = skb->len,
	};

	if (!res->pin || is_dryrun(skb))
		return 0;
	entry.lifetime = now + ct_timeout(pkt, &entry);
	if (bpf_map_update_elem(&pinion_ct4_v2, &res->affinity_key, &entry, BPF_ANY) < 0)
		return DROP_CT_CREATE_FAILED;
	return 0;
}

/* Turn a Service reply's source back into the frontend it was sent to. */
static __always_inline int lb_rev_nat(struct __sk_buff *skb, struct packet *pkt, __u32 index)
{
	struct lb4_reverse_nat *rev = bpf_map_lookup_elem(&pinion_revnat_v2, &index);

	if (!rev)
		return 0;
	return rewrite_endpoint(skb, pkt, 0, rev->address, rev->port ?: pkt->sport);
}
