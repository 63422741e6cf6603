/* Programs for the per-packet cost benchmark (bench/datapath-cost.ts), never
 * attached. BPF_PROG_TEST_RUN with repeat runs one skb over and over, so a
 * pipeline that rewrites the packet (Service DNAT) would see another flow from
 * the second run on; the *_restored programs put the headers back after each
 * run, and restore_only measures that bookkeeping so it can be taken out. */
#include "lib/hooks.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Ethernet + IPv4 + TCP without options: the benchmark's packet. */
#define BENCH_HEADER_BYTES 56

struct bench_header {
	__u64 words[BENCH_HEADER_BYTES / 8];
};

/* Word copies (x86 allows unaligned packet access); a byte-wise memcpy would
 * cost more than some of the pipeline stages being measured. */
static __always_inline int header_save(struct __sk_buff *skb, struct bench_header *saved)
{
	__u64 *data = skb_data(skb);

	if ((void *)(data + BENCH_HEADER_BYTES / 8) > skb_data_end(skb))
		return -1;
#pragma unroll
	for (int i = 0; i < BENCH_HEADER_BYTES / 8; i++)
		saved->words[i] = data[i];
	return 0;
}

static __always_inline void header_restore(struct __sk_buff *skb, const struct bench_header *saved)
{
	__u64 *data = skb_data(skb);

	/* The compiler must not pair this with header_save and drop both. */
	asm volatile("" ::: "memory");
	if ((void *)(data + BENCH_HEADER_BYTES / 8) > skb_data_end(skb))
		return;
#pragma unroll
	for (int i = 0; i < BENCH_HEADER_BYTES / 8; i++)
		data[i] = saved->words[i];
}

/* The floor: a tc program that does nothing. */
SEC("tc")
int floor_pass(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

/* The flow cache would answer every run after the first: expire_flow_slot
 * makes the flow's slot stale, so the run prices the full pipeline for an
 * established flow (what a cache miss costs: once per FLOW_CACHE_JIFFIES per
 * flow, or every packet of flows beyond the cache's capacity). */
static __always_inline void expire_flow_slot(const struct bench_header *saved)
{
	/* The flow's tuple from the saved headers (the benchmark's packet has
	 * no IP options): cheaper than parsing again. */
	const __u8 *frame = (const __u8 *)saved->words;
	struct flow_key key = {};
	struct flow_slot *slot;

	__builtin_memcpy(&key.tuple.saddr, frame + ETH_HLEN + 12, 4);
	__builtin_memcpy(&key.tuple.daddr, frame + ETH_HLEN + 16, 4);
	__builtin_memcpy(&key.tuple.sport, frame + ETH_HLEN + 20, 2);
	__builtin_memcpy(&key.tuple.dport, frame + ETH_HLEN + 22, 2);
	key.tuple.proto = frame[ETH_HLEN + 9];
	key.tuple.scope = CT_EGRESS;
	slot = flow_slot_of(&key);
	if (slot)
		slot->jiffies = 0;
}

/* Run from_pod (or nothing, to price the bookkeeping) on the packet, then put
 * its headers back for the next run. */
static __always_inline int replay(struct __sk_buff *skb, int pipeline, int uncached)
{
	struct bench_header saved;
	int ret = TC_ACT_OK;

	if (header_save(skb, &saved))
		return TC_ACT_SHOT;
	if (uncached)
		expire_flow_slot(&saved);
	if (pipeline)
		ret = handle_from_pod(skb);
	header_restore(skb, &saved);
	return ret;
}

SEC("tc")
int restore_only(struct __sk_buff *skb)
{
	return replay(skb, 0, 0);
}

SEC("tc")
int from_pod_restored(struct __sk_buff *skb)
{
	return replay(skb, 1, 0);
}

SEC("tc")
int expire_only(struct __sk_buff *skb)
{
	return replay(skb, 0, 1);
}

SEC("tc")
int from_pod_uncached(struct __sk_buff *skb)
{
	return replay(skb, 1, 1);
}

/* One operation each, on the benchmark packet, to put the pipeline's cost in
 * terms of its parts (the floor is taken out by the script). */
SEC("tc")
int op_ct_lookup(struct __sk_buff *skb)
{
	struct packet pkt = {};

	if (parse_packet(skb, &pkt))
		return TC_ACT_SHOT;
	return ct_find(&pkt, CT_EGRESS, 0, 0) ? TC_ACT_OK : TC_ACT_UNSPEC;
}

SEC("tc")
int op_parse(struct __sk_buff *skb)
{
	struct packet pkt = {};

	return parse_packet(skb, &pkt) ? TC_ACT_SHOT : TC_ACT_OK;
}

SEC("tc")
int op_ipcache_lookup(struct __sk_buff *skb)
{
	struct packet pkt = {};

	if (parse_packet(skb, &pkt))
		return TC_ACT_SHOT;
	return identity_of(pkt.daddr) ? TC_ACT_OK : TC_ACT_UNSPEC;
}

SEC("tc")
int op_l4_csum(struct __sk_buff *skb)
{
	struct packet pkt = {};

	if (parse_packet(skb, &pkt) || !pkt.l4_csum_off)
		return TC_ACT_SHOT;
	/* Replacing a value by itself leaves the packet as it was. */
	if (bpf_l4_csum_replace(skb, pkt.l4_csum_off, pkt.daddr, pkt.daddr, BPF_F_PSEUDO_HDR | 4) < 0)
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

SEC("tc")
int op_boot_clock(struct __sk_buff *skb)
{
	return bpf_ktime_get_boot_ns() ? TC_ACT_OK : TC_ACT_UNSPEC;
}
