/**
 * Service forwarding through kube-proxy-shaped rules (iptables mode, nftables
 * mode) and through Pinion, with 1,000 and 10,000 Services in the node:
 * TCP connection rate and first-packet (connect) latency to one Service.
 *
 *   [client netns] 10.244.1.10 <-veth-> [node netns: rules or Pinion] <-veth-> [server netns] backend addresses
 */
import {type ChildProcess, execFileSync, spawn} from 'node:child_process'
import {mkdtempSync, rmdirSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {attachPrograms, detachPrograms} from '../src/datapath/attach.js'
import {BpfTool} from '../src/datapath/bpftool.js'
import {mapPinPath} from '../src/datapath/catalogue.js'
import {byMap, endpointEntry, frontendEntries, ipcacheEntry, type MapEntry} from '../src/datapath/entries.js'
import {addNetns, addPodInterface, delNetns, setSysctl, sh} from '../src/lab/netns.js'
import {LocalShell} from '../src/nodes/local-shell.js'
import {iptablesRules, nftablesRules} from './kube-proxy-rules.js'
import {backendOf, peakRssMb, printTable, timed, vipOf} from './lib.js'

const SIZES = (process.env.SIZES ?? '1000,10000').split(',').map(Number)
const BACKENDS = 5
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 2000)
const tag = process.pid
const node = `pinion-bsf-n-${tag}`
const client = `pinion-bsf-c-${tag}`
const server = `pinion-bsf-s-${tag}`
const CLIENT_IP = '10.244.1.10'
const backends = Array.from({length: BACKENDS}, (_, j) => backendOf(j))
let serverProcess: ChildProcess | undefined
const root = mkdtempSync(join(tmpdir(), 'pinion-bsf-'))

async function measure(): Promise<{perSecond: number; p50us: number; p99us: number; failures: number}> {
  const out = execFileSync('ip', ['netns', 'exec', client, process.execPath, '--import', 'tsx', new URL('./tcp-client.ts', import.meta.url).pathname, vipOf(0), '80', String(CONNECTIONS)], {encoding: 'utf8'})
  return JSON.parse(out)
}

const rows: (string | number)[][] = [['services', 'forwarding', 'setup s', 'connections/s', 'p50 connect µs', 'p99 connect µs', 'failures', 'rate vs iptables', 'p99 vs iptables']]
try {
  for (const name of [node, client, server]) await addNetns(name)
  await setSysctl(node, 'net.ipv4.ip_forward', '1')
  await sh(['ip', '-n', node, 'addr', 'add', '10.244.1.1/32', 'dev', 'lo'])
  const c = await addPodInterface({nodeNetns: node, podNetns: client, hostIf: 'hc', podIp: CLIENT_IP})
  const s = await addPodInterface({nodeNetns: node, podNetns: server, hostIf: 'hs', podIp: backends[0]})
  for (const ip of backends.slice(1)) {
    await sh(['ip', '-n', server, 'addr', 'add', `${ip}/32`, 'dev', 'eth0'])
    await sh(['ip', '-n', node, 'route', 'replace', `${ip}/32`, 'dev', 'hs'])
  }
  serverProcess = spawn('ip', ['netns', 'exec', server, process.execPath, '--import', 'tsx', new URL('../src/lab/pod-server.ts', import.meta.url).pathname, '--name', 'bench/server', '--tcp', '8080', '--udp', ''], {stdio: ['ignore', 'pipe', 'inherit']})
  await new Promise<void>((resolve) => serverProcess!.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve()))

  execFileSync('mount', ['-t', 'bpf', 'bpf', root])
  const shell = new LocalShell(node, ['ip', 'netns', 'exec', node])
  const bpftool = new BpfTool(shell)
  await bpftool.loadAll(new URL('../dist/bpf/pinion.bpf.o', import.meta.url).pathname, `${root}/progs`, `${root}/maps`)

  for (const size of SIZES) {
    const results: Record<string, {perSecond: number; p50us: number; p99us: number; failures: number}> = {}
    const modes: [string, () => Promise<unknown>, () => Promise<unknown>][] = [
      ['kube-proxy iptables', async () => execFileSync('ip', ['netns', 'exec', node, 'iptables-restore'], {input: iptablesRules(size, BACKENDS), maxBuffer: 1 << 30}), () => sh(['ip', 'netns', 'exec', node, 'iptables', '-t', 'nat', '-F'])],
      ['kube-proxy nftables', async () => execFileSync('ip', ['netns', 'exec', node, 'nft', '-f', '-'], {input: nftablesRules(size, BACKENDS), maxBuffer: 1 << 30}), () => sh(['ip', 'netns', 'exec', node, 'nft', 'flush', 'ruleset'])],
      ['pinion (tc eBPF)', async () => {
        const entries: MapEntry[] = [
          endpointEntry({ip: CLIENT_IP, ifindex: c.ifindex, endpointId: 1, identity: 1000}),
          ...backends.map((ip, j) => endpointEntry({ip, ifindex: s.ifindex, endpointId: 10 + j, identity: 2000})),
          ipcacheEntry('10.244.0.0/16', 3000),
        ]
        for (let i = 0; i < size; i++) entries.push(...frontendEntries({vip: vipOf(i), port: 80, protocol: 'tcp', revNatIndex: i + 1, backends: Array.from({length: BACKENDS}, (_, j) => ({id: i * BACKENDS + j + 1, ip: i === 0 ? backends[j] : backendOf(i * BACKENDS + j), port: 8080}))}))
        for (const [map, items] of byMap(entries)) for (let k = 0; k < items.length; k += 20_000) await bpftool.batch(mapPinPath(root, map), items.slice(k, k + 20_000))
        await attachPrograms(shell, ['hc', 'hs'], `${root}/progs`)
      }, () => detachPrograms(shell, ['hc', 'hs'])],
    ]
    for (const [mode, setUp, tearDown] of modes) {
      const setup = await timed(setUp)
      results[mode] = await measure()
      await tearDown()
      const base = results['kube-proxy iptables']
      rows.push([size.toLocaleString('en'), mode, (setup.ms / 1000).toFixed(2), results[mode].perSecond, results[mode].p50us, results[mode].p99us, results[mode].failures, (results[mode].perSecond / base.perSecond).toFixed(2), (results[mode].p99us / base.p99us).toFixed(2)])
    }
  }
} finally {
  serverProcess?.kill('SIGKILL')
  for (const name of [client, server, node]) await delNetns(name)
  try {
    execFileSync('umount', [root])
  } catch {
    // not mounted
  }
  rmdirSync(root)
}
printTable(`Service forwarding, ${CONNECTIONS} sequential TCP connections to one Service with ${BACKENDS} backends (peak RSS of this process: ${peakRssMb()} MB)`, rows)
