/* Packet parsing into a flow tuple. Headers are copied with bpf_skb_load_bytes,
 * so non-linear and truncated packets are handled without direct access. */
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

/* Returns 0 and fills pkt, DROP_NOT_IPV4 for traffic we pass untouched, or a drop reason. */
static __always_inline int parse_packet(struct __sk_buff *skb, struct packet *pkt)
{
	struct ethhdr eth;
	struct iphdr ip;

	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)) < 0)
		return DROP_MALFORMED_PACKET;
	if (eth.h_proto != bpf_htons(ETH_P_IP))
		return DROP_NOT_IPV4;
	pkt->l3_off = sizeof(eth);
	if (bpf_skb_load_bytes(skb, pkt->l3_off, &ip, sizeof(ip)) < 0)
		return DROP_MALFORMED_PACKET;
	if (ip.version != 4 || ip.ihl < 5)
		return DROP_MALFORMED_PACKET;
	if (bpf_ntohs(ip.tot_len) < ip.ihl * 4 || pkt->l3_off + bpf_ntohs(ip.tot_len) > skb->len)
		return DROP_MALFORMED_PACKET;
	if (ip.frag_off & bpf_htons(0x1fff))
		return DROP_FRAGMENT_UNSUPPORTED;

	pkt->l4_off = pkt->l3_off + ip.ihl * 4;
	pkt->saddr = ip.saddr;
	pkt->daddr = ip.daddr;
	pkt->proto = ip.protocol;
	pkt->dscp = ip.tos >> 2;
	pkt->sport = 0;
	pkt->dport = 0;
	pkt->tcp_flags = 0;
	pkt->icmp_type = 0;
	pkt->l4_csum_off = 0;

	switch (ip.protocol) {
	case IPPROTO_TCP: {
		__u8 hdr[14];

		if (bpf_skb_load_bytes(skb, pkt->l4_off, hdr, sizeof(hdr)) < 0)
			return DROP_MALFORMED_PACKET;
		__builtin_memcpy(&pkt->sport, &hdr[0], 2);
		__builtin_memcpy(&pkt->dport, &hdr[2], 2);
		pkt->tcp_flags = hdr[13];
		pkt->l4_csum_off = pkt->l4_off + 16;
		break;
	}
	case IPPROTO_UDP: {
		__u16 hdr[4];

		if (bpf_skb_load_bytes(skb, pkt->l4_off, hdr, sizeof(hdr)) < 0)
			return DROP_MALFORMED_PACKET;
		pkt->sport = hdr[0];
		pkt->dport = hdr[1];
		if (hdr[3] != 0) /* checksum 0 = none (IPv4 only) */
			pkt->l4_csum_off = pkt->l4_off + 6;
		break;
	}
	case IPPROTO_SCTP: {
		__u16 ports[2];

		if (bpf_skb_load_bytes(skb, pkt->l4_off, ports, sizeof(ports)) < 0)
			return DROP_MALFORMED_PACKET;
		pkt->sport = ports[0];
		pkt->dport = ports[1];
		break;
	}
	case IPPROTO_ICMP: {
		__u8 hdr[8];
		__u16 id;

		if (bpf_skb_load_bytes(skb, pkt->l4_off, hdr, sizeof(hdr)) < 0)
			return DROP_MALFORMED_PACKET;
		pkt->icmp_type = hdr[0];
		__builtin_memcpy(&id, &hdr[4], 2);
		/* Echo request and reply mirror each other like ports do. */
		if (hdr[0] == ICMP_ECHO)
			pkt->sport = id;
		else if (hdr[0] == ICMP_ECHOREPLY)
			pkt->dport = id;
		break;
	}
	default:
		break;
	}
	return 0;
}
