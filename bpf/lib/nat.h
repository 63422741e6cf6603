/* Address and port rewriting with incremental L3/L4 checksum updates. */
#pragma once

#include "parse.h"

#define IP_CSUM_OFF(pkt) ((pkt)->l3_off + 10)
#define IP_SADDR_OFF(pkt) ((pkt)->l3_off + 12)
#define IP_DADDR_OFF(pkt) ((pkt)->l3_off + 16)

static __always_inline __u64 l4_csum_flags(const struct packet *pkt)
{
	/* A UDP checksum that becomes 0 must be sent as 0xffff. */
	return pkt->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
}

/* Rewrite one address (daddr when dst, else saddr) and its port; 0 or a drop reason. */
static __always_inline int rewrite_endpoint(struct __sk_buff *skb, struct packet *pkt, int dst,
					    __u32 new_addr, __u16 new_port)
{
	__u32 old_addr = dst ? pkt->daddr : pkt->saddr;
	__u16 old_port = dst ? pkt->dport : pkt->sport;
	__u32 addr_off = dst ? IP_DADDR_OFF(pkt) : IP_SADDR_OFF(pkt);
	int has_ports = pkt->proto == IPPROTO_TCP || pkt->proto == IPPROTO_UDP || pkt->proto == IPPROTO_SCTP;

	if (has_ports && new_port != old_port && pkt->proto == IPPROTO_SCTP)
		return DROP_SCTP_PORT_XLATE; /* would need a CRC32c over the packet */

	if (pkt->l4_csum_off) {
		if (bpf_l4_csum_replace(skb, pkt->l4_csum_off, old_addr, new_addr,
					BPF_F_PSEUDO_HDR | l4_csum_flags(pkt) | sizeof(new_addr)) < 0)
			return DROP_CSUM_ERROR;
		if (has_ports && new_port != old_port &&
		    bpf_l4_csum_replace(skb, pkt->l4_csum_off, old_port, new_port,
					l4_csum_flags(pkt) | sizeof(new_port)) < 0)
			return DROP_CSUM_ERROR;
	}
	if (bpf_l3_csum_replace(skb, IP_CSUM_OFF(pkt), old_addr, new_addr, sizeof(new_addr)) < 0)
		return DROP_CSUM_ERROR;
	if (bpf_skb_store_bytes(skb, addr_off, &new_addr, sizeof(new_addr), 0) < 0)
		return DROP_CSUM_ERROR;
	if (has_ports && new_port != old_port &&
	    bpf_skb_store_bytes(skb, pkt->l4_off + (dst ? 2 : 0), &new_port, sizeof(new_port), 0) < 0)
		return DROP_CSUM_ERROR;

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
