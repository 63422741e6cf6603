/* The two pipelines; pinion.bpf.c makes them tc programs, bench.bpf.c wraps
 * them for per-packet measurements. */
#pragma once

#include "common.h"
#include "conntrack.h"
#include "endpoint.h"
#include "events.h"
#include "flowcache.h"
#include "lb.h"
#include "metrics.h"
#include "policy.h"

/* The peer's identity (destination when leaving the pod, source when
 * entering) costs a trie lookup: new connections need it for policy, other
 * packets only when an event or a dry-run result reports it. */
static __always_inline void defer_peer(struct verdict_ctx *vc, __u32 addr)
{
	vc->peer_addr = addr;
	vc->peer_pending = 1;
}

static __always_inline __u32 resolve_peer(struct verdict_ctx *vc)
{
	__u32 identity;

	if (!vc->peer_pending)
		return vc->direction == DIR_EGRESS ? vc->dst_identity : vc->src_identity;
	identity = identity_of(vc->peer_addr);
	if (vc->direction == DIR_EGRESS)
		vc->dst_identity = identity;
	else
		vc->src_identity = identity;
	vc->peer_pending = 0;
	return identity;
}

static __always_inline int finish_drop(struct __sk_buff *skb, const struct packet *pkt, struct verdict_ctx *vc,
				       __u8 reason)
{
	resolve_peer(vc);
	metrics_count(skb, reason, vc->direction);
	emit_drop(skb, pkt, vc, reason);
	dryrun_report(skb, vc, TC_ACT_SHOT, reason);
	return TC_ACT_SHOT;
}

static __always_inline int finish_pass(struct __sk_buff *skb, const struct packet *pkt, struct verdict_ctx *vc,
				       __u8 point)
{
	int trace = trace_wanted(skb, vc);

	metrics_count(skb, DROP_FORWARDED, vc->direction);
	if (trace || is_dryrun(skb))
		resolve_peer(vc);
	if (trace)
		emit_trace(skb, pkt, vc, point);
	dryrun_report(skb, vc, TC_ACT_OK, 0);
	return TC_ACT_OK;
}

/* A connection's first packet at this hook: the pod's policy for the hook's
 * direction (with a verdict event when the pod is isolated), then its
 * conntrack entry. 0 or a drop reason. */
static __always_inline int admit_new(struct __sk_buff *skb, const struct packet *pkt, struct verdict_ctx *vc,
				     const struct endpoint_info *ep, __u32 rev_nat_index, __u32 now)
{
	int egress = vc->direction == DIR_EGRESS;
	int verdict = policy_verdict(ep, vc->direction, resolve_peer(vc), pkt, &vc->policy_cookie);

	if (egress ? ep->egress_deny_cookie : ep->ingress_deny_cookie) {
		vc->observations |= OBS_POLICY;
		emit_policy(skb, pkt, vc, verdict);
	}
	if (verdict == VERDICT_DENY)
		return DROP_POLICY_DENIED;
	return ct_create(skb, pkt, egress ? CT_EGRESS : CT_INGRESS, rev_nat_index, vc->src_identity,
			 vc->policy_cookie, now);
}

/* The packet's flow as the cache knows it: the tuple the hook saw and the
 * configuration's flow epoch. */
struct flow_lookup {
	struct flow_key key;
	__u32 epoch;
};

/* A cache hit: forward without the pipeline (a failed rewrite is dropped). */
static __always_inline int forward_cached(struct __sk_buff *skb, struct packet *pkt, struct verdict_ctx *vc,
					  struct flow_slot *slot)
{
	int ret = flow_cache_forward(skb, pkt, slot);

	if (ret)
		return finish_drop(skb, pkt, vc, ret);
	metrics_add(skb, DROP_FORWARDED, vc->direction); /* cached flows are never dry runs */
	return TC_ACT_OK;
}

/* Shared start of both hooks: parse, then the verdicts that need no pipeline —
 * traffic not ours to judge (ARP, IPv6: passed untouched, counted), headers
 * that do not parse (dropped), flows the cache answers. Returns 1 when the
 * hook must run its pipeline (with `flow` filled in; scope: the hook's
 * conntrack scope), else 0 with the TC action in *verdict. */
static __always_inline int begin(struct __sk_buff *skb, struct packet *pkt, struct verdict_ctx *vc,
				 struct flow_lookup *flow, __u8 scope, int *verdict)
{
	struct pinion_config *cfg;
	int ret = parse_packet(skb, pkt);

	if (ret == DROP_NOT_IPV4) {
		metrics_count(skb, DROP_NOT_IPV4, vc->direction);
		*verdict = TC_ACT_OK;
		return 0;
	}
	if (ret) {
		*verdict = finish_drop(skb, pkt, vc, ret);
		return 0;
	}
	cfg = config_get();
	vc->traceflow = cfg && cfg->trace_dscp && pkt->dscp == cfg->trace_dscp;
	vc->orig_daddr = pkt->daddr;
	vc->orig_dport = pkt->dport;
	ct_key_forward(pkt, scope, &flow->key.tuple);
	flow->epoch = cfg ? cfg->flow_epoch : 0;
	if (flow_cacheable(skb, pkt, vc, cfg ? cfg->trace_level : 0)) {
		struct flow_slot *hit = flow_cache_hit(skb, flow_slot_of(&flow->key), &flow->key, flow->epoch);

		if (hit) {
			*verdict = forward_cached(skb, pkt, vc, hit);
			return 0;
		}
	}
	return 1;
}

/* Remember an established flow's outcome: its conntrack entry is the flow's
 * own tuple in `scope`, reversed for replies. */
static __always_inline void remember_flow(struct __sk_buff *skb, const struct packet *pkt, struct flow_lookup *flow,
					  __u8 scope, int reply, __u8 xlate)
{
	struct ct4_key ct = flow->key.tuple;

	ct.scope = scope;
	if (reply) {
		ct.saddr = flow->key.tuple.daddr;
		ct.daddr = flow->key.tuple.saddr;
		ct.sport = flow->key.tuple.dport;
		ct.dport = flow->key.tuple.sport;
	}
	/* Looked up again rather than kept from begin(): a pointer kept on the
	 * stack through the whole pipeline makes the verifier's work grow. */
	flow_cache_store(skb, pkt, flow_slot_of(&flow->key), &flow->key, &ct, reply, xlate, flow->epoch);
}

static __always_inline int handle_from_pod(struct __sk_buff *skb)
{
	struct verdict_ctx vc = {.direction = DIR_EGRESS};
	struct packet pkt = {};
	struct lb_result lb = {};
	struct flow_lookup flow;
	struct endpoint_info *ep;
	struct ct_entry *entry;
	__u32 now;
	int ret;

	if (!begin(skb, &pkt, &vc, &flow, CT_EGRESS, &ret))
		return ret;

	/* Spoof guard: the source must be the pod behind this interface. */
	vc.observations |= OBS_SPOOFGUARD;
	ep = endpoint_lookup(pkt.saddr);
	if (!ep || ep->ifindex != skb->ifindex)
		return finish_drop(skb, &pkt, &vc, DROP_SPOOFED_SOURCE);
	vc.endpoint_id = ep->endpoint_id;
	vc.src_identity = ep->identity;

	now = now_seconds();
	ret = lb_dnat(skb, &pkt, &lb, now);
	if (lb.applied) {
		vc.observations |= OBS_LB;
		vc.backend_id = lb.backend_id;
		vc.rev_nat_index = lb.rev_nat_index;
	}
	if (ret)
		return finish_drop(skb, &pkt, &vc, ret);

	defer_peer(&vc, pkt.daddr);
	if (lb_egress_fresh(skb, &pkt, &lb, now)) {
		vc.ct_state = CT_STATE_ESTABLISHED;
		vc.policy_cookie = lb.affinity->policy_cookie;
	} else {
		/* Most packets leaving a pod belong to connections it opened. */
		vc.ct_state = ct_lookup(skb, &pkt, CT_EGRESS, 0, &entry, now);
		if (vc.ct_state == CT_STATE_NEW) {
			ret = admit_new(skb, &pkt, &vc, ep, lb.rev_nat_index, now);
			if (ret)
				return finish_drop(skb, &pkt, &vc, ret);
		} else if (entry) {
			vc.policy_cookie = entry->policy_cookie;
		}
		lb_egress_refreshed(skb, &lb, vc.policy_cookie, now);
		ret = lb_pin(skb, &pkt, &lb, vc.policy_cookie, now);
		if (ret)
			return finish_drop(skb, &pkt, &vc, ret);
	}
	/* Established flows only (new ones and new backend picks from their next
	 * packet on); a Service flow counts on its CT_SERVICE entry, which holds
	 * its backend. One call site: each inlined copy costs verification time. */
	if (lb.affinity || (!lb.applied && vc.ct_state != CT_STATE_NEW)) {
		int reply = !lb.affinity && vc.ct_state == CT_STATE_REPLY;

		remember_flow(skb, &pkt, &flow, lb.affinity ? CT_SERVICE : reply ? CT_INGRESS : CT_EGRESS, reply,
			      lb.affinity ? FLOW_XLATE_DST : FLOW_XLATE_NONE);
	}
	return finish_pass(skb, &pkt, &vc, TRACE_FROM_POD);
}

static __always_inline int handle_to_pod(struct __sk_buff *skb)
{
	struct verdict_ctx vc = {.direction = DIR_INGRESS};
	struct packet pkt = {};
	struct flow_lookup flow;
	struct endpoint_info *ep;
	struct ct_entry *entry;
	__u32 now;
	int ret;

	if (!begin(skb, &pkt, &vc, &flow, CT_INGRESS, &ret))
		return ret;

	ep = endpoint_lookup(pkt.daddr);
	if (!ep)
		return finish_drop(skb, &pkt, &vc, DROP_UNKNOWN_ENDPOINT);
	vc.endpoint_id = ep->endpoint_id;
	vc.dst_identity = ep->identity;
	defer_peer(&vc, pkt.saddr); /* before reverse NAT rewrites it */

	/* Replies first: they carry the reverse NAT of the pod's Service calls. */
	now = now_seconds();
	vc.ct_state = ct_lookup(skb, &pkt, CT_INGRESS, 1, &entry, now);
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
		ret = admit_new(skb, &pkt, &vc, ep, 0, now);
		if (ret)
			return finish_drop(skb, &pkt, &vc, ret);
	} else if (entry) {
		vc.policy_cookie = entry->policy_cookie;
	}
	if (vc.ct_state != CT_STATE_NEW && entry) {
		int reply = vc.ct_state == CT_STATE_REPLY;

		remember_flow(skb, &pkt, &flow, reply ? CT_EGRESS : CT_INGRESS, reply,
			      reply && entry->rev_nat_index ? FLOW_XLATE_SRC : FLOW_XLATE_NONE);
	}
	return finish_pass(skb, &pkt, &vc, TRACE_TO_POD);
}
