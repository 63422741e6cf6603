import type * as k8s from '@kubernetes/client-node'

/** The test namespaces of a run (x, y, z with a prefix) and the pod addresses the scenarios need. */
export interface Layout {
  x: string
  y: string
  z: string
  ip: (namespace: string, pod: string) => string
}

export interface Scenario {
  name: string
  description: string
  /** Each step replaces the policies, then the whole matrix is probed. */
  steps: k8s.V1NetworkPolicy[][]
}

const policy = (namespace: string, name: string, spec: k8s.V1NetworkPolicySpec): k8s.V1NetworkPolicy => ({apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: {name, namespace}, spec})
const pod = (name: string) => ({matchLabels: {pod: name}})
const ns = (name: string) => ({matchLabels: {ns: name}})

/** In the spirit of the upstream network-policy e2e tests and Cyclonus. */
export function scenarios(l: Layout): Scenario[] {
  return [
    {name: 'no-policies', description: 'without policies everything is allowed', steps: [[]]},
    {name: 'default-deny-ingress', description: 'an empty ingress policy isolates every pod of x', steps: [[policy(l.x, 'deny-ingress', {podSelector: {}, policyTypes: ['Ingress']})]]},
    {name: 'default-deny-egress', description: 'an empty egress policy stops every connection out of x', steps: [[policy(l.x, 'deny-egress', {podSelector: {}, policyTypes: ['Egress']})]]},
    {name: 'allow-all-ingress', description: 'an allow-all rule next to a default deny lets everything in', steps: [[policy(l.x, 'deny-ingress', {podSelector: {}, policyTypes: ['Ingress']}), policy(l.x, 'allow-all', {podSelector: {}, ingress: [{}]})]]},
    {name: 'pod-selector', description: 'x/a accepts only x/b', steps: [[policy(l.x, 'a-from-b', {podSelector: pod('a'), ingress: [{_from: [{podSelector: pod('b')}]}]})]]},
    {name: 'namespace-selector', description: 'x/a accepts only namespace y', steps: [[policy(l.x, 'a-from-y', {podSelector: pod('a'), ingress: [{_from: [{namespaceSelector: ns(l.y)}]}]})]]},
    {name: 'pod-and-namespace-one-peer', description: 'both selectors in one peer intersect: only y/b', steps: [[policy(l.x, 'a-from-yb', {podSelector: pod('a'), ingress: [{_from: [{namespaceSelector: ns(l.y), podSelector: pod('b')}]}]})]]},
    {name: 'pod-and-namespace-separate-peers', description: 'separate peers add up: namespace y, and b pods of x', steps: [[policy(l.x, 'a-from-y-or-b', {podSelector: pod('a'), ingress: [{_from: [{namespaceSelector: ns(l.y)}, {podSelector: pod('b')}]}]})]]},
    {name: 'ipblock-except', description: 'ipBlock of the pod network except y/b', steps: [[policy(l.x, 'a-from-cidr', {podSelector: pod('a'), ingress: [{_from: [{ipBlock: {cidr: '10.244.0.0/16', except: [`${l.ip(l.y, 'b')}/32`]}}]}]})]]},
    {name: 'named-port', description: 'x/a accepts only on its port named serve-81-tcp', steps: [[policy(l.x, 'a-named-port', {podSelector: pod('a'), ingress: [{ports: [{port: 'serve-81-tcp'}]}]})]]},
    {name: 'port-range', description: 'endPort: x/a accepts TCP 80-81, not UDP', steps: [[policy(l.x, 'a-port-range', {podSelector: pod('a'), ingress: [{ports: [{protocol: 'TCP', port: 80, endPort: 81}]}]})]]},
    {name: 'policies-add-up', description: 'two policies on x/a: x/b on 80 and x/c on 81', steps: [[
      policy(l.x, 'a-b-80', {podSelector: pod('a'), ingress: [{_from: [{podSelector: pod('b')}], ports: [{port: 80}]}]}),
      policy(l.x, 'a-c-81', {podSelector: pod('a'), ingress: [{_from: [{podSelector: pod('c')}], ports: [{port: 81}]}]}),
    ]]},
    {name: 'egress-to-service', description: 'x/c may reach only x/b on TCP 80: through the Service VIP too', steps: [[policy(l.x, 'c-to-b-80', {podSelector: pod('c'), policyTypes: ['Egress'], egress: [{to: [{podSelector: pod('b')}], ports: [{protocol: 'TCP', port: 80}]}]})]]},
    {name: 'policy-update', description: 'a policy change applies to new connections: deny x/a, then allow namespace z', steps: [
      [policy(l.x, 'a-update', {podSelector: pod('a'), policyTypes: ['Ingress']})],
      [policy(l.x, 'a-update', {podSelector: pod('a'), ingress: [{_from: [{namespaceSelector: ns(l.z)}]}]})],
    ]},
    {name: 'replies-of-allowed', description: 'x denies all egress, x/a accepts all: replies to x/a still return', steps: [[
      policy(l.x, 'deny-egress', {podSelector: {}, policyTypes: ['Egress']}),
      policy(l.x, 'a-accepts-all', {podSelector: pod('a'), ingress: [{}]}),
    ]]},
  ]
}
