import type * as k8s from '@kubernetes/client-node'
import type {ClusterSnapshot} from '../cluster/snapshot.js'
import {DIRECTION, IDENTITY, makeCookie, REV_NAT_MAX} from '../datapath/constants.js'
import {frontendEntries, ipcacheEntry, type MapEntry, policyEntries, policyNameEntry} from '../datapath/entries.js'
import {type LabelSelector, matchesSelector} from '../lib/selectors.js'
import {stableIds} from './ids.js'

/**
 * The dataplane computed from the cluster: identities, the ipcache, Service
 * frontends and backends, and NetworkPolicies compiled with Kubernetes
 * semantics into per-endpoint rules. Pure: the same snapshot gives the same
 * plan on every run, so sync can apply differences only.
 */
export interface EndpointPlan {
  namespace: string
  name: string
  ip: string
  identity: number
  endpointId: number
  ingressDenyCookie: number
  egressDenyCookie: number
}

export interface NodePlan {
  node: string
  nodeIp: string
  endpoints: EndpointPlan[]
  /** Entries for every map but pinion_endpoint (that needs ifindexes from the node). */
  entries: MapEntry[]
}

export interface PolicyRef {
  id: number
  namespace: string
  name: string
}

type Pod = k8s.V1Pod
type PortSpec = {protocol: 'tcp' | 'udp' | 'sctp'; ports?: {from: number; to: number}} | undefined

const key = (object: {metadata?: k8s.V1ObjectMeta}) => `${object.metadata?.namespace ?? ''}/${object.metadata?.name ?? ''}`

function isDataplanePod(pod: Pod): boolean {
  return Boolean(pod.status?.podIP) && !pod.spec?.hostNetwork && !['Succeeded', 'Failed'].includes(pod.status?.phase ?? '') && !pod.metadata?.deletionTimestamp
}

function identityKey(pod: Pod): string {
  const labels = Object.entries(pod.metadata?.labels ?? {}).sort(([a], [b]) => a.localeCompare(b))
  return `${pod.metadata?.namespace}|${labels.map(([name, value]) => `${name}=${value}`).join(',')}`
}

function nodeIp(node: k8s.V1Node): string {
  return node.status?.addresses?.find((address) => address.type === 'InternalIP')?.address ?? ''
}

function proto(protocol: string | undefined): 'tcp' | 'udp' | 'sctp' {
  return (protocol ?? 'TCP').toLowerCase() as 'tcp' | 'udp' | 'sctp'
}

function namedPort(pod: Pod, name: string, protocol: string): number | undefined {
  for (const container of pod.spec?.containers ?? []) {
    for (const port of container.ports ?? []) {
      if (port.name === name && (port.protocol ?? 'TCP') === protocol) return port.containerPort
    }
  }
  return undefined
}

/** CIDR containment for IPv4 "a.b.c.d/n" strings. */
function toInt(ip: string): number {
  return ip.split('.').reduce((sum, octet) => sum * 256 + Number(octet), 0)
}
function parseCidr(cidr: string): {base: number; bits: number} {
  const [ip, bits] = cidr.split('/')
  const prefix = Number(bits ?? 32)
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0
  return {base: (toInt(ip) & mask) >>> 0, bits: prefix}
}
/** "10.1.2.3/8" -> "10.0.0.0/8": one spelling per network, so one identity. */
export function normalizeCidr(cidr: string): string {
  const {base, bits} = parseCidr(cidr)
  return `${[base >>> 24, (base >>> 16) & 255, (base >>> 8) & 255, base & 255].join('.')}/${bits}`
}

export function cidrContains(outer: string, inner: string): boolean {
  const a = parseCidr(outer)
  const b = parseCidr(inner)
  if (b.bits < a.bits) return false
  const mask = a.bits === 0 ? 0 : (0xffffffff << (32 - a.bits)) >>> 0
  return ((b.base & mask) >>> 0) === a.base
}

export class ClusterPlanner {
  readonly podIdentity = new Map<string, number>()
  readonly cidrIdentity: Map<string, number>
  readonly policyIds: Map<string, number>
  private readonly pods: Pod[]
  private readonly namespaceLabels: Map<string, Record<string, string>>

  constructor(private readonly snapshot: ClusterSnapshot) {
    this.pods = snapshot.pods.filter(isDataplanePod)
    const identities = stableIds(this.pods.map(identityKey), IDENTITY.FIRST_POD, IDENTITY.FIRST_CIDR - IDENTITY.FIRST_POD)
    for (const pod of this.pods) this.podIdentity.set(key(pod), identities.get(identityKey(pod))!)
    const cidrs = snapshot.policies.flatMap((policy) => [...(policy.spec?.ingress ?? []).flatMap((rule) => rule._from ?? []), ...(policy.spec?.egress ?? []).flatMap((rule) => rule.to ?? [])])
      .flatMap((peer) => (peer.ipBlock ? [peer.ipBlock.cidr, ...(peer.ipBlock.except ?? [])] : []))
      .filter((cidr) => !cidr.includes(':') && !cidr.endsWith('/0'))
    this.cidrIdentity = stableIds(cidrs.map(normalizeCidr), IDENTITY.FIRST_CIDR, 1 << 24)
    this.policyIds = stableIds(snapshot.policies.map(key), 1, (1 << 24) - 1)
    this.namespaceLabels = new Map(snapshot.namespaces.map((namespace) => [namespace.metadata!.name!, namespace.metadata?.labels ?? {}]))
  }

  policies(): PolicyRef[] {
    return this.snapshot.policies.map((policy) => ({id: this.policyIds.get(key(policy))!, namespace: policy.metadata!.namespace!, name: policy.metadata!.name!}))
  }

  /** Identities whose addresses an ipBlock peer covers: its CIDR and every tracked CIDR inside it, minus the exceptions. */
  private ipBlockIdentities(block: k8s.V1IPBlock): number[] {
    if (block.cidr.includes(':')) return []
    const excepted = (cidr: string) => (block.except ?? []).some((except) => cidrContains(except, cidr))
    const ids = [...this.cidrIdentity].filter(([cidr]) => cidrContains(block.cidr, cidr) && !excepted(cidr)).map(([, id]) => id)
    if (block.cidr.endsWith('/0')) ids.push(IDENTITY.WORLD)
    // Pod addresses inside the block count too (as upstream conformance expects);
    // pods sharing an identity share the verdict, the identity model's limit.
    for (const pod of this.pods) {
      const ip = `${pod.status!.podIP}/32`
      if (cidrContains(block.cidr, ip) && !excepted(ip)) ids.push(this.podIdentity.get(key(pod))!)
    }
    return [...new Set(ids)]
  }

  /** Pods a peer selects: podSelector within the policy's namespace, namespaceSelector across namespaces, or both. */
  private peerPods(peer: k8s.V1NetworkPolicyPeer, namespace: string): Pod[] {
    const namespaces = peer.namespaceSelector
      ? [...this.namespaceLabels].filter(([, labels]) => matchesSelector(peer.namespaceSelector as LabelSelector, labels)).map(([name]) => name)
      : [namespace]
    const podSelector = (peer.podSelector ?? {}) as LabelSelector
    return this.pods.filter((pod) => namespaces.includes(pod.metadata!.namespace!) && matchesSelector(podSelector, pod.metadata?.labels ?? {}))
  }

  /** Compile every policy into rules for the endpoints (pods) it selects. */
  private compilePolicies(): {rules: Map<string, MapEntry[]>; isolation: Map<string, {ingress?: number; egress?: number}>} {
    const rules = new Map<string, MapEntry[]>()
    const isolation = new Map<string, {ingress?: number; egress?: number}>()
    const endpointIds = this.endpointIds()
    const sorted = [...this.snapshot.policies].sort((a, b) => key(a).localeCompare(key(b)))
    for (const policy of sorted) {
      const namespace = policy.metadata!.namespace!
      const id = this.policyIds.get(key(policy))!
      const spec = policy.spec ?? {}
      const selected = this.pods.filter((pod) => pod.metadata!.namespace === namespace && matchesSelector((spec.podSelector ?? {}) as LabelSelector, pod.metadata?.labels ?? {}))
      const types = spec.policyTypes ?? (spec.egress?.length ? ['Ingress', 'Egress'] : ['Ingress'])
      for (const type of types) {
        const direction = type === 'Egress' ? DIRECTION.EGRESS : DIRECTION.INGRESS
        const field = direction === DIRECTION.EGRESS ? 'egress' : 'ingress'
        for (const pod of selected) {
          const current = isolation.get(key(pod)) ?? {}
          current[field] ??= makeCookie(id, 0) // the first policy (by name) is named for default denies
          isolation.set(key(pod), current)
        }
        const policyRules = (direction === DIRECTION.EGRESS ? spec.egress : spec.ingress) ?? []
        policyRules.forEach((rule, index) => {
          const cookie = makeCookie(id, index + 1)
          const peers = (direction === DIRECTION.EGRESS ? (rule as k8s.V1NetworkPolicyEgressRule).to : (rule as k8s.V1NetworkPolicyIngressRule)._from) ?? []
          for (const pod of selected) {
            const out = rules.get(key(pod)) ?? []
            const emit = (identity: number, port: PortSpec) => out.push(...policyEntries({endpointId: endpointIds.get(key(pod))!, direction, identity, protocol: port?.protocol, ports: port?.ports, cookie}))
            this.compileRule(rule.ports ?? [], peers, namespace, direction, pod, emit)
            rules.set(key(pod), out)
          }
        })
      }
    }
    return {rules, isolation}
  }

  private compileRule(ports: k8s.V1NetworkPolicyPort[], peers: k8s.V1NetworkPolicyPeer[], namespace: string, direction: number, selectedPod: Pod, emit: (identity: number, port: PortSpec) => void): void {
    // Peers as (identity, pod?) pairs; a pod lets egress resolve its named ports.
    const peerSet: {identity: number; pod?: Pod}[] = peers.length === 0
      ? [{identity: IDENTITY.ANY}]
      : peers.flatMap((peer) => (peer.ipBlock ? this.ipBlockIdentities(peer.ipBlock).map((identity) => ({identity})) : this.peerPods(peer, namespace).map((pod) => ({identity: this.podIdentity.get(key(pod))!, pod}))))
    if (ports.length === 0) {
      for (const peer of peerSet) emit(peer.identity, undefined)
      return
    }
    for (const port of ports) {
      const protocol = proto(port.protocol)
      if (port.port === undefined) {
        for (const peer of peerSet) emit(peer.identity, {protocol})
      } else if (typeof port.port === 'number') {
        for (const peer of peerSet) emit(peer.identity, {protocol, ports: {from: port.port, to: port.endPort ?? port.port}})
      } else if (direction === DIRECTION.INGRESS) {
        // A named port means the selected pod's own container port of that name.
        const number = namedPort(selectedPod, String(port.port), port.protocol ?? 'TCP')
        if (number) for (const peer of peerSet) emit(peer.identity, {protocol, ports: {from: number, to: number}})
      } else {
        // Egress: the destination pod's port of that name; "any peer" means every pod that has one.
        const targets = peerSet.some((peer) => peer.identity === IDENTITY.ANY) ? this.pods.map((pod) => ({identity: this.podIdentity.get(key(pod))!, pod})) : peerSet
        for (const target of targets) {
          const number = target.pod && namedPort(target.pod, String(port.port), port.protocol ?? 'TCP')
          if (number) emit(target.identity, {protocol, ports: {from: number, to: number}})
        }
      }
    }
  }

  private endpointIds(): Map<string, number> {
    return stableIds(this.pods.map(key), 1, 0x7fffffff)
  }

  private serviceEntries(): MapEntry[] {
    const entries: MapEntry[] = []
    const frontends: {vip: string; port: number; protocol: 'tcp' | 'udp' | 'sctp' | 'icmp'; backends: {ip: string; port: number}[]}[] = []
    for (const service of this.snapshot.services) {
      const vip = service.spec?.clusterIP
      if (!vip || vip === 'None' || vip.includes(':')) continue
      const slices = this.snapshot.slices.filter((slice) => slice.metadata?.namespace === service.metadata?.namespace && slice.metadata?.labels?.['kubernetes.io/service-name'] === service.metadata?.name && slice.addressType === 'IPv4')
      let first: {ip: string; port: number}[] | undefined
      for (const servicePort of service.spec?.ports ?? []) {
        const protocol = servicePort.protocol ?? 'TCP'
        const backends = slices.flatMap((slice) => {
          const port = slice.ports?.find((candidate) => (candidate.name ?? '') === (servicePort.name ?? '') && (candidate.protocol ?? 'TCP') === protocol)
          if (!port?.port) return []
          return slice.endpoints.filter((endpoint) => endpoint.conditions?.ready !== false).flatMap((endpoint) => endpoint.addresses.map((ip) => ({ip, port: port.port!})))
        })
        backends.sort((a, b) => `${a.ip}:${a.port}`.localeCompare(`${b.ip}:${b.port}`))
        first ??= backends
        frontends.push({vip, port: servicePort.port, protocol: proto(protocol), backends})
      }
      // ICMP echo to the VIP reaches a backend of the first port.
      if (first) frontends.push({vip, port: 0, protocol: 'icmp', backends: first.map((backend) => ({ip: backend.ip, port: 0}))})
    }
    const revNat = stableIds(frontends.map((frontend) => `${frontend.vip}:${frontend.port}/${frontend.protocol}`), 1, REV_NAT_MAX, 'Service frontends (VIP, port, protocol)')
    const backendIds = stableIds(frontends.flatMap((frontend) => frontend.backends.map((backend) => `${backend.ip}:${backend.port}/${frontend.protocol}`)), 1, 0x7ffffffe)
    for (const frontend of frontends) {
      entries.push(...frontendEntries({
        vip: frontend.vip,
        port: frontend.port,
        protocol: frontend.protocol,
        revNatIndex: revNat.get(`${frontend.vip}:${frontend.port}/${frontend.protocol}`)!,
        backends: frontend.backends.map((backend) => ({id: backendIds.get(`${backend.ip}:${backend.port}/${frontend.protocol}`)!, ip: backend.ip, port: backend.port})),
      }))
    }
    return entries
  }

  /** Per-node plans for the named nodes (default: all). */
  plan(nodeNames?: readonly string[]): NodePlan[] {
    const {rules, isolation} = this.compilePolicies()
    const endpointIds = this.endpointIds()
    const shared: MapEntry[] = [
      ...this.pods.map((pod) => ipcacheEntry(`${pod.status!.podIP}/32`, this.podIdentity.get(key(pod))!)),
      ...[...this.cidrIdentity].map(([cidr, id]) => ipcacheEntry(cidr, id)),
      ...this.serviceEntries(),
      ...this.policies().map((policy) => policyNameEntry(policy.id, policy.namespace, policy.name)),
    ]
    return this.snapshot.nodes
      .filter((node) => !nodeNames || nodeNames.includes(node.metadata!.name!))
      .map((node) => {
        const name = node.metadata!.name!
        const local = this.pods.filter((pod) => pod.spec?.nodeName === name)
        const nodeEntries = this.snapshot.nodes.filter((other) => nodeIp(other)).map((other) => ipcacheEntry(`${nodeIp(other)}/32`, other.metadata!.name === name ? IDENTITY.HOST : IDENTITY.REMOTE_NODE))
        return {
          node: name,
          nodeIp: nodeIp(node),
          endpoints: local.map((pod) => ({
            namespace: pod.metadata!.namespace!,
            name: pod.metadata!.name!,
            ip: pod.status!.podIP!,
            identity: this.podIdentity.get(key(pod))!,
            endpointId: endpointIds.get(key(pod))!,
            ingressDenyCookie: isolation.get(key(pod))?.ingress ?? 0,
            egressDenyCookie: isolation.get(key(pod))?.egress ?? 0,
          })),
          entries: [...shared, ...nodeEntries, ...local.flatMap((pod) => rules.get(key(pod)) ?? [])],
        }
      })
  }
}
