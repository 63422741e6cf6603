import type {ClusterNames} from '../sync/names.js'
import {BACKEND_STATE_NAME, CT_FLAG, CT_SCOPE, CT_SCOPE_NAME, DIRECTION_NAME, FLOW_XLATE_NAME, IDENTITY, metricsSlotParts, POLICY_FLAG_DENY, POLICY_PREFIX, describeCookie, protoName, tcpFlagNames} from '../datapath/constants.js'
import type {Decoded} from '../datapath/codec.js'
import {type MapSpec, shortMapName} from '../datapath/catalogue.js'
import {UsageError} from '../lib/errors.js'
import {dropReasonId} from '../datapath/drop-reasons.js'

/** What turns numbers in maps into names an operator knows. */
export interface DumpContext extends ClusterNames {
  /** policy id (cookie >> 8) -> namespace/name, from the node's own pinion_polnames */
  policies: Map<number, string>
  /** endpoint id -> namespace/name */
  endpoints: Map<number, string>
  /** the node's CLOCK_BOOTTIME now, seconds (conntrack lifetimes count on it) */
  uptimeSeconds: number
}

export type Row = Record<string, unknown>

const RESERVED: Record<number, string> = {[IDENTITY.ANY]: 'any', [IDENTITY.HOST]: 'host', [IDENTITY.WORLD]: 'world', [IDENTITY.REMOTE_NODE]: 'remote-node'}

export function identityName(context: DumpContext, identity: number): string {
  return RESERVED[identity] ?? context.identities.get(identity) ?? `identity ${identity}`
}

export function cookieName(context: DumpContext, cookie: number): string | undefined {
  return describeCookie(context.policies, cookie, ' (default deny)')
}

const endpointAt = (context: DumpContext, ip: string, port: number) => {
  const pod = context.pods.get(ip)
  return `${ip}:${port}${pod ? ` (${pod})` : ''}`
}

function portRange(key: Decoded): string {
  const prefix = key.prefixlen as number
  if (prefix <= POLICY_PREFIX.ANY_PROTO) return 'any'
  if (prefix <= POLICY_PREFIX.ANY_PORT + 8) return `${protoName(key.proto as number)}/any`
  const bits = prefix - POLICY_PREFIX.ANY_PORT - 8
  const from = key.dport as number
  const to = from + 2 ** (16 - bits) - 1
  return `${protoName(key.proto as number)}/${from === to ? from : `${from}-${to}`}`
}

/** Readable rows per map: addresses, host-order ports, names for protocols, states, policies, pods. */
export function decodeRow(spec: MapSpec, key: Decoded, value: Decoded | Decoded[] | undefined, context: DumpContext): Row {
  const v = value as Decoded
  switch (spec.name) {
    case 'pinion_endpoint':
      return {ip: key.ip4, pod: context.pods.get(key.ip4 as string), endpointId: v.endpointId, identity: v.identity, ifindex: v.ifindex, ingressIsolatedBy: cookieName(context, v.ingressDenyCookie as number), egressIsolatedBy: cookieName(context, v.egressDenyCookie as number), nodeMac: v.nodeMac}
    case 'pinion_services_v2': {
      const frontend = `${key.address}:${key.dport}/${protoName(key.proto as number)}`
      return {frontend, service: context.services.get(frontend) ?? context.services.get(key.address as string), slot: key.backendSlot, ...(key.backendSlot === 0 ? {backends: v.count, revNatIndex: v.revNatIndex} : {backendId: v.backendId})}
    }
    case 'pinion_backends':
      return {id: key.id, backend: endpointAt(context, v.address as string, v.port as number), protocol: protoName(v.proto as number), state: BACKEND_STATE_NAME[v.state as number] ?? v.state}
    case 'pinion_revnat_v2':
      return {index: key.index, frontend: `${v.address}:${v.port}`}
    case 'pinion_ct4_v2': {
      const flags = v.flags as number
      const remaining = (v.lifetime as number) - context.uptimeSeconds
      return {
        scope: CT_SCOPE_NAME[key.scope as number] ?? key.scope,
        protocol: protoName(key.proto as number),
        source: endpointAt(context, key.saddr as string, key.sport as number),
        destination: endpointAt(context, key.daddr as string, key.dport as number),
        state: `${flags & CT_FLAG.TX_CLOSING || flags & CT_FLAG.RX_CLOSING ? 'closing' : flags & CT_FLAG.SEEN_NON_SYN ? 'established' : key.proto === 6 ? 'syn-sent' : 'active'}${remaining < 0 ? ',expired' : ''}`,
        expiresInSeconds: Math.max(0, remaining),
        txPackets: v.txPackets, txBytes: v.txBytes, rxPackets: v.rxPackets, rxBytes: v.rxBytes,
        tcpFlags: key.proto === 6 ? `${tcpFlagNames(v.txTcpFlags as number) || '-'}/${tcpFlagNames(v.rxTcpFlags as number) || '-'}` : undefined,
        revNatIndex: v.revNatIndex || undefined,
        backendId: v.backendId || undefined,
        allowedBy: cookieName(context, v.policyCookie as number),
      }
    }
    case 'pinion_policy':
      return {
        endpoint: context.endpoints.get(key.endpointId as number) ?? `endpoint ${key.endpointId}`,
        direction: DIRECTION_NAME[key.direction as number],
        peer: identityName(context, key.identity as number),
        ports: portRange(key),
        verdict: (v.flags as number) & POLICY_FLAG_DENY ? 'deny' : 'allow',
        policy: cookieName(context, v.cookie as number),
      }
    case 'pinion_polnames':
      return {id: key.id, policy: `${v.namespace}/${v.name}`}
    case 'pinion_ipcache':
      return {cidr: `${key.ip4}/${key.prefixlen}`, identity: v.identity, meaning: identityName(context, v.identity as number)}
    case 'pinion_metrics_v2': {
      const perCpu = value as Decoded[]
      const {reason, direction} = metricsSlotParts(key.slot as number)
      return {reason: dropReasonId(reason), direction: DIRECTION_NAME[direction], packets: perCpu.reduce((sum, cpu) => sum + (cpu.packets as number), 0), bytes: perCpu.reduce((sum, cpu) => sum + (cpu.bytes as number), 0)}
    }
    case 'pinion_flowcache': {
      // One row per slot index: the flow each CPU holds there.
      const flows = (value as Decoded[]).flatMap((slot, cpu) => {
        const flow = slot.key as Decoded
        if (!flow.proto) return []
        const xlate = slot.xlate as number
        return [{
          cpu,
          hook: flow.scope === CT_SCOPE.EGRESS ? 'from_pod' : 'to_pod',
          protocol: protoName(flow.proto as number),
          source: endpointAt(context, flow.saddr as string, flow.sport as number),
          destination: endpointAt(context, flow.daddr as string, flow.dport as number),
          translation: xlate ? `${FLOW_XLATE_NAME[xlate]} to ${slot.xlateAddr}:${slot.xlatePort}` : undefined,
          pendingPackets: slot.packets,
          pendingBytes: slot.bytes,
          epoch: slot.epoch,
        }]
      })
      return {slot: key.slot, flows}
    }
    default:
      return {...key, ...(Array.isArray(value) ? {perCpu: value} : value)}
  }
}

/** --filter field=value: string equality on a decoded field, or substring with field~value. */
type FieldKind = 'text' | 'integer' | readonly string[]

const PROTOCOLS = ['TCP', 'UDP', 'ICMP', 'SCTP']
const DIRECTIONS = Object.values(DIRECTION_NAME)

/**
 * The fields each map's rows have (schemas/map-dump/*.json is the contract;
 * a test keeps the two equal), with the values a field can hold where
 * they are few: what --filter accepts.
 */
export const FILTER_FIELDS: Record<string, Record<string, FieldKind>> = {
  pinion_endpoint: {ip: 'text', pod: 'text', endpointId: 'integer', identity: 'integer', ifindex: 'integer', ingressIsolatedBy: 'text', egressIsolatedBy: 'text', nodeMac: 'text'},
  pinion_services_v2: {frontend: 'text', service: 'text', backends: 'text', revNatIndex: 'integer'},
  pinion_backends: {id: 'integer', backend: 'text', protocol: PROTOCOLS, state: Object.values(BACKEND_STATE_NAME)},
  pinion_revnat_v2: {index: 'integer', frontend: 'text'},
  pinion_ct4_v2: {scope: Object.values(CT_SCOPE_NAME), protocol: PROTOCOLS, source: 'text', destination: 'text', state: 'text', expiresInSeconds: 'integer', txPackets: 'integer', txBytes: 'integer', rxPackets: 'integer', rxBytes: 'integer', tcpFlags: 'text', revNatIndex: 'integer', backendId: 'integer', allowedBy: 'text'},
  pinion_policy: {endpoint: 'text', direction: DIRECTIONS, peer: 'text', ports: 'text', verdict: ['allow', 'deny'], policy: 'text'},
  pinion_polnames: {id: 'integer', policy: 'text'},
  pinion_ipcache: {cidr: 'text', identity: 'integer', meaning: 'text'},
  pinion_metrics_v2: {reason: 'text', direction: DIRECTIONS, packets: 'integer', bytes: 'integer'},
  pinion_flowcache: {slot: 'integer', flows: 'text'},
}

/** The fields of a map's rows: the table above, else the raw struct fields (config, clock). */
export function filterFields(spec: MapSpec): Record<string, FieldKind> {
  return FILTER_FIELDS[spec.name] ?? Object.fromEntries([...spec.key.fields, ...(spec.value?.fields ?? [])].map((field) => [field.key, 'text' as const]))
}

/** "field=value" / "field~substring" filters, checked against the map's fields and values (unknown ones list the valid ones). */
export function parseFilters(filters: readonly string[], spec?: MapSpec): ((row: Row) => boolean)[] {
  const fields = spec ? filterFields(spec) : undefined
  return filters.map((filter) => {
    const match = /^([\w.]+)(=|~)(.*)$/.exec(filter)
    if (!match) throw new UsageError(`bad --filter "${filter}": use field=value or field~substring`)
    const [, field, op, expected] = match
    const kind = fields?.[field]
    if (fields && !kind) throw new UsageError(`--filter ${filter}: ${shortMapName(spec!.name)} has no field "${field}"; its fields are ${Object.keys(fields).join(', ')}`)
    if (op === '=' && Array.isArray(kind) && !kind.includes(expected)) throw new UsageError(`--filter ${filter}: ${field} is one of ${kind.join(', ')}`)
    if (op === '=' && kind === 'integer' && !/^\d+$/.test(expected)) throw new UsageError(`--filter ${filter}: ${field} is a whole number`)
    return (row: Row) => {
      const actual = row[field]
      if (actual === undefined) return false
      const text = typeof actual === 'object' ? JSON.stringify(actual) : String(actual)
      return op === '=' ? text === expected : text.includes(expected)
    }
  })
}
