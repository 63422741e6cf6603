import type * as k8s from '@kubernetes/client-node'
import {type LabelSelector, matchesSelector} from '../lib/selectors.js'

/**
 * An independent model of Kubernetes NetworkPolicy semantics, written from
 * the API reference and not sharing code with the compiler in src/sync: it
 * computes the expected probe matrix that the real dataplane is checked against.
 */
export interface ModelPod {
  namespace: string
  name: string
  ip: string
  labels: Record<string, string>
  ports: {name?: string; port: number; protocol: string}[]
}

export interface World {
  pods: ModelPod[]
  namespaces: Record<string, Record<string, string>>
  policies: k8s.V1NetworkPolicy[]
}

export interface Probe {
  protocol: 'TCP' | 'UDP' | 'SCTP'
  port: number
}

function ipToInt(ip: string): number {
  return ip.split('.').reduce((sum, octet) => sum * 256 + Number(octet), 0)
}

function inCidr(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/')
  const size = Number(bits)
  if (size === 0) return true
  const shift = 32 - size
  return Math.floor(ipToInt(ip) / 2 ** shift) === Math.floor(ipToInt(base) / 2 ** shift)
}

function peerMatches(peer: k8s.V1NetworkPolicyPeer, policyNamespace: string, other: ModelPod, world: World): boolean {
  if (peer.ipBlock) return inCidr(other.ip, peer.ipBlock.cidr) && !(peer.ipBlock.except ?? []).some((except) => inCidr(other.ip, except))
  const namespaceOk = peer.namespaceSelector ? matchesSelector(peer.namespaceSelector as LabelSelector, world.namespaces[other.namespace] ?? {}) : other.namespace === policyNamespace
  const podOk = peer.podSelector ? matchesSelector(peer.podSelector as LabelSelector, other.labels) : true
  return namespaceOk && podOk
}

/** A port entry matches when protocol agrees and the port (number, range or the target pod's named port) does. */
function portMatches(port: k8s.V1NetworkPolicyPort, probe: Probe, target: ModelPod): boolean {
  if ((port.protocol ?? 'TCP') !== probe.protocol) return false
  if (port.port === undefined) return true
  if (typeof port.port === 'string') return target.ports.some((candidate) => candidate.name === port.port && candidate.protocol === probe.protocol && candidate.port === probe.port)
  return probe.port >= port.port && probe.port <= (port.endPort ?? port.port)
}

function types(policy: k8s.V1NetworkPolicy): string[] {
  return policy.spec?.policyTypes ?? (policy.spec?.egress ? ['Ingress', 'Egress'] : ['Ingress'])
}

/** Does traffic pass the policies of `subject` in one direction (peer = the other end)? */
function directionAllows(direction: 'Ingress' | 'Egress', subject: ModelPod, peer: ModelPod, probe: Probe, target: ModelPod, world: World): boolean {
  const selecting = world.policies.filter((policy) => policy.metadata?.namespace === subject.namespace && types(policy).includes(direction) && matchesSelector((policy.spec?.podSelector ?? {}) as LabelSelector, subject.labels))
  if (selecting.length === 0) return true // not isolated
  return selecting.some((policy) => {
    const rules = direction === 'Ingress' ? policy.spec?.ingress ?? [] : policy.spec?.egress ?? []
    return rules.some((rule) => {
      const peers = direction === 'Ingress' ? (rule as k8s.V1NetworkPolicyIngressRule)._from : (rule as k8s.V1NetworkPolicyEgressRule).to
      const peerOk = !peers || peers.length === 0 || peers.some((candidate) => peerMatches(candidate, policy.metadata!.namespace!, peer, world))
      const portOk = !rule.ports || rule.ports.length === 0 || rule.ports.some((port) => portMatches(port, probe, target))
      return peerOk && portOk
    })
  })
}

/** Expected: may `from` open a connection to `to` on this port? Replies are then always allowed. */
export function expectedAllowed(world: World, from: ModelPod, to: ModelPod, probe: Probe): boolean {
  // A pod talking to itself never leaves its network namespace: policy does not apply.
  if (from.namespace === to.namespace && from.name === to.name) return true
  return directionAllows('Egress', from, to, probe, to, world) && directionAllows('Ingress', to, from, probe, to, world)
}
