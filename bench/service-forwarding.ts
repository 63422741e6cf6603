/**
 * Service forwarding through kube-proxy-shaped rules (iptables mode, nftables
 * mode) and through Pinion, with 1,000, 10,000 and 30,000 Services in the node:
 * TCP connection rate, p50/p99 connect latency and softirq CPU per connection,
 * to the Service whose rule comes first in KUBE-SERVICES and to the one whose
 * rule comes last (iptables' worst case: every packet of a new flow walks the list).
 *
 *   [client netns] 10.244.1.10 <-veth-> [node netns: rules or Pinion] <-veth-> [server netns] backend addresses
 *
 * The load is bench/tools/connstorm.c (compiled here): THREADS threads connecting
 * and resetting in a loop for DURATION ms, and a C accept loop as the server, so
 * neither end is a Node.js process.
 */
import {type ChildProcess, execFileSync, spawn} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {attachPrograms, detachPrograms} from '../src/datapath/attach.js'
import {BpfTool} from '../src/datapath/bpftool.js'
import {mapPinPath} from '../src/datapath/catalogue.js'
import {byMap, endpointEntry, frontendEntries, ipcacheEntry, type MapEntry} from '../src/datapath/entries.js'
import {localMapToolPath, MapTool} from '../src/datapath/maptool.js'
import {addNetns, addPodInterface, delNetns, setSysctl, sh} from '../src/lab/netns.js'
import {LocalShell} from '../src/nodes/local-shell.js'
import {iptablesRules, nftablesRules} from './kube-proxy-rules.js'
import {backendOf, peakRssMb, printTable, timed, vipOf} from './lib.js'

const SIZES = (process.env.SIZES ?? '1000,10000,30000').split(',').map(Number)
const BACKENDS = 5
const THREADS = Number(process.env.THREADS ?? 4)
const DURATION_MS = Number(process.env.DURATION_MS ?? 3000)
/** Rule loads that take longer are reported as such and not measured (nft -f grows steeply with the Service count). */
const SETUP_TIMEOUT_MS = Number(process.env.SETUP_TIMEOUT_MS ?? 180_000)
const tag = process.pid
const node = `pinion-bsf-n-${tag}`
const client = `pinion-bsf-c-${tag}`
const server = `pinion-bsf-s-${tag}`
const CLIENT_IP = '10.244.1.10'
let serverProcess: ChildProcess | undefined
const root = mkdtempSync(join(tmpdir(), 'pinion-bsf-'))
const connstorm = join(root, 'connstorm')
const bpffs = join(root, 'bpffs')

interface Measured {
  perSecond: number
  p50us: number
  p99us: number
  failures: number
  connections: number
  softirqUs: number
}

/** Time all CPUs spent in softirq so far (the dataplane's own work: netfilter or tc on the veths), in µs. */
function softirqUs(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/)
  return (Number(cpu[7]) * 1e6) / 100 // USER_HZ
}

function measure(vip: string): Measured {
  const before = softirqUs()
  const out = execFileSync('ip', ['netns', 'exec', client, connstorm, 'connect', vip, '80', String(THREADS), String(DURATION_MS)], {encoding: 'utf8'})
  const result = JSON.parse(out) as Omit<Measured, 'softirqUs'>
  return {...result, softirqUs: (softirqUs() - before) / Math.max(1, result.connections)}
}

/** Backend addresses of Service i (as kube-proxy-rules.ts and the Pinion entries give them). */
const backendsOf = (i: number) => Array.from({length: BACKENDS}, (_, j) => backendOf(i * BACKENDS + j))

const rows: (string | number)[][] = [['services', 'target', 'forwarding', 'setup s', 'connections/s', 'p50 µs', 'p99 µs', 'softirq µs/conn', 'failures', 'rate vs iptables', 'p99 vs iptables']]
try {
  execFileSync('clang', ['-O2', '-pthread', '-o', connstorm, new URL('./tools/connstorm.c', import.meta.url).pathname])
  for (const name of [node, client, server]) await addNetns(name)
  await setSysctl(node, 'net.ipv4.ip_forward', '1')
  await sh(['ip', '-n', node, 'addr', 'add', '10.244.1.1/32', 'dev', 'lo'])
  const c = await addPodInterface({nodeNetns: node, podNetns: client, hostIf: 'hc', podIp: CLIENT_IP})
  const first = backendsOf(0)
  const s = await addPodInterface({nodeNetns: node, podNetns: server, hostIf: 'hs', podIp: first[0]})
  // The server holds the backends of the first Service and of the last one at every size.
  for (const ip of [...first.slice(1), ...SIZES.flatMap((size) => backendsOf(size - 1))]) {
    await sh(['ip', '-n', server, 'addr', 'add', `${ip}/32`, 'dev', 'eth0'])
    await sh(['ip', '-n', node, 'route', 'replace', `${ip}/32`, 'dev', 'hs'])
  }
  serverProcess = spawn('ip', ['netns', 'exec', server, connstorm, 'serve', '8080'], {stdio: ['ignore', 'pipe', 'inherit']})
  await new Promise<void>((resolve) => serverProcess!.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve()))

  execFileSync('mkdir', ['-p', bpffs])
  execFileSync('mount', ['-t', 'bpf', 'bpf', bpffs])
  const shell = new LocalShell(node, ['ip', 'netns', 'exec', node])
  await new BpfTool(shell).loadAll(new URL('../dist/bpf/pinion.bpf.o', import.meta.url).pathname, `${bpffs}/progs`, `${bpffs}/maps`)
  const maps = new MapTool(shell, localMapToolPath())

  for (const size of SIZES) {
    const modes: [string, () => Promise<unknown>, () => Promise<unknown>][] = [
      ['kube-proxy iptables', async () => execFileSync('ip', ['netns', 'exec', node, 'iptables-restore'], {input: iptablesRules(size, BACKENDS), maxBuffer: 1 << 30, timeout: SETUP_TIMEOUT_MS}), () => sh(['ip', 'netns', 'exec', node, 'iptables', '-t', 'nat', '-F'])],
      ['kube-proxy nftables', async () => execFileSync('ip', ['netns', 'exec', node, 'nft', '-f', '-'], {input: nftablesRules(size, BACKENDS), maxBuffer: 1 << 30, timeout: SETUP_TIMEOUT_MS}), () => sh(['ip', 'netns', 'exec', node, 'nft', 'flush', 'ruleset'])],
      ['pinion (tc eBPF)', async () => {
        const entries: MapEntry[] = [
          endpointEntry({ip: CLIENT_IP, ifindex: c.ifindex, endpointId: 1, identity: 1000}),
          ...[...first, ...backendsOf(size - 1)].map((ip, j) => endpointEntry({ip, ifindex: s.ifindex, endpointId: 10 + j, identity: 2000})),
          ipcacheEntry('10.244.0.0/16', 3000),
        ]
        for (let i = 0; i < size; i++) entries.push(...frontendEntries({vip: vipOf(i), port: 80, protocol: 'tcp', revNatIndex: i + 1, backends: backendsOf(i).map((ip, j) => ({id: i * BACKENDS + j + 1, ip, port: 8080}))}))
        for (const [map, items] of byMap(entries)) await maps.batch(mapPinPath(bpffs, map), items)
        await attachPrograms(shell, ['hc', 'hs'], `${bpffs}/progs`)
      }, async () => {
        await detachPrograms(shell, ['hc', 'hs'])
        for (const map of ['pinion_services_v2', 'pinion_backends', 'pinion_revnat_v2', 'pinion_endpoint', 'pinion_ct4_v2']) await maps.batch(mapPinPath(bpffs, map), [], (await maps.dumpMap(mapPinPath(bpffs, map))).map((row) => row.key))
      }],
    ]
    const results = new Map<string, Measured>()
    for (const [mode, setUp, tearDown] of modes) {
      let setup: {ms: number}
      try {
        setup = await timed(setUp)
      } catch (error) {
        if ((error as {code?: string}).code !== 'ETIMEDOUT') throw error
        const row = [size.toLocaleString('en'), '-', mode, `> ${SETUP_TIMEOUT_MS / 1000}`, 'not measured (rules not loaded in time)', '', '', '', '', '', '']
        rows.push(row)
        console.log(row.join('  '))
        await tearDown()
        continue
      }
      for (const [target, vip] of [['first rule', vipOf(0)], ['last rule', vipOf(size - 1)]]) {
        const result = measure(vip)
        results.set(`${mode}/${target}`, result)
        const base = results.get(`kube-proxy iptables/${target}`)!
        const row = [size.toLocaleString('en'), target, mode, (setup.ms / 1000).toFixed(2), result.perSecond, result.p50us, result.p99us, result.softirqUs.toFixed(1), result.failures, (result.perSecond / base.perSecond).toFixed(2), (result.p99us / base.p99us).toFixed(2)]
        rows.push(row)
        console.log(row.join('  ')) // as it goes: a long run still shows what it measured
      }
      await tearDown()
    }
  }
} finally {
  serverProcess?.kill('SIGKILL')
  for (const name of [client, server, node]) await delNetns(name)
  try {
    execFileSync('umount', [bpffs], {stdio: 'ignore'})
  } catch {
    // not mounted
  }
  rmSync(root, {recursive: true, force: true})
}
printTable(`Service forwarding: ${THREADS} client threads connecting and resetting for ${DURATION_MS} ms to one Service with ${BACKENDS} backends (peak RSS of this process: ${peakRssMb()} MB)`, rows)
