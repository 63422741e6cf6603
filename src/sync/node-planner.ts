import type * as k8s from '@kubernetes/client-node'
import {DIRECTION, IDENTITY, makeCookie, MAX_ENDPOINT_ID} from '../datapath/constants.js'
import {frontendEntries, ipcacheEntry, type MapEntry, policyEntries, policyNameEntry} from '../datapath/entries.js'
import type {LabelSelector} from '../lib/selectors.js'
import {matchesSelector} from '../lib/selectors.js'
import {IdAllocator} from './ids.js'
import {type ClusterModel, type ModelListener, parseBlock, type PodInfo, protocolOf, type SelectorSpec} from './model.js'

/** One pod of this node as the datapath knows it (its interface is found on the node). */
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

/** What changed since the last flush: entries to write, entries to delete, endpoints added, changed or gone. */
export interface PlanDelta {
  upserts: MapEntry[]
  deletes: MapEntry[]
  endpoints: {changed: EndpointPlan[]; removed: EndpointPlan[]}
}

interface Slot {
  contributor: string
  entry: MapEntry
  /** Other contributors of the same key; the smallest contributor's value wins, whatever the order of events. */
  others?: Map<string, MapEntry>
}

type PortSpec = {protocol: 'tcp' | 'udp' | 'sctp'; ports?: {from: number; to: number}} | undefined

const slotKey = (entry: MapEntry) => `${entry.map}/${entry.key.toString('latin1')}`

/**
 * One node's dataplane, computed from the cluster model and kept current by
 * its events. Entries come from contributors: each pod's ipcache entry, each
 * tracked CIDR, the node addresses, each Service, and each local endpoint's
 * compiled policy. An event marks the contributors it touches; `flush()`
 * recomputes just those and returns the entries that changed. Policy rules
 * resolve peers through the model's selector cache, so a rule costs one
 * lookup per peer selector, and only this node's endpoints are compiled.
 */
export class NodePlanner implements ModelListener {
  private readonly contributions = new Map<string, MapEntry[]>()
  private readonly slots = new Map<string, Slot>()
  /** Entries per map, kept with the slots (a capacity check costs nothing). */
  private readonly counts = new Map<string, number>()
  private readonly dirty = new Set<string>()
  /** Dependency (selector, identity's pods, named port) -> endpoint contributors that used it. */
  private readonly dependents = new Map<string, Set<string>>()
  private readonly dependencies = new Map<string, Set<string>>()
  private readonly endpointIds = new IdAllocator(1, MAX_ENDPOINT_ID, 'endpoints')
  private readonly endpointPlans = new Map<string, EndpointPlan>()
  /** Effective value of each slot touched in this flush, as it was before. */
  private touched = new Map<string, MapEntry | undefined>()
  /** Contributors whose entries could not be computed, with why (they keep their last entries). */
  private readonly failures = new Map<string, string>()
  /** The first flush writes everything: no need to track what it touched. */
  private first = true

  constructor(
    readonly model: ClusterModel,
    readonly node: string,
  ) {
    // Endpoint ids in sorted order of the node's pods, as a from-scratch plan gives them.
    for (const key of [...model.pods.values()].filter((pod) => pod.node === node).map((pod) => pod.key).sort()) this.endpointIds.acquire(key)
    for (const pod of model.pods.values()) {
      this.dirty.add(`ip/${pod.key}`)
      if (pod.node === node) this.dirty.add(`ep/${pod.key}`)
    }
    for (const cidr of model.cidrIds.entries()) this.dirty.add(`cidr/${cidr[0]}`)
    for (const service of model.frontends.keys()) this.dirty.add(`svc/${service}`)
    this.dirty.add('nodes')
    model.listeners.add(this)
  }

  /** Stop following the model (and let go of the selectors this node held). */
  close(): void {
    this.model.listeners.delete(this)
    for (const deps of this.dependencies.values()) for (const dep of deps) if (dep.startsWith('sel:')) this.model.releaseSelector(dep.slice(4))
    this.dependencies.clear()
  }

  // ---- model events ----

  podChanged(before: PodInfo | undefined, after: PodInfo | undefined): void {
    const pod = (after ?? before)!
    this.dirty.add(`ip/${pod.key}`)
    if (before?.node === this.node || after?.node === this.node) this.dirty.add(`ep/${pod.key}`)
    for (const info of [before, after]) {
      if (!info) continue
      this.markDependents(`pods:${info.identity}`)
      for (const name of info.namedPorts.keys()) this.markDependents(`port:${name}`)
    }
  }

  policyChanged(namespace: string): void {
    // This node's endpoints there (a pod that left the model or the node is dirty already).
    for (const key of this.model.podsIn(namespace)) if (this.model.pods.get(key)!.node === this.node) this.dirty.add(`ep/${key}`)
  }

  serviceChanged(key: string): void {
    this.dirty.add(`svc/${key}`)
  }

  cidrChanged(cidr: string): void {
    this.dirty.add(`cidr/${cidr}`)
  }

  nodesChanged(): void {
    this.dirty.add('nodes')
  }

  selectorChanged(key: string): void {
    this.markDependents(`sel:${key}`)
  }

  private markDependents(dependency: string): void {
    for (const contributor of this.dependents.get(dependency) ?? []) this.dirty.add(contributor)
  }

  // ---- results ----

  get pending(): number {
    return this.dirty.size
  }

  /** The whole plan (after bringing it up to date). */
  plan(): NodePlan {
    this.flush()
    return {node: this.node, nodeIp: this.model.nodes.get(this.node) ?? '', endpoints: this.endpoints(), entries: [...this.slots.values()].map((slot) => slot.entry)}
  }

  /** What could not be planned (e.g. "svc/default/web: invalid IPv4 address …"). */
  errors(): string[] {
    return [...this.failures].map(([contributor, message]) => `${contributor}: ${message}`)
  }

  /** Entries per map in the current plan (pinion_endpoint: one per local endpoint). */
  fill(): Map<string, number> {
    return new Map([...this.counts, ['pinion_endpoint', this.endpointPlans.size]])
  }

  endpoints(): EndpointPlan[] {
    return [...this.endpointPlans.values()]
  }

  /** Recompute what events touched; returns only what changed. */
  flush(): PlanDelta {
    this.touched = new Map()
    const changed: EndpointPlan[] = []
    const removed: EndpointPlan[] = []
    // Order does not matter: a key two contributors share takes the smaller contributor's value.
    for (const contributor of [...this.dirty]) {
      this.dirty.delete(contributor)
      try {
        if (contributor.startsWith('ep/')) {
          const key = contributor.slice(3)
          const before = this.endpointPlans.get(key)
          this.setContribution(contributor, this.compileEndpoint(key))
          const after = this.endpointPlans.get(key)
          if (after && JSON.stringify(after) !== JSON.stringify(before)) changed.push(after)
          if (before && !after) removed.push(before)
        } else {
          this.setContribution(contributor, this.compute(contributor))
        }
        this.failures.delete(contributor)
      } catch (error) {
        // One object the planner cannot encode costs only its own entries (they stay as they were).
        this.failures.set(contributor, (error as Error).message)
      }
    }
    if (this.first) {
      this.first = false
      return {upserts: [...this.slots.values()].map((slot) => slot.entry), deletes: [], endpoints: {changed, removed}}
    }
    const upserts: MapEntry[] = []
    const deletes: MapEntry[] = []
    for (const [key, before] of this.touched) {
      const after = this.slots.get(key)?.entry
      if (after && !(before && before.value.equals(after.value))) upserts.push(after)
      else if (!after && before) deletes.push(before)
    }
    this.touched = new Map()
    return {upserts, deletes, endpoints: {changed, removed}}
  }

  private compute(contributor: string): MapEntry[] {
    const slash = contributor.indexOf('/')
    const kind = slash < 0 ? contributor : contributor.slice(0, slash)
    const key = contributor.slice(slash + 1)
    switch (kind) {
      case 'ip': {
        const pod = this.model.pods.get(key)
        return pod ? [ipcacheEntry(`${pod.ip}/32`, pod.identity)] : []
      }
      case 'cidr': {
        const id = this.model.cidrIds.get(key)
        return id === undefined ? [] : [ipcacheEntry(key, id)]
      }
      case 'svc':
        return (this.model.frontends.get(key) ?? []).flatMap((frontend) => frontendEntries(frontend))
      case 'nodes':
        return [...this.model.nodes].filter(([, address]) => address).map(([name, address]) => ipcacheEntry(`${address}/32`, name === this.node ? IDENTITY.HOST : IDENTITY.REMOTE_NODE))
      default:
        throw new Error(`unknown plan contributor ${contributor}`)
    }
  }

  private setContribution(contributor: string, entries: MapEntry[]): void {
    const previous = this.contributions.get(contributor)
    if (!previous) {
      // The common case of a first plan: nothing to take back.
      for (const entry of entries) this.putInSlot(slotKey(entry), contributor, entry)
      if (entries.length) this.contributions.set(contributor, entries)
      return
    }
    const next = new Map(entries.map((entry) => [slotKey(entry), entry]))
    for (const entry of previous) {
      const key = slotKey(entry)
      if (!next.has(key)) this.removeFromSlot(key, contributor)
    }
    for (const [key, entry] of next) this.putInSlot(key, contributor, entry)
    if (entries.length) this.contributions.set(contributor, entries)
    else this.contributions.delete(contributor)
  }

  private touch(key: string): void {
    if (this.first) return
    if (!this.touched.has(key)) this.touched.set(key, this.slots.get(key)?.entry)
  }

  private putInSlot(key: string, contributor: string, entry: MapEntry): void {
    const slot = this.slots.get(key)
    if (slot?.contributor === contributor && slot.entry.value.equals(entry.value)) return
    this.touch(key)
    if (!slot) {
      this.slots.set(key, {contributor, entry})
      this.counts.set(entry.map, (this.counts.get(entry.map) ?? 0) + 1)
    } else if (slot.contributor === contributor) {
      slot.entry = entry
    } else if (contributor < slot.contributor) {
      slot.others ??= new Map()
      slot.others.set(slot.contributor, slot.entry)
      slot.others.delete(contributor)
      slot.contributor = contributor
      slot.entry = entry
    } else {
      slot.others ??= new Map()
      slot.others.set(contributor, entry)
    }
  }

  private removeFromSlot(key: string, contributor: string): void {
    const slot = this.slots.get(key)
    if (!slot) return
    if (slot.contributor !== contributor) {
      slot.others?.delete(contributor)
      return
    }
    this.touch(key)
    const next = slot.others?.size ? [...slot.others.keys()].sort()[0] : undefined
    if (next === undefined) {
      this.slots.delete(key)
      this.counts.set(slot.entry.map, (this.counts.get(slot.entry.map) ?? 1) - 1)
      return
    }
    slot.contributor = next
    slot.entry = slot.others!.get(next)!
    slot.others!.delete(next)
  }

  // ---- policy compilation for one endpoint ----

  private compileEndpoint(podKey: string): MapEntry[] {
    const pod = this.model.pods.get(podKey)
    const contributor = `ep/${podKey}`
    const used = new Set<string>()
    if (!pod || pod.node !== this.node) {
      this.setDependencies(contributor, used)
      if (this.endpointPlans.delete(podKey)) this.endpointIds.release(podKey)
      return []
    }
    const entries: MapEntry[] = []
    const held = this.dependencies.get(contributor) ?? new Set<string>()
    const selector = (spec: SelectorSpec): string => {
      const key = this.model.selectorKey(spec)
      const dependency = `sel:${key}`
      if (!used.has(dependency)) {
        used.add(dependency)
        if (!held.has(dependency)) this.model.acquireSelector(spec)
      }
      return key
    }
    let endpointId = this.endpointIds.get(podKey)
    if (endpointId === undefined) endpointId = this.endpointIds.acquire(podKey)
    const isolation = {[DIRECTION.INGRESS]: 0, [DIRECTION.EGRESS]: 0}
    for (const policy of this.model.policiesIn(pod.namespace)) {
      // A podSelector that cannot be evaluated isolates the whole namespace (fail closed).
      if (policy.selectorValid && !matchesSelector((policy.spec.podSelector ?? {}) as LabelSelector, pod.labels)) continue
      entries.push(policyNameEntry(policy.id, policy.namespace, policy.name))
      for (const type of policy.types) {
        const direction = type === 'Egress' ? DIRECTION.EGRESS : DIRECTION.INGRESS
        if (!isolation[direction]) isolation[direction] = makeCookie(policy.id, 0) // the first policy (by name) is named for default denies
        if (policy.error) continue
        const rules = (direction === DIRECTION.EGRESS ? policy.spec.egress : policy.spec.ingress) ?? []
        rules.forEach((rule, index) => {
          const cookie = makeCookie(policy.id, index + 1)
          const peers = (direction === DIRECTION.EGRESS ? (rule as k8s.V1NetworkPolicyEgressRule).to : (rule as k8s.V1NetworkPolicyIngressRule)._from) ?? []
          const emit = (identity: number, port: PortSpec) => entries.push(...policyEntries({endpointId, direction, identity, protocol: port?.protocol, ports: port?.ports, cookie}))
          this.compileRule(pod, policy.namespace, direction, rule.ports ?? [], peers, selector, used, emit)
        })
      }
    }
    this.setDependencies(contributor, used)
    this.endpointPlans.set(podKey, {namespace: pod.namespace, name: pod.name, ip: pod.ip, identity: pod.identity, endpointId, ingressDenyCookie: isolation[DIRECTION.INGRESS], egressDenyCookie: isolation[DIRECTION.EGRESS]})
    return entries
  }

  private setDependencies(contributor: string, used: Set<string>): void {
    const before = this.dependencies.get(contributor) ?? new Set<string>()
    for (const dependency of before) {
      if (used.has(dependency)) continue
      if (dependency.startsWith('sel:')) this.model.releaseSelector(dependency.slice(4))
      this.dependents.get(dependency)?.delete(contributor)
      if (this.dependents.get(dependency)?.size === 0) this.dependents.delete(dependency)
    }
    for (const dependency of used) {
      let set = this.dependents.get(dependency)
      if (!set) this.dependents.set(dependency, (set = new Set()))
      set.add(contributor)
    }
    if (used.size) this.dependencies.set(contributor, used)
    else this.dependencies.delete(contributor)
  }

  private compileRule(pod: PodInfo, namespace: string, direction: number, ports: k8s.V1NetworkPolicyPort[], peers: k8s.V1NetworkPolicyPeer[], selector: (spec: SelectorSpec) => string, used: Set<string>, emit: (identity: number, port: PortSpec) => void): void {
    // Peer identities, and the label selectors whose pods an egress named port needs.
    const identities = new Set<number>()
    const podSelectors: string[] = []
    if (peers.length === 0) identities.add(IDENTITY.ANY)
    for (const peer of peers) {
      let key: string
      if (peer.ipBlock) {
        const block = peer.ipBlock.cidr.includes(':') ? undefined : parseBlock(peer.ipBlock)
        if (!block) continue // IPv6: nothing to match in the IPv4 datapath
        key = selector({kind: 'ipblock', block})
      } else {
        const podSelector = (peer.podSelector ?? {}) as LabelSelector
        key = peer.namespaceSelector ? selector({kind: 'namespaces', namespaceSelector: peer.namespaceSelector as LabelSelector, podSelector}) : selector({kind: 'pods', namespace, podSelector})
        podSelectors.push(key)
      }
      for (const identity of this.model.selected(key)) identities.add(identity)
    }
    if (ports.length === 0) {
      for (const identity of identities) emit(identity, undefined)
      return
    }
    for (const port of ports) {
      const protocol = protocolOf(port.protocol)
      if (port.port === undefined) {
        for (const identity of identities) emit(identity, {protocol})
      } else if (typeof port.port === 'number') {
        for (const identity of identities) emit(identity, {protocol, ports: {from: port.port, to: port.endPort ?? port.port}})
      } else if (direction === DIRECTION.INGRESS) {
        // A named port means the selected pod's own container port of that name.
        const number = pod.namedPorts.get(`${port.port}/${port.protocol ?? 'TCP'}`)
        if (number) for (const identity of identities) emit(identity, {protocol, ports: {from: number, to: number}})
      } else {
        // Egress: each destination pod's port of that name; "any peer" means every pod that has one.
        const name = `${port.port}/${port.protocol ?? 'TCP'}`
        let targets: Iterable<string>
        if (identities.has(IDENTITY.ANY)) {
          used.add(`port:${name}`)
          targets = this.model.podsWithPortName(name)
        } else {
          const selected = new Set(podSelectors.flatMap((key) => [...this.model.selected(key)]))
          for (const identity of selected) used.add(`pods:${identity}`)
          targets = [...selected].flatMap((identity) => [...(this.model.identityById.get(identity)?.pods ?? [])])
        }
        for (const target of targets) {
          const peer = this.model.pods.get(target)
          const number = peer?.namedPorts.get(name)
          if (peer && number) emit(peer.identity, {protocol, ports: {from: number, to: number}})
        }
      }
    }
  }
}
