/**
 * Control-plane speed: programming 10,000 Services with 50,000 backends into
 * a node's maps (the real diff-apply path), against iptables-restore and
 * nft -f of the equivalent kube-proxy rules; and `pinion install` on a
 * 10-node lab.
 */
import {execFileSync} from 'node:child_process'
import {DEFAULT_PIN_ROOT} from '../src/datapath/catalogue.js'
import {frontendEntries, type MapEntry} from '../src/datapath/entries.js'
import {install} from '../src/install/install.js'
import {clients} from '../src/cluster/kubeconfig.js'
import {labDown, labUp} from '../src/lab/lab.js'
import {DEFAULT_IMAGE} from '../src/nodes/debug-pods.js'
import {defaultSshOptions} from '../src/nodes/ssh-shell.js'
import {applyEntries} from '../src/sync/apply.js'
import {iptablesRules, nftablesRules} from './kube-proxy-rules.js'
import {backendOf, peakRssMb, printTable, scratchDatapath, timed, vipOf} from './lib.js'

const SERVICES = Number(process.env.SERVICES ?? 10_000)
const BACKENDS = Number(process.env.BACKENDS_PER_SERVICE ?? 5)
const LAB_NODES = Number(process.env.LAB_NODES ?? 10)
const rows: (string | number)[][] = [['task', 'seconds', 'vs pinion', 'peak RSS of this process']]

const dp = await scratchDatapath('cp')
let pinionMs = 0
try {
  const entries: MapEntry[] = []
  for (let i = 0; i < SERVICES; i++) {
    entries.push(...frontendEntries({vip: vipOf(i), port: 80, protocol: 'tcp', revNatIndex: i + 1, backends: Array.from({length: BACKENDS}, (_, j) => ({id: i * BACKENDS + j + 1, ip: backendOf(i * BACKENDS + j), port: 8080}))}))
  }
  const programmed = await timed(() => applyEntries(dp.maps, dp.root, entries))
  pinionMs = programmed.ms
  rows.push([`pinion: program ${SERVICES.toLocaleString('en')} Services / ${(SERVICES * BACKENDS).toLocaleString('en')} backends (${programmed.value.updated.toLocaleString('en')} map entries)`, (programmed.ms / 1000).toFixed(2), '1.00', `${peakRssMb()} MB`])
  const again = await timed(() => applyEntries(dp.maps, dp.root, entries))
  rows.push(['pinion: the same again (diff finds nothing to change)', (again.ms / 1000).toFixed(2), (again.ms / pinionMs).toFixed(2), `${peakRssMb()} MB`])
  // The path before the native map tool: bpftool JSON dumps and hex batches (emptied maps first).
  await applyEntries(dp.maps, dp.root, [])
  const viaBpftool = await timed(() => applyEntries(dp.bpftool, dp.root, entries))
  rows.push(['the same through bpftool (the path before the native map tool)', (viaBpftool.ms / 1000).toFixed(2), (viaBpftool.ms / pinionMs).toFixed(2), `${peakRssMb()} MB`])

  const iptables = iptablesRules(SERVICES, BACKENDS)
  const restore = await timed(() => execFileSync('ip', ['netns', 'exec', dp.netns, 'iptables-restore'], {input: iptables, maxBuffer: 1 << 30}))
  rows.push([`kube-proxy iptables mode: iptables-restore (${iptables.split('\n').length.toLocaleString('en')} lines)`, (restore.ms / 1000).toFixed(2), (restore.ms / pinionMs).toFixed(2), '-'])
  const nft = nftablesRules(SERVICES, BACKENDS)
  const nftLoad = await timed(() => execFileSync('ip', ['netns', 'exec', dp.netns, 'nft', '-f', '-'], {input: nft, maxBuffer: 1 << 30}))
  rows.push([`kube-proxy nftables mode: nft -f (${nft.split('\n').length.toLocaleString('en')} lines)`, (nftLoad.ms / 1000).toFixed(2), (nftLoad.ms / pinionMs).toFixed(2), '-'])
} finally {
  dp.destroy()
}

const lab = await timed(() => labUp({name: 'bench', nodes: LAB_NODES, podsPerNode: 2}))
try {
  const access = {transport: 'pod' as const, image: DEFAULT_IMAGE, concurrency: 8, podStartTimeoutMs: 60_000, ssh: defaultSshOptions(), sshHosts: {}}
  const installed = await timed(() => install(clients({kubeconfig: lab.value.kubeconfig}), {nodes: [], access, pinRoot: DEFAULT_PIN_ROOT, progress: false, dryRun: false}))
  const failed = installed.value.nodes.filter((outcome) => !outcome.ok)
  if (failed.length) throw new Error(`install failed on ${failed.map((outcome) => outcome.node).join(', ')}`)
  rows.push([`lab up, ${LAB_NODES} nodes x 2 pods (for reference)`, (lab.ms / 1000).toFixed(2), '-', '-'])
  rows.push([`pinion install on the ${LAB_NODES}-node lab`, (installed.ms / 1000).toFixed(2), '-', `${peakRssMb()} MB`])
} finally {
  await labDown('bench')
}
printTable('Control plane', rows)
