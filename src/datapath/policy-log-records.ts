import type {LoggingConfig} from '../cluster/logging-config.js'
import {splitCookie} from './constants.js'
import type {DatapathEvent} from './events.js'

/** Where the agent writes policy log records on its node, as GKE Dataplane V2 does. */
export const POLICY_LOG_FILE = '/var/log/network/policy_action.log'

export type Endpoint = {pod_name: string; pod_namespace: string; namespace: string; workload_kind?: string; workload_name?: string} | {instance: string}

/** One policy log record (GKE Dataplane V2's shape). */
export interface PolicyLogRecord {
  connection: {src_ip: string; dest_ip: string; src_port: number; dest_port: number; protocol: string; direction: 'ingress' | 'egress'}
  disposition: 'allow' | 'deny'
  policies: {kind: 'NetworkPolicy'; namespace: string; name: string}[]
  src: Endpoint
  dest: Endpoint
  node_name: string
  timestamp: string
  count: number
}

export interface LogSummary {
  node: string
  /** Records dropped by the per-node rate limit. */
  rateLimited: number
  lostEvents: number
}

/**
 * Token bucket per node plus deny aggregation: allowed connections are logged
 * once (the datapath reports only a connection's first packet), repeated
 * denies of one connection within the window become one record with a count,
 * and records above the rate are dropped and counted, never queued.
 */
export class PolicyLogPipeline {
  private readonly tokens = new Map<string, {tokens: number; at: number}>()
  private readonly pending = new Map<string, {record: PolicyLogRecord; timer: NodeJS.Timeout}>()
  readonly summary = new Map<string, LogSummary>()

  constructor(
    private readonly ratePerSecond: number,
    private readonly denyWindowMs: number,
    private readonly emit: (record: PolicyLogRecord) => void,
  ) {}

  private stats(node: string): LogSummary {
    let stats = this.summary.get(node)
    if (!stats) {
      stats = {node, rateLimited: 0, lostEvents: 0}
      this.summary.set(node, stats)
    }
    return stats
  }

  lost(node: string, count: number): void {
    this.stats(node).lostEvents += count
  }

  private admit(node: string): boolean {
    const now = Date.now()
    const bucket = this.tokens.get(node) ?? {tokens: this.ratePerSecond, at: now}
    bucket.tokens = Math.min(this.ratePerSecond, bucket.tokens + ((now - bucket.at) / 1000) * this.ratePerSecond)
    bucket.at = now
    this.tokens.set(node, bucket)
    if (bucket.tokens < 1) {
      this.stats(node).rateLimited++
      return false
    }
    bucket.tokens -= 1
    return true
  }

  add(record: PolicyLogRecord): void {
    this.stats(record.node_name)
    if (record.disposition === 'allow') {
      if (this.admit(record.node_name)) this.emit(record)
      return
    }
    const {connection} = record
    const key = `${record.node_name}|${connection.src_ip}|${connection.src_port}|${connection.dest_ip}|${connection.dest_port}|${connection.protocol}`
    const open = this.pending.get(key)
    if (open) {
      open.record.count++
      return
    }
    if (!this.admit(record.node_name)) return
    const timer = setTimeout(() => this.flushKey(key), this.denyWindowMs)
    this.pending.set(key, {record, timer})
  }

  private flushKey(key: string): void {
    const open = this.pending.get(key)
    if (!open) return
    clearTimeout(open.timer)
    this.pending.delete(key)
    this.emit(open.record)
  }

  flush(): void {
    for (const key of [...this.pending.keys()]) this.flushKey(key)
  }
}

/** What deciding and describing a policy record needs: the logging config, delegation, and who an address is. */
export interface PolicyLogContext {
  config: LoggingConfig
  endpoint: (ip: string) => Endpoint
  namespaceOf: (ip: string) => string | undefined
  /** Namespaces whose denies are logged under deny delegation; policies whose allows are logged under allow delegation. */
  namespaceLogging: ReadonlySet<string>
  policyLogging: ReadonlySet<string>
}

/** The log record of a policy verdict event, or undefined when the config does not log it. */
export function policyLogRecord(event: DatapathEvent, node: string, names: ReadonlyMap<number, string>, context: PolicyLogContext): PolicyLogRecord | undefined {
  if (event.type !== 'policy') return undefined
  const disposition = event.verdict!
  const policyName = names.get(splitCookie(event.policyCookie).policyId)
  const [namespace, name] = policyName?.split('/') ?? ['', `policy ${splitCookie(event.policyCookie).policyId}`]
  // The endpoint the policy protects: the destination for ingress, the source for egress.
  const protectedIp = event.flow.direction === 'ingress' ? event.flow.dst : event.flow.src
  const {config} = context
  if (disposition === 'allow' && (!config.allow.log || (config.allow.delegate && !context.policyLogging.has(policyName ?? '')))) return undefined
  if (disposition === 'deny' && (!config.deny.log || (config.deny.delegate && !context.namespaceLogging.has(context.namespaceOf(protectedIp) ?? '')))) return undefined
  return {
    connection: {src_ip: event.flow.src, dest_ip: event.flow.dst, src_port: event.flow.srcPort, dest_port: event.flow.dstPort, protocol: event.flow.protocol.toLowerCase(), direction: event.flow.direction as 'ingress' | 'egress'},
    disposition,
    policies: [{kind: 'NetworkPolicy', namespace, name}],
    src: context.endpoint(event.flow.src),
    dest: context.endpoint(event.flow.dst),
    node_name: node,
    timestamp: new Date().toISOString(),
    count: 1,
  }
}
