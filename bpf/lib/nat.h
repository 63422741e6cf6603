/* Address and port rewriting with incremental L3/L4 checksum updates. */
#pragma once

#include <bpf/bpf_core_read.h>
#include "parse.h"

#define CHECKSUM_PARTIAL_MODE  3 /* CHECKSUM_PARTIAL: the field holds the pseudo-header sum */
#define CHECKSUM_COMPLETE_MODE 2 /* CHECKSUM_COMPLETE: skb->csum must follow the change */

#ifndef PINION_NO_KFUNC
/* The skb's checksum mode is not in __sk_buff; bpf_cast_to_kern_ctx (turned
 * into a register move by the verifier; Linux 6.2) gives read access to the
 * kernel's sk_buff, and CO-RE finds the ip_summed bits there. */
extern void *bpf_cast_to_kern_ctx(void *ctx) __ksym;

struct sk_buff___pinion {
	__u8 ip_summed : 2;
} __attribute__((preserve_access_index));

static __always_inline __u8 skb_csum_mode(struct __sk_buff *skb)
{
	struct sk_buff___pinion *kskb = bpf_cast_to_kern_ctx(skb);

	return BPF_CORE_READ_BITFIELD(kskb, ip_summed);
}
#else
/* Kernels before 6.2 (pinion-compat.bpf.o): the mode cannot be read, so every
 * L4 checksum change goes through bpf_l4_csum_replace, which knows it. */
static __always_inline __u8 skb_csum_mode(struct __sk_buff *skb)
{
	return CHECKSUM_COMPLETE_MODE;
}
#endif

static __always_inline __u64 l4_csum_flags(const struct packet *pkt)
{
	/* A UDP checksum that becomes 0 must be sent as 0xffff. */
	return pkt->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
}

/* One's-complement sum of the change from -> to added to a checksum field
 * (RFC 1624), done here instead of through a helper call. */
static __always_inline __u16 csum_replace4(__u16 check, __u32 from, __u32 to)
{
	__u32 sum = (__u16)~check;

	sum += (__u16)~(from & 0xffff);
	sum += (__u16)~(from >> 16);
	sum += to & 0xffff;
	sum += to >> 16;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

static __always_inline __u16 csum_replace2(__u16 check, __u16 from, __u16 to)
{
	__u32 sum = (__u16)~check;

	sum += (__u16)~from;
	sum += to;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

/* Fix the L4 checksum for an address (in the pseudo-header) and port change;
 * 0 or a drop reason. Done inline unless the skb carries a complete checksum
 * of its data (CHECKSUM_COMPLETE), which only the helper can keep right, or
 * the mode is unknown (the compat object: the helper handles every mode). */
static __always_inline int l4_csum_update(struct __sk_buff *skb, const struct packet *pkt, __u32 old_addr,
					  __u32 new_addr, __u16 old_port, __u16 new_port)
{
	__u8 mode = skb_csum_mode(skb);
	__u16 *field;
	__u16 check;

	if (mode == CHECKSUM_COMPLETE_MODE) {
		if (bpf_l4_csum_replace(skb, pkt->l4_csum_off, old_addr, new_addr,
					BPF_F_PSEUDO_HDR | l4_csum_flags(pkt) | sizeof(new_addr)) < 0)
			return DROP_CSUM_ERROR;
		if (old_port != new_port && bpf_l4_csum_replace(skb, pkt->l4_csum_off, old_port, new_port,
								l4_csum_flags(pkt) | sizeof(new_port)) < 0)
			return DROP_CSUM_ERROR;
		return 0;
	}
	field = packet_ptr(skb, pkt->l4_csum_off, sizeof(*field));
	if (!field)
		return DROP_CSUM_ERROR;
	if (mode == CHECKSUM_PARTIAL_MODE) {
		/* The device (or the stack) sums the segment later, ports included;
		 * only the pseudo-header part, held uncomplemented, changes now. */
		*field = ~csum_replace4(~*field, old_addr, new_addr);
		return 0;
	}
	check = csum_replace2(csum_replace4(*field, old_addr, new_addr), old_port, new_port);
	if (check == 0 && pkt->proto == IPPROTO_UDP)
		check = 0xffff; /* 0 would mean "no checksum" */
	*field = check;
	return 0;
}

/* Rewrite one address (daddr when dst, else saddr) and its port; 0 or a drop reason. */
static __always_inline int rewrite_endpoint(struct __sk_buff *skb, struct packet *pkt, int dst,
					    __u32 new_addr, __u16 new_port)
{
	__u32 old_addr = dst ? pkt->daddr : pkt->saddr;
	__u16 old_port = dst ? pkt->dport : pkt->sport;
	int has_ports = pkt->proto == IPPROTO_TCP || pkt->proto == IPPROTO_UDP || pkt->proto == IPPROTO_SCTP;
	int new_ports = has_ports && new_port != old_port;
	struct iphdr *ip;
	__u8 *l4;

	if (new_ports && pkt->proto == IPPROTO_SCTP)
		return DROP_SCTP_PORT_XLATE; /* would need a CRC32c over the packet */

	if (pkt->l4_csum_off) {
		int ret = l4_csum_update(skb, pkt, old_addr, new_addr, old_port, new_ports ? new_port : old_port);

		if (ret)
			return ret;
	}
	/* Pointers taken before a helper or a pull are stale: take fresh ones. */
	ip = packet_ptr(skb, pkt->l3_off, sizeof(*ip));
	if (!ip)
		return DROP_CSUM_ERROR;
	ip->check = csum_replace4(ip->check, old_addr, new_addr);
	if (dst)
		ip->daddr = new_addr;
	else
		ip->saddr = new_addr;
	if (new_ports) {
		l4 = packet_ptr(skb, pkt->l4_off, 4);
		if (!l4)
			return DROP_CSUM_ERROR;
		__builtin_memcpy(l4 + (dst ? 2 : 0), &new_port, sizeof(new_port));
	}

	if (dst) {
		pkt->daddr = new_addr;
		if (has_ports)
			pkt->dport = new_port;
	} else {
		pkt->saddr = new_addr;
		if (has_ports)
			pkt->sport = new_port;
	}
	return 0;
}
