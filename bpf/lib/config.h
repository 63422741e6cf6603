/* Runtime configuration written by the CLI (conntrack lifetimes, logging, tracing). */
#pragma once

#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct pinion_config);
	__uint(max_entries, 1);
} pinion_config SEC(".maps");

/* The array always has its one entry, but the verifier wants the NULL check:
 * a missing entry reads as all zero, which selects every default. */
static __always_inline struct pinion_config *config_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&pinion_config, &zero);
}

#define CONFIG_VALUE(field) ({ struct pinion_config *__cfg = config_get(); __cfg ? __cfg->field : 0; })
