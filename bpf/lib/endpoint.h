/* Local endpoints (pods on this node) and the ipcache of every known address. */
#pragma once

#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct endpoint_key);
	__type(value, struct endpoint_info);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} pinion_endpoint SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ipcache_key);
	__type(value, struct ipcache_entry);
	__uint(max_entries, 512000);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} pinion_ipcache SEC(".maps");

static __always_inline struct endpoint_info *endpoint_lookup(__u32 ip4)
{
	struct endpoint_key key = {.ip4 = ip4};

	return bpf_map_lookup_elem(&pinion_endpoint, &key);
}

/* Security identity of any address: longest CIDR match, else "world". */
static __always_inline __u32 identity_of(__u32 ip4)
{
	struct ipcache_key key = {.prefixlen = 32, .ip4 = ip4};
	struct ipcache_entry *entry = bpf_map_lookup_elem(&pinion_ipcache, &key);

	return entry ? entry->identity : IDENTITY_WORLD;
}
