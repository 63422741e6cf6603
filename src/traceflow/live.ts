import type * as k8s from '@kubernetes/client-node'
import {execInPod} from '../cluster/exec.js'
import type {ClusterSnapshot} from '../cluster/snapshot.js'
import {describeCookie} from '../datapath/constants.js'
import type {DatapathEvent} from '../datapath/events.js'
import {updateNodeConfig} from '../datapath/runtime-config.js'
import {UserError} from '../lib/errors.js'
import {collectEvents, type NodeEvent} from '../datapath/event-collector.js'
import type {NodeAccess} from '../nodes/node-access.js'
import type {Observation, Traceflow, TraceflowSpec} from './model.js'
import {podNames, readPolicyNames} from '../sync/names.js'

/** The command that sends one tagged packet (IPv4 TOS = DSCP << 2) from the source pod. */
function injection(spec: TraceflowSpec, dscp: number): string[] {
  const tos = String(dscp << 2)
  const {ip, port} = spec.destination
  switch (spec.protocol) {
    case 'tcp':
      return ['nc', '-z', '-w', '2', '-T', tos, '-p', String(spec.srcPort), ip, String(port)]
    case 'udp':
      return ['sh', '-c', 'echo pinion-traceflow | nc -u -w 1 -T "$1" -p "$2" "$3" "$4"', 'traceflow', tos, String(spec.srcPort), ip, String(port)]
    case 'icmp':
      // Two echoes: the second makes sure the first one's events are delivered.
      return ['ping', '-c', '2', '-i', '0.2', '-W', '2', '-Q', tos, ip]
  }
}

function observationsOf(node: string, event: DatapathEvent, names: Map<number, string>, podName: (ip: string) => string | undefined): Observation[] {
  const policy = describeCookie(names, event.policyCookie, ' (no rule matched)')
  if (event.type === 'drop') {
    const component = event.dropReason === 'POLICY_DENIED' ? 'NetworkPolicy' : event.dropReason === 'NO_SERVICE_BACKEND' ? 'LB' : event.dropReason === 'SPOOFED_SOURCE' ? 'SpoofGuard' : 'Forwarding'
    return [{node, component, action: 'Dropped', dropReason: event.dropReason, networkPolicy: component === 'NetworkPolicy' ? policy : undefined, detail: `${event.flow.direction} ${event.dropReasonText}${component === 'NetworkPolicy' && policy ? ` by ${policy}` : ''}`}]
  }
  if (event.type !== 'trace') return []
  const out: Observation[] = []
  if (event.tracePoint === 'from-pod') {
    out.push({node, component: 'SpoofGuard', action: 'Received', detail: `from ${podName(event.flow.src) ?? event.flow.src}`})
    if (event.origDst && event.origDst !== event.flow.dst) out.push({node, component: 'LB', action: 'Forwarded', translatedDstIP: event.flow.dst, translatedDstPod: podName(event.flow.dst), detail: `${event.origDst}:${event.origDstPort} -> ${event.flow.dst}:${event.flow.dstPort}${podName(event.flow.dst) ? ` (${podName(event.flow.dst)})` : ''}`})
  }
  out.push({node, component: 'Conntrack', action: 'Forwarded', ctState: event.flow.ctState, detail: `connection ${event.flow.ctState}`})
  if (policy) out.push({node, component: 'NetworkPolicy', action: 'Forwarded', networkPolicy: policy, detail: `${event.flow.direction} allowed by ${policy}`})
  out.push(event.tracePoint === 'from-pod'
    ? {node, component: 'Forwarding', action: 'Forwarded', detail: `towards ${event.flow.dst}`}
    : {node, component: 'Forwarding', action: 'Delivered', detail: `to ${podName(event.flow.dst) ?? event.flow.dst}`})
  return out
}

/**
 * Live traceflow: tag one real packet from the source pod with a DSCP value,
 * let every node's datapath trace packets carrying it, and report the events
 * they emitted. Routing between nodes is exercised for real.
 */
export async function liveTrace(access: NodeAccess, config: k8s.KubeConfig, snapshot: ClusterSnapshot, spec: TraceflowSpec, pinRoot: string, timeoutMs: number): Promise<Omit<Traceflow, 'spec' | 'mode'>> {
  const source = snapshot.pods.find((pod) => pod.metadata?.namespace === spec.source.namespace && pod.metadata?.name === spec.source.name)!
  const container = source.spec!.containers[0].name
  const nodes = snapshot.nodes.map((node) => node.metadata!.name!)
  const podByIp = podNames(snapshot)
  const dscp = 1 + Math.floor(Math.random() * 62)
  const tagged = await access.forEach(nodes, (shell) => updateNodeConfig(shell, pinRoot, (current) => void (current.traceDscp = dscp)))
  const unreachable = tagged.filter((result) => !result.ok)
  try {
    if (tagged.find((result) => result.item === spec.source.node && !result.ok)) throw new UserError(`cannot trace on ${spec.source.node}: ${tagged.find((result) => result.item === spec.source.node)!.error}`)
    const names = await readPolicyNames(await access.shell(spec.source.node), pinRoot)
    const seen: {node: string; event: DatapathEvent}[] = []
    const lost: string[] = []
    const mine = (event: DatapathEvent) => event.traceflow && !event.reply && event.flow.src === spec.source.ip
    const collector = await collectEvents(access, nodes.filter((node) => !unreachable.some((result) => result.item === node)), pinRoot, (record: NodeEvent) => {
      if (record.kind === 'event' && mine(record.event)) seen.push({node: record.node, event: record.event})
      if (record.kind === 'lost') lost.push(`${record.node} lost ${record.count} events`)
    })
    const finished = () => seen.some(({event}) => event.type === 'drop' || (event.type === 'trace' && event.tracePoint === 'to-pod'))
    try {
      const injected = execInPod(config, spec.source.namespace, spec.source.name, container, injection(spec, dscp), {timeoutMs}).catch((error) => {
        throw new UserError(`cannot send the traced packet from ${spec.source.namespace}/${spec.source.name} (it needs nc and ping in the pod): ${(error as Error).message}`)
      })
      const deadline = Date.now() + timeoutMs
      while (!finished() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
      await injected
    } finally {
      await collector.stop()
    }
    // One packet's story: the first event of each kind per node, in arrival order.
    // Leaving the source pod comes first, whatever order the nodes' streams arrived in.
    const firstHop = ({event}: {event: DatapathEvent}) => (event.flow.direction === 'egress' ? 0 : 1)
    const story = seen
      .filter(({node, event}, index) => seen.findIndex((other) => other.node === node && other.event.type === event.type && other.event.tracePoint === event.tracePoint) === index)
      .sort((a, b) => firstHop(a) - firstHop(b))
    const observations = story.flatMap(({node, event}) => observationsOf(node, event, names, (ip) => podByIp.get(ip)))
    const drop = story.find(({event}) => event.type === 'drop')
    const delivered = story.find(({event}) => event.type === 'trace' && event.tracePoint === 'to-pod')
    const notes = [...lost, ...unreachable.map((result) => `${result.item} not traced: ${result.error}`)]
    if (drop) return {result: 'Dropped', reason: `dropped on ${drop.node}: ${drop.event.dropReason}${notes.length ? `; ${notes.join('; ')}` : ''}`, observations}
    if (delivered) return {result: 'Delivered', reason: `delivered to ${podByIp.get(delivered.event.flow.dst) ?? delivered.event.flow.dst}${notes.length ? `; ${notes.join('; ')}` : ''}`, observations}
    const last = observations.at(-1)
    return {result: 'Dropped', reason: `timed out after ${timeoutMs} ms: ${last ? `last seen on ${last.node} at ${last.component} (${last.detail})` : 'no node saw the packet'}${notes.length ? `; ${notes.join('; ')}` : ''}`, observations}
  } finally {
    await access.forEach(nodes.filter((node) => !unreachable.some((result) => result.item === node)), (shell) => updateNodeConfig(shell, pinRoot, (current) => void (current.traceDscp = 0)))
  }
}
