import {Struct} from './codec.js'

/* Mirrors of bpf/include/pinion_abi.h, member for member. Names are the C
 * names; test/datapath/abi.system.test.ts checks every offset and size against BTF. */

export const endpointKey = new Struct('endpoint_key', [['ip4', 'ipv4']])

export const endpointInfo = new Struct('endpoint_info', [
  ['ifindex', 'u32'],
  ['endpoint_id', 'u32'],
  ['identity', 'u32'],
  ['flags', 'u32'],
  ['ingress_deny_cookie', 'u32'],
  ['egress_deny_cookie', 'u32'],
  ['mac', 'mac'],
  ['node_mac', 'mac'],
])

export const lb4Key = new Struct('lb4_key', [
  ['address', 'ipv4'],
  ['dport', 'be16'],
  ['backend_slot', 'u16'],
  ['proto', 'u8'],
  ['scope', 'u8'],
  ['pad', 'pad[2]'],
])

export const lb4Service = new Struct('lb4_service', [
  ['backend_id', 'u32'],
  ['rev_nat_index', 'u32'],
  ['count', 'u16'],
  ['flags', 'u8'],
  ['pad', 'pad[1]'],
])

export const backendId = new Struct('backend_id', [['id', 'u32']])

export const lb4Backend = new Struct('lb4_backend', [
  ['address', 'ipv4'],
  ['port', 'be16'],
  ['proto', 'u8'],
  ['state', 'u8'],
])

export const revNatIndex = new Struct('rev_nat_index', [['index', 'u32']])

export const lb4ReverseNat = new Struct('lb4_reverse_nat', [
  ['address', 'ipv4'],
  ['port', 'be16'],
  ['pad', 'pad[2]'],
])

export const ct4Key = new Struct('ct4_key', [
  ['daddr', 'ipv4'],
  ['saddr', 'ipv4'],
  ['dport', 'be16'],
  ['sport', 'be16'],
  ['proto', 'u8'],
  ['scope', 'u8'],
  ['pad', 'pad[2]'],
])

export const ctEntry = new Struct('ct_entry', [
  ['tx_packets', 'u64'],
  ['tx_bytes', 'u64'],
  ['rx_packets', 'u64'],
  ['rx_bytes', 'u64'],
  ['lifetime', 'u32'],
  ['rev_nat_index', 'u32'],
  ['src_identity', 'u32'],
  ['backend_id', 'u32'],
  ['policy_cookie', 'u32'],
  ['flags', 'u16'],
  ['tx_tcp_flags', 'u8'],
  ['rx_tcp_flags', 'u8'],
  ['egress_refreshed', 'u16'],
  ['pad', 'pad[2]'],
])

export const policyKey = new Struct('policy_key', [
  ['prefixlen', 'u32'],
  ['endpoint_id', 'u32'],
  ['direction', 'u8'],
  ['pad1', 'pad[3]'],
  ['identity', 'u32'],
  ['proto', 'u8'],
  ['pad2', 'pad[1]'],
  ['dport', 'be16'],
])

export const policyEntry = new Struct('policy_entry', [
  ['cookie', 'u32'],
  ['flags', 'u8'],
  ['prefix_len', 'u8'],
  ['pad', 'pad[2]'],
])

export const policyId = new Struct('policy_id', [['id', 'u32']])

export const policyName = new Struct('policy_name', [
  ['namespace_', 'char[64]'],
  ['name', 'char[64]'],
])

export const ipcacheKey = new Struct('ipcache_key', [
  ['prefixlen', 'u32'],
  ['ip4', 'ipv4'],
])

export const ipcacheEntry = new Struct('ipcache_entry', [
  ['identity', 'u32'],
  ['tunnel_endpoint', 'ipv4'],
  ['flags', 'u32'],
])

/** Key of the metrics array: METRICS_INDEX(reason, direction), see metricsSlot(). */
export const metricsSlot = new Struct('metrics_slot', [['slot', 'u32']])

export const metricsValue = new Struct('metrics_value', [
  ['packets', 'u64'],
  ['bytes', 'u64'],
])

export const clockCache = new Struct('clock_cache', [
  ['jiffies', 'u64'],
  ['seconds', 'u32'],
  ['pad', 'pad[4]'],
])

export const configIndex = new Struct('config_index', [['index', 'u32']])

export const pinionConfig = new Struct('pinion_config', [
  ['ct_timeout_syn', 'u32'],
  ['ct_timeout_tcp', 'u32'],
  ['ct_timeout_close', 'u32'],
  ['ct_timeout_other', 'u32'],
  ['policy_log_allow', 'u8'],
  ['policy_log_deny', 'u8'],
  ['trace_level', 'u8'],
  ['trace_dscp', 'u8'],
  ['flow_epoch', 'u32'],
  ['reserved', 'pad[8]'],
])

/** Key of the flow cache: a slot index (hash of the tuple). */
export const flowCacheIndex = new Struct('flow_cache_index', [['slot', 'u32']])

export const flowSlot = new Struct('flow_slot', [
  ['key', ct4Key],
  ['ct', ct4Key],
  ['packets', 'u64'],
  ['bytes', 'u64'],
  ['jiffies', 'u64'],
  ['epoch', 'u32'],
  ['ifindex', 'u32'],
  ['xlate_addr', 'ipv4'],
  ['xlate_port', 'be16'],
  ['xlate', 'u8'],
  ['reply', 'u8'],
  ['tcp_flags', 'u8'],
  ['pad', 'pad[7]'],
])

export const eventHeader = new Struct('event_header', [
  ['type', 'u8'],
  ['subtype', 'u8'],
  ['source', 'u16'],
  ['hash', 'u32'],
  ['orig_len', 'u32'],
  ['cap_len', 'u16'],
  ['version', 'u8'],
  ['flags', 'u8'],
  ['ifindex', 'u32'],
  ['pad', 'pad[4]'],
  ['timestamp', 'u64'],
])

export const eventFlow = new Struct('event_flow', [
  ['saddr', 'ipv4'],
  ['daddr', 'ipv4'],
  ['sport', 'be16'],
  ['dport', 'be16'],
  ['proto', 'u8'],
  ['tcp_flags', 'u8'],
  ['ct_state', 'u8'],
  ['direction', 'u8'],
])

export const traceEvent = new Struct('trace_event', [
  ['hdr', eventHeader],
  ['flow', eventFlow],
  ['src_identity', 'u32'],
  ['dst_identity', 'u32'],
  ['orig_daddr', 'ipv4'],
  ['orig_dport', 'be16'],
  ['pad', 'pad[2]'],
  ['rev_nat_index', 'u32'],
  ['backend_id', 'u32'],
  ['policy_cookie', 'u32'],
])

export const dropEvent = new Struct('drop_event', [
  ['hdr', eventHeader],
  ['flow', eventFlow],
  ['src_identity', 'u32'],
  ['dst_identity', 'u32'],
  ['policy_cookie', 'u32'],
  ['pad', 'pad[4]'],
])

export const policyEvent = new Struct('policy_event', [
  ['hdr', eventHeader],
  ['flow', eventFlow],
  ['src_identity', 'u32'],
  ['dst_identity', 'u32'],
  ['policy_cookie', 'u32'],
  ['verdict', 'u8'],
  ['pad', 'pad[3]'],
])

/**
 * The kernel's struct __sk_buff up to hwtstamp (192 bytes): the ctx_in/ctx_out
 * of BPF_PROG_TEST_RUN. Only mark, ifindex and cb may be set on input.
 */
export const skBuff = new Struct('__sk_buff', [
  ['len', 'u32'],
  ['pkt_type', 'u32'],
  ['mark', 'u32'],
  ['queue_mapping', 'u32'],
  ['protocol', 'u32'],
  ['vlan_present', 'u32'],
  ['vlan_tci', 'u32'],
  ['vlan_proto', 'u32'],
  ['priority', 'u32'],
  ['ingress_ifindex', 'u32'],
  ['ifindex', 'u32'],
  ['tc_index', 'u32'],
  ['cb0', 'u32'],
  ['cb1', 'u32'],
  ['cb2', 'u32'],
  ['cb3', 'u32'],
  ['cb4', 'u32'],
  ['hash', 'u32'],
  ['tc_classid', 'u32'],
  ['data', 'u32'],
  ['data_end', 'u32'],
  ['napi_id', 'u32'],
  ['family', 'u32'],
  ['remote_ip4', 'u32'],
  ['local_ip4', 'u32'],
  ['remote_ip6', 'pad[16]'],
  ['local_ip6', 'pad[16]'],
  ['remote_port', 'u32'],
  ['local_port', 'u32'],
  ['data_meta', 'u32'],
  ['flow_keys', 'pad[8]'],
  ['tstamp', 'u64'],
  ['wire_len', 'u32'],
  ['gso_segs', 'u32'],
  ['sk', 'pad[8]'],
  ['gso_size', 'u32'],
  ['tstamp_type', 'u8'],
  ['pad_tstamp', 'pad[3]'],
  ['hwtstamp', 'u64'],
])

/** Every struct the BPF object's BTF must agree with, by C name. */
export const ABI_STRUCTS: readonly Struct[] = [
  endpointKey, endpointInfo, lb4Key, lb4Service, lb4Backend, lb4ReverseNat, ct4Key, ctEntry,
  policyKey, policyEntry, policyName, ipcacheKey, ipcacheEntry, metricsValue,
  clockCache, pinionConfig, flowSlot, eventHeader, eventFlow, traceEvent, dropEvent, policyEvent,
]
