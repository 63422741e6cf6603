/* The contract between the datapath and userspace: every struct stored in a
 * pinned map or sent as an event. src/datapath/structs.ts mirrors each one and a
 * test checks names, offsets and sizes against the BTF of the compiled object.
 * Layout rule: never change a struct in place; reuse a reserved field or add a
 * new map with a _v2 suffix so an upgrade can keep the old pinned maps.
 * Addresses and ports are in network byte order unless named *_host. */
#pragma once

#include <linux/types.h>
#include "drop_reasons.h"

#define PINION_ABI_VERSION 1

/* Reserved security identities; pod identities start at 256, CIDR ones at 1<<24. */
#define IDENTITY_ANY   0
#define IDENTITY_HOST  1
#define IDENTITY_WORLD 2

/* Direction, as seen from the pod: egress = leaving it, ingress = entering it. */
#define DIR_EGRESS  1
#define DIR_INGRESS 2

/* skb->mark that makes a run side-effect free (traceflow's synthetic mode):
 * no conntrack or affinity writes, no counters, no events; results go to skb->cb. */
#define PINION_MARK_DRYRUN 0x50494e31 /* "PIN1" */

/* ---- endpoints: pod IPv4 -> where it lives and who it is ---- */
struct endpoint_key {
	__u32 ip4;
};

#define EP_F_HOST 0x1 /* the node itself, not a pod */

struct endpoint_info {
	__u32 ifindex;        /* host-side veth of the pod */
	__u32 endpoint_id;
	__u32 identity;
	__u32 flags;
	/* Non-zero when a policy selects the pod for that direction (isolated):
	 * the cookie of that policy names who denied an unmatched packet. */
	__u32 ingress_deny_cookie;
	__u32 egress_deny_cookie;
	__u8 mac[6];
	__u8 node_mac[6];
};

/* ---- Service load balancing ---- */
struct lb4_key {
	__u32 address;      /* frontend VIP */
	__u16 dport;        /* frontend port; 0 = any port (ICMP echo to the VIP) */
	__u16 backend_slot; /* 0 = the frontend itself, 1..count = backend slots */
	__u8 proto;
	__u8 scope;         /* reserved for externalTrafficPolicy=Local */
	__u8 pad[2];
};

/* pinion_services_v2 (the first release's pinion_services had a u16 rev-NAT
 * index, which capped frontends at 65,535). */
struct lb4_service {
	__u32 backend_id;    /* slot entries: the backend; frontend entry: 0 */
	__u32 rev_nat_index; /* frontend entry: index into the rev-NAT map */
	__u16 count;         /* frontend entry: number of backend slots */
	__u8 flags;
	__u8 pad;
};

#define BACKEND_STATE_ACTIVE      0
#define BACKEND_STATE_TERMINATING 1

struct lb4_backend {
	__u32 address;
	__u16 port;
	__u8 proto;
	__u8 state;
};

/* pinion_revnat_v2: rev-NAT index (u32) -> frontend. */
#define REV_NAT_MAX 262143 /* frontends (VIP, port, protocol) per cluster */

struct lb4_reverse_nat {
	__u32 address;
	__u16 port;
	__u16 pad;
};

/* ---- connection tracking ---- */
/* Scope of an entry: which hook created it. Keeping egress and ingress entries
 * apart makes a same-node connection pass both pods' policies. SERVICE entries
 * are keyed by the pre-DNAT tuple and pin a flow to its backend; they count
 * every packet, while the flow's egress entry (post-DNAT, which replies match)
 * is refreshed once a second and on SYN, FIN and RST. */
#define CT_EGRESS  1
#define CT_INGRESS 2
#define CT_SERVICE 3

struct ct4_key {
	__u32 daddr;
	__u32 saddr;
	__u16 dport;
	__u16 sport; /* ICMP echo: the identifier, in sport for requests */
	__u8 proto;
	__u8 scope;  /* CT_* */
	__u16 pad;
};

#define CT_F_SEEN_NON_SYN 0x1
#define CT_F_TX_CLOSING   0x2
#define CT_F_RX_CLOSING   0x4

/* pinion_ct4_v2 (the first release's pinion_ct4 had a u16 rev-NAT index). */
struct ct_entry {
	__u64 tx_packets; /* original direction */
	__u64 tx_bytes;
	__u64 rx_packets; /* reply direction */
	__u64 rx_bytes;
	__u32 lifetime;   /* expiry, seconds of CLOCK_BOOTTIME */
	__u32 rev_nat_index;
	__u32 src_identity;
	__u32 backend_id; /* CT_SERVICE entries: the chosen backend */
	__u32 policy_cookie; /* rule that allowed the connection */
	__u16 flags;      /* CT_F_* */
	__u8 tx_tcp_flags; /* union of TCP flags seen each way */
	__u8 rx_tcp_flags;
	/* CT_SERVICE entries: low 16 bits of the second in which the connection's
	 * own (post-DNAT) egress entry was last looked up and refreshed. */
	__u16 egress_refreshed;
	__u16 pad;
};

/* Conntrack state of a packet, reported in events and traceflow results. */
#define CT_STATE_NEW         1
#define CT_STATE_ESTABLISHED 2
#define CT_STATE_REPLY       3

/* ---- policy ---- */
/* LPM trie key. The prefix always covers endpoint, direction and identity
 * (96 bits); 104 adds the protocol; 112+n adds n bits of the port, so a
 * port range becomes a few prefixes. Identity 0 means any peer. */
#define POLICY_PREFIX_ANY_PROTO 96
#define POLICY_PREFIX_ANY_PORT  104
#define POLICY_PREFIX_FULL      128

struct policy_key {
	__u32 prefixlen;
	__u32 endpoint_id;
	__u8 direction; /* DIR_* */
	__u8 pad1[3];
	__u32 identity;
	__u8 proto;     /* after the identity so "any protocol" is a shorter prefix */
	__u8 pad2;
	__u16 dport;
};

#define POLICY_F_DENY 0x1

struct policy_entry {
	__u32 cookie; /* (policy id << 8) | rule number; names it in logs */
	__u8 flags;   /* POLICY_F_* */
	__u8 prefix_len;
	__u16 pad;
};

/* Cookie -> policy name, so every node can name a verdict without the API. */
struct policy_name {
	char namespace_[64];
	char name[64];
};

/* ---- ipcache: CIDR -> security identity ---- */
struct ipcache_key {
	__u32 prefixlen;
	__u32 ip4;
};

struct ipcache_entry {
	__u32 identity;
	__u32 tunnel_endpoint; /* node underlay address; 0 = routed natively */
	__u32 flags;
};

/* ---- metrics: per-CPU array, slot = (direction - 1) * 256 + reason ---- */
/* reason: enum pinion_drop_reason, 0 = forwarded; direction: DIR_*. */
#define METRICS_SLOTS 512
#define METRICS_INDEX(reason, direction) ((((__u32)(direction) - 1) & 1) * 256 + (reason))

struct metrics_value {
	__u64 packets;
	__u64 bytes;
};

/* ---- per-CPU clock cache (internal to the datapath) ---- */
struct clock_cache {
	__u64 jiffies; /* jiffies when seconds was read */
	__u32 seconds; /* CLOCK_BOOTTIME, whole seconds */
	__u32 pad;
};

/* ---- flow cache (per-CPU array, internal to the datapath) ----
 * A direct-mapped cache of established flows in front of conntrack and the
 * Service maps: a hit is a tuple compare instead of hash lookups. A slot is
 * good while the configuration's flow_epoch (bumped by the control plane on
 * every map change) is the one it was filled under and for FLOW_CACHE_JIFFIES
 * after the full pipeline last ran for the flow; until then its packets are
 * counted in the slot and added to the conntrack entry when the pipeline runs
 * again (readers add what is pending, see the dump). */
#define FLOW_CACHE_SLOTS   1024 /* per CPU, a power of two */
#define FLOW_CACHE_JIFFIES 64   /* 64-640 ms, by the kernel's HZ */

#define FLOW_XLATE_NONE 0
#define FLOW_XLATE_DST  1 /* DNAT to xlate_addr:xlate_port */
#define FLOW_XLATE_SRC  2 /* reverse NAT of the source */

struct flow_slot {
	struct ct4_key key; /* the packet as the hook saw it; scope = the hook's (CT_EGRESS: from_pod) */
	struct ct4_key ct;  /* the conntrack entry its packets are counted on */
	__u64 packets;      /* counted here, not yet on the entry */
	__u64 bytes;
	__u64 jiffies;      /* when the full pipeline last ran for the flow */
	__u32 epoch;
	__u32 ifindex;      /* the interface the flow was seen on (spoof guard) */
	__u32 xlate_addr;
	__u16 xlate_port;
	__u8 xlate;         /* FLOW_XLATE_* */
	__u8 reply;         /* counts go to the entry's reply side */
	__u8 tcp_flags;     /* seen since */
	__u8 pad[7];
};

/* ---- runtime configuration (array map, one entry) ---- */
#define TRACE_LEVEL_OFF  0
#define TRACE_LEVEL_FLOW 1 /* once per new connection */
#define TRACE_LEVEL_ALL  2 /* every packet: debugging only */

struct pinion_config {
	/* Conntrack lifetimes in seconds; 0 selects the built-in default. */
	__u32 ct_timeout_syn;
	__u32 ct_timeout_tcp;
	__u32 ct_timeout_close;
	__u32 ct_timeout_other;
	__u8 policy_log_allow;
	__u8 policy_log_deny;
	__u8 trace_level;
	__u8 trace_dscp; /* packets with this DSCP are always traced; 0 = off */
	__u32 flow_epoch; /* bumped on every map change: flow cache slots of older epochs are stale */
	__u32 reserved[2];
};

/* ---- events (perf event array) ---- */
#define EVENT_DROP   1
#define EVENT_TRACE  2
#define EVENT_POLICY 3

#define EVENT_VERSION 2 /* 2: trace_event.rev_nat_index is 32 bits */
#define EVENT_CAPTURE_BYTES 128

#define EVENT_F_TRACEFLOW 0x1 /* packet carried the traceflow DSCP tag */
#define EVENT_F_REPLY     0x2

/* Trace observation points (trace subtype). */
#define TRACE_FROM_POD 1 /* left the pod, after LB and policy */
#define TRACE_TO_POD   2 /* delivered to the pod */

#define VERDICT_ALLOW 1
#define VERDICT_DENY  2

struct event_header {
	__u8 type;     /* EVENT_* */
	__u8 subtype;  /* drop reason, trace point or verdict */
	__u16 source;  /* endpoint id that emitted it */
	__u32 hash;    /* skb hash: correlates one packet's events */
	__u32 orig_len;
	__u16 cap_len; /* packet bytes appended after the record */
	__u8 version;  /* EVENT_VERSION */
	__u8 flags;    /* EVENT_F_* */
	__u32 ifindex;
	__u32 pad;
	__u64 timestamp; /* CLOCK_BOOTTIME ns */
};

struct event_flow {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 tcp_flags;
	__u8 ct_state;  /* CT_STATE_* */
	__u8 direction; /* DIR_* */
};

struct trace_event {
	struct event_header hdr;
	struct event_flow flow;
	__u32 src_identity;
	__u32 dst_identity;
	__u32 orig_daddr; /* before DNAT; equals flow.daddr when not load balanced */
	__u16 orig_dport;
	__u16 pad;
	__u32 rev_nat_index;
	__u32 backend_id;
	__u32 policy_cookie;
};

struct drop_event {
	struct event_header hdr;
	struct event_flow flow;
	__u32 src_identity;
	__u32 dst_identity;
	__u32 policy_cookie;
	__u32 pad;
};

struct policy_event {
	struct event_header hdr;
	struct event_flow flow;
	__u32 src_identity;
	__u32 dst_identity;
	__u32 policy_cookie;
	__u8 verdict;   /* VERDICT_* */
	__u8 pad[3];
};

/* ---- dry-run result, written to skb->cb[] for BPF_PROG_TEST_RUN ---- */
/* cb[0] = verdict (TC action) | drop reason << 8 | ct state << 16 | observations << 24
 * cb[1] = policy cookie, cb[2] = backend id, cb[3] = peer identity,
 * cb[4] = original destination (before DNAT). */
#define OBS_LB         0x01 /* the destination was a Service: DNAT applied */
#define OBS_POLICY     0x02 /* a policy was evaluated */
#define OBS_REV_NAT    0x04 /* a Service reply was reverse-NATed */
#define OBS_SPOOFGUARD 0x08 /* the source address was checked */
