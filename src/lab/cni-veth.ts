/**
 * pinion-lab-veth: the lab's own CNI plugin, first in each lab node's chain.
 * It plumbs a pod as the lab always has (a veth whose host end stays in the
 * node, the pod end holding IP/32 behind a link-local gateway) and reports it
 * as a CNI 1.0 result. The address comes from CNI_ARGS IP= (the lab kubelet
 * allocates it), as the static IPAM plugin takes it.
 */
import {execFile} from 'node:child_process'
import {createHash} from 'node:crypto'
import {promisify} from 'node:util'
import {CNI_ERROR, CniError, type CniResult, runCniPlugin} from '../lib/cni.js'

const run = promisify(execFile)
const GATEWAY = '169.254.1.1'

async function ip(args: string[], netns?: string): Promise<string> {
  const argv = netns ? ['nsenter', `--net=${netns}`, '--', 'ip', ...args] : ['ip', ...args]
  try {
    return (await run(argv[0], argv.slice(1), {encoding: 'utf8'})).stdout
  } catch (error) {
    throw new CniError(CNI_ERROR.IO, `\`${argv.join(' ')}\` failed`, ((error as {stderr?: string}).stderr ?? (error as Error).message).trim())
  }
}

const hostName = (containerId: string) => `lx${createHash('sha256').update(containerId).digest('hex').slice(0, 8)}`

async function mac(name: string, netns?: string): Promise<string> {
  const [link] = JSON.parse(await ip(['-j', 'link', 'show', 'dev', name], netns)) as {address: string}[]
  return link.address
}

await runCniPlugin({
  async ADD(context): Promise<CniResult> {
    const address = context.args.IP
    if (!address || !/^\d+\.\d+\.\d+\.\d+$/.test(address)) throw new CniError(CNI_ERROR.INVALID_CONFIG, 'pinion-lab-veth needs the pod address in CNI_ARGS (IP=a.b.c.d)')
    const pid = /^\/proc\/(\d+)\/ns\/net$/.exec(context.netns)?.[1]
    if (!pid) throw new CniError(CNI_ERROR.INVALID_ENV, `CNI_NETNS must be /proc/PID/ns/net here, not ${context.netns}`)
    const host = hostName(context.containerId)
    const peer = `${host}p`
    await ip(['link', 'add', host, 'type', 'veth', 'peer', 'name', peer])
    await ip(['link', 'set', peer, 'netns', pid])
    await ip(['link', 'set', peer, 'name', context.ifname], context.netns)
    await ip(['link', 'set', host, 'up'])
    await ip(['addr', 'add', `${address}/32`, 'dev', context.ifname], context.netns)
    await ip(['link', 'set', context.ifname, 'up'], context.netns)
    const hostMac = await mac(host)
    await ip(['route', 'add', GATEWAY, 'dev', context.ifname, 'scope', 'link'], context.netns)
    await ip(['route', 'add', 'default', 'via', GATEWAY, 'dev', context.ifname], context.netns)
    await ip(['neigh', 'replace', GATEWAY, 'lladdr', hostMac, 'dev', context.ifname, 'nud', 'permanent'], context.netns)
    await ip(['route', 'replace', `${address}/32`, 'dev', host])
    return {
      cniVersion: context.config.cniVersion,
      interfaces: [{name: host, mac: hostMac}, {name: context.ifname, mac: await mac(context.ifname, context.netns), sandbox: context.netns}],
      ips: [{address: `${address}/32`, gateway: GATEWAY, interface: 1}],
      routes: [{dst: '0.0.0.0/0', gw: GATEWAY}],
    }
  },
  async DEL(context) {
    await ip(['link', 'del', hostName(context.containerId)]).catch(() => undefined) // gone already is fine
  },
  async CHECK(context) {
    await ip(['link', 'show', 'dev', hostName(context.containerId)])
  },
})
