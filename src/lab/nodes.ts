import {spawn} from 'node:child_process'
import {nodeScript} from '../lib/scripts.js'
import {apiSocketPath, hostLink, LAB_RANGES, type LabNode, NODE_API_PORT, nodeExecPrefix, underlayNetns} from './config.js'
import {addNetns, sh, shQuiet} from './netns.js'
import {updateState} from './state.js'

/**
 * The lab's machines: an underlay namespace holding a bridge, and per node a
 * network namespace (uplink on the bridge, pod CIDRs of the other nodes routed
 * to them), a mount namespace with its own bpffs at /sys/fs/bpf, and a UTS
 * namespace carrying its hostname. The host is plugged into the bridge too
 * (10.99.S.1), so node addresses are reachable from it (SSH without
 * overrides); lab ranges are otherwise unreachable on the host, never routed
 * out through its default route.
 *
 *   [host ph<lab> 10.99.S.1] --veth-- [underlay netns: br0] --veth-- eth0 10.99.S.10 [node-1]   pods 10.244.1.0/24
 *                                                           --veth-- eth0 10.99.S.11 [node-2]   pods 10.244.2.0/24
 */

/** Directories each node keeps to itself (a tmpfs in its mount namespace), as real nodes have their own disks. */
const NODE_PRIVATE_DIRS = ['/var/lib/pinion', '/var/log/pinion', '/var/log/network', '/etc/cni/net.d', '/opt/cni/bin']

/**
 * New mount and UTS namespaces (own bpffs, own state directories, own hostname) held by a process
 * that lives as long as the lab: nsenter reaches them through /proc/PID/ns.
 * (Bind-mounting fresh mount namespaces onto files fails with EINVAL on some
 * kernels; a holder process needs no mount at all, and killing it frees the
 * namespaces, the bpffs and every pin in it.)
 */
async function holdNamespaces(node: LabNode): Promise<number> {
  const holder = spawn('unshare', ['--mount', '--uts', '--propagation', 'private', 'sh', '-c', `mount -t bpf bpf /sys/fs/bpf && mkdir -p ${NODE_PRIVATE_DIRS.join(' ')} && ${NODE_PRIVATE_DIRS.map((dir) => `mount -t tmpfs tmpfs ${dir}`).join(' && ')} && hostname ${node.name} && echo ready && exec sleep infinity`], {stdio: ['ignore', 'pipe', 'pipe'], detached: true})
  let stderr = ''
  holder.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  await new Promise<void>((resolve, reject) => {
    holder.stdout.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve())
    holder.on('close', (code) => reject(new Error(`cannot create namespaces for ${node.name} (exit ${code}): ${stderr.trim()}`)))
  })
  holder.stdout.destroy()
  holder.stderr.destroy()
  holder.unref()
  return holder.pid!
}

/** Serialises underlay picks and the host's lab routes across every lab on this host (whatever mount namespace runs it). */
const HOST_LOCK = '/run/pinion-lab-host.lock'

// Under the lock: pick the first 10.99.S.0/24 no other lab (or anything else) uses on the host, plug the
// host into the lab's bridge with 10.99.S.1, and make sure lab ranges without a more specific route are
// unreachable from the host rather than sent out through its default route.
const CONNECT_HOST = `
exec 9>"$1"; flock 9
link="$2"; underlay="$3"; shift 3
for s in $(seq 0 254); do
  if [ -z "$(ip -4 -o addr show to 10.99.$s.0/24)" ] && [ -z "$(ip -4 route show 10.99.$s.0/24)" ]; then
    ip link add "$link" type veth peer name host0 netns "$underlay" || exit 1
    ip addr add 10.99.$s.1/24 dev "$link" && ip link set "$link" up || { ip link del "$link"; exit 1; }
    for range; do ip -4 route show "$range" | grep -q . || ip route add unreachable "$range" metric 4294967295 || true; done
    echo "$s"; exit 0
  fi
done
echo "no free 10.99.S.0/24 for another lab" >&2; exit 1
`

// Under the lock: the host link goes; the unreachable routes go with the last lab.
const DISCONNECT_HOST = `
exec 9>"$1"; flock 9
ip link del "$2" 2>/dev/null; shift 2
if [ -z "$(ip -4 -o addr show to 10.99.0.0/16)" ]; then for range; do ip route del unreachable "$range" metric 4294967295 2>/dev/null; done; fi
true
`

/** The lab's underlay bridge, with the host plugged into it; returns S of its 10.99.S.0/24. */
export async function createUnderlay(lab: string): Promise<number> {
  const netns = underlayNetns(lab)
  updateState(lab, (state) => void state.netns.push(netns))
  await addNetns(netns)
  await sh(['ip', '-n', netns, 'link', 'add', 'br0', 'type', 'bridge'])
  await sh(['ip', '-n', netns, 'link', 'set', 'br0', 'up'])
  const subnet = Number((await sh(['sh', '-c', CONNECT_HOST, 'connect-host', HOST_LOCK, hostLink(lab), netns, ...LAB_RANGES])).trim())
  updateState(lab, (state) => void (state.underlaySubnet = subnet))
  await sh(['ip', '-n', netns, 'link', 'set', 'host0', 'master', 'br0', 'up'])
  return subnet
}

/** Unplug the host from the lab (idempotent). */
export async function disconnectHost(lab: string): Promise<void> {
  await shQuiet(['sh', '-c', DISCONNECT_HOST, 'disconnect-host', HOST_LOCK, hostLink(lab), ...LAB_RANGES])
}

export async function createNode(lab: string, node: LabNode): Promise<void> {
  updateState(lab, (state) => void state.netns.push(node.netns))
  await addNetns(node.netns)
  node.holderPid = await holdNamespaces(node)
  updateState(lab, (state) => {
    state.pids.push(node.holderPid)
    state.nodes = state.nodes.map((candidate) => (candidate.name === node.name ? node : candidate))
  })
  await sh(['ip', '-n', underlayNetns(lab), 'link', 'add', node.uplink, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', node.netns])
  await sh(['ip', '-n', underlayNetns(lab), 'link', 'set', node.uplink, 'master', 'br0', 'up'])
  await sh(['ip', '-n', node.netns, 'addr', 'add', `${node.underlayIp}/24`, 'dev', 'eth0'])
  await sh(['ip', '-n', node.netns, 'link', 'set', 'eth0', 'up'])
  await sh([...nodeExecPrefix(node), 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1'])
  const relay = await startRelay(lab, node)
  updateState(lab, (state) => void state.pids.push(relay))
  await writeLabCni(node)
}

/** The API server on the node's own loopback (NODE_API_PORT), relayed to its Unix socket. */
async function startRelay(lab: string, node: LabNode): Promise<number> {
  const relay = spawn('nsenter', [`--net=/run/netns/${node.netns}`, '--', ...nodeScript(import.meta.url, './api-relay'), '--port', String(NODE_API_PORT), '--socket', apiSocketPath(lab)], {stdio: ['ignore', 'pipe', 'pipe'], detached: true})
  let stderr = ''
  relay.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  await new Promise<void>((resolve, reject) => {
    relay.stdout.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve())
    relay.on('close', (code) => reject(new Error(`the API relay of ${node.name} exited (${code}): ${stderr.trim()}`)))
  })
  relay.stdout.destroy()
  relay.stderr.destroy()
  relay.unref()
  return relay.pid!
}

/** Name of the lab's own CNI plugin, first in every node's chain. */
export const LAB_CNI_PLUGIN = 'pinion-lab-veth'
export const LAB_CONFLIST = '/etc/cni/net.d/10-pinion-lab.conflist'

/** The node's CNI chain as a kubelet finds it: a conflist naming the lab's veth plugin, the plugin in /opt/cni/bin. */
async function writeLabCni(node: LabNode): Promise<void> {
  const plugin = nodeScript(import.meta.url, './cni-veth').map((part) => `'${part}'`).join(' ')
  const conflist = JSON.stringify({cniVersion: '1.0.0', name: 'pinion-lab', plugins: [{type: LAB_CNI_PLUGIN}]}, null, 2)
  const wrapper = `#!/bin/sh\nexec ${plugin} "$@"`
  await sh([...nodeExecPrefix(node), 'sh', '-c', 'printf "%s\\n" "$1" > "$2" && printf "%s\\n" "$3" > "$4" && chmod 755 "$4"', 'write-cni', conflist, LAB_CONFLIST, wrapper, `/opt/cni/bin/${LAB_CNI_PLUGIN}`])
}

/** Route every node's pod CIDR to that node over the underlay (no overlay in v1). */
export async function routePodCidrs(nodes: readonly LabNode[]): Promise<void> {
  for (const node of nodes) {
    for (const peer of nodes) {
      if (peer.name !== node.name) await sh(['ip', '-n', node.netns, 'route', 'replace', peer.podCidr, 'via', peer.underlayIp])
    }
  }
}

/** Delete network namespaces; idempotent. */
export async function destroyNamespaces(netns: readonly string[]): Promise<void> {
  for (const name of [...netns].reverse()) await shQuiet(['ip', 'netns', 'del', name])
}
