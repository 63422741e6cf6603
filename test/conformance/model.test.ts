import type * as k8s from '@kubernetes/client-node'
import {describe, expect, it} from 'vitest'
import {expectedAllowed, type ModelPod, type World} from '../../src/conformance/model.js'

const ports = [{name: 'http', port: 80, protocol: 'TCP'}, {name: 'alt', port: 81, protocol: 'TCP'}]
const pod = (namespace: string, name: string, ip: string): ModelPod => ({namespace, name, ip, labels: {pod: name}, ports})
const xa = pod('x', 'a', '10.244.1.10')
const xb = pod('x', 'b', '10.244.1.11')
const ya = pod('y', 'a', '10.244.2.10')
const yb = pod('y', 'b', '10.244.2.11')
const world = (policies: k8s.V1NetworkPolicySpec[], namespace = 'x'): World => ({
  pods: [xa, xb, ya, yb],
  namespaces: {x: {ns: 'x'}, y: {ns: 'y'}},
  policies: policies.map((spec, index) => ({metadata: {name: `p${index}`, namespace}, spec})),
})
const tcp80 = {protocol: 'TCP' as const, port: 80}
const tcp81 = {protocol: 'TCP' as const, port: 81}

describe('the expected-matrix model', () => {
  it('allows everything without policies, and a pod always reaches itself', () => {
    expect(expectedAllowed(world([]), ya, xa, tcp80)).toBe(true)
    expect(expectedAllowed(world([{podSelector: {}, policyTypes: ['Ingress', 'Egress']}]), xa, xa, tcp80)).toBe(true)
  })

  it('isolates selected pods per direction', () => {
    const denyIngress = world([{podSelector: {}, policyTypes: ['Ingress']}])
    expect(expectedAllowed(denyIngress, ya, xa, tcp80)).toBe(false)
    expect(expectedAllowed(denyIngress, xa, ya, tcp80)).toBe(true)
    const denyEgress = world([{podSelector: {}, policyTypes: ['Egress']}])
    expect(expectedAllowed(denyEgress, xa, ya, tcp80)).toBe(false)
    expect(expectedAllowed(denyEgress, ya, xa, tcp80)).toBe(true)
  })

  it('intersects pod and namespace selectors in one peer, and unions separate peers', () => {
    const one = world([{podSelector: {matchLabels: {pod: 'a'}}, ingress: [{_from: [{namespaceSelector: {matchLabels: {ns: 'y'}}, podSelector: {matchLabels: {pod: 'b'}}}]}]}])
    expect([ya, yb, xb].map((from) => expectedAllowed(one, from, xa, tcp80))).toEqual([false, true, false])
    const two = world([{podSelector: {matchLabels: {pod: 'a'}}, ingress: [{_from: [{namespaceSelector: {matchLabels: {ns: 'y'}}}, {podSelector: {matchLabels: {pod: 'b'}}}]}]}])
    expect([ya, yb, xb].map((from) => expectedAllowed(two, from, xa, tcp80))).toEqual([true, true, true])
  })

  it('matches named ports on the target, port ranges and protocols; ipBlock except carves out', () => {
    const named = world([{podSelector: {}, ingress: [{ports: [{port: 'alt'}]}]}])
    expect([tcp80, tcp81].map((probe) => expectedAllowed(named, ya, xa, probe))).toEqual([false, true])
    const range = world([{podSelector: {}, ingress: [{ports: [{protocol: 'TCP', port: 80, endPort: 81}]}]}])
    expect([tcp80, tcp81, {protocol: 'UDP' as const, port: 80}].map((probe) => expectedAllowed(range, ya, xa, probe))).toEqual([true, true, false])
    const block = world([{podSelector: {}, ingress: [{_from: [{ipBlock: {cidr: '10.244.0.0/16', except: ['10.244.2.11/32']}}]}]}])
    expect([ya, yb].map((from) => expectedAllowed(block, from, xa, tcp80))).toEqual([true, false])
  })

  it('adds up several policies selecting one pod', () => {
    const both = world([
      {podSelector: {matchLabels: {pod: 'a'}}, ingress: [{_from: [{podSelector: {matchLabels: {pod: 'b'}}}], ports: [{port: 80}]}]},
      {podSelector: {matchLabels: {pod: 'a'}}, ingress: [{_from: [{namespaceSelector: {}}], ports: [{port: 81}]}]},
    ])
    expect([[xb, tcp80], [xb, tcp81], [ya, tcp80], [ya, tcp81]].map(([from, probe]) => expectedAllowed(both, from as ModelPod, xa, probe as typeof tcp80))).toEqual([true, true, false, true])
  })
})
