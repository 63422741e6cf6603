/* Connection tracking: one LRU map, entries scoped by the hook that made them.
 * Lookup tries the reply direction first, then the original (established). */
#pragma once

#include "config.h"
#include "parse.h"

#define CT_DEFAULT_SYN     60
#define CT_DEFAULT_TCP     21600 /* established TCP: 6 h */
#define CT_DEFAULT_CLOSE   10
#define CT_DEFAULT_OTHER   60

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ct4_key);
	__type(value, struct ct_entry);
	__uint(max_entries, 524288);
} pinion_ct4_v2 SEC(".maps");

static __always_inline void ct_key_forward(const struct packet *pkt, __u8 scope, struct ct4_key *key)
{
	key->daddr = pkt->daddr;
	key->saddr = pkt->saddr;
	key->dport = pkt->dport;
	key->sport = pkt->sport;
	key->proto = pkt->proto;
	key->scope = scope;
	key->pad = 0;
}

static __always_inline void ct_key_reverse(const struct packet *pkt, __u8 scope, struct ct4_key *key)
{
	key->daddr = pkt->saddr;
	key->saddr = pkt->daddr;
	key->dport = pkt->sport;
	key->sport = pkt->dport;
	key->proto = pkt->proto;
	key->scope = scope;
	key->pad = 0;
}

static __always_inline __u32 ct_timeout(const struct packet *pkt, const struct ct_entry *entry)
{
	if (pkt->proto != IPPROTO_TCP)
		return CONFIG_VALUE(ct_timeout_other) ?: CT_DEFAULT_OTHER;
	if (entry->flags & (CT_F_TX_CLOSING | CT_F_RX_CLOSING))
		return CONFIG_VALUE(ct_timeout_close) ?: CT_DEFAULT_CLOSE;
	if (!(entry->flags & CT_F_SEEN_NON_SYN))
		return CONFIG_VALUE(ct_timeout_syn) ?: CT_DEFAULT_SYN;
	return CONFIG_VALUE(ct_timeout_tcp) ?: CT_DEFAULT_TCP;
}

static __always_inline int ct_expired(const struct ct_entry *entry, __u32 now)
{
	return entry->lifetime < now;
}

/* Add packets, bytes and TCP flags to one side of an entry (entries are
 * shared between CPUs: atomic adds). */
static __always_inline void ct_account(struct ct_entry *entry, int reply, __u64 packets, __u64 bytes,
				       __u8 tcp_flags)
{
	if (reply) {
		__sync_fetch_and_add(&entry->rx_packets, packets);
		__sync_fetch_and_add(&entry->rx_bytes, bytes);
		entry->rx_tcp_flags |= tcp_flags;
	} else {
		__sync_fetch_and_add(&entry->tx_packets, packets);
		__sync_fetch_and_add(&entry->tx_bytes, bytes);
		entry->tx_tcp_flags |= tcp_flags;
	}
}

/* Account one packet on an entry and refresh its lifetime from the TCP flags. */
static __always_inline void ct_update(struct __sk_buff *skb, const struct packet *pkt,
				      struct ct_entry *entry, int reply, __u32 now)
{
	if (is_dryrun(skb))
		return;
	ct_account(entry, reply, 1, skb->len, pkt->tcp_flags);
	if (pkt->proto == IPPROTO_TCP) {
		if (!(pkt->tcp_flags & TCP_FLAG_SYN) || (pkt->tcp_flags & TCP_FLAG_ACK))
			entry->flags |= CT_F_SEEN_NON_SYN;
		if (pkt->tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST))
			entry->flags |= reply ? CT_F_RX_CLOSING : CT_F_TX_CLOSING;
	}
	entry->lifetime = now + ct_timeout(pkt, entry);
}

/* Look up one direction: the entry when it is live, else NULL. */
static __always_inline struct ct_entry *ct_find(const struct packet *pkt, __u8 scope, int reverse, __u32 now)
{
	struct ct4_key key;
	struct ct_entry *entry;

	if (reverse)
		ct_key_reverse(pkt, scope, &key);
	else
		ct_key_forward(pkt, scope, &key);
	entry = bpf_map_lookup_elem(&pinion_ct4_v2, &key);
	return entry && !ct_expired(entry, now) ? entry : 0;
}

/* State of a packet at a hook whose own entries carry `scope`; the peer hook's
 * entries (other scope) match replies. *entry is set when one matched.
 * reply_first picks the order of the two lookups: each hook tries first the
 * direction most of its packets take, so they cost one lookup. */
static __always_inline int ct_lookup(struct __sk_buff *skb, const struct packet *pkt, __u8 scope,
				     int reply_first, struct ct_entry **entry, __u32 now)
{
	/* A reply travels opposite to the connection, so it matches the entry that
	 * the other hook made when the connection's first packet passed it. */
	__u8 peer_scope = scope == CT_EGRESS ? CT_INGRESS : CT_EGRESS;

	if (reply_first) {
		*entry = ct_find(pkt, peer_scope, 1, now);
		if (*entry)
			goto reply;
		*entry = ct_find(pkt, scope, 0, now);
		if (*entry)
			goto established;
	} else {
		*entry = ct_find(pkt, scope, 0, now);
		if (*entry)
			goto established;
		*entry = ct_find(pkt, peer_scope, 1, now);
		if (*entry)
			goto reply;
	}
	return CT_STATE_NEW;
reply:
	ct_update(skb, pkt, *entry, 1, now);
	return CT_STATE_REPLY;
established:
	ct_update(skb, pkt, *entry, 0, now);
	return CT_STATE_ESTABLISHED;
}

/* Record a new connection; returns 0 or a drop reason. */
static __always_inline int ct_create(struct __sk_buff *skb, const struct packet *pkt, __u8 scope,
				     __u32 rev_nat_index, __u32 src_identity, __u32 cookie, __u32 now)
{
	struct ct4_key key;
	struct ct_entry entry = {
		.tx_packets = 1,
		.tx_bytes = skb->len,
		.rev_nat_index = rev_nat_index,
		.src_identity = src_identity,
		.policy_cookie = cookie,
		.tx_tcp_flags = pkt->tcp_flags,
	};

	if (is_dryrun(skb))
		return 0;
	if (pkt->proto == IPPROTO_TCP && (!(pkt->tcp_flags & TCP_FLAG_SYN) || (pkt->tcp_flags & TCP_FLAG_ACK)))
		entry.flags |= CT_F_SEEN_NON_SYN;
	entry.lifetime = now + ct_timeout(pkt, &entry);
	ct_key_forward(pkt, scope, &key);
	if (bpf_map_update_elem(&pinion_ct4_v2, &key, &entry, BPF_ANY) < 0)
		return DROP_CT_CREATE_FAILED;
	return 0;
}
