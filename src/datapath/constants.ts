/* Constants of bpf/include/pinion_abi.h that userspace needs. */

export const IDENTITY = {ANY: 0, HOST: 1, WORLD: 2, REMOTE_NODE: 6, FIRST_POD: 256, FIRST_CIDR: 1 << 24} as const

export const DIRECTION = {EGRESS: 1, INGRESS: 2} as const

/** Slots of the metrics array and the slot of (reason, direction): METRICS_SLOTS and METRICS_INDEX in pinion_abi.h. */
export const METRICS_SLOTS = 512
export function metricsSlot(reason: number, direction: number): number {
  return ((direction - 1) & 1) * 256 + reason
}
export function metricsSlotParts(slot: number): {reason: number; direction: number} {
  return {reason: slot & 255, direction: (slot >> 8) + 1}
}
/** Per-CPU slots of the flow cache: FLOW_CACHE_SLOTS in pinion_abi.h. */
export const FLOW_CACHE_SLOTS = 1024
export const FLOW_XLATE_NAME: Record<number, string> = {0: 'none', 1: 'dnat', 2: 'reverse-nat'}

/** Highest rev-NAT index, so the most frontends (VIP, port, protocol): REV_NAT_MAX in pinion_abi.h. */
export const REV_NAT_MAX = 262143

export const DIRECTION_NAME: Record<number, string> = {1: 'egress', 2: 'ingress'}

export const CT_SCOPE = {EGRESS: 1, INGRESS: 2, SERVICE: 3} as const
export const CT_SCOPE_NAME: Record<number, string> = {1: 'egress', 2: 'ingress', 3: 'service'}

export const CT_FLAG = {SEEN_NON_SYN: 0x1, TX_CLOSING: 0x2, RX_CLOSING: 0x4} as const

export const CT_STATE = {NEW: 1, ESTABLISHED: 2, REPLY: 3} as const
export const CT_STATE_NAME: Record<number, string> = {1: 'new', 2: 'established', 3: 'reply'}

export const POLICY_PREFIX = {ANY_PROTO: 96, ANY_PORT: 104, FULL: 128} as const
export const POLICY_FLAG_DENY = 0x1

export const EVENT_TYPE = {DROP: 1, TRACE: 2, POLICY: 3} as const
/** event_header.version the decoder understands (EVENT_VERSION in pinion_abi.h). */
export const EVENT_VERSION = 2
/**
 * Endpoint ids are per node and fit event_header.source (a __u16): the
 * planner allocates no higher, and pinion_endpoint holds no more pods than that.
 */
export const MAX_ENDPOINT_ID = 0xffff
export const EVENT_FLAG = {TRACEFLOW: 0x1, REPLY: 0x2} as const
export const TRACE_POINT = {FROM_POD: 1, TO_POD: 2} as const
export const VERDICT = {ALLOW: 1, DENY: 2} as const
export const TRACE_LEVEL = {OFF: 0, FLOW: 1, ALL: 2} as const

export const BACKEND_STATE_NAME: Record<number, string> = {0: 'active', 1: 'terminating'}

/** skb->mark that makes a program run side-effect free (synthetic traceflow). */
export const MARK_DRYRUN = 0x50494e31

/** Observation bits of a dry-run result (cb[0] >> 24). */
export const OBSERVATION = {LB: 0x01, POLICY: 0x02, REV_NAT: 0x04, SPOOFGUARD: 0x08} as const

export const TC_ACT = {OK: 0, SHOT: 2} as const

export const IPPROTO: Record<string, number> = {icmp: 1, tcp: 6, udp: 17, sctp: 132}
export const PROTO_NAME: Record<number, string> = {0: 'any', 1: 'ICMP', 6: 'TCP', 17: 'UDP', 132: 'SCTP'}

export function protoName(proto: number): string {
  return PROTO_NAME[proto] ?? `proto-${proto}`
}

/** "SYN,ACK" style names of a TCP flags byte. */
export function tcpFlagNames(flags: number): string {
  return TCP_FLAG_NAMES[flags & 0xff]
}

/** Every flags byte's names, made once (conntrack dumps name two per entry). */
const TCP_FLAG_NAMES = Array.from({length: 256}, (_, flags) => ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR'].filter((_, bit) => flags & (1 << bit)).join(','))

/** A policy cookie is (policy id << 8) | rule number; rule 0 = selected, no rule matched. */
export function splitCookie(cookie: number): {policyId: number; rule: number} {
  return {policyId: cookie >>> 8, rule: cookie & 0xff}
}

/**
 * "namespace/name rule N" for a cookie, with the policy names a node holds;
 * `ruleZero` is appended for rule 0 (the policy isolated the pod, no rule matched).
 */
export function describeCookie(names: ReadonlyMap<number, string>, cookie: number, ruleZero: string): string | undefined {
  if (!cookie) return undefined
  const {policyId, rule} = splitCookie(cookie)
  const name = names.get(policyId) ?? `policy ${policyId}`
  return rule === 0 ? `${name}${ruleZero}` : `${name} rule ${rule}`
}

export function makeCookie(policyId: number, rule: number): number {
  return ((policyId << 8) | (rule & 0xff)) >>> 0
}
