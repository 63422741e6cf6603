import type * as k8s from '@kubernetes/client-node'
import type {Clients} from '../cluster/kubeconfig.js'
import {type MapFill, mapFill} from '../datapath/map-fill.js'
import {nodeMapTool} from '../datapath/maptool.js'
import {endpointKey} from '../datapath/structs.js'
import {interfacesWithPinion, resolveInterfaces} from '../datapath/attach.js'
import {MAPS, mapPinPath} from '../datapath/catalogue.js'
import {type NodeAccessOptions, withNodeAccess} from '../nodes/node-access.js'
import type {NodeShell} from '../nodes/shell.js'
import {AGENT_STATUS_FILE, type AgentStatus, readNodeRecord} from '../datapath/node-state.js'
import {agentInstalled, agentPods} from '../cluster/agent-objects.js'

/** The node agent as `status` sees it: its pod, and what it last reported on the node. */
export interface AgentView {
  pod?: string
  ready: boolean
  restarts: number
  /** resourceVersion whose changes are on the node, and how long pending changes have waited. */
  appliedResourceVersion?: string
  lagMs?: number
  lastSyncAt?: string
  errors: string[]
}

export interface NodeStatus {
  node: string
  installed: boolean
  health: 'healthy' | 'degraded' | 'not installed' | 'unreachable'
  problems: string[]
  /** Pods of this node the datapath does not enforce, with why (no programs, no endpoint entry). */
  unenforced: string[]
  agent?: AgentView
  version?: string
  programs: string[]
  attachedInterfaces: number
  endpoints: number
  lastSync?: string
  maps: MapFill[]
  error?: string
}

/** Pods (namespace/name, IP) that should have the datapath on a node: running with a pod address. */
export interface ExpectedPod {
  name: string
  ip: string
}

async function agentReport(shell: NodeShell): Promise<Partial<AgentStatus> | undefined> {
  const result = await shell.run(['cat', AGENT_STATUS_FILE])
  if (result.exitCode !== 0) return undefined
  try {
    return JSON.parse(result.stdout.toString('utf8')) as Partial<AgentStatus>
  } catch {
    return undefined
  }
}

export async function nodeStatus(shell: NodeShell, node: string, pinRoot: string, expected: readonly ExpectedPod[] = [], agentPod?: k8s.V1Pod | null): Promise<NodeStatus> {
  const record = await readNodeRecord(shell)
  const programs = (await shell.run(['ls', `${pinRoot}/progs`])).stdout.toString('utf8').split('\n').filter(Boolean)
  const attached = await interfacesWithPinion(shell)
  const maps = await mapFill(shell, pinRoot)
  const problems: string[] = []
  if (record) {
    if (!programs.includes('from_pod') || !programs.includes('to_pod')) problems.push('programs are not pinned')
    const missing = record.interfaces.filter((iface) => !attached.includes(iface))
    if (missing.length) problems.push(`not attached to ${missing.join(', ')}`)
    // Arrays are always full; LRU conntrack evicts by design but a full one drops state early, so it counts.
    const arrays = new Set(MAPS.filter((spec) => spec.type.endsWith('array')).map((spec) => spec.name))
    for (const map of maps) if (!arrays.has(map.name) && map.maxEntries && map.entries / map.maxEntries > 0.9) problems.push(`${map.name} is ${Math.round((100 * map.entries) / map.maxEntries)}% full`)
  }
  // Every running pod must have programs on its interface and an endpoint entry: otherwise it is unenforced.
  const unenforced: string[] = []
  if (expected.length) {
    const interfaces = await resolveInterfaces(shell)
    const endpointIps = new Set((record ? await (await nodeMapTool(shell)).dumpMap(mapPinPath(pinRoot, 'pinion_endpoint')).catch(() => []) : []).map((row) => endpointKey.decode(row.key).ip4 as string))
    for (const pod of expected) {
      const link = interfaces.get(pod.ip)
      const missing = [!link || !attached.includes(link.name) ? 'no programs' : undefined, !endpointIps.has(pod.ip) ? 'no endpoint entry' : undefined].filter(Boolean)
      if (missing.length) unenforced.push(`${pod.name} (${missing.join(', ')})`)
    }
    if (unenforced.length) problems.push(`${unenforced.length} pod(s) not enforced: ${unenforced.join(', ')}`)
  }
  let agent: AgentView | undefined
  if (agentPod !== undefined) {
    const report = await agentReport(shell)
    const ready = Boolean(agentPod?.status?.conditions?.some((condition) => condition.type === 'Ready' && condition.status === 'True'))
    agent = {pod: agentPod?.metadata?.name, ready, restarts: agentPod?.status?.containerStatuses?.[0]?.restartCount ?? 0, appliedResourceVersion: report?.appliedResourceVersion, lagMs: report?.lagMs, lastSyncAt: report?.lastSyncAt, errors: [...(report?.errors ?? []).slice(-3).map((error) => error.message), ...(report?.policyErrors ?? []).map((error) => `policy ${error.policy} fails closed: ${error.error}`), ...(report?.planErrors ?? [])]}
    if (!agentPod) problems.push('no agent pod on this node')
    else if (!ready) problems.push(`agent ${agentPod.metadata?.name} is not ready`)
  }
  return {
    node,
    installed: Boolean(record),
    health: !record ? 'not installed' : problems.length ? 'degraded' : 'healthy',
    problems,
    unenforced,
    agent,
    version: record?.version,
    programs,
    attachedInterfaces: attached.length,
    endpoints: maps.find((map) => map.name === 'pinion_endpoint')?.entries ?? 0,
    lastSync: agent?.lastSyncAt ?? record?.lastSync,
    maps,
  }
}

export async function clusterStatus(api: Clients, access: NodeAccessOptions, nodes: readonly string[], pinRoot: string): Promise<NodeStatus[]> {
  const pods = (await api.core.listPodForAllNamespaces()).items.filter((pod) => pod.status?.podIP && !pod.spec?.hostNetwork && !pod.metadata?.deletionTimestamp && pod.status.phase === 'Running')
  const agents = (await agentInstalled(api)) ? await agentPods(api) : undefined
  return withNodeAccess(api, access, async (session) => {
    const names = await session.nodes(nodes)
    const results = await session.forEach(names, (shell, node) => {
      const expected = pods.filter((pod) => pod.spec?.nodeName === node).map((pod) => ({name: `${pod.metadata!.namespace}/${pod.metadata!.name}`, ip: pod.status!.podIP!}))
      return nodeStatus(shell, node, pinRoot, expected, agents ? (agents.get(node) ?? null) : undefined)
    })
    return results.map((result) => result.value ?? {node: result.item, installed: false, health: 'unreachable', problems: [result.error ?? 'unreachable'], unenforced: [], programs: [], attachedInterfaces: 0, endpoints: 0, maps: [], error: result.error})
  })
}
