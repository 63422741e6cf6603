import {spawn} from 'node:child_process'
import {mkdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {labDir, type LabNode, nodeExecPrefix, underlayNetns} from './config.js'
import {addNetns, sh, shQuiet} from './netns.js'
import {updateState} from './state.js'

/**
 * The lab's machines: an underlay namespace holding a bridge, and per node a
 * network namespace (uplink on the bridge, pod CIDRs of the other nodes routed
 * to them), a mount namespace with its own bpffs at /sys/fs/bpf, and a UTS
 * namespace carrying its hostname. Nothing touches the host's own network.
 *
 *   [underlay netns: br0] --veth-- eth0 10.99.0.10 [node-1]   pods 10.244.1.0/24
 *                         --veth-- eth0 10.99.0.11 [node-2]   pods 10.244.2.0/24
 */

/** The run directory's ns/ folder must be a private mount to hold namespace bind mounts. */
async function prepareNsDir(lab: string): Promise<string> {
  const dir = join(labDir(lab), 'ns')
  mkdirSync(dir, {recursive: true})
  updateState(lab, (state) => {
    if (!state.nsMounts.includes(dir)) state.nsMounts.push(dir)
  })
  const mounts = await sh(['findmnt', '-rn', '-o', 'TARGET'])
  if (!mounts.split('\n').includes(dir)) {
    await sh(['mount', '--bind', dir, dir])
    await sh(['mount', '--make-private', dir])
  }
  return dir
}

/**
 * New mount and UTS namespaces (own bpffs, own hostname), kept alive by
 * bind-mounting them onto the node's files. A holder process waits on stdin
 * while we bind, so the namespaces cannot vanish first (unshare --mount=FILE
 * races with a short-lived command).
 */
async function createMountAndUts(node: LabNode): Promise<void> {
  const holder = spawn('unshare', ['--mount', '--uts', '--propagation', 'private', 'sh', '-c', `mount -t bpf bpf /sys/fs/bpf && hostname ${node.name} && echo ready && read _`], {stdio: ['pipe', 'pipe', 'pipe']})
  let stderr = ''
  holder.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const exited = new Promise<number | null>((resolve) => holder.on('close', resolve))
  try {
    await new Promise<void>((resolve, reject) => {
      holder.stdout.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve())
      void exited.then((code) => reject(new Error(`cannot create namespaces for ${node.name} (exit ${code}): ${stderr.trim()}`)))
    })
    await sh(['mount', '--bind', `/proc/${holder.pid}/ns/mnt`, node.mountNs])
    await sh(['mount', '--bind', `/proc/${holder.pid}/ns/uts`, node.utsNs])
  } finally {
    holder.stdin.end()
    await exited
  }
}

export async function createUnderlay(lab: string): Promise<void> {
  const netns = underlayNetns(lab)
  updateState(lab, (state) => void state.netns.push(netns))
  await addNetns(netns)
  await sh(['ip', '-n', netns, 'link', 'add', 'br0', 'type', 'bridge'])
  await sh(['ip', '-n', netns, 'link', 'set', 'br0', 'up'])
}

export async function createNode(lab: string, node: LabNode): Promise<void> {
  await prepareNsDir(lab)
  updateState(lab, (state) => {
    state.netns.push(node.netns)
    state.nsMounts.push(node.mountNs, node.utsNs)
  })
  await addNetns(node.netns)
  writeFileSync(node.mountNs, '')
  writeFileSync(node.utsNs, '')
  await createMountAndUts(node)
  await sh(['ip', '-n', underlayNetns(lab), 'link', 'add', node.uplink, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', node.netns])
  await sh(['ip', '-n', underlayNetns(lab), 'link', 'set', node.uplink, 'master', 'br0', 'up'])
  await sh(['ip', '-n', node.netns, 'addr', 'add', `${node.underlayIp}/24`, 'dev', 'eth0'])
  await sh(['ip', '-n', node.netns, 'link', 'set', 'eth0', 'up'])
  await sh([...nodeExecPrefix(node), 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1'])
}

/** Route every node's pod CIDR to that node over the underlay (no overlay in v1). */
export async function routePodCidrs(nodes: readonly LabNode[]): Promise<void> {
  for (const node of nodes) {
    for (const peer of nodes) {
      if (peer.name !== node.name) await sh(['ip', '-n', node.netns, 'route', 'replace', peer.podCidr, 'via', peer.underlayIp])
    }
  }
}

/** Unmount namespace files (deepest first) and delete network namespaces; idempotent. */
export async function destroyNamespaces(netns: readonly string[], nsMounts: readonly string[]): Promise<void> {
  for (const mount of [...nsMounts].reverse()) await shQuiet(['umount', '-l', mount])
  for (const name of [...netns].reverse()) await shQuiet(['ip', 'netns', 'del', name])
}
