/* Packet parsing into a flow tuple, reading headers in place. */
#pragma once

#include "common.h"

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

#define ICMP_ECHOREPLY 0
#define ICMP_ECHO      8

struct packet {
	__u32 l3_off;
	__u32 l4_off;
	__u32 saddr;
	__u32 daddr;
	__u16 sport;     /* ICMP echo: identifier in sport (request) or dport (reply) */
	__u16 dport;
	__u8 proto;
	__u8 tcp_flags;
	__u8 dscp;
	__u8 icmp_type;
	__u16 l4_csum_off; /* 0 = no L4 checksum to fix (ICMP, SCTP, UDP without) */
	__u16 pad;
};

/* Pointer to len bytes at offset off, or NULL when the packet is shorter.
 * Headers usually sit in the skb's linear part; when they do not they are
 * pulled there first. Any helper that may move packet data invalidates
 * pointers taken before it. */
static __always_inline void *packet_ptr(struct __sk_buff *skb, __u64 off, __u64 len)
{
	void *at = skb_data(skb) + off;

	if (at + len <= skb_data_end(skb))
		return at;
	if (bpf_skb_pull_data(skb, off + len) < 0)
		return 0;
	at = skb_data(skb) + off;
	if (at + len > skb_data_end(skb))
		return 0;
	return at;
}

/* Returns 0 and fills pkt, DROP_NOT_IPV4 for traffic we pass untouched, or a drop reason.
 * Headers are read in place (direct packet access), pulled first if non-linear. */
static __always_inline int parse_packet(struct __sk_buff *skb, struct packet *pkt)
{
	struct ethhdr *eth = packet_ptr(skb, 0, sizeof(struct ethhdr));
	struct iphdr *ip;
	__u8 *l4;
	__u32 ihl_bytes;

	if (!eth)
		return DROP_MALFORMED_PACKET;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return DROP_NOT_IPV4;
	pkt->l3_off = sizeof(struct ethhdr);
	ip = packet_ptr(skb, pkt->l3_off, sizeof(struct iphdr));
	if (!ip)
		return DROP_MALFORMED_PACKET;
	if (ip->version != 4 || ip->ihl < 5)
		return DROP_MALFORMED_PACKET;
	ihl_bytes = ip->ihl * 4;
	if (bpf_ntohs(ip->tot_len) < ihl_bytes || pkt->l3_off + bpf_ntohs(ip->tot_len) > skb->len)
		return DROP_MALFORMED_PACKET;
	if (ip->frag_off & bpf_htons(0x1fff))
		return DROP_FRAGMENT_UNSUPPORTED;

	pkt->l4_off = pkt->l3_off + ihl_bytes;
	pkt->saddr = ip->saddr;
	pkt->daddr = ip->daddr;
	pkt->proto = ip->protocol;
	pkt->dscp = ip->tos >> 2;
	pkt->sport = 0;
	pkt->dport = 0;
	pkt->tcp_flags = 0;
	pkt->icmp_type = 0;
	pkt->l4_csum_off = 0;

	switch (pkt->proto) {
	case IPPROTO_TCP:
		/* Up to the flags byte (offset 13). */
		l4 = packet_ptr(skb, pkt->l4_off, 14);
		if (!l4)
			return DROP_MALFORMED_PACKET;
		__builtin_memcpy(&pkt->sport, l4, 2);
		__builtin_memcpy(&pkt->dport, l4 + 2, 2);
		pkt->tcp_flags = l4[13];
		pkt->l4_csum_off = pkt->l4_off + 16;
		break;
	case IPPROTO_UDP: {
		__u16 csum;

		l4 = packet_ptr(skb, pkt->l4_off, 8);
		if (!l4)
			return DROP_MALFORMED_PACKET;
		__builtin_memcpy(&pkt->sport, l4, 2);
		__builtin_memcpy(&pkt->dport, l4 + 2, 2);
		__builtin_memcpy(&csum, l4 + 6, 2);
		if (csum != 0) /* checksum 0 = none (IPv4 only) */
			pkt->l4_csum_off = pkt->l4_off + 6;
		break;
	}
	case IPPROTO_SCTP:
		l4 = packet_ptr(skb, pkt->l4_off, 4);
		if (!l4)
			return DROP_MALFORMED_PACKET;
		__builtin_memcpy(&pkt->sport, l4, 2);
		__builtin_memcpy(&pkt->dport, l4 + 2, 2);
		break;
	case IPPROTO_ICMP: {
		__u16 id;

		l4 = packet_ptr(skb, pkt->l4_off, 8);
		if (!l4)
			return DROP_MALFORMED_PACKET;
		pkt->icmp_type = l4[0];
		__builtin_memcpy(&id, l4 + 4, 2);
		/* Echo request and reply mirror each other like ports do. */
		if (pkt->icmp_type == ICMP_ECHO)
			pkt->sport = id;
		else if (pkt->icmp_type == ICMP_ECHOREPLY)
			pkt->dport = id;
		break;
	}
	default:
		break;
	}
	return 0;
}
