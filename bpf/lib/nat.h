/* Address and port rewriting with incremental L3/L4 checksum updates. */
#pragma once

#include "parse.h"

static __always_inline __u64 l4_csum_flags(const struct packet *pkt)
{
	/* A UDP checksum that becomes 0 must be sent as 0xffff. */
	return pkt->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
}

/* One's-complement checksum update for a 32-bit field change (RFC 1624),
 * done here instead of through a helper call: the IPv4 header checksum
 * always covers the header in full, whatever the skb's checksum mode. */
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

	/* The L4 checksum goes through the helper: only the kernel knows whether
	 * it is complete or a CHECKSUM_PARTIAL pseudo-header sum. */
	if (pkt->l4_csum_off) {
		if (bpf_l4_csum_replace(skb, pkt->l4_csum_off, old_addr, new_addr,
					BPF_F_PSEUDO_HDR | l4_csum_flags(pkt) | sizeof(new_addr)) < 0)
			return DROP_CSUM_ERROR;
		if (new_ports && bpf_l4_csum_replace(skb, pkt->l4_csum_off, old_port, new_port,
						     l4_csum_flags(pkt) | sizeof(new_port)) < 0)
			return DROP_CSUM_ERROR;
	}
	/* Helpers may have moved the data: take fresh pointers. */
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
