/* NetworkPolicy enforcement: an LPM lookup on (endpoint, direction, peer
 * identity, protocol, port), then the same with "any peer". */
#pragma once

#include "endpoint.h"
#include "parse.h"

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct policy_key);
	__type(value, struct policy_entry);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} pinion_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32); /* policy id = cookie >> 8 */
	__type(value, struct policy_name);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} pinion_polnames SEC(".maps");

static __always_inline struct policy_entry *policy_match(__u32 endpoint_id, __u8 direction, __u32 identity,
							 const struct packet *pkt)
{
	struct policy_key key = {
		.prefixlen = POLICY_PREFIX_FULL,
		.endpoint_id = endpoint_id,
		.direction = direction,
		.identity = identity,
		.proto = pkt->proto,
		/* ICMP's identifier is not a port: rules with ports never match it. */
		.dport = pkt->proto == IPPROTO_ICMP ? 0 : pkt->dport,
	};

	return bpf_map_lookup_elem(&pinion_policy, &key);
}

/* VERDICT_ALLOW or VERDICT_DENY for a new connection; *cookie names the rule. */
static __always_inline int policy_verdict(const struct endpoint_info *ep, __u8 direction, __u32 peer_identity,
					  const struct packet *pkt, __u32 *cookie)
{
	__u32 deny_cookie = direction == DIR_INGRESS ? ep->ingress_deny_cookie : ep->egress_deny_cookie;
	struct policy_entry *entry;

	*cookie = 0;
	/* Not selected by any policy for this direction: not isolated. */
	if (!deny_cookie)
		return VERDICT_ALLOW;
	/* Kubernetes: traffic to and from the pod's own node is always allowed. */
	if (peer_identity == IDENTITY_HOST)
		return VERDICT_ALLOW;
	entry = policy_match(ep->endpoint_id, direction, peer_identity, pkt);
	if (!entry)
		entry = policy_match(ep->endpoint_id, direction, IDENTITY_ANY, pkt);
	if (!entry) {
		*cookie = deny_cookie;
		return VERDICT_DENY;
	}
	*cookie = entry->cookie;
	return (entry->flags & POLICY_F_DENY) ? VERDICT_DENY : VERDICT_ALLOW;
}
