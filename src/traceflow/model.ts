/** Traceflow's result model (after Antrea's): per node, ordered observations. */
export type Component = 'SpoofGuard' | 'LB' | 'Conntrack' | 'NetworkPolicy' | 'Forwarding'
export type Action = 'Received' | 'Forwarded' | 'Delivered' | 'Dropped' | 'ForwardedOutOfNetwork'
export type TraceResult = 'Delivered' | 'Dropped' | 'ForwardedOutOfNetwork'

export interface Observation {
  node: string
  component: Component
  action: Action
  /** Human-readable detail: translated destination, policy and rule, drop reason, interface, conntrack state. */
  detail?: string
  translatedDstIP?: string
  translatedDstPod?: string
  networkPolicy?: string
  dropReason?: string
  interface?: string
  ctState?: string
}

export interface TraceflowSpec {
  source: {namespace: string; name: string; ip: string; node: string}
  destination: {kind: 'pod' | 'service' | 'ip'; name?: string; ip: string; port: number}
  protocol: 'tcp' | 'udp' | 'icmp'
  srcPort: number
  tcpFlags: number
}

export interface Traceflow {
  mode: 'synthetic' | 'live'
  spec: {source: string; destination: string; protocol: string; srcPort?: number; dstPort?: number}
  result: TraceResult
  /** Why the trace ended, always said. */
  reason: string
  observations: Observation[]
}
