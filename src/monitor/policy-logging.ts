import {Writable} from 'node:stream'
import type {Clients} from '../cluster/kubeconfig.js'
import {apiStatus} from '../cluster/kubeconfig.js'
import {LOGGING_ANNOTATION, LOGGING_CONFIGMAP, type LoggingConfig, readLoggingConfig} from '../cluster/logging-config.js'
import {type Endpoint, type LogSummary, POLICY_LOG_FILE, PolicyLogPipeline, type PolicyLogRecord, policyLogRecord} from '../datapath/policy-log-records.js'
import {readSnapshot} from '../cluster/snapshot.js'
import {updateNodeConfig} from '../datapath/runtime-config.js'
import {DEBUG_NAMESPACE, ensureDebugNamespace} from '../nodes/debug-pods.js'
import {type NodeAccessOptions, withNodeAccess} from '../nodes/node-access.js'
import {UserError} from '../lib/errors.js'
import {collectEvents, untilStoppedOrEnded} from '../datapath/event-collector.js'
import {podsByIp, readPolicyNames} from '../sync/names.js'

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
  const pods = podsByIp(snapshot)
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
