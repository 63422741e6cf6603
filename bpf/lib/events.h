/* Events to userspace: drops, policy verdicts and trace points, each with the
 * first bytes of the packet. Traces are emitted per new flow (or per packet at
 * TRACE_LEVEL_ALL, or for traceflow-tagged packets) so the buffer keeps up. */
#pragma once

#include "config.h"
#include "parse.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} pinion_events SEC(".maps");

/* What the hooks learnt about a packet; fills events and dry-run results. */
struct verdict_ctx {
	__u32 src_identity;
	__u32 dst_identity;
	__u32 policy_cookie;
	__u32 backend_id;
	__u32 orig_daddr;
	__u32 rev_nat_index;
	__u16 orig_dport;
	__u16 endpoint_id;
	__u8 direction;
	__u8 ct_state;
	__u8 observations; /* OBS_* */
	__u8 traceflow;
	__u8 peer_pending; /* peer identity not looked up yet: see resolve_peer() */
	__u8 pad;
	__u32 peer_addr;
};

static __always_inline void event_fill(struct __sk_buff *skb, const struct packet *pkt,
				       const struct verdict_ctx *vc, __u8 type, __u8 subtype,
				       struct event_header *hdr, struct event_flow *flow)
{
	hdr->type = type;
	hdr->subtype = subtype;
	hdr->source = vc->endpoint_id;
	hdr->hash = bpf_get_hash_recalc(skb);
	hdr->orig_len = skb->len;
	hdr->cap_len = skb->len < EVENT_CAPTURE_BYTES ? skb->len : EVENT_CAPTURE_BYTES;
	hdr->version = EVENT_VERSION;
	hdr->flags = vc->traceflow ? EVENT_F_TRACEFLOW : 0;
	if (vc->ct_state == CT_STATE_REPLY)
		hdr->flags |= EVENT_F_REPLY;
	hdr->ifindex = skb->ifindex;
	hdr->pad = 0;
	hdr->timestamp = bpf_ktime_get_boot_ns();
	flow->saddr = pkt->saddr;
	flow->daddr = pkt->daddr;
	flow->sport = pkt->sport;
	flow->dport = pkt->dport;
	flow->proto = pkt->proto;
	flow->tcp_flags = pkt->tcp_flags;
	flow->ct_state = vc->ct_state;
	flow->direction = vc->direction;
}

static __always_inline __u64 event_flags(const struct event_header *hdr)
{
	return BPF_F_CURRENT_CPU | ((__u64)hdr->cap_len << 32);
}

static __always_inline void emit_drop(struct __sk_buff *skb, const struct packet *pkt,
				      const struct verdict_ctx *vc, __u8 reason)
{
	struct drop_event ev = {};

	if (is_dryrun(skb))
		return;
	event_fill(skb, pkt, vc, EVENT_DROP, reason, &ev.hdr, &ev.flow);
	ev.src_identity = vc->src_identity;
	ev.dst_identity = vc->dst_identity;
	ev.policy_cookie = vc->policy_cookie;
	bpf_perf_event_output(skb, &pinion_events, event_flags(&ev.hdr), &ev, sizeof(ev));
}

static __always_inline void emit_policy(struct __sk_buff *skb, const struct packet *pkt,
					const struct verdict_ctx *vc, __u8 verdict)
{
	struct policy_event ev = {};

	if (is_dryrun(skb))
		return;
	if (verdict == VERDICT_ALLOW ? !CONFIG_VALUE(policy_log_allow) : !CONFIG_VALUE(policy_log_deny))
		return;
	event_fill(skb, pkt, vc, EVENT_POLICY, verdict, &ev.hdr, &ev.flow);
	ev.src_identity = vc->src_identity;
	ev.dst_identity = vc->dst_identity;
	ev.policy_cookie = vc->policy_cookie;
	ev.verdict = verdict;
	bpf_perf_event_output(skb, &pinion_events, event_flags(&ev.hdr), &ev, sizeof(ev));
}

/* Whether a forwarded packet gets a trace event (see the header comment). */
static __always_inline int trace_wanted(struct __sk_buff *skb, const struct verdict_ctx *vc)
{
	__u8 level;

	if (is_dryrun(skb))
		return 0;
	if (vc->traceflow)
		return 1;
	level = CONFIG_VALUE(trace_level);
	return level == TRACE_LEVEL_ALL || (level == TRACE_LEVEL_FLOW && vc->ct_state == CT_STATE_NEW);
}

/* Callers decide with trace_wanted(). */
static __always_inline void emit_trace(struct __sk_buff *skb, const struct packet *pkt,
				       const struct verdict_ctx *vc, __u8 point)
{
	struct trace_event ev = {};

	event_fill(skb, pkt, vc, EVENT_TRACE, point, &ev.hdr, &ev.flow);
	ev.src_identity = vc->src_identity;
	ev.dst_identity = vc->dst_identity;
	ev.orig_daddr = vc->orig_daddr;
	ev.orig_dport = vc->orig_dport;
	ev.rev_nat_index = vc->rev_nat_index;
	ev.backend_id = vc->backend_id;
	ev.policy_cookie = vc->policy_cookie;
	bpf_perf_event_output(skb, &pinion_events, event_flags(&ev.hdr), &ev, sizeof(ev));
}

/* In a dry run, leave the result where BPF_PROG_TEST_RUN's ctx_out returns it. */
static __always_inline void dryrun_report(struct __sk_buff *skb, const struct verdict_ctx *vc, int action, __u8 reason)
{
	if (!is_dryrun(skb))
		return;
	skb->cb[0] = (__u32)(action & 0xff) | ((__u32)reason << 8) | ((__u32)vc->ct_state << 16) |
		     ((__u32)vc->observations << 24);
	skb->cb[1] = vc->policy_cookie;
	skb->cb[2] = vc->backend_id;
	skb->cb[3] = vc->direction == DIR_EGRESS ? vc->dst_identity : vc->src_identity;
	skb->cb[4] = vc->orig_daddr;
}

/* Never called: it puts the event records into the object's BTF (locals leave
 * none) so the layout test can check them against src/datapath/structs.ts. */
__attribute__((used, noinline)) int pinion_abi_events(struct trace_event *trace, struct drop_event *drop,
						       struct policy_event *policy)
{
	return 0;
}
