import {UsageError} from '../lib/errors.js'
import {release} from 'node:os'
import {join} from 'node:path'

/**
 * Names, addresses and paths of a lab. Everything a lab creates is named from
 * its lab name, recorded in its run directory, and removed by `lab down`.
 */
export const LAB_RUN_ROOT = process.env.PINION_LAB_RUN_ROOT ?? '/run/pinion/lab'
export const DEFAULT_LAB_NAME = 'pinion'

/** Each lab has its own underlay 10.99.S.0/24 (S picked at `lab up`): node i is 10.99.S.(10 + i), the host 10.99.S.1. */
export const UNDERLAY_PREFIX = '10.99'
/** Lab ranges the host never routes anywhere but into a lab (unreachable otherwise, never the default route). */
export const LAB_RANGES = ['10.99.0.0/16', '10.244.0.0/16', '10.96.0.0/16']
export const POD_CIDR_PREFIX = '10.244' // node i: 10.244.(i + 1).0/24
export const SERVICE_CIDR = '10.96.0.0/16'

export function labDir(name: string): string {
  return join(LAB_RUN_ROOT, name)
}

export function validateLabName(name: string): string {
  if (!/^[a-z][a-z0-9-]{0,11}$/.test(name)) {
    throw new UsageError(`invalid lab name "${name}": use 1-12 lowercase letters, digits or '-', starting with a letter`)
  }
  return name
}

export interface LabNode {
  name: string
  index: number
  netns: string
  /** Process holding the node's mount and UTS namespaces for the lab's lifetime. */
  holderPid: number
  underlayIp: string
  podCidr: string
  /** Host side of the node's uplink veth, inside the underlay namespace. */
  uplink: string
}

export function nodeLayout(lab: string, index: number, underlaySubnet: number): LabNode {
  const name = `${lab}-node-${index + 1}`
  return {
    name,
    index,
    netns: `pinion-${lab}-n${index + 1}`,
    holderPid: 0,
    underlayIp: `${UNDERLAY_PREFIX}.${underlaySubnet}.${10 + index}`,
    podCidr: `${POD_CIDR_PREFIX}.${index + 1}.0/24`,
    uplink: `pl${lab.slice(0, 8)}${index + 1}`.slice(0, 15),
  }
}

export function underlayNetns(lab: string): string {
  return `pinion-${lab}-underlay`
}

/** The host's end of the veth into a lab's underlay bridge. */
export function hostLink(lab: string): string {
  return `ph${lab}`.slice(0, 15)
}

/** argv prefix that runs a command inside a lab node (network, mount and UTS namespaces). */
export function nodeExecPrefix(node: LabNode): string[] {
  return ['nsenter', `--net=/run/netns/${node.netns}`, `--mount=/proc/${node.holderPid}/ns/mnt`, `--uts=/proc/${node.holderPid}/ns/uts`, '--']
}

/** The API server's Unix socket; each node's relay forwards NODE_API_PORT on the node's loopback to it. */
export function apiSocketPath(lab: string): string {
  return join(labDir(lab), 'api.sock')
}

/** Where a lab node's own processes (hostNetwork pods such as the agent) find the API server. */
export const NODE_API_PORT = 6443

export function nodeKubeconfigPath(lab: string, node: string): string {
  return join(labDir(lab), `kubeconfig-${node}`)
}

/** The Node object of a lab node, as its kubelet registers it. */
export function labNodeObject(lab: string, node: LabNode) {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {name: node.name, labels: {'kubernetes.io/hostname': node.name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', 'pinion.dev/lab': lab}},
    spec: {podCIDR: node.podCidr, podCIDRs: [node.podCidr], taints: []},
    status: {
      addresses: [{type: 'InternalIP', address: node.underlayIp}, {type: 'Hostname', address: node.name}],
      conditions: [{type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'lab node is ready', lastHeartbeatTime: new Date().toISOString()}],
      nodeInfo: {kernelVersion: release(), osImage: 'Pinion lab (network + mount namespaces)', kubeletVersion: 'v1.32.0-pinion-lab', containerRuntimeVersion: 'pinion-lab://1', operatingSystem: 'linux', architecture: 'amd64'},
    },
  }
}
