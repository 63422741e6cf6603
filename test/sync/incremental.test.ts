import type * as k8s from '@kubernetes/client-node'
import {describe, expect, it} from 'vitest'
import type {MapEntry} from '../../src/datapath/entries.js'
import {lb4Key, policyKey} from '../../src/datapath/structs.js'
import {ClusterModel, type ModelObjects, type ObjectKind} from '../../src/sync/model.js'
import {type EndpointPlan, NodePlanner} from '../../src/sync/node-planner.js'

/** Deterministic pseudo-random numbers (mulberry32), so a failing sequence can be replayed. */
function random(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const NAMESPACES = ['app', 'ops', 'db']
const ROLES = ['web', 'api', 'db', 'cache']
const NODES = ['n1', 'n2']

type Generated = {kind: ObjectKind; object: {metadata?: k8s.V1ObjectMeta}}

/** A small random cluster and random changes to it, covering every policy shape the planner compiles. */
class Cluster {
  readonly objects = new Map<string, Generated>()
  private podCount = 0
  constructor(private readonly next: () => number) {}

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]
  }

  snapshot(): ModelObjects {
    const of = <T>(kind: ObjectKind) => [...this.objects.values()].filter((item) => item.kind === kind).map((item) => item.object as T)
    return {nodes: of('Node'), namespaces: of('Namespace'), pods: of('Pod'), services: of('Service'), slices: of('EndpointSlice'), policies: of('NetworkPolicy')}
  }

  private put(kind: ObjectKind, object: {metadata?: k8s.V1ObjectMeta}): Generated {
    const item = {kind, object: structuredClone(object)}
    this.objects.set(`${kind}/${object.metadata?.namespace ?? ''}/${object.metadata?.name}`, item)
    return item
  }

  node(name: string, index: number): Generated {
    return this.put('Node', {metadata: {name}, status: {addresses: [{type: 'InternalIP', address: `10.99.0.${10 + index}`}]}} as k8s.V1Node)
  }

  namespace(name: string): Generated {
    return this.put('Namespace', {metadata: {name, labels: {team: this.pick(['a', 'b']), ...(this.next() < 0.5 ? {env: 'prod'} : {})}}} as k8s.V1Namespace)
  }

  pod(name = `p${this.podCount++}`, namespace = this.pick(NAMESPACES)): Generated {
    const ports: k8s.V1ContainerPort[] = this.next() < 0.6 ? [{name: 'http', containerPort: this.pick([8080, 9090])}] : []
    const pod: k8s.V1Pod = {
      metadata: {namespace, name, labels: {role: this.pick(ROLES), ...(this.next() < 0.3 ? {tier: 'front'} : {})}},
      spec: {nodeName: this.pick(NODES), containers: [{name: 'c', ports}]},
      status: {phase: this.next() < 0.9 ? 'Running' : 'Succeeded', podIP: `10.244.${this.pick([1, 2])}.${10 + Math.floor(this.next() * 40)}`},
    }
    return this.put('Pod', pod)
  }

  service(name = this.pick(['web', 'api', 'db']), namespace = this.pick(NAMESPACES)): Generated[] {
    const service: k8s.V1Service = {metadata: {namespace, name}, spec: {clusterIP: `10.96.${NAMESPACES.indexOf(namespace)}.${10 + ['web', 'api', 'db'].indexOf(name)}`, ports: [{name: 'http', port: 80, protocol: 'TCP'}, ...(this.next() < 0.5 ? [{name: 'dns', port: 53, protocol: 'UDP'}] : [])]}}
    const pods = [...this.objects.values()].filter((item) => item.kind === 'Pod' && item.object.metadata?.namespace === namespace).map((item) => item.object as k8s.V1Pod)
    const slice: k8s.V1EndpointSlice = {
      metadata: {namespace, name: `${name}-x`, labels: {'kubernetes.io/service-name': name}},
      addressType: 'IPv4',
      ports: [{name: 'http', port: 8080, protocol: 'TCP'}, {name: 'dns', port: 5353, protocol: 'UDP'}],
      endpoints: pods.filter(() => this.next() < 0.5).map((pod) => ({addresses: [pod.status!.podIP!], conditions: {ready: this.next() < 0.8}})),
    }
    return [this.put('Service', service), this.put('EndpointSlice', slice)]
  }

  private peer(): k8s.V1NetworkPolicyPeer {
    switch (Math.floor(this.next() * 5)) {
      case 0:
        return {podSelector: {matchLabels: {role: this.pick(ROLES)}}}
      case 1:
        return {namespaceSelector: {matchLabels: {team: this.pick(['a', 'b'])}}}
      case 2:
        return {namespaceSelector: {matchExpressions: [{key: 'env', operator: 'Exists'}]}, podSelector: {matchExpressions: [{key: 'role', operator: 'In', values: [this.pick(ROLES), this.pick(ROLES)]}]}}
      case 3:
        return {ipBlock: {cidr: this.pick(['10.244.0.0/16', '10.244.1.0/24', '0.0.0.0/0', '192.168.0.0/16']), except: this.next() < 0.5 ? [this.pick(['10.244.1.16/28', '10.244.2.0/26'])].filter((cidr) => cidr.startsWith('10.')) : []}}
      default:
        return {podSelector: {}}
    }
  }

  private ports(): k8s.V1NetworkPolicyPort[] | undefined {
    switch (Math.floor(this.next() * 4)) {
      case 0:
        return undefined
      case 1:
        return [{protocol: 'TCP', port: 'http'}]
      case 2:
        return [{protocol: 'TCP', port: 8000, endPort: 8100}, {protocol: 'UDP'}]
      default:
        return [{protocol: 'TCP', port: this.pick([80, 8080, 9090])}]
    }
  }

  policy(name = `pol${Math.floor(this.next() * 12)}`, namespace = this.pick(NAMESPACES)): Generated {
    const rules = () => Array.from({length: Math.floor(this.next() * 3)}, () => ({peers: this.next() < 0.2 ? [] : [this.peer(), ...(this.next() < 0.3 ? [this.peer()] : [])], ports: this.ports()}))
    const spec: k8s.V1NetworkPolicySpec = {
      podSelector: this.next() < 0.3 ? {} : {matchLabels: {role: this.pick(ROLES)}},
      policyTypes: this.pick([['Ingress'], ['Egress'], ['Ingress', 'Egress']]),
      ingress: rules().map((rule) => ({_from: rule.peers.length ? rule.peers : undefined, ports: rule.ports})),
      egress: rules().map((rule) => ({to: rule.peers.length ? rule.peers : undefined, ports: rule.ports})),
    }
    if (this.next() < 0.05) spec.policyTypes = ['Sideways'] // fails closed
    return this.put('NetworkPolicy', {metadata: {namespace, name}, spec} as k8s.V1NetworkPolicy)
  }

  /** One random change: returns what to tell the model. */
  change(): {op: 'upsert' | 'remove'; item: Generated}[] {
    const existing = (kind: ObjectKind) => [...this.objects.entries()].filter(([, item]) => item.kind === kind)
    const remove = (kind: ObjectKind) => {
      const candidates = existing(kind)
      if (!candidates.length) return []
      const [key, item] = this.pick(candidates)
      this.objects.delete(key)
      return [{op: 'remove' as const, item}]
    }
    const roll = this.next()
    if (roll < 0.25) return [{op: 'upsert', item: this.pod()}]
    if (roll < 0.35) return remove('Pod')
    if (roll < 0.45) {
      const pods = existing('Pod')
      if (!pods.length) return []
      const [, item] = this.pick(pods)
      return [{op: 'upsert', item: this.pod(item.object.metadata!.name!, item.object.metadata!.namespace!)}] // relabel, move, re-address
    }
    if (roll < 0.65) return [{op: 'upsert', item: this.policy()}]
    if (roll < 0.72) return remove('NetworkPolicy')
    if (roll < 0.82) return this.service().map((item) => ({op: 'upsert' as const, item}))
    if (roll < 0.86) return remove('Service')
    if (roll < 0.95) return [{op: 'upsert', item: this.namespace(this.pick(NAMESPACES))}]
    if (this.next() < 0.5) return [{op: 'upsert', item: this.node('n3', 3)}]
    const n3 = this.objects.get('Node//n3')
    this.objects.delete('Node//n3')
    return n3 ? [{op: 'remove', item: n3}] : []
  }
}

const slot = (entry: MapEntry) => `${entry.map}/${entry.key.toString('hex')}`
const byKey = (endpoints: EndpointPlan[]) => [...endpoints].sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`))

function fromScratch(cluster: Cluster, node: string) {
  const planner = new NodePlanner(ClusterModel.fromObjects(cluster.snapshot()), node)
  const plan = planner.plan()
  return {entries: new Map(plan.entries.map((entry) => [slot(entry), entry.value.toString('hex')])), endpoints: byKey(plan.endpoints)}
}

describe('incremental planner', () => {
  it('after random event sequences, the state built from deltas equals a from-scratch plan (fixed seeds)', () => {
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const next = random(seed)
      const cluster = new Cluster(next)
      NODES.forEach((name, index) => cluster.node(name, index))
      for (const name of NAMESPACES) cluster.namespace(name)
      for (let i = 0; i < 12; i++) cluster.pod()
      for (let i = 0; i < 3; i++) cluster.service()
      for (let i = 0; i < 5; i++) cluster.policy()
      const model = ClusterModel.fromObjects(cluster.snapshot())
      const planner = new NodePlanner(model, 'n1')
      // What the node's maps hold: the first full plan, then only the deltas.
      const maps = new Map(planner.plan().entries.map((entry) => [slot(entry), entry.value.toString('hex')]))
      const endpoints = new Map(planner.endpoints().map((endpoint) => [`${endpoint.namespace}/${endpoint.name}`, endpoint]))
      let writes = 0
      for (let step = 0; step < 120; step++) {
        for (const {op, item} of cluster.change()) model[op](item.kind, item.object)
        if (next() < 0.4 || step === 119) {
          const delta = planner.flush()
          for (const entry of delta.upserts) maps.set(slot(entry), entry.value.toString('hex'))
          for (const entry of delta.deletes) maps.delete(slot(entry))
          for (const endpoint of delta.endpoints.changed) endpoints.set(`${endpoint.namespace}/${endpoint.name}`, endpoint)
          for (const endpoint of delta.endpoints.removed) endpoints.delete(`${endpoint.namespace}/${endpoint.name}`)
          writes += delta.upserts.length + delta.deletes.length
          if (step % 20 === 0 || step === 119) {
            const expected = fromScratch(cluster, 'n1')
            expect(new Map([...maps].sort()), `seed ${seed} step ${step}`).toEqual(new Map([...expected.entries].sort()))
            expect(byKey([...endpoints.values()]), `seed ${seed} step ${step}`).toEqual(expected.endpoints)
            // The fill kept with the slots (capacity checks) counts what the maps hold.
            const counted = new Map<string, number>([['pinion_endpoint', endpoints.size]])
            for (const key of maps.keys()) counted.set(key.split('/')[0], (counted.get(key.split('/')[0]) ?? 0) + 1)
            expect(new Map([...planner.fill()].filter(([, count]) => count > 0).sort()), `seed ${seed} step ${step}`).toEqual(new Map([...counted].filter(([, count]) => count > 0).sort()))
          }
        }
      }
      expect(writes).toBeGreaterThan(0)
      planner.close()
    }
  })

  it('a one-pod change writes only that pod\'s entries', () => {
    const cluster = new Cluster(random(9))
    NODES.forEach((name, index) => cluster.node(name, index))
    for (const name of NAMESPACES) cluster.namespace(name)
    for (let i = 0; i < 30; i++) cluster.pod()
    const model = ClusterModel.fromObjects(cluster.snapshot())
    const planner = new NodePlanner(model, 'n1')
    const before = planner.plan().entries.length
    model.upsert('Pod', {metadata: {namespace: 'app', name: 'extra', labels: {role: 'solo'}}, spec: {nodeName: 'n2', containers: [{name: 'c'}]}, status: {phase: 'Running', podIP: '10.244.2.99'}} as k8s.V1Pod)
    const delta = planner.flush()
    expect(delta.upserts.map((entry) => entry.map)).toEqual(['pinion_ipcache'])
    expect(delta.deletes).toEqual([])
    expect(planner.plan().entries.length).toBe(before + 1)
    model.remove('Pod', {metadata: {namespace: 'app', name: 'extra'}})
    expect(planner.flush().deletes.map((entry) => entry.map)).toEqual(['pinion_ipcache'])
  })

  it('a policy whose shape cannot be compiled fails closed: it isolates and allows nothing, and is reported', () => {
    const model = ClusterModel.fromObjects({
      nodes: [{metadata: {name: 'n1'}}],
      namespaces: [{metadata: {name: 'app'}}],
      pods: [{metadata: {namespace: 'app', name: 'web', labels: {role: 'web'}}, spec: {nodeName: 'n1', containers: [{name: 'c'}]}, status: {phase: 'Running', podIP: '10.244.1.10'}}],
      services: [],
      slices: [],
      policies: [
        {metadata: {namespace: 'app', name: 'odd'}, spec: {podSelector: {matchExpressions: [{key: 'role', operator: 'Near', values: ['web']}]}, ingress: [{}]}},
        {metadata: {namespace: 'app', name: 'bad-port'}, spec: {podSelector: {}, ingress: [{ports: [{protocol: 'TCP', port: 90, endPort: 80}]}]}},
      ],
    })
    const plan = new NodePlanner(model, 'n1').plan()
    expect(plan.endpoints[0].ingressDenyCookie).not.toBe(0)
    expect(plan.entries.filter((entry) => entry.map === 'pinion_policy').map((entry) => policyKey.decode(entry.key))).toEqual([])
    expect(model.policyErrors().map((error) => error.policy).sort()).toEqual(['app/bad-port', 'app/odd'])
    expect(model.policyErrors().find((error) => error.policy === 'app/odd')!.error).toContain('unknown operator "Near"')
  })
})

describe('planner robustness', () => {
  it('an address the datapath cannot hold costs nothing but itself', () => {
    const model = ClusterModel.fromObjects({
      nodes: [{metadata: {name: 'n1'}, status: {addresses: [{type: 'InternalIP', address: 'not-an-ip'}]}}],
      namespaces: [{metadata: {name: 'app'}}],
      pods: [],
      services: [{metadata: {namespace: 'app', name: 'web'}, spec: {clusterIP: '10.96.0.10', ports: [{name: 'http', port: 80, protocol: 'TCP'}]}}, {metadata: {namespace: 'app', name: 'odd'}, spec: {clusterIP: '10.96.0.300', ports: [{port: 80}]}}],
      slices: [{metadata: {namespace: 'app', name: 'web-x', labels: {'kubernetes.io/service-name': 'web'}}, addressType: 'IPv4', ports: [{name: 'http', port: 8080, protocol: 'TCP'}], endpoints: [{addresses: ['10.244.1.256'], conditions: {ready: true}}, {addresses: ['10.244.1.10'], conditions: {ready: true}}]}],
      policies: [],
    })
    const planner = new NodePlanner(model, 'n1')
    const plan = planner.plan()
    const frontends = plan.entries.filter((entry) => entry.map === 'pinion_services_v2').map((entry) => lb4Key.decode(entry.key))
    expect(frontends.filter((key) => key.backendSlot === 0).map((key) => key.address)).toEqual(['10.96.0.10', '10.96.0.10'])
    expect(plan.entries.filter((entry) => entry.map === 'pinion_backends')).toHaveLength(2) // 10.244.1.10 for TCP and ICMP
    expect(plan.entries.filter((entry) => entry.map === 'pinion_ipcache')).toHaveLength(0)
    expect(planner.errors()).toEqual([])
  })
})
