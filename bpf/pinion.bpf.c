/* Pinion datapath: two tc programs on the host side of every pod's veth.
 *
 *   pod netns          node netns
 *   [eth0] <==veth==> [host veth]  --tc ingress-->  from_pod  (packets leaving the pod)
 *                                  <--tc egress---  to_pod    (packets entering the pod)
 *
 * from_pod: parse -> spoof guard -> Service DNAT -> conntrack -> egress policy -> forward
 * to_pod:   parse -> conntrack -> reverse NAT (replies) | ingress policy (new) -> deliver
 * Forwarding is left to the node's routing table (TC_ACT_OK). */
#include "lib/common.h"
#include "lib/conntrack.h"
#include "lib/endpoint.h"
#include "lib/events.h"
#include "lib/lb.h"
#include "lib/metrics.h"
#include "lib/policy.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline int finish_drop(struct __sk_buff *skb, const struct packet *pkt, struct verdict_ctx *vc,
				       __u8 reason)
{
	metrics_count(skb, reason, vc->direction);
	emit_drop(skb, pkt, vc, reason);
	dryrun_report(skb, vc, TC_ACT_SHOT, reason);
	return TC_ACT_SHOT;
}

static __always_inline int finish_pass(struct __sk_buff *skb, const struct packet *pkt, struct verdict_ctx *vc,
				       __u8 point)
{
	metrics_count(skb, DROP_FORWARDED, vc->direction);
	emit_trace(skb, pkt, vc, point);
	dryrun_report(skb, vc, TC_ACT_OK, 0);
	return TC_ACT_OK;
}

/* Shared start of both hooks: parse, or decide the packet is not ours to judge. */
static __always_inline int begin(struct __sk_buff *skb, struct packet *pkt, struct verdict_ctx *vc)
{
	int ret = parse_packet(skb, pkt);
	__u8 trace_dscp;

	if (ret)
		return ret;
	trace_dscp = CONFIG_VALUE(trace_dscp);
	vc->traceflow = trace_dscp && pkt->dscp == trace_dscp;
	vc->orig_daddr = pkt->daddr;
	vc->orig_dport = pkt->dport;
	return 0;
}

SEC("tc")
int from_pod(struct __sk_buff *skb)
{
	struct verdict_ctx vc = {.direction = DIR_EGRESS};
	struct packet pkt = {};
	struct lb_result lb = {};
	struct endpoint_info *ep;
	struct ct_entry *entry;
	int ret;

	ret = begin(skb, &pkt, &vc);
	if (ret == DROP_NOT_IPV4) {
		metrics_count(skb, DROP_NOT_IPV4, DIR_EGRESS);
		return TC_ACT_OK; /* ARP, IPv6: not handled by v1, passed untouched */
	}
	if (ret)
		return finish_drop(skb, &pkt, &vc, ret);

	/* Spoof guard: the source must be the pod behind this interface. */
	vc.observations |= OBS_SPOOFGUARD;
	ep = endpoint_lookup(pkt.saddr);
	if (!ep || ep->ifindex != skb->ifindex)
		return finish_drop(skb, &pkt, &vc, DROP_SPOOFED_SOURCE);
	vc.endpoint_id = ep->endpoint_id;
	vc.src_identity = ep->identity;

	ret = lb_dnat(skb, &pkt, &lb);
	if (lb.applied) {
		vc.observations |= OBS_LB;
		vc.backend_id = lb.backend_id;
		vc.rev_nat_index = lb.rev_nat_index;
	}
	if (ret)
		return finish_drop(skb, &pkt, &vc, ret);

	vc.dst_identity = identity_of(pkt.daddr);
	vc.ct_state = ct_lookup(skb, &pkt, CT_EGRESS, &entry);
	if (vc.ct_state == CT_STATE_NEW) {
		int verdict = policy_verdict(ep, DIR_EGRESS, vc.dst_identity, &pkt, &vc.policy_cookie);

		if (ep->egress_deny_cookie) {
			vc.observations |= OBS_POLICY;
			emit_policy(skb, &pkt, &vc, verdict);
		}
		if (verdict == VERDICT_DENY)
			return finish_drop(skb, &pkt, &vc, DROP_POLICY_DENIED);
		ret = ct_create(skb, &pkt, CT_EGRESS, lb.rev_nat_index, vc.src_identity, vc.policy_cookie);
		if (ret)
			return finish_drop(skb, &pkt, &vc, ret);
	} else if (entry) {
		vc.policy_cookie = entry->policy_cookie;
	}
	return finish_pass(skb, &pkt, &vc, TRACE_FROM_POD);
}

SEC("tc")
int to_pod(struct __sk_buff *skb)
{
	struct verdict_ctx vc = {.direction = DIR_INGRESS};
	struct packet pkt = {};
	struct endpoint_info *ep;
	struct ct_entry *entry;
	int ret;

	ret = begin(skb, &pkt, &vc);
	if (ret == DROP_NOT_IPV4) {
		metrics_count(skb, DROP_NOT_IPV4, DIR_INGRESS);
		return TC_ACT_OK;
	}
	if (ret)
		return finish_drop(skb, &pkt, &vc, ret);

	ep = endpoint_lookup(pkt.daddr);
	if (!ep)
		return finish_drop(skb, &pkt, &vc, DROP_UNKNOWN_ENDPOINT);
	vc.endpoint_id = ep->endpoint_id;
	vc.dst_identity = ep->identity;
	vc.src_identity = identity_of(pkt.saddr);

	vc.ct_state = ct_lookup(skb, &pkt, CT_INGRESS, &entry);
	if (vc.ct_state == CT_STATE_REPLY && entry) {
		vc.policy_cookie = entry->policy_cookie;
		if (entry->rev_nat_index) {
			vc.rev_nat_index = entry->rev_nat_index;
			vc.observations |= OBS_REV_NAT;
			ret = lb_rev_nat(skb, &pkt, entry->rev_nat_index);
			if (ret)
				return finish_drop(skb, &pkt, &vc, ret);
		}
	} else if (vc.ct_state == CT_STATE_NEW) {
		int verdict = policy_verdict(ep, DIR_INGRESS, vc.src_identity, &pkt, &vc.policy_cookie);

		if (ep->ingress_deny_cookie) {
			vc.observations |= OBS_POLICY;
			emit_policy(skb, &pkt, &vc, verdict);
		}
		if (verdict == VERDICT_DENY)
			return finish_drop(skb, &pkt, &vc, DROP_POLICY_DENIED);
		ret = ct_create(skb, &pkt, CT_INGRESS, 0, vc.src_identity, vc.policy_cookie);
		if (ret)
			return finish_drop(skb, &pkt, &vc, ret);
	} else if (entry) {
		vc.policy_cookie = entry->policy_cookie;
	}
	return finish_pass(skb, &pkt, &vc, TRACE_TO_POD);
}
