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

SEC("tc")
int restore_only(struct __sk_buff *skb)
{
	struct bench_header saved;

	if (header_save(skb, &saved))
		return TC_ACT_SHOT;
	header_restore(skb, &saved);
	return TC_ACT_OK;
}

SEC("tc")
int from_pod_restored(struct __sk_buff *skb)
{
	struct bench_header saved;
	int ret;

	if (header_save(skb, &saved))
		return TC_ACT_SHOT;
	ret = handle_from_pod(skb);
	header_restore(skb, &saved);
	return ret;
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

/* The full pipeline for an established flow (what a flow cache miss costs:
 * once per FLOW_CACHE_JIFFIES per flow, or for every packet of flows beyond
 * the cache's capacity): the flow's slot is made stale before each run.
 * expire_only measures that bookkeeping with the header restore. */
static __always_inline void expire_flow_slot(const struct bench_header *saved)
{
	/* The flow's tuple from the saved headers (no IP options in the
	 * benchmark's packet): parsing the skb twice in one program trips the
	 * verifier's ctx-pointer rule. */
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

SEC("tc")
int expire_only(struct __sk_buff *skb)
{
	struct bench_header saved;

	if (header_save(skb, &saved))
		return TC_ACT_SHOT;
	expire_flow_slot(&saved);
	header_restore(skb, &saved);
	return TC_ACT_OK;
}

SEC("tc")
int from_pod_uncached(struct __sk_buff *skb)
{
	struct bench_header saved;
	int ret;

	if (header_save(skb, &saved))
		return TC_ACT_SHOT;
	expire_flow_slot(&saved);
	ret = handle_from_pod(skb);
	header_restore(skb, &saved);
	return ret;
}
