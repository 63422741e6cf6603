/* Per-CPU packet and byte counters by reason and direction. An array (its
 * lookup compiles to an index computation) rather than a hash: every
 * forwarded packet is counted. */
#pragma once

#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct metrics_value);
	__uint(max_entries, METRICS_SLOTS);
} pinion_metrics_v2 SEC(".maps");

/* Callers know the packet is not a dry run. */
static __always_inline void metrics_add(struct __sk_buff *skb, __u8 reason, __u8 direction)
{
	__u32 index = METRICS_INDEX(reason, direction);
	struct metrics_value *value = bpf_map_lookup_elem(&pinion_metrics_v2, &index);

	if (value) {
		/* Per-CPU slot: no other writer, no atomics needed. */
		value->packets += 1;
		value->bytes += skb->len;
	}
}

static __always_inline void metrics_count(struct __sk_buff *skb, __u8 reason, __u8 direction)
{
	if (!is_dryrun(skb))
		metrics_add(skb, reason, direction);
}
