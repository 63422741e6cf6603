import {join} from 'node:path'

/**
 * Names, addresses and paths of a lab. Everything a lab creates is named from
 * its lab name, recorded in its run directory, and removed by `lab down`.
 */
export const LAB_RUN_ROOT = process.env.PINION_LAB_RUN_ROOT ?? '/run/pinion/lab'
export const DEFAULT_LAB_NAME = 'pinion'

export const UNDERLAY_CIDR_PREFIX = '10.99.0' // node i: 10.99.0.(10 + i) on the lab bridge
export const POD_CIDR_PREFIX = '10.244' // node i: 10.244.(i + 1).0/24
export const SERVICE_CIDR = '10.96.0.0/16'

export function labDir(name: string): string {
  return join(LAB_RUN_ROOT, name)
}

export function validateLabName(name: string): string {
  if (!/^[a-z][a-z0-9-]{0,11}$/.test(name)) {
    throw new Error(`invalid lab name "${name}": use 1-12 lowercase letters, digits or '-', starting with a letter`)
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

export function nodeLayout(lab: string, index: number): LabNode {
  const name = `${lab}-node-${index + 1}`
  return {
    name,
    index,
    netns: `pinion-${lab}-n${index + 1}`,
    holderPid: 0,
    underlayIp: `${UNDERLAY_CIDR_PREFIX}.${10 + index}`,
    podCidr: `${POD_CIDR_PREFIX}.${index + 1}.0/24`,
    uplink: `pl${lab.slice(0, 8)}${index + 1}`.slice(0, 15),
  }
}

export function underlayNetns(lab: string): string {
  return `pinion-${lab}-underlay`
}

/** argv prefix that runs a command inside a lab node (network, mount and UTS namespaces). */
export function nodeExecPrefix(node: LabNode): string[] {
  return ['nsenter', `--net=/run/netns/${node.netns}`, `--mount=/proc/${node.holderPid}/ns/mnt`, `--uts=/proc/${node.holderPid}/ns/uts`, '--']
}
