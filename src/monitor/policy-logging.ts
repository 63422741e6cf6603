import {Writable} from 'node:stream'
import type {Clients} from '../cluster/kubeconfig.js'
import {apiStatus} from '../cluster/kubeconfig.js'
import {readSnapshot} from '../cluster/snapshot.js'
import {splitCookie} from '../datapath/constants.js'
import type {DatapathEvent} from '../datapath/events.js'
import {updateNodeConfig} from '../datapath/runtime-config.js'
import {readPolicyNames} from '../maps/dump.js'
import {DEBUG_NAMESPACE, ensureDebugNamespace} from '../nodes/debug-pods.js'
import {type NodeAccessOptions, withNodeAccess} from '../nodes/node-access.js'
import {UserError} from '../lib/errors.js'
import {collectEvents, untilStoppedOrEnded} from './collector.js'

/** Like GKE's NetworkLogging resource: log allowed and/or denied connections, optionally delegated. */
export interface LoggingConfig {
  allow: {log: boolean; delegate: boolean}
  deny: {log: boolean; delegate: boolean}
}

export const LOGGING_CONFIGMAP = 'pinion-network-logging'
/** Where the agent writes policy log records on its node, as GKE Dataplane V2 does. */
export const POLICY_LOG_FILE = '/var/log/network/policy_action.log'
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
    }), {purpose: 'policy-logging set'})
    return results.map((result) => ({node: result.item, ok: result.ok, error: result.error}))
  })
}

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

export interface PolicyLogOptions {
  ratePerSecond: number
  denyWindowMs: number
  /** Called once every node's event reader is attached. */
  ready?: () => void
  /** A node that cannot stream (not installed, unreachable, its reader failed); the others carry on. */
  onNodeError?: (node: string, message: string) => void
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
  const context = {config, endpoint, namespaceOf: (ip: string) => pods.get(ip)?.metadata?.namespace, namespaceLogging, policyLogging}
  const pipeline = new PolicyLogPipeline(options.ratePerSecond, options.denyWindowMs, emit)
  await withNodeAccess(api, access, async (session) => {
    const selected = await session.nodes(nodes)
    const names = new Map<number, string>()
    for (const node of selected) for (const [id, name] of await readPolicyNames(await session.shell(node), pinRoot).catch(() => new Map<number, string>())) names.set(id, name)
    const collector = await collectEvents(session, selected, pinRoot, (record) => {
      if (record.kind === 'lost') pipeline.lost(record.node, record.count)
      if (record.kind === 'error') options.onNodeError?.(record.node, record.message)
      if (record.kind !== 'event' || record.event.type !== 'policy') return
      const logged = policyLogRecord(record.event, record.node, names, context)
      if (logged) pipeline.add(logged)
    })
    options.ready?.()
    await untilStoppedOrEnded(signal, collector.ended)
    await collector.stop()
    if (collector.streaming === 0) throw new UserError(`no node streamed events: ${selected.length === 1 ? 'it' : `all ${selected.length}`} failed (see above)`)
    pipeline.flush()
  })
  return [...pipeline.summary.values()]
}

/**
 * The records the agents wrote on each node (POLICY_LOG_FILE and its newest
 * rotation): the last `tail` of them in timestamp order, then with `follow`
 * every new one as it is written, until `signal` aborts.
 */
export async function nodePolicyLogs(api: Clients, access: NodeAccessOptions, nodes: readonly string[], options: {tail: number; follow: boolean; file?: string}, signal: AbortSignal, emit: (record: PolicyLogRecord) => void, onError: (node: string, message: string) => void): Promise<void> {
  const file = options.file ?? POLICY_LOG_FILE
  const parse = (node: string, line: string): PolicyLogRecord | undefined => {
    if (!line.trim()) return undefined
    try {
      return JSON.parse(line) as PolicyLogRecord
    } catch {
      onError(node, `not a policy log record: ${line.slice(0, 80)}`)
      return undefined
    }
  }
  await withNodeAccess(api, access, async (session) => {
    const selected = await session.nodes(nodes)
    const history: PolicyLogRecord[] = []
    await session.forEach(selected, async (shell, node) => {
      const result = await shell.run(['sh', '-c', 'cat "$1.1" "$1" 2>/dev/null | tail -n "$2"; true', 'policy-log', file, String(options.tail)])
      for (const line of result.stdout.toString('utf8').split('\n')) {
        const record = parse(node, line)
        if (record) history.push(record)
      }
    })
    history.sort((a, b) => a.timestamp.localeCompare(b.timestamp))
    for (const record of history.slice(-options.tail)) emit(record)
    if (!options.follow) return
    await Promise.all(selected.map(async (node) => {
      try {
        const shell = await session.shell(node)
        let buffered = ''
        const sink = new Writable({
          write(chunk: Buffer, _encoding, done) {
            buffered += chunk.toString('utf8')
            const lines = buffered.split('\n')
            buffered = lines.pop() ?? ''
            for (const line of lines) {
              const record = parse(node, line)
              if (record) emit(record)
            }
            done()
          },
        })
        await shell.run(['tail', '-n', '0', '-F', file], {stdout: sink, signal})
      } catch (error) {
        onError(node, (error as Error).message)
      }
    }))
  })
}
