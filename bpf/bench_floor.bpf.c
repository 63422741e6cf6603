/* The floor for per-packet cost benchmarks: a tc program that does nothing. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tc")
int floor_pass(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}
