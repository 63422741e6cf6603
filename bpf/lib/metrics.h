/* Per-CPU packet and byte counters by reason and direction. */
#pragma once

#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, struct metrics_key);
	__type(value, struct metrics_value);
	__uint(max_entries, 1024);
} pinion_metrics SEC(".maps");

static __always_inline void metrics_count(struct __sk_buff *skb, __u8 reason, __u8 direction)
{
	struct metrics_key key = {.reason = reason, .direction = direction};
	struct metrics_value *value;

	if (is_dryrun(skb))
		return;
	value = bpf_map_lookup_elem(&pinion_metrics, &key);
	if (value) {
		/* Per-CPU slot: no other writer, no atomics needed. */
		value->packets += 1;
		value->bytes += skb->len;
		return;
	}
	struct metrics_value initial = {.packets = 1, .bytes = skb->len};
	bpf_map_update_elem(&pinion_metrics, &key, &initial, BPF_NOEXIST);
}
