import type {Decoded, Struct} from './codec.js'
import {IPPROTO, POLICY_FLAG_DENY, POLICY_PREFIX} from './constants.js'
import * as S from './structs.js'

/**
 * Turns the desired state of a node (endpoints, Services, policy rules,
 * identities) into encoded map entries. install and sync compute these from
 * the cluster; the datapath tests write them directly.
 */
export interface MapEntry {
  map: string
  key: Buffer
  value: Buffer
}

function entry(map: string, keyStruct: Struct, key: Decoded, valueStruct: Struct, value: Decoded): MapEntry {
  return {map, key: keyStruct.encode(key), value: valueStruct.encode(value)}
}

export interface EndpointSpec {
  ip: string
  ifindex: number
  endpointId: number
  identity: number
  /** Cookie of a policy isolating the pod for ingress / egress; 0 = not isolated. */
  ingressDenyCookie?: number
  egressDenyCookie?: number
  mac?: string
  nodeMac?: string
  flags?: number
}

export function endpointEntry(spec: EndpointSpec): MapEntry {
  return entry('pinion_endpoint', S.endpointKey, {ip4: spec.ip}, S.endpointInfo, {
    ifindex: spec.ifindex,
    endpointId: spec.endpointId,
    identity: spec.identity,
    flags: spec.flags ?? 0,
    ingressDenyCookie: spec.ingressDenyCookie ?? 0,
    egressDenyCookie: spec.egressDenyCookie ?? 0,
    mac: spec.mac ?? '00:00:00:00:00:00',
    nodeMac: spec.nodeMac ?? '00:00:00:00:00:00',
  })
}

export interface BackendSpec {
  id: number
  ip: string
  port: number
}

export interface FrontendSpec {
  vip: string
  port: number
  protocol: 'tcp' | 'udp' | 'sctp' | 'icmp'
  revNatIndex: number
  backends: BackendSpec[]
}

/** Frontend (slot 0), one slot per backend, the backends and the rev-NAT entry. */
export function frontendEntries(spec: FrontendSpec): MapEntry[] {
  const proto = IPPROTO[spec.protocol]
  const key = {address: spec.vip, dport: spec.port, proto}
  const entries: MapEntry[] = [
    entry('pinion_services_v2', S.lb4Key, {...key, backendSlot: 0}, S.lb4Service, {count: spec.backends.length, revNatIndex: spec.revNatIndex}),
    entry('pinion_revnat_v2', S.revNatIndex, {index: spec.revNatIndex}, S.lb4ReverseNat, {address: spec.vip, port: spec.port}),
  ]
  spec.backends.forEach((backend, slot) => {
    entries.push(entry('pinion_services_v2', S.lb4Key, {...key, backendSlot: slot + 1}, S.lb4Service, {backendId: backend.id}))
    entries.push(entry('pinion_backends', S.backendId, {id: backend.id}, S.lb4Backend, {address: backend.ip, port: backend.port, proto}))
  })
  return entries
}

/** The fewest (value, prefix bits) pairs covering [from, to] in a 16-bit space. */
export function portRangePrefixes(from: number, to: number): {port: number; bits: number}[] {
  if (!(Number.isInteger(from) && Number.isInteger(to) && from >= 0 && to <= 65535 && from <= to)) {
    throw new Error(`invalid port range ${from}-${to}`)
  }
  const out: {port: number; bits: number}[] = []
  let start = from
  while (start <= to) {
    let size = start === 0 ? 1 << 16 : start & -start // largest aligned block at start
    while (start + size - 1 > to) size >>= 1
    out.push({port: start, bits: 16 - Math.log2(size)})
    start += size
  }
  return out
}

export interface PolicyRuleSpec {
  endpointId: number
  direction: number
  /** Peer identity; 0 = any peer. */
  identity: number
  /** Omit for any protocol. */
  protocol?: 'tcp' | 'udp' | 'sctp'
  /** Omit for any port; a single port or an inclusive range. */
  ports?: {from: number; to: number}
  cookie: number
  deny?: boolean
}

export function policyEntries(spec: PolicyRuleSpec): MapEntry[] {
  const base = {endpointId: spec.endpointId, direction: spec.direction, identity: spec.identity}
  const value = {cookie: spec.cookie, flags: spec.deny ? POLICY_FLAG_DENY : 0}
  if (!spec.protocol) {
    return [entry('pinion_policy', S.policyKey, {...base, prefixlen: POLICY_PREFIX.ANY_PROTO}, S.policyEntry, {...value, prefixLen: POLICY_PREFIX.ANY_PROTO})]
  }
  const proto = IPPROTO[spec.protocol]
  if (!spec.ports) {
    return [entry('pinion_policy', S.policyKey, {...base, proto, prefixlen: POLICY_PREFIX.ANY_PORT}, S.policyEntry, {...value, prefixLen: POLICY_PREFIX.ANY_PORT})]
  }
  return portRangePrefixes(spec.ports.from, spec.ports.to).map(({port, bits}) => {
    const prefixlen = POLICY_PREFIX.ANY_PORT + 8 + bits
    return entry('pinion_policy', S.policyKey, {...base, proto, dport: port, prefixlen}, S.policyEntry, {...value, prefixLen: prefixlen})
  })
}

export function policyNameEntry(policyId: number, namespace: string, name: string): MapEntry {
  return entry('pinion_polnames', S.policyId, {id: policyId}, S.policyName, {namespace, name})
}

export function ipcacheEntry(cidr: string, identity: number, tunnelEndpoint = '0.0.0.0'): MapEntry {
  const [ip, bits] = cidr.includes('/') ? cidr.split('/') : [cidr, '32']
  const prefixlen = Number(bits)
  if (!(prefixlen >= 0 && prefixlen <= 32)) throw new Error(`invalid CIDR "${cidr}"`)
  return entry('pinion_ipcache', S.ipcacheKey, {prefixlen, ip4: ip}, S.ipcacheEntry, {identity, tunnelEndpoint})
}

export interface ConfigSpec {
  ctTimeoutSyn?: number
  ctTimeoutTcp?: number
  ctTimeoutClose?: number
  ctTimeoutOther?: number
  policyLogAllow?: boolean
  policyLogDeny?: boolean
  traceLevel?: number
  traceDscp?: number
}

export function configEntry(spec: ConfigSpec): MapEntry {
  return entry('pinion_config', S.configIndex, {index: 0}, S.pinionConfig, {
    ...spec,
    policyLogAllow: spec.policyLogAllow ? 1 : 0,
    policyLogDeny: spec.policyLogDeny ? 1 : 0,
  })
}

/** Group entries by map, in a stable order. */
export function byMap(entries: readonly MapEntry[]): Map<string, MapEntry[]> {
  const grouped = new Map<string, MapEntry[]>()
  for (const item of entries) {
    const list = grouped.get(item.map) ?? []
    list.push(item)
    grouped.set(item.map, list)
  }
  return grouped
}
