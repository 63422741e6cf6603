import type * as k8s from '@kubernetes/client-node'
import {describe, expect, it} from 'vitest'
import type {ClusterSnapshot} from '../../src/cluster/snapshot.js'
import {DIRECTION, IDENTITY, POLICY_PREFIX, splitCookie} from '../../src/datapath/constants.js'
import {portRangePrefixes} from '../../src/datapath/entries.js'
import {lb4Key, lb4Service, policyKey, policyEntry} from '../../src/datapath/structs.js'
import {stableIds} from '../../src/sync/ids.js'
import {cidrContains, ClusterPlanner} from '../../src/sync/plan.js'

function pod(namespace: string, name: string, ip: string, labels: Record<string, string>, node = 'n1', ports: k8s.V1ContainerPort[] = []): k8s.V1Pod {
  return {metadata: {namespace, name, labels, uid: name}, spec: {nodeName: node, containers: [{name: 'c', ports}]}, status: {phase: 'Running', podIP: ip}}
}

function snapshot(policies: k8s.V1NetworkPolicy[], extra: Partial<ClusterSnapshot> = {}): ClusterSnapshot {
  return {
    nodes: [{metadata: {name: 'n1'}, status: {addresses: [{type: 'InternalIP', address: '10.99.0.10'}]}}, {metadata: {name: 'n2'}, status: {addresses: [{type: 'InternalIP', address: '10.99.0.11'}]}}],
    namespaces: [{metadata: {name: 'app', labels: {team: 'a'}}}, {metadata: {name: 'ops', labels: {team: 'ops'}}}],
    pods: [
      pod('app', 'web', '10.244.1.10', {role: 'web'}, 'n1', [{name: 'http', containerPort: 8080}]),
      pod('app', 'db', '10.244.1.11', {role: 'db'}),
      pod('ops', 'mon', '10.244.2.10', {role: 'mon'}, 'n2'),
      pod('ops', 'web', '10.244.2.11', {role: 'web'}, 'n2', [{name: 'http', containerPort: 9090}]),
    ],
    services: [],
    slices: [],
    policies,
    ...extra,
  }
}

const policy = (name: string, spec: k8s.V1NetworkPolicySpec, namespace = 'app'): k8s.V1NetworkPolicy => ({metadata: {name, namespace}, spec})

/** The compiled rules of one endpoint as readable tuples. */
function rulesOf(planner: ClusterPlanner, pod: string) {
  const plan = planner.plan(['n1', 'n2']).flatMap((node) => node.endpoints.map((endpoint) => ({endpoint, entries: node.entries})))
  const found = plan.find((candidate) => `${candidate.endpoint.namespace}/${candidate.endpoint.name}` === pod)!
  const rules = found.entries.filter((entry) => entry.map === 'pinion_policy').map((entry) => ({key: policyKey.decode(entry.key), value: policyEntry.decode(entry.value)})).filter((rule) => rule.key.endpointId === found.endpoint.endpointId)
  return {endpoint: found.endpoint, rules}
}

const identityOf = (planner: ClusterPlanner, pod: string) => planner.podIdentity.get(pod)!

describe('NetworkPolicy compilation', () => {
  it('isolates selected pods per policyType, naming the policy, and leaves others open', () => {
    const planner = new ClusterPlanner(snapshot([policy('deny', {podSelector: {matchLabels: {role: 'db'}}, policyTypes: ['Ingress', 'Egress']})]))
    const db = rulesOf(planner, 'app/db').endpoint
    expect(splitCookie(db.ingressDenyCookie)).toEqual({policyId: planner.policyIds.get('app/deny'), rule: 0})
    expect(db.egressDenyCookie).toBe(db.ingressDenyCookie)
    expect(rulesOf(planner, 'app/web').endpoint.ingressDenyCookie).toBe(0)
  })

  it('defaults policyTypes to Ingress, plus Egress when egress rules exist', () => {
    const planner = new ClusterPlanner(snapshot([policy('p', {podSelector: {}, egress: [{}]})]))
    const web = rulesOf(planner, 'app/web').endpoint
    expect(web.ingressDenyCookie).not.toBe(0)
    expect(web.egressDenyCookie).not.toBe(0)
  })

  it('podSelector peers are pods of the policy namespace; namespaceSelector peers are all pods there; both in one peer intersect', () => {
    const sameNs = new ClusterPlanner(snapshot([policy('p', {podSelector: {matchLabels: {role: 'db'}}, ingress: [{_from: [{podSelector: {matchLabels: {role: 'web'}}}]}]})]))
    expect(rulesOf(sameNs, 'app/db').rules.map((rule) => rule.key.identity)).toEqual([identityOf(sameNs, 'app/web')])
    const nsOnly = new ClusterPlanner(snapshot([policy('p', {podSelector: {matchLabels: {role: 'db'}}, ingress: [{_from: [{namespaceSelector: {matchLabels: {team: 'ops'}}}]}]})]))
    expect(rulesOf(nsOnly, 'app/db').rules.map((rule) => rule.key.identity).sort()).toEqual([identityOf(nsOnly, 'ops/mon'), identityOf(nsOnly, 'ops/web')].sort())
    const both = new ClusterPlanner(snapshot([policy('p', {podSelector: {matchLabels: {role: 'db'}}, ingress: [{_from: [{namespaceSelector: {matchLabels: {team: 'ops'}}, podSelector: {matchLabels: {role: 'web'}}}]}]})]))
    expect(rulesOf(both, 'app/db').rules.map((rule) => rule.key.identity)).toEqual([identityOf(both, 'ops/web')])
    const separate = new ClusterPlanner(snapshot([policy('p', {podSelector: {matchLabels: {role: 'db'}}, ingress: [{_from: [{namespaceSelector: {matchLabels: {team: 'ops'}}}, {podSelector: {matchLabels: {role: 'web'}}}]}]})]))
    expect(rulesOf(separate, 'app/db').rules).toHaveLength(3)
  })

  it('a rule without peers allows any peer; without ports any protocol', () => {
    const planner = new ClusterPlanner(snapshot([policy('p', {podSelector: {matchLabels: {role: 'db'}}, ingress: [{}]})]))
    const [rule] = rulesOf(planner, 'app/db').rules
    expect(rule.key).toMatchObject({identity: IDENTITY.ANY, direction: DIRECTION.INGRESS, prefixlen: POLICY_PREFIX.ANY_PROTO})
    expect(splitCookie(rule.value.cookie as number).rule).toBe(1)
  })

  it('resolves named ports on the selected pod for ingress and on the peer for egress', () => {
    const ingress = new ClusterPlanner(snapshot([policy('p', {podSelector: {matchLabels: {role: 'web'}}, ingress: [{ports: [{port: 'http'}]}]})]))
    expect(rulesOf(ingress, 'app/web').rules.map((rule) => [rule.key.proto, rule.key.dport, rule.key.prefixlen])).toEqual([[6, 8080, POLICY_PREFIX.FULL]])
    const egress = new ClusterPlanner(snapshot([policy('p', {podSelector: {matchLabels: {role: 'db'}}, egress: [{to: [{namespaceSelector: {}, podSelector: {matchLabels: {role: 'web'}}}], ports: [{port: 'http'}]}]})]))
    const ports = rulesOf(egress, 'app/db').rules.map((rule) => [rule.key.identity, rule.key.dport])
    expect(ports).toEqual(expect.arrayContaining([[identityOf(egress, 'app/web'), 8080], [identityOf(egress, 'ops/web'), 9090]]))
  })

  it('turns endPort ranges into port prefixes and keeps protocols apart', () => {
    expect(portRangePrefixes(1000, 1003)).toEqual([{port: 1000, bits: 14}])
    expect(portRangePrefixes(1, 6)).toEqual([{port: 1, bits: 16}, {port: 2, bits: 15}, {port: 4, bits: 15}, {port: 6, bits: 16}])
    expect(portRangePrefixes(0, 65535)).toEqual([{port: 0, bits: 0}])
    const planner = new ClusterPlanner(snapshot([policy('p', {podSelector: {matchLabels: {role: 'db'}}, ingress: [{ports: [{protocol: 'UDP', port: 5000, endPort: 5007}, {protocol: 'SCTP'}]}]})]))
    expect(rulesOf(planner, 'app/db').rules.map((rule) => [rule.key.proto, rule.key.dport, rule.key.prefixlen])).toEqual([[17, 5000, 125], [132, 0, POLICY_PREFIX.ANY_PORT]])
  })

  it('ipBlock allows its CIDR and the CIDRs inside it, minus the exceptions', () => {
    const planner = new ClusterPlanner(snapshot([
      policy('p', {podSelector: {matchLabels: {role: 'db'}}, ingress: [{_from: [{ipBlock: {cidr: '192.168.0.0/16', except: ['192.168.1.0/24']}}]}]}),
      policy('q', {podSelector: {matchLabels: {role: 'web'}}, ingress: [{_from: [{ipBlock: {cidr: '192.168.2.0/24'}}]}]}),
    ]))
    const allowed = rulesOf(planner, 'app/db').rules.map((rule) => rule.key.identity).sort()
    expect(allowed).toEqual([planner.cidrIdentity.get('192.168.0.0/16'), planner.cidrIdentity.get('192.168.2.0/24')].sort())
    expect(allowed).not.toContain(planner.cidrIdentity.get('192.168.1.0/24'))
    expect(cidrContains('10.0.0.0/8', '10.1.0.0/16')).toBe(true)
    expect(cidrContains('10.1.0.0/16', '10.0.0.0/8')).toBe(false)
  })

  it('policies add up: rules of two policies selecting a pod both apply', () => {
    const planner = new ClusterPlanner(snapshot([
      policy('a', {podSelector: {matchLabels: {role: 'db'}}, ingress: [{ports: [{port: 80}]}]}),
      policy('b', {podSelector: {matchLabels: {role: 'db'}}, ingress: [{ports: [{port: 443}]}]}),
    ]))
    expect(rulesOf(planner, 'app/db').rules.map((rule) => rule.key.dport).sort()).toEqual([443, 80])
  })
})

describe('Services and identities', () => {
  it('stable ids refuse more keys than they have room for instead of probing forever', () => {
    const keys = ['a', 'b', 'c', 'd']
    expect([...stableIds(keys, 1, 4).values()].sort()).toEqual([1, 2, 3, 4])
    expect(() => stableIds([...keys, 'e'], 1, 4, 'Service frontends')).toThrow('too many Service frontends: 5, the datapath holds 4')
  })

  it('gives equal labels one identity and maps nodes to host / remote-node', () => {
    const planner = new ClusterPlanner(snapshot([]))
    expect(identityOf(planner, 'app/web')).not.toBe(identityOf(planner, 'ops/web'))
    const n1 = planner.plan(['n1'])[0]
    expect(n1.endpoints.map((endpoint) => endpoint.name).sort()).toEqual(['db', 'web'])
    expect(n1.entries.filter((entry) => entry.map === 'pinion_ipcache')).toHaveLength(6)
  })

  it('builds frontends from ready EndpointSlice endpoints by port name, plus an ICMP frontend', () => {
    const planner = new ClusterPlanner(snapshot([], {
      services: [{metadata: {namespace: 'app', name: 'web'}, spec: {clusterIP: '10.96.0.10', ports: [{name: 'http', port: 80, protocol: 'TCP'}]}}],
      slices: [{metadata: {namespace: 'app', name: 'web-x', labels: {'kubernetes.io/service-name': 'web'}}, addressType: 'IPv4', ports: [{name: 'http', port: 8080, protocol: 'TCP'}], endpoints: [{addresses: ['10.244.1.10'], conditions: {ready: true}}, {addresses: ['10.244.2.11'], conditions: {ready: false}}]}],
    }))
    const services = planner.plan(['n1'])[0].entries.filter((entry) => entry.map === 'pinion_services_v2').map((entry) => ({key: lb4Key.decode(entry.key), value: lb4Service.decode(entry.value)}))
    const tcp = services.find((service) => service.key.dport === 80 && service.key.backendSlot === 0)!
    expect(tcp.value.count).toBe(1)
    expect(services.some((service) => service.key.proto === 1 && service.key.dport === 0)).toBe(true)
  })
})
