import {execFile} from 'node:child_process'
import {promisify} from 'node:util'

const execFileAsync = promisify(execFile)

/** Run a host command for lab plumbing; failures name the command and its stderr. */
export async function sh(argv: readonly string[]): Promise<string> {
  try {
    const {stdout} = await execFileAsync(argv[0], argv.slice(1), {encoding: 'utf8', maxBuffer: 64 * 1024 * 1024})
    return stdout
  } catch (error) {
    const stderr = (error as {stderr?: string}).stderr?.trim()
    throw new Error(`\`${argv.join(' ')}\` failed: ${stderr || (error as Error).message}`)
  }
}

/** Like sh() but ignores failure: for idempotent teardown of things that may be gone. */
export async function shQuiet(argv: readonly string[]): Promise<void> {
  try {
    await execFileAsync(argv[0], argv.slice(1))
  } catch {
    // already gone
  }
}

export async function addNetns(name: string): Promise<void> {
  await sh(['ip', 'netns', 'add', name])
  await sh(['ip', '-n', name, 'link', 'set', 'lo', 'up'])
}

export async function delNetns(name: string): Promise<void> {
  await shQuiet(['ip', 'netns', 'del', name])
}

export async function setSysctl(netns: string, key: string, value: string): Promise<void> {
  await sh(['ip', 'netns', 'exec', netns, 'sysctl', '-q', '-w', `${key}=${value}`])
}

export async function linkInfo(netns: string, iface: string): Promise<{ifindex: number; address: string}> {
  const [link] = JSON.parse(await sh(['ip', '-n', netns, '-j', 'link', 'show', iface])) as {ifindex: number; address: string}[]
  return link
}

/** Link-local gateway every pod routes through; the host veth answers for it. */
export const POD_GATEWAY = '169.254.1.1'

export interface PodInterfaceSpec {
  nodeNetns: string
  podNetns: string
  /** Host-side veth name in the node (≤ 15 characters). */
  hostIf: string
  podIp: string
}

/**
 * Plumb a pod: a veth pair with eth0 in the pod holding podIp/32, a default
 * route through the link-local gateway (pinned to the host veth's MAC, so no
 * proxy ARP is needed), and a /32 route to the pod in the node.
 */
export async function addPodInterface(spec: PodInterfaceSpec): Promise<{ifindex: number; hostMac: string; podMac: string}> {
  const {nodeNetns, podNetns, hostIf, podIp} = spec
  await sh(['ip', '-n', nodeNetns, 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', podNetns])
  await sh(['ip', '-n', nodeNetns, 'link', 'set', hostIf, 'up'])
  await sh(['ip', '-n', podNetns, 'addr', 'add', `${podIp}/32`, 'dev', 'eth0'])
  await sh(['ip', '-n', podNetns, 'link', 'set', 'eth0', 'up'])
  const host = await linkInfo(nodeNetns, hostIf)
  const pod = await linkInfo(podNetns, 'eth0')
  await sh(['ip', '-n', podNetns, 'route', 'add', POD_GATEWAY, 'dev', 'eth0', 'scope', 'link'])
  await sh(['ip', '-n', podNetns, 'route', 'add', 'default', 'via', POD_GATEWAY, 'dev', 'eth0'])
  await sh(['ip', '-n', podNetns, 'neigh', 'replace', POD_GATEWAY, 'lladdr', host.address, 'dev', 'eth0', 'nud', 'permanent'])
  await sh(['ip', '-n', nodeNetns, 'route', 'replace', `${podIp}/32`, 'dev', hostIf])
  return {ifindex: host.ifindex, hostMac: host.address, podMac: pod.address}
}
