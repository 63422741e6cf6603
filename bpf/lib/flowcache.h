/* The flow cache (struct flow_slot in pinion_abi.h): established flows skip
 * the endpoint, Service, backend and conntrack lookups. Each CPU has its own
 * direct-mapped slots, so a hit is an array index, a tuple compare and plain
 * (unshared) counter updates; the full pipeline runs again for a flow at least
 * every FLOW_CACHE_JIFFIES, for packets that open or close a connection, for
 * traced and dry-run packets, and after any map change (flow_epoch). */
#pragma once

#include "conntrack.h"
#include "events.h" /* struct verdict_ctx */
#include "nat.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct flow_slot);
	__uint(max_entries, FLOW_CACHE_SLOTS);
} pinion_flowcache SEC(".maps");

/* The packet's tuple as the hook sees it, before any rewrite. Eight-byte
 * aligned: slots are matched by comparing it as two 64-bit words. */
struct flow_key {
	struct ct4_key tuple;
} __attribute__((aligned(8)));

static __always_inline struct flow_slot *flow_slot_of(const struct flow_key *key)
{
	__u32 hash = key->tuple.saddr * 0x9e3779b1 ^ key->tuple.daddr ^
		     (((__u32)key->tuple.sport << 16) | key->tuple.dport) * 0x85ebca6b ^ key->tuple.proto;
	__u32 index = (hash ^ (hash >> 16)) & (FLOW_CACHE_SLOTS - 1);

	return bpf_map_lookup_elem(&pinion_flowcache, &index);
}

static __always_inline int flow_slot_matches(const struct flow_slot *slot, const struct flow_key *key)
{
	const __u64 *have = (const __u64 *)&slot->key;
	const __u64 *want = (const __u64 *)&key->tuple;

	return have[0] == want[0] && have[1] == want[1];
}

/* Whether the packet may use the cache at all: the full pipeline sees every
 * packet that changes a connection's state, and every packet someone watches. */
static __always_inline int flow_cacheable(struct __sk_buff *skb, const struct packet *pkt, const struct verdict_ctx *vc,
					  __u8 trace_level)
{
	return !is_dryrun(skb) && !vc->traceflow && trace_level != TRACE_LEVEL_ALL &&
	       !(pkt->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_FIN | TCP_FLAG_RST));
}

/* The slot for this packet's flow if it holds a current answer, else NULL. */
static __always_inline struct flow_slot *flow_cache_hit(struct __sk_buff *skb, struct flow_slot *slot,
							const struct flow_key *key, __u32 epoch)
{
	if (!slot || !flow_slot_matches(slot, key) || slot->epoch != epoch || slot->ifindex != skb->ifindex)
		return 0;
	if (bpf_jiffies64() - slot->jiffies >= FLOW_CACHE_JIFFIES)
		return 0;
	return slot;
}

/* Count the packet on its slot and apply the flow's translation; 0 or a drop reason. */
static __always_inline int flow_cache_forward(struct __sk_buff *skb, struct packet *pkt, struct flow_slot *slot)
{
	slot->packets += 1;
	slot->bytes += skb->len;
	slot->tcp_flags |= pkt->tcp_flags;
	if (slot->xlate == FLOW_XLATE_NONE)
		return 0;
	return rewrite_endpoint(skb, pkt, slot->xlate == FLOW_XLATE_DST, slot->xlate_addr, slot->xlate_port);
}

/* Move the slot's pending counts onto its conntrack entry (gone: dropped with it). */
static __always_inline void flow_cache_flush(struct flow_slot *slot)
{
	struct ct_entry *entry;

	if (!slot->packets)
		return;
	entry = bpf_map_lookup_elem(&pinion_ct4_v2, &slot->ct);
	if (entry)
		ct_account(entry, slot->reply, slot->packets, slot->bytes, slot->tcp_flags);
	slot->packets = 0;
	slot->bytes = 0;
	slot->tcp_flags = 0;
}

/* After the full pipeline forwarded an established flow's packet: remember
 * the outcome for the flow's next packets (pkt holds the rewritten headers),
 * first settling what the slot's previous flow still had pending. */
static __always_inline void flow_cache_store(struct __sk_buff *skb, const struct packet *pkt, struct flow_slot *slot,
					     const struct flow_key *key, const struct ct4_key *ct, int reply, __u8 xlate,
					     __u32 epoch)
{
	if (!slot || is_dryrun(skb))
		return;
	flow_cache_flush(slot);
	slot->key = key->tuple;
	slot->ct = *ct;
	slot->reply = reply;
	slot->xlate = xlate;
	slot->xlate_addr = xlate == FLOW_XLATE_DST ? pkt->daddr : xlate == FLOW_XLATE_SRC ? pkt->saddr : 0;
	slot->xlate_port = xlate == FLOW_XLATE_DST ? pkt->dport : xlate == FLOW_XLATE_SRC ? pkt->sport : 0;
	slot->epoch = epoch;
	slot->ifindex = skb->ifindex;
	slot->jiffies = bpf_jiffies64();
}
