import type {Clients} from '../cluster/kubeconfig.js'
import {readSnapshot} from '../cluster/snapshot.js'
import {describeCookie} from '../datapath/constants.js'
import type {DatapathEvent} from '../datapath/events.js'
import {UsageError, UserError} from '../lib/errors.js'
import {type NodeAccessOptions, withNodeAccess} from '../nodes/node-access.js'
import {runChecked} from '../nodes/shell.js'
import {collectEvents, untilStoppedOrEnded} from '../datapath/event-collector.js'
import {clusterNames, readPolicyNames} from '../sync/names.js'

export interface MonitorFilter {
  types: readonly ('policy' | 'drop' | 'trace')[]
  pod?: string
  verdict?: 'allow' | 'deny'
}

/** One decoded event with names resolved, as monitor prints it. */
export interface MonitorRecord {
  kind: 'event'
  time: string
  node: string
  type: DatapathEvent['type']
  source: string
  destination: string
  protocol: string
  tcpFlags?: string
  verdict?: 'allow' | 'deny'
  dropReason?: string
  policy?: string
  tracePoint?: string
  ctState: string
  direction: string
}

export type MonitorOutput = MonitorRecord | {kind: 'lost'; node: string; count: number; cpu: number} | {kind: 'error'; node: string; message: string}

export function compactLine(record: MonitorRecord): string {
  const time = record.time.slice(11, 19)
  const what = record.type === 'drop'
    ? `DROPPED (${record.dropReason}${record.policy ? ` by ${record.policy}` : ''})`
    : record.type === 'policy'
      ? `${record.verdict === 'deny' ? 'DENIED' : 'ALLOWED'}${record.policy ? ` by ${record.policy}` : ''}`
      : `TRACE ${record.tracePoint} ${record.ctState}`
  return `${time} ${record.node} ${record.source} -> ${record.destination} ${record.protocol}${record.tcpFlags ? ` ${record.tcpFlags}` : ''} ${what}`
}

/**
 * Stream decoded datapath events from every selected node until `signal`
 * aborts, with pod and policy names resolved and node clocks turned into
 * wall-clock time. Lost events are reported as records of their own.
 */
export async function monitor(api: Clients, access: NodeAccessOptions, nodes: readonly string[], pinRoot: string, filter: MonitorFilter, signal: AbortSignal, onRecord: (record: MonitorOutput) => void, ready?: () => void): Promise<void> {
  if (filter.pod && !/^[^/]+\/[^/]+$/.test(filter.pod)) throw new UsageError(`--pod takes NAMESPACE/NAME, got "${filter.pod}"`)
  const {pods, services} = clusterNames(await readSnapshot(api))
  const name = (ip: string, port: number) => `${pods.get(ip) ?? services.get(ip) ?? ip}${port ? `:${port}` : ''}`
  await withNodeAccess(api, access, async (session) => {
    const selected = await session.nodes(nodes)
    // Events carry CLOCK_BOOTTIME: one uptime reading per node turns them into wall-clock time.
    const clocks = new Map<string, number>()
    const names = new Map<number, string>()
    for (const node of selected) {
      try {
        const shell = await session.shell(node)
        const uptime = Number.parseFloat((await runChecked(shell, ['cat', '/proc/uptime'])).stdout.toString('utf8'))
        clocks.set(node, Date.now() - uptime * 1000)
        for (const [id, policy] of await readPolicyNames(shell, pinRoot)) names.set(id, policy)
      } catch {
        // reported by the collector below
      }
    }
    const collector = await collectEvents(session, selected, pinRoot, (record) => {
      if (record.kind !== 'event') {
        onRecord(record)
        return
      }
      const {event} = record
      if (filter.types.length && !filter.types.includes(event.type)) return
      if (filter.verdict && event.verdict !== filter.verdict) return
      const source = name(event.flow.src, event.flow.srcPort)
      const destination = name(event.flow.dst, event.flow.dstPort)
      if (filter.pod && pods.get(event.flow.src) !== filter.pod && pods.get(event.flow.dst) !== filter.pod) return
      onRecord({
        kind: 'event',
        time: new Date((clocks.get(record.node) ?? Date.now()) + event.timestamp / 1e6).toISOString(),
        node: record.node,
        type: event.type,
        source,
        destination,
        protocol: event.flow.protocol,
        tcpFlags: event.flow.tcpFlags || undefined,
        verdict: event.verdict,
        dropReason: event.dropReason,
        policy: describeCookie(names, event.policyCookie, ''),
        tracePoint: event.tracePoint,
        ctState: event.flow.ctState,
        direction: event.flow.direction,
      })
    })
    ready?.()
    await untilStoppedOrEnded(signal, collector.ended)
    await collector.stop()
    if (collector.streaming === 0) throw new UserError(`no node streamed events: ${selected.length === 1 ? 'it' : `all ${selected.length}`} failed (see above)`)
  })
}
