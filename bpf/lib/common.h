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

static __always_inline __u32 now_seconds(void)
{
	return bpf_ktime_get_boot_ns() / NSEC_PER_SEC;
}

static __always_inline int is_dryrun(const struct __sk_buff *skb)
{
	return skb->mark == PINION_MARK_DRYRUN;
}
