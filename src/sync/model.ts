import type * as k8s from '@kubernetes/client-node'
import type {ClusterSnapshot} from '../cluster/snapshot.js'
import {IDENTITY, REV_NAT_MAX} from '../datapath/constants.js'
import type {BackendSpec} from '../datapath/entries.js'
import {type LabelSelector, matchesSelector} from '../lib/selectors.js'
import {IdAllocator} from './ids.js'

/**
 * The cluster as the planner needs it, kept current object by object (a
 * watch-fed cache): pods reduced to what the dataplane uses, identities
 * (label sets, namespace labels included), Services with their frontends,
 * policies with their ids, and a selector cache that maps each distinct
 * peer selector to the identities it selects. Listeners (node planners) are
 * told what changed and recompute only that.
 */

export type Protocol = 'tcp' | 'udp' | 'sctp'

export interface PodInfo {
  key: string
  namespace: string
  name: string
  node: string
  ip: string
  ipInt: number
  labels: Record<string, string>
  identity: number
  /** Named container ports (name, protocol) -> number. */
  namedPorts: Map<string, number>
}

export interface IdentityInfo {
  id: number
  key: string
  namespace: string
  labels: Record<string, string>
  namespaceLabels: Record<string, string>
  pods: Set<string>
}

export interface Frontend {
  vip: string
  port: number
  protocol: Protocol | 'icmp'
  revNatIndex: number
  backends: BackendSpec[]
}

export interface PolicyInfo {
  key: string
  namespace: string
  name: string
  id: number
  spec: k8s.V1NetworkPolicySpec
  types: ('Ingress' | 'Egress')[]
  /** IPv4 CIDRs its ipBlocks name (normalized), each an identity. */
  cidrs: string[]
  /** Why the policy cannot be compiled: it then isolates what it selects and allows nothing (fail closed). */
  error?: string
  /** False when its podSelector cannot be evaluated: it then isolates its whole namespace. */
  selectorValid: boolean
}

export interface ParsedBlock {
  cidr: string
  base: number
  bits: number
  except: {base: number; bits: number}[]
  world: boolean
}

/** A distinct peer: pods by labels in one namespace, pods in namespaces by labels, or an IPv4 block. */
export type SelectorSpec =
  | {kind: 'pods'; namespace: string; podSelector: LabelSelector}
  | {kind: 'namespaces'; namespaceSelector: LabelSelector; podSelector: LabelSelector}
  | {kind: 'ipblock'; block: ParsedBlock}

interface CachedSelector {
  key: string
  spec: SelectorSpec
  /** Identity -> how many reasons it is selected for (pods inside an ipBlock, or 1). */
  selected: Map<number, number>
  holders: number
}

export interface ModelListener {
  podChanged(before: PodInfo | undefined, after: PodInfo | undefined): void
  policyChanged(namespace: string): void
  serviceChanged(key: string): void
  cidrChanged(cidr: string): void
  nodesChanged(): void
  selectorChanged(key: string): void
}

export type ObjectKind = 'Pod' | 'Namespace' | 'Node' | 'Service' | 'EndpointSlice' | 'NetworkPolicy'

/** Everything the model is built from: a cluster snapshot. */
export type ModelObjects = ClusterSnapshot

// ---- addresses ----

export function ipToInt(ip: string): number {
  const parts = ip.split('.')
  if (parts.length !== 4) return NaN
  let value = 0
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part) || Number(part) > 255) return NaN
    value = value * 256 + Number(part)
  }
  return value
}

export function intToIp(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.')
}

function maskOf(bits: number): number {
  return bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0
}

/** "10.1.2.3/8" -> {base 10.0.0.0, bits 8}; undefined when not an IPv4 CIDR. */
export function parseCidr(cidr: string): {base: number; bits: number} | undefined {
  const [ip, bitsText, extra] = cidr.split('/')
  const bits = bitsText === undefined ? 32 : /^\d{1,2}$/.test(bitsText) ? Number(bitsText) : NaN
  const address = ipToInt(ip)
  if (extra !== undefined || !(bits >= 0 && bits <= 32) || Number.isNaN(address)) return undefined
  return {base: (address & maskOf(bits)) >>> 0, bits}
}

/** "10.1.2.3/8" -> "10.0.0.0/8": one spelling per network, so one identity. */
export function normalizeCidr(cidr: string): string {
  const parsed = parseCidr(cidr)
  if (!parsed) throw new Error(`invalid IPv4 CIDR "${cidr}"`)
  return `${intToIp(parsed.base)}/${parsed.bits}`
}

function contains(outer: {base: number; bits: number}, inner: {base: number; bits: number}): boolean {
  return inner.bits >= outer.bits && ((inner.base & maskOf(outer.bits)) >>> 0) === outer.base
}

export function cidrContains(outer: string, inner: string): boolean {
  const a = parseCidr(outer)
  const b = parseCidr(inner)
  return Boolean(a && b && contains(a, b))
}

function blockHolds(block: ParsedBlock, inner: {base: number; bits: number}): boolean {
  return contains(block, inner) && !block.except.some((except) => contains(except, inner))
}

// ---- objects ----

/** namespace/name: how the model, the planner and the agent key objects. */
export const objectKey = (object: {metadata?: k8s.V1ObjectMeta}) => `${object.metadata?.namespace ?? ''}/${object.metadata?.name ?? ''}`

function sortedLabels(labels: Record<string, string> | undefined): string {
  return Object.entries(labels ?? {})
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value]) => `${name}=${value}`)
    .join(',')
}

function identityKey(namespace: string, labels: Record<string, string> | undefined, namespaceLabels: Record<string, string> | undefined): string {
  return `${namespace}|${sortedLabels(labels)}|${sortedLabels(namespaceLabels)}`
}

export function isDataplanePod(pod: k8s.V1Pod): boolean {
  return Boolean(pod.status?.podIP) && !pod.spec?.hostNetwork && !['Succeeded', 'Failed'].includes(pod.status?.phase ?? '') && !pod.metadata?.deletionTimestamp
}

export function nodeAddress(node: k8s.V1Node): string {
  return node.status?.addresses?.find((address) => address.type === 'InternalIP')?.address ?? ''
}

export function protocolOf(protocol: string | undefined): Protocol {
  return (protocol ?? 'TCP').toLowerCase() as Protocol
}

function canonical(selector: LabelSelector | undefined): LabelSelector {
  return {
    matchLabels: Object.fromEntries(Object.entries(selector?.matchLabels ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))),
    matchExpressions: (selector?.matchExpressions ?? []).map((expression) => ({key: expression.key, operator: expression.operator, values: [...(expression.values ?? [])].sort()})).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
  }
}

const OPERATORS = new Set(['In', 'NotIn', 'Exists', 'DoesNotExist'])

function selectorProblem(selector: LabelSelector | undefined, where: string): string | undefined {
  for (const expression of selector?.matchExpressions ?? []) {
    if (!OPERATORS.has(expression.operator)) return `${where}: unknown operator "${expression.operator}"`
    const hasValues = (expression.values ?? []).length > 0
    if ((expression.operator === 'In' || expression.operator === 'NotIn') !== hasValues) return `${where}: operator ${expression.operator} ${hasValues ? 'takes no values' : 'needs values'}`
  }
  return undefined
}

export function parseBlock(block: k8s.V1IPBlock): ParsedBlock | undefined {
  const outer = parseCidr(block.cidr)
  if (!outer) return undefined
  const except = (block.except ?? []).map((cidr) => parseCidr(cidr)).filter((parsed) => parsed !== undefined)
  return {cidr: `${intToIp(outer.base)}/${outer.bits}`, ...outer, except, world: outer.bits === 0}
}

/** What makes a policy uncompilable; the planner then fails closed. IPv6 blocks are valid but match nothing here. */
function policyProblem(spec: k8s.V1NetworkPolicySpec): string | undefined {
  for (const type of spec.policyTypes ?? []) if (type !== 'Ingress' && type !== 'Egress') return `unknown policyType "${type}"`
  const rules = [...(spec.ingress ?? []).map((rule) => ({peers: rule._from ?? [], ports: rule.ports ?? [], where: 'ingress'})), ...(spec.egress ?? []).map((rule) => ({peers: rule.to ?? [], ports: rule.ports ?? [], where: 'egress'}))]
  for (const rule of rules) {
    for (const peer of rule.peers) {
      if (peer.ipBlock) {
        if (peer.podSelector || peer.namespaceSelector) return `${rule.where} peer: ipBlock cannot be combined with selectors`
        if (peer.ipBlock.cidr.includes(':')) continue
        const block = parseBlock(peer.ipBlock)
        if (!block) return `${rule.where} peer: invalid ipBlock CIDR "${peer.ipBlock.cidr}"`
        for (const except of peer.ipBlock.except ?? []) {
          const parsed = parseCidr(except)
          if (!parsed || !contains(block, parsed)) return `${rule.where} peer: except "${except}" is not inside ${peer.ipBlock.cidr}`
        }
      } else if (!peer.podSelector && !peer.namespaceSelector) {
        return `${rule.where} peer names no podSelector, namespaceSelector or ipBlock`
      }
      const problem = selectorProblem(peer.podSelector as LabelSelector, `${rule.where} podSelector`) ?? selectorProblem(peer.namespaceSelector as LabelSelector, `${rule.where} namespaceSelector`)
      if (problem) return problem
    }
    for (const port of rule.ports) {
      if (!['TCP', 'UDP', 'SCTP'].includes(port.protocol ?? 'TCP')) return `${rule.where} port: unknown protocol "${port.protocol}"`
      if (typeof port.port === 'number' && !(Number.isInteger(port.port) && port.port >= 1 && port.port <= 65535)) return `${rule.where} port ${port.port} is out of range`
      if (typeof port.port === 'string' && !port.port) return `${rule.where} port: empty port name`
      if (port.endPort !== undefined && (typeof port.port !== 'number' || !(port.endPort >= port.port && port.endPort <= 65535))) return `${rule.where} endPort ${port.endPort} needs a numeric port at or below it`
    }
  }
  return undefined
}

export class ClusterModel {
  readonly pods = new Map<string, PodInfo>()
  readonly identities = new Map<string, IdentityInfo>()
  readonly identityById = new Map<number, IdentityInfo>()
  readonly namespaces = new Map<string, Record<string, string>>()
  readonly nodes = new Map<string, string>()
  readonly policies = new Map<string, PolicyInfo>()
  /** Service key -> its frontends (with rev-NAT and backend ids). */
  readonly frontends = new Map<string, Frontend[]>()
  readonly listeners = new Set<ModelListener>()

  readonly identityIds = new IdAllocator(IDENTITY.FIRST_POD, IDENTITY.FIRST_CIDR - IDENTITY.FIRST_POD, 'pod identities')
  readonly cidrIds = new IdAllocator(IDENTITY.FIRST_CIDR, 1 << 24, 'CIDR identities')
  readonly policyIds = new IdAllocator(1, (1 << 24) - 1, 'NetworkPolicies')
  readonly revNatIds = new IdAllocator(1, REV_NAT_MAX, 'Service frontends (VIP, port, protocol)')
  readonly backendIds = new IdAllocator(1, 0x7ffffffe, 'backends')

  /** Pod address -> pod key (the newest pod to hold it). */
  readonly podsByIp = new Map<string, string>()
  private readonly podsByNamespace = new Map<string, Set<string>>()
  private readonly identitiesByNamespace = new Map<string, Set<IdentityInfo>>()
  private readonly podsByPortName = new Map<string, Set<string>>()
  private readonly policiesByNamespace = new Map<string, Set<string>>()
  private readonly services = new Map<string, {vip: string; ports: k8s.V1ServicePort[]}>()
  private readonly slices = new Map<string, {service: string; slice: k8s.V1EndpointSlice}>()
  private readonly slicesByService = new Map<string, Set<string>>()
  private readonly selectors = new Map<string, CachedSelector>()
  private readonly podSelectorsByNamespace = new Map<string, Set<CachedSelector>>()
  private readonly namespaceSelectors = new Set<CachedSelector>()
  private readonly blockSelectors = new Set<CachedSelector>()
  private readonly cidrHolders = new Map<string, {base: number; bits: number}>()

  /**
   * A model of a whole snapshot. Ids are taken in sorted key order first, so
   * the same cluster gives the same ids whatever order its objects came in.
   */
  static fromObjects(objects: ModelObjects): ClusterModel {
    const model = new ClusterModel()
    const namespaceLabels = new Map(objects.namespaces.map((namespace) => [namespace.metadata?.name ?? '', namespace.metadata?.labels ?? {}]))
    const pods = objects.pods.filter(isDataplanePod)
    const reserved: [IdAllocator, string[]][] = [
      [model.identityIds, pods.map((pod) => identityKey(pod.metadata?.namespace ?? '', pod.metadata?.labels, namespaceLabels.get(pod.metadata?.namespace ?? '')))],
      [model.policyIds, objects.policies.map(objectKey)],
    ]
    for (const [allocator, keys] of reserved) for (const key of [...new Set(keys)].sort()) allocator.acquire(key)
    for (const namespace of objects.namespaces) model.upsert('Namespace', namespace)
    for (const node of objects.nodes) model.upsert('Node', node)
    for (const pod of objects.pods) model.upsert('Pod', pod)
    for (const policy of objects.policies) model.upsert('NetworkPolicy', policy)
    for (const [allocator, keys] of reserved) for (const key of new Set(keys)) allocator.release(key)
    // Frontend and backend ids likewise, in sorted order of their keys.
    const services = [...objects.services].sort((a, b) => objectKey(a).localeCompare(objectKey(b)))
    for (const service of services) model.storeService(service)
    for (const slice of objects.slices) model.storeSlice(slice)
    const computed = services.map((service) => [objectKey(service), model.computeFrontends(objectKey(service))] as const)
    const frontendKeys = [...new Set(computed.flatMap(([, list]) => list.map((frontend) => frontendKey(frontend))))].sort()
    const backendKeys = [...new Set(computed.flatMap(([, list]) => list.flatMap((frontend) => frontend.backends.map((backend) => backendKey(backend, frontend.protocol)))))].sort()
    for (const key of frontendKeys) model.revNatIds.acquire(key)
    for (const key of backendKeys) model.backendIds.acquire(key)
    for (const [key, frontends] of computed) model.refreshFrontends(key, frontends)
    for (const key of frontendKeys) model.revNatIds.release(key)
    for (const key of backendKeys) model.backendIds.release(key)
    return model
  }

  // ---- events in ----

  upsert(kind: ObjectKind, object: {metadata?: k8s.V1ObjectMeta}): void {
    switch (kind) {
      case 'Pod':
        return this.setPod(objectKey(object), object as k8s.V1Pod)
      case 'Namespace':
        return this.setNamespace(object.metadata?.name ?? '', (object as k8s.V1Namespace).metadata?.labels ?? {})
      case 'Node':
        return this.setNode(object.metadata?.name ?? '', nodeAddress(object as k8s.V1Node))
      case 'Service':
        this.storeService(object as k8s.V1Service)
        return this.refreshFrontends(objectKey(object))
      case 'EndpointSlice': {
        const touched = this.storeSlice(object as k8s.V1EndpointSlice)
        for (const service of touched) this.refreshFrontends(service)
        return
      }
      case 'NetworkPolicy':
        return this.setPolicy(objectKey(object), object as k8s.V1NetworkPolicy)
    }
  }

  remove(kind: ObjectKind, object: {metadata?: k8s.V1ObjectMeta}): void {
    const key = objectKey(object)
    switch (kind) {
      case 'Pod':
        return this.setPod(key, undefined)
      case 'Namespace':
        return this.setNamespace(object.metadata?.name ?? '', undefined)
      case 'Node':
        return this.setNode(object.metadata?.name ?? '', undefined)
      case 'Service':
        this.services.delete(key)
        return this.refreshFrontends(key)
      case 'EndpointSlice': {
        const previous = this.slices.get(key)
        if (!previous) return
        this.slices.delete(key)
        this.slicesByService.get(previous.service)?.delete(key)
        return this.refreshFrontends(previous.service)
      }
      case 'NetworkPolicy':
        return this.setPolicy(key, undefined)
    }
  }

  // ---- pods and identities ----

  private emit(call: (listener: ModelListener) => void): void {
    for (const listener of this.listeners) call(listener)
  }

  private podInfo(key: string, pod: k8s.V1Pod): PodInfo | undefined {
    if (!isDataplanePod(pod)) return undefined
    const ip = pod.status!.podIP!
    const ipInt = ipToInt(ip)
    if (Number.isNaN(ipInt)) return undefined // IPv6-only pods: the IPv4 datapath does not carry them
    const namespace = pod.metadata?.namespace ?? ''
    const namedPorts = new Map<string, number>()
    for (const container of pod.spec?.containers ?? []) {
      for (const port of container.ports ?? []) if (port.name) namedPorts.set(`${port.name}/${port.protocol ?? 'TCP'}`, port.containerPort)
    }
    return {key, namespace, name: pod.metadata?.name ?? '', node: pod.spec?.nodeName ?? '', ip, ipInt, labels: pod.metadata?.labels ?? {}, identity: 0, namedPorts}
  }

  private samePod(a: PodInfo, b: PodInfo): boolean {
    return a.ip === b.ip && a.node === b.node && a.identity === b.identity && sortedLabels(a.labels) === sortedLabels(b.labels) && [...a.namedPorts].join() === [...b.namedPorts].join()
  }

  private setPod(key: string, pod: k8s.V1Pod | undefined): void {
    const before = this.pods.get(key)
    const after = pod ? this.podInfo(key, pod) : undefined
    if (after) {
      const identity = this.acquireIdentity(after)
      after.identity = identity.id
      if (before && this.samePod(before, after)) {
        this.releaseIdentity(before) // acquired twice for the same pod
        return
      }
      this.pods.set(key, after)
      if (before && before.ip !== after.ip && this.podsByIp.get(before.ip) === key) this.podsByIp.delete(before.ip)
      this.podsByIp.set(after.ip, key)
      this.index(this.podsByNamespace, after.namespace, key)
      for (const name of after.namedPorts.keys()) this.index(this.podsByPortName, name, key)
    } else if (!before) {
      return
    } else {
      this.pods.delete(key)
      if (this.podsByIp.get(before.ip) === key) this.podsByIp.delete(before.ip)
      this.podsByNamespace.get(before.namespace)?.delete(key)
    }
    if (before) {
      for (const name of before.namedPorts.keys()) if (!after?.namedPorts.has(name)) this.podsByPortName.get(name)?.delete(key)
    }
    this.updateBlocksForPod(before, after)
    if (before) this.releaseIdentity(before)
    this.emit((listener) => listener.podChanged(before, after))
  }

  private index<T>(map: Map<string, Set<T>>, key: string, value: T): void {
    let set = map.get(key)
    if (!set) map.set(key, (set = new Set()))
    set.add(value)
  }

  private acquireIdentity(pod: PodInfo): IdentityInfo {
    const namespaceLabels = this.namespaces.get(pod.namespace) ?? {}
    const key = identityKey(pod.namespace, pod.labels, namespaceLabels)
    let identity = this.identities.get(key)
    if (!identity) {
      identity = {id: this.identityIds.acquire(key), key, namespace: pod.namespace, labels: pod.labels, namespaceLabels, pods: new Set()}
      this.identities.set(key, identity)
      this.identityById.set(identity.id, identity)
      this.index(this.identitiesByNamespace, pod.namespace, identity)
      for (const selector of this.labelSelectorsFor(pod.namespace)) {
        if (this.selects(selector.spec, identity)) this.adjust(selector, identity.id, 1)
      }
    } else {
      this.identityIds.acquire(key)
    }
    identity.pods.add(pod.key)
    return identity
  }

  private releaseIdentity(pod: PodInfo): void {
    const identity = this.identityById.get(pod.identity)
    if (!identity) return
    this.identityIds.release(identity.key)
    if (this.identityIds.get(identity.key) !== undefined) {
      // Still held: only this pod left it (or the same pod re-acquired it).
      if (this.pods.get(pod.key)?.identity !== identity.id) identity.pods.delete(pod.key)
      return
    }
    this.identities.delete(identity.key)
    this.identityById.delete(identity.id)
    this.identitiesByNamespace.get(identity.namespace)?.delete(identity)
    for (const selector of this.labelSelectorsFor(identity.namespace)) if (selector.selected.has(identity.id)) this.adjust(selector, identity.id, -selector.selected.get(identity.id)!)
  }

  private *labelSelectorsFor(namespace: string): Iterable<CachedSelector> {
    yield* this.podSelectorsByNamespace.get(namespace) ?? []
    yield* this.namespaceSelectors
  }

  private setNamespace(name: string, labels: Record<string, string> | undefined): void {
    const before = this.namespaces.get(name)
    if (labels && before && sortedLabels(before) === sortedLabels(labels)) return
    if (labels) this.namespaces.set(name, labels)
    else this.namespaces.delete(name)
    if (before === undefined && labels && Object.keys(labels).length === 0) return
    // Namespace labels are part of every identity there: its pods move.
    for (const key of [...(this.podsByNamespace.get(name) ?? [])]) {
      const pod = this.pods.get(key)!
      this.reidentify(pod)
    }
  }

  private reidentify(before: PodInfo): void {
    const after: PodInfo = {...before}
    after.identity = this.acquireIdentity(after).id
    if (after.identity === before.identity) {
      this.releaseIdentity(before)
      return
    }
    this.pods.set(after.key, after)
    this.updateBlocksForPod(before, after)
    this.releaseIdentity(before)
    this.emit((listener) => listener.podChanged(before, after))
  }

  private setNode(name: string, given: string | undefined): void {
    const address = given !== undefined && Number.isNaN(ipToInt(given)) ? '' : given
    if (this.nodes.get(name) === address) return
    if (address === undefined) this.nodes.delete(name)
    else this.nodes.set(name, address)
    this.emit((listener) => listener.nodesChanged())
  }

  // ---- policies ----

  private setPolicy(key: string, policy: k8s.V1NetworkPolicy | undefined): void {
    const before = this.policies.get(key)
    let after: PolicyInfo | undefined
    if (policy) {
      const spec = policy.spec ?? ({podSelector: {}} as k8s.V1NetworkPolicySpec)
      const namespace = policy.metadata?.namespace ?? ''
      const error = policyProblem(spec)
      const cidrs = error ? [] : [...new Set([...(spec.ingress ?? []).flatMap((rule) => rule._from ?? []), ...(spec.egress ?? []).flatMap((rule) => rule.to ?? [])]
        .flatMap((peer) => (peer.ipBlock ? [peer.ipBlock.cidr, ...(peer.ipBlock.except ?? [])] : []))
        .filter((cidr) => !cidr.includes(':') && !cidr.endsWith('/0'))
        .map(normalizeCidr))]
      const declared = spec.policyTypes ?? (spec.egress?.length ? ['Ingress', 'Egress'] : ['Ingress'])
      let types = declared.filter((type): type is 'Ingress' | 'Egress' => type === 'Ingress' || type === 'Egress')
      if (types.length === 0) types = ['Ingress', 'Egress'] // nothing understood: isolate both ways
      const selectorError = selectorProblem(spec.podSelector as LabelSelector, 'podSelector')
      after = {key, namespace, name: policy.metadata?.name ?? '', id: before?.id ?? this.policyIds.acquire(key), spec, types, cidrs, error: error ?? selectorError, selectorValid: !selectorError}
      this.policies.set(key, after)
      this.index(this.policiesByNamespace, namespace, key)
    } else if (before) {
      this.policies.delete(key)
      this.policiesByNamespace.get(before.namespace)?.delete(key)
      this.policyIds.release(key)
    } else {
      return
    }
    for (const cidr of after?.cidrs ?? []) this.acquireCidr(cidr)
    for (const cidr of before?.cidrs ?? []) this.releaseCidr(cidr)
    const namespace = (after ?? before)!.namespace
    this.emit((listener) => listener.policyChanged(namespace))
  }

  /** Keys of the model's pods in a namespace. */
  podsIn(namespace: string): Iterable<string> {
    return this.podsByNamespace.get(namespace) ?? []
  }

  /** Policies that cannot be compiled (they isolate what they select and allow nothing), with the reason. */
  policyErrors(): {policy: string; error: string}[] {
    return [...this.policies.values()].filter((policy) => policy.error).map((policy) => ({policy: policy.key, error: policy.error!}))
  }

  /** Policies of a namespace in name order (the first isolating one is named in default denies). */
  policiesIn(namespace: string): PolicyInfo[] {
    return [...(this.policiesByNamespace.get(namespace) ?? [])].sort().map((key) => this.policies.get(key)!)
  }

  private acquireCidr(cidr: string): void {
    const isNew = this.cidrIds.get(cidr) === undefined
    const id = this.cidrIds.acquire(cidr)
    if (!isNew) return
    const parsed = parseCidr(cidr)!
    this.cidrHolders.set(cidr, parsed)
    for (const selector of this.blockSelectors) if (blockHolds((selector.spec as {block: ParsedBlock}).block, parsed)) this.adjust(selector, id, 1)
    this.emit((listener) => listener.cidrChanged(cidr))
  }

  private releaseCidr(cidr: string): void {
    const id = this.cidrIds.get(cidr)
    if (id === undefined) return
    this.cidrIds.release(cidr)
    if (this.cidrIds.get(cidr) !== undefined) return
    this.cidrHolders.delete(cidr)
    for (const selector of this.blockSelectors) if (selector.selected.has(id)) this.adjust(selector, id, -selector.selected.get(id)!)
    this.emit((listener) => listener.cidrChanged(cidr))
  }

  // ---- selectors ----

  selectorKey(spec: SelectorSpec): string {
    switch (spec.kind) {
      case 'pods':
        return JSON.stringify(['pods', spec.namespace, canonical(spec.podSelector)])
      case 'namespaces':
        return JSON.stringify(['namespaces', canonical(spec.namespaceSelector), canonical(spec.podSelector)])
      case 'ipblock':
        return JSON.stringify(['ipblock', spec.block.base, spec.block.bits, spec.block.except.map((except) => [except.base, except.bits]).sort()])
    }
  }

  private selects(spec: SelectorSpec, identity: IdentityInfo): boolean {
    if (spec.kind === 'pods') return identity.namespace === spec.namespace && matchesSelector(spec.podSelector, identity.labels)
    if (spec.kind === 'namespaces') return matchesSelector(spec.namespaceSelector, identity.namespaceLabels) && matchesSelector(spec.podSelector, identity.labels)
    return false
  }

  private adjust(selector: CachedSelector, identity: number, delta: number): void {
    const count = (selector.selected.get(identity) ?? 0) + delta
    const changed = count <= 0 ? selector.selected.delete(identity) : !selector.selected.has(identity)
    if (count > 0) selector.selected.set(identity, count)
    if (changed) this.emit((listener) => listener.selectorChanged(selector.key))
  }

  private updateBlocksForPod(before: PodInfo | undefined, after: PodInfo | undefined): void {
    for (const selector of this.blockSelectors) {
      const block = (selector.spec as {block: ParsedBlock}).block
      if (before && blockHolds(block, {base: before.ipInt, bits: 32})) this.adjust(selector, before.identity, -1)
      if (after && blockHolds(block, {base: after.ipInt, bits: 32})) this.adjust(selector, after.identity, 1)
    }
  }

  /** Hold a selector (evaluated now if new); its selected identities stay current until released. */
  acquireSelector(spec: SelectorSpec): string {
    const key = this.selectorKey(spec)
    const held = this.selectors.get(key)
    if (held) {
      held.holders++
      return key
    }
    const selector: CachedSelector = {key, spec, selected: new Map(), holders: 1}
    if (spec.kind === 'ipblock') {
      for (const [cidr, parsed] of this.cidrHolders) if (blockHolds(spec.block, parsed)) selector.selected.set(this.cidrIds.get(cidr)!, 1)
      if (spec.block.world) selector.selected.set(IDENTITY.WORLD, 1)
      for (const pod of this.pods.values()) {
        if (blockHolds(spec.block, {base: pod.ipInt, bits: 32})) selector.selected.set(pod.identity, (selector.selected.get(pod.identity) ?? 0) + 1)
      }
      this.blockSelectors.add(selector)
    } else if (spec.kind === 'pods') {
      for (const identity of this.identitiesByNamespace.get(spec.namespace) ?? []) if (this.selects(spec, identity)) selector.selected.set(identity.id, 1)
      this.index(this.podSelectorsByNamespace, spec.namespace, selector)
    } else {
      for (const [namespace, labels] of this.namespaces) {
        if (!matchesSelector(spec.namespaceSelector, labels)) continue
        for (const identity of this.identitiesByNamespace.get(namespace) ?? []) if (this.selects(spec, identity)) selector.selected.set(identity.id, 1)
      }
      // Pods of namespaces without a Namespace object carry no namespace labels.
      if (matchesSelector(spec.namespaceSelector, {})) {
        for (const [namespace, identities] of this.identitiesByNamespace) {
          if (this.namespaces.has(namespace)) continue
          for (const identity of identities) if (this.selects(spec, identity)) selector.selected.set(identity.id, 1)
        }
      }
      this.namespaceSelectors.add(selector)
    }
    this.selectors.set(key, selector)
    return key
  }

  releaseSelector(key: string): void {
    const selector = this.selectors.get(key)
    if (!selector || --selector.holders > 0) return
    this.selectors.delete(key)
    this.blockSelectors.delete(selector)
    this.namespaceSelectors.delete(selector)
    if (selector.spec.kind === 'pods') this.podSelectorsByNamespace.get(selector.spec.namespace)?.delete(selector)
  }

  selected(key: string): Iterable<number> {
    return this.selectors.get(key)?.selected.keys() ?? []
  }

  podsWithPortName(name: string): Iterable<string> {
    return this.podsByPortName.get(name) ?? []
  }

  // ---- Services ----

  private storeService(service: k8s.V1Service): void {
    const vip = service.spec?.clusterIP
    const key = objectKey(service)
    if (!vip || Number.isNaN(ipToInt(vip))) this.services.delete(key) // headless, IPv6 or malformed
    else this.services.set(key, {vip, ports: service.spec?.ports ?? []})
  }

  /** Index a slice under its Service; returns the Services whose backends may have changed. */
  private storeSlice(slice: k8s.V1EndpointSlice): string[] {
    const key = objectKey(slice)
    const previous = this.slices.get(key)
    const name = slice.metadata?.labels?.['kubernetes.io/service-name']
    const service = name && slice.addressType === 'IPv4' ? `${slice.metadata?.namespace ?? ''}/${name}` : undefined
    if (previous) this.slicesByService.get(previous.service)?.delete(key)
    if (service) {
      this.slices.set(key, {service, slice})
      this.index(this.slicesByService, service, key)
    } else {
      this.slices.delete(key)
    }
    return [...new Set([previous?.service, service].filter((item): item is string => Boolean(item)))]
  }

  private computeFrontends(serviceKey: string): Frontend[] {
    const service = this.services.get(serviceKey)
    if (!service) return []
    const slices = [...(this.slicesByService.get(serviceKey) ?? [])].map((key) => this.slices.get(key)!.slice)
    const frontends: Frontend[] = []
    let first: BackendSpec[] | undefined
    for (const servicePort of service.ports) {
      const protocol = servicePort.protocol ?? 'TCP'
      const backends = slices.flatMap((slice) => {
        const port = slice.ports?.find((candidate) => (candidate.name ?? '') === (servicePort.name ?? '') && (candidate.protocol ?? 'TCP') === protocol)
        if (!port?.port) return []
        // Only IPv4 addresses the datapath can hold (the API server validates them; a bad one must not cost the rest).
        return slice.endpoints.filter((endpoint) => endpoint.conditions?.ready !== false).flatMap((endpoint) => endpoint.addresses.filter((ip) => !Number.isNaN(ipToInt(ip))).map((ip) => ({id: 0, ip, port: port.port!})))
      })
      backends.sort((a, b) => `${a.ip}:${a.port}`.localeCompare(`${b.ip}:${b.port}`))
      first ??= backends
      frontends.push({vip: service.vip, port: servicePort.port, protocol: protocolOf(protocol), revNatIndex: 0, backends})
    }
    // ICMP echo to the VIP reaches a backend of the first port.
    if (first) frontends.push({vip: service.vip, port: 0, protocol: 'icmp', revNatIndex: 0, backends: first.map((backend) => ({id: 0, ip: backend.ip, port: 0}))})
    return frontends
  }

  private refreshFrontends(serviceKey: string, computed?: Frontend[]): void {
    const next = computed ?? this.computeFrontends(serviceKey)
    for (const frontend of next) {
      frontend.revNatIndex = this.revNatIds.acquire(frontendKey(frontend))
      for (const backend of frontend.backends) backend.id = this.backendIds.acquire(backendKey(backend, frontend.protocol))
    }
    for (const frontend of this.frontends.get(serviceKey) ?? []) {
      this.revNatIds.release(frontendKey(frontend))
      for (const backend of frontend.backends) this.backendIds.release(backendKey(backend, frontend.protocol))
    }
    if (next.length) this.frontends.set(serviceKey, next)
    else this.frontends.delete(serviceKey)
    this.emit((listener) => listener.serviceChanged(serviceKey))
  }
}

function frontendKey(frontend: {vip: string; port: number; protocol: string}): string {
  return `${frontend.vip}:${frontend.port}/${frontend.protocol}`
}

function backendKey(backend: {ip: string; port: number}, protocol: string): string {
  return `${backend.ip}:${backend.port}/${protocol}`
}
