/* Pinion datapath: two tc programs on the host side of every pod's veth.
 *
 *   pod netns          node netns
 *   [eth0] <==veth==> [host veth]  --tc ingress-->  from_pod  (packets leaving the pod)
 *                                  <--tc egress---  to_pod    (packets entering the pod)
 *
 * from_pod: parse -> spoof guard -> Service DNAT -> conntrack -> egress policy -> forward
 * to_pod:   parse -> conntrack -> reverse NAT (replies) | ingress policy (new) -> deliver
 * Forwarding is left to the node's routing table (TC_ACT_OK). */
#include "lib/hooks.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tc")
int from_pod(struct __sk_buff *skb)
{
	return handle_from_pod(skb);
}

SEC("tc")
int to_pod(struct __sk_buff *skb)
{
	return handle_to_pod(skb);
}
