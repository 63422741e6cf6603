import type {Clients} from '../cluster/kubeconfig.js'
import {apiStatus} from '../cluster/kubeconfig.js'
import {readSnapshot} from '../cluster/snapshot.js'
import {splitCookie} from '../datapath/constants.js'
import {updateNodeConfig} from '../install/runtime-config.js'
import {readPolicyNames} from '../maps/dump.js'
import {DEBUG_NAMESPACE, ensureDebugNamespace} from '../nodes/debug-pods.js'
import {type NodeAccessOptions, withNodeAccess} from '../nodes/node-access.js'
import {collectEvents} from './collector.js'

/** Like GKE's NetworkLogging resource: log allowed and/or denied connections, optionally delegated. */
export interface LoggingConfig {
  allow: {log: boolean; delegate: boolean}
  deny: {log: boolean; delegate: boolean}
}

export const LOGGING_CONFIGMAP = 'pinion-network-logging'
/** On a NetworkPolicy (allow delegation) or a Namespace (deny delegation). */
export const LOGGING_ANNOTATION = 'pinion.dev/enable-logging'
export const DEFAULT_LOGGING: LoggingConfig = {allow: {log: false, delegate: false}, deny: {log: false, delegate: false}}

export async function readLoggingConfig(api: Clients): Promise<LoggingConfig> {
  try {
    const map = await api.core.readNamespacedConfigMap({namespace: DEBUG_NAMESPACE, name: LOGGING_CONFIGMAP})
    return JSON.parse(map.data?.['config.json'] ?? 'null') ?? DEFAULT_LOGGING
  } catch (error) {
    if (apiStatus(error) === 404) return DEFAULT_LOGGING
    throw error
  }
}

/** Store the config in the cluster (install re-applies it) and switch every node's datapath. */
export async function setLoggingConfig(api: Clients, access: NodeAccessOptions, pinRoot: string, config: LoggingConfig): Promise<{node: string; ok: boolean; error?: string}[]> {
  await ensureDebugNamespace(api.core)
  const body = {metadata: {name: LOGGING_CONFIGMAP, namespace: DEBUG_NAMESPACE}, data: {'config.json': JSON.stringify(config)}}
  try {
    await api.core.replaceNamespacedConfigMap({namespace: DEBUG_NAMESPACE, name: LOGGING_CONFIGMAP, body})
  } catch (error) {
    if (apiStatus(error) !== 404) throw error
    await api.core.createNamespacedConfigMap({namespace: DEBUG_NAMESPACE, body})
  }
  return withNodeAccess(api, access, async (session) => {
    const results = await session.forEach(await session.nodes(), (shell) => updateNodeConfig(shell, pinRoot, (current) => {
      current.policyLogAllow = config.allow.log ? 1 : 0
      current.policyLogDeny = config.deny.log ? 1 : 0
    }))
    return results.map((result) => ({node: result.item, ok: result.ok, error: result.error}))
  })
}

type Endpoint = {pod_name: string; pod_namespace: string; namespace: string; workload_kind?: string; workload_name?: string} | {instance: string}

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

export interface PolicyLogOptions {
  ratePerSecond: number
  denyWindowMs: number
  /** Called once every node's event reader is attached. */
  ready?: () => void
}

/** Collect policy verdict events from every node and turn them into log records until `signal` aborts. */
export async function policyLogs(api: Clients, access: NodeAccessOptions, nodes: readonly string[], pinRoot: string, options: PolicyLogOptions, signal: AbortSignal, emit: (record: PolicyLogRecord) => void): Promise<LogSummary[]> {
  const config = await readLoggingConfig(api)
  const snapshot = await readSnapshot(api)
  const pods = new Map(snapshot.pods.filter((pod) => pod.status?.podIP && !pod.spec?.hostNetwork).map((pod) => [pod.status!.podIP!, pod]))
  const namespaceLogging = new Set(snapshot.namespaces.filter((namespace) => namespace.metadata?.annotations?.[LOGGING_ANNOTATION] === 'true').map((namespace) => namespace.metadata!.name!))
  const policyLogging = new Set(snapshot.policies.filter((policy) => policy.metadata?.annotations?.[LOGGING_ANNOTATION] === 'true').map((policy) => `${policy.metadata!.namespace}/${policy.metadata!.name}`))
  const endpoint = (ip: string): Endpoint => {
    const pod = pods.get(ip)
    if (!pod) return {instance: ip}
    const owner = pod.metadata?.ownerReferences?.find((reference) => reference.controller)
    return {pod_name: pod.metadata!.name!, pod_namespace: pod.metadata!.namespace!, namespace: pod.metadata!.namespace!, workload_kind: owner?.kind, workload_name: owner?.name}
  }
  const pipeline = new PolicyLogPipeline(options.ratePerSecond, options.denyWindowMs, emit)
  await withNodeAccess(api, access, async (session) => {
    const selected = await session.nodes(nodes)
    const names = new Map<number, string>()
    for (const node of selected) for (const [id, name] of await readPolicyNames(await session.shell(node), pinRoot).catch(() => new Map<number, string>())) names.set(id, name)
    const collector = await collectEvents(session, selected, pinRoot, (record) => {
      if (record.kind === 'lost') pipeline.lost(record.node, record.count)
      if (record.kind !== 'event' || record.event.type !== 'policy') return
      const {event} = record
      const disposition = event.verdict!
      const policyName = names.get(splitCookie(event.policyCookie).policyId)
      const [namespace, name] = policyName?.split('/') ?? ['', `policy ${splitCookie(event.policyCookie).policyId}`]
      // The endpoint the policy protects: the destination for ingress, the source for egress.
      const protectedIp = event.flow.direction === 'ingress' ? event.flow.dst : event.flow.src
      if (disposition === 'allow' && (!config.allow.log || (config.allow.delegate && !policyLogging.has(policyName ?? '')))) return
      if (disposition === 'deny' && (!config.deny.log || (config.deny.delegate && !namespaceLogging.has(pods.get(protectedIp)?.metadata?.namespace ?? '')))) return
      pipeline.add({
        connection: {src_ip: event.flow.src, dest_ip: event.flow.dst, src_port: event.flow.srcPort, dest_port: event.flow.dstPort, protocol: event.flow.protocol.toLowerCase(), direction: event.flow.direction as 'ingress' | 'egress'},
        disposition,
        policies: [{kind: 'NetworkPolicy', namespace, name}],
        src: endpoint(event.flow.src),
        dest: endpoint(event.flow.dst),
        node_name: record.node,
        timestamp: new Date().toISOString(),
        count: 1,
      })
    })
    options.ready?.()
    await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), {once: true})))
    await collector.stop()
    pipeline.flush()
  })
  return [...pipeline.summary.values()]
}
