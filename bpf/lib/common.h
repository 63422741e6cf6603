/* Includes and small helpers every datapath file needs. */
#pragma once

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "../include/pinion_abi.h"

#ifndef IPPROTO_SCTP
#define IPPROTO_SCTP 132
#endif

#define NSEC_PER_SEC 1000000000ULL

/* Reading CLOCK_BOOTTIME costs more than a hash lookup; conntrack needs whole
 * seconds only, so each CPU keeps the current second and re-reads the clock
 * when the jiffies counter (a plain load) has moved. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct clock_cache);
	__uint(max_entries, 1);
} pinion_clock SEC(".maps");

static __always_inline __u32 now_seconds(void)
{
	__u32 zero = 0;
	struct clock_cache *cache = bpf_map_lookup_elem(&pinion_clock, &zero);
	__u64 jiffies = bpf_jiffies64();

	if (!cache)
		return bpf_ktime_get_boot_ns() / NSEC_PER_SEC;
	if (cache->jiffies != jiffies) {
		cache->seconds = bpf_ktime_get_boot_ns() / NSEC_PER_SEC;
		cache->jiffies = jiffies;
	}
	return cache->seconds;
}

/* Context fields read by an explicit load: with many readers in one program
 * clang may keep &skb->field in a register, and the verifier rejects loads
 * through a ctx pointer that has an offset added. */
#define CTX_LOAD_U32(skb, field) ({                                                              \
	__u64 __value;                                                                           \
	asm volatile("%0 = *(u32 *)(%1 + %2)"                                                    \
		     : "=r"(__value)                                                             \
		     : "r"(skb), "i"(__builtin_offsetof(struct __sk_buff, field)));              \
	__value;                                                                                 \
})

static __always_inline void *skb_data(const struct __sk_buff *skb)
{
	return (void *)(long)CTX_LOAD_U32(skb, data);
}

static __always_inline void *skb_data_end(const struct __sk_buff *skb)
{
	return (void *)(long)CTX_LOAD_U32(skb, data_end);
}

static __always_inline int is_dryrun(const struct __sk_buff *skb)
{
	return CTX_LOAD_U32(skb, mark) == PINION_MARK_DRYRUN;
}
