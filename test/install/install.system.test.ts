/*
 * install / sync / status / uninstall against a two-node lab with four web
 * pods (web-N-M on node N), real traffic through the installed datapath.
 */
import {spawn} from 'node:child_process'
import {PassThrough, Writable} from 'node:stream'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {execInPod} from '../../src/cluster/exec.js'
import type {Clients} from '../../src/cluster/kubeconfig.js'
import {DEFAULT_PIN_ROOT} from '../../src/datapath/catalogue.js'
import {readSnapshot} from '../../src/cluster/snapshot.js'
import {install, uninstall} from '../../src/install/install.js'
import {ctEntryV1} from '../../src/sync/migrate.js'
import {installNode, uninstallNode} from '../../src/sync/node-install.js'
import {dumpMap} from '../../src/maps/dump.js'
import {withNodeAccess} from '../../src/nodes/node-access.js'
import {ClusterPlanner} from '../../src/sync/plan.js'
import {NODE_STATE_FILE} from '../../src/datapath/node-state.js'
import {clusterStatus} from '../../src/install/status.js'
import type {LabSummary} from '../../src/lab/lab.js'
import {waitFor} from '../../src/lib/wait.js'
import {DEBUG_NAMESPACE, DEFAULT_IMAGE} from '../../src/nodes/debug-pods.js'
import {runOnNodes} from '../../src/nodes/run-command.js'
import {defaultSshOptions} from '../../src/nodes/ssh-shell.js'
import {startLab, stopLab} from '../helpers/lab.js'
import {REPO_ROOT} from '../helpers/system.js'
import {type ClusterOptions, sync} from '../../src/sync/cluster-sync.js'

let lab: LabSummary
let api: Clients
const access = {transport: 'pod' as const, image: DEFAULT_IMAGE, concurrency: 4, podStartTimeoutMs: 20_000, ssh: defaultSshOptions(), sshHosts: {}}
const options: ClusterOptions = {nodes: [], access, pinRoot: DEFAULT_PIN_ROOT, progress: false}
const ips = new Map<string, string>()
let vip = ''

async function probe(from: string, protocol: 'tcp' | 'udp', host: string, port: number): Promise<{ok: boolean; reply?: string; error?: string}> {
  const result = await execInPod(api.config, 'default', from, 'web', [process.execPath, `${REPO_ROOT}dist/lab/probe.js`, protocol, host, String(port), '1500'])
  return JSON.parse(result.stdout.toString())
}

async function policy(name: string, spec: object): Promise<void> {
  await api.networking.createNamespacedNetworkPolicy({namespace: 'default', body: {metadata: {name}, spec}})
}

async function flowEpoch(node: string): Promise<number> {
  const [config] = await dumpMap(api, access, {map: 'config', nodes: [node], filters: [], raw: false, pinRoot: DEFAULT_PIN_ROOT})
  return config.rows![0].flowEpoch as number
}

async function syncAll(): Promise<void> {
  const outcomes = await sync(api, options)
  expect(outcomes.every((outcome) => outcome.ok), JSON.stringify(outcomes.map((outcome) => outcome.error))).toBe(true)
}

beforeAll(async () => {
  ;({lab, api} = await startLab('inst', 2, 2))
  for (const pod of (await api.core.listNamespacedPod({namespace: 'default'})).items) ips.set(pod.metadata!.name!, pod.status!.podIP!)
  vip = (await api.core.readNamespacedService({namespace: 'default', name: 'web'})).spec!.clusterIP!
})

afterAll(async () => {
  await stopLab(lab)
})

describe('pinion install', () => {
  it('--dry-run runs the preflight, plans, and changes nothing', async () => {
    const {nodes: outcomes} = await install(api, {...options, dryRun: true})
    expect(outcomes.map((outcome) => [outcome.ok, outcome.action, outcome.preflight?.ok])).toEqual([[true, 'would install pinion.bpf.o', true], [true, 'would install pinion.bpf.o', true]])
    expect(outcomes[0].plan!.endpoints).toBe(2)
    const states = await clusterStatus(api, access, [], DEFAULT_PIN_ROOT)
    expect(states.map((state) => state.health)).toEqual(['not installed', 'not installed'])
  })

  it('installs on every node, and a second run changes nothing', async () => {
    const {nodes: first} = await install(api, {...options, dryRun: false})
    expect(first.map((outcome) => outcome.action)).toEqual(['installed', 'installed'])
    const {nodes: second} = await install(api, {...options, dryRun: false})
    expect(second.map((outcome) => [outcome.action, outcome.result!.changes.updated, outcome.result!.changes.deleted])).toEqual([['unchanged', 0, 0], ['unchanged', 0, 0]])
    const states = await clusterStatus(api, access, [], DEFAULT_PIN_ROOT)
    expect(states.map((state) => [state.health, state.attachedInterfaces, state.endpoints])).toEqual([['healthy', 2, 2], ['healthy', 2, 2]])
    expect(states[0].programs).toEqual(['from_pod', 'to_pod'])
  })

  it('carries pod-to-pod traffic across nodes and balances a ClusterIP over its backends', async () => {
    expect((await probe('web-1-1', 'tcp', ips.get('web-2-1')!, 80)).reply).toMatch(/^pinion default\/web-2-1 tcp 80 from 10\.244\.1\./)
    const backends = new Set<string>()
    for (let i = 0; i < 16; i++) {
      const answer = await probe('web-1-1', 'tcp', vip, 80)
      expect(answer.ok).toBe(true)
      backends.add(/default\/(\S+)/.exec(answer.reply!)![1])
    }
    expect(backends.size).toBeGreaterThanOrEqual(2)
    expect((await probe('web-2-1', 'udp', vip, 53)).reply).toMatch(/^pinion default\/web-\d-\d udp 53/)
  })

  it('keeps an established TCP connection across an upgrade of the programs', async () => {
    const stdin = new PassThrough()
    let echoed = ''
    const stdout = new Writable({write: (chunk: Buffer, _encoding, done) => ((echoed += chunk.toString()), done())})
    const session = execInPod(api.config, 'default', 'web-1-1', 'web', ['nc', '-N', ips.get('web-2-1')!, '7'], {stdin, stdout})
    stdin.write('before\n')
    await waitFor('the first echo', () => echoed.includes('before'))
    // Pretend an older datapath is installed, so install takes the upgrade path.
    await runOnNodes(api, access, [], ['sed', '-i', 's/"objectSha": "[0-9a-f]*"/"objectSha": "older"/', NODE_STATE_FILE], 10_000)
    // ... whose conntrack had the first release's layout (pinion_ct4).
    const retired = `${DEFAULT_PIN_ROOT}/maps/pinion_ct4`
    const created = await runOnNodes(api, access, [], ['bpftool', 'map', 'create', retired, 'type', 'lru_hash', 'key', '16', 'value', String(ctEntryV1.size), 'entries', '64', 'name', 'pinion_ct4'], 10_000)
    expect(created.map((result) => result.exitCode)).toEqual([0, 0])
    const {nodes: upgraded} = await install(api, {...options, dryRun: false})
    expect(upgraded.map((outcome) => outcome.action)).toEqual(['upgraded', 'upgraded'])
    const left = await runOnNodes(api, access, [], ['test', '-e', retired], 10_000)
    expect(left.map((result) => result.exitCode)).toEqual([1, 1]) // retired maps are unpinned
    stdin.write('after\n')
    await waitFor('the echo after the upgrade', () => echoed.includes('after'))
    stdin.end()
    await session
  })
})

describe('policies and sync', () => {
  it('a default-deny policy blocks; an allow rule lets through only what it names', async () => {
    await policy('deny-all', {podSelector: {}, policyTypes: ['Ingress']})
    await syncAll()
    expect((await probe('web-1-1', 'tcp', ips.get('web-2-1')!, 80)).error).toBe('timeout')
    await policy('allow-http', {podSelector: {matchLabels: {app: 'web'}}, ingress: [{from: [{podSelector: {matchLabels: {app: 'web'}}}], ports: [{protocol: 'TCP', port: 'http'}]}]})
    await syncAll()
    expect((await probe('web-1-1', 'tcp', ips.get('web-2-1')!, 80)).ok).toBe(true)
    expect((await probe('web-1-1', 'tcp', vip, 80)).ok).toBe(true)
    expect((await probe('web-1-1', 'udp', ips.get('web-2-1')!, 53)).error).toBe('timeout')
  })

  it('deleting a policy or a pod and running sync updates the maps', async () => {
    const epoch = await flowEpoch(lab.nodes[0].name)
    await api.networking.deleteNamespacedNetworkPolicy({namespace: 'default', name: 'allow-http'})
    await syncAll()
    expect(await flowEpoch(lab.nodes[0].name)).toBeGreaterThan(epoch) // cached flows see the change
    expect((await probe('web-1-1', 'tcp', ips.get('web-2-1')!, 80)).error).toBe('timeout')
    await api.core.deleteNamespacedPod({namespace: 'default', name: 'web-2-2'})
    await waitFor('the slice to drop web-2-2', async () => {
      const slices = (await api.discovery.listNamespacedEndpointSlice({namespace: 'default'})).items
      return !slices.some((slice) => slice.endpoints.some((endpoint) => endpoint.targetRef?.name === 'web-2-2'))
    })
    await syncAll()
    const [node2] = await clusterStatus(api, access, [lab.nodes[1].name], DEFAULT_PIN_ROOT)
    expect(node2.endpoints).toBe(1)
    const backends = await runOnNodes(api, access, [lab.nodes[0].name], ['bpftool', '-j', 'map', 'dump', 'pinned', `${DEFAULT_PIN_ROOT}/maps/pinion_backends`], 10_000)
    const addresses = (JSON.parse(backends[0].stdout!) as {formatted: {value: {address: number}}}[]).map((row) => row.formatted.value.address)
    expect(addresses).toHaveLength(3 * 3) // web-1-1, web-1-2, web-2-1 behind http, dns and ICMP
  })

  it('sync --watch follows the API and keeps maps current', async () => {
    const cli = spawn(`${REPO_ROOT}bin/run.js`, ['sync', '--watch', '--kubeconfig', lab.kubeconfig], {stdio: ['ignore', 'pipe', 'pipe']})
    let output = ''
    cli.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
    const exited = new Promise<number | null>((resolve) => cli.on('exit', resolve))
    try {
      await waitFor('the initial sync', () => output.includes('initial sync'), {timeoutMs: 30_000})
      await policy('watched', {podSelector: {matchLabels: {app: 'web'}}, policyTypes: ['Egress']})
      await waitFor('egress isolation from the watch', async () => {
        const dumps = await dumpMap(api, access, {map: 'endpoint', nodes: [lab.nodes[0].name], filters: [], raw: false, pinRoot: DEFAULT_PIN_ROOT})
        return dumps[0].rows!.every((row) => row.egressIsolatedBy === 'default/watched (default deny)')
      }, {timeoutMs: 30_000, intervalMs: 500})
      // The watch reports a sync after it has written the maps.
      await waitFor('the watch to report the change', () => /networkpolicies changed/.test(output), {timeoutMs: 10_000})
    } finally {
      cli.kill('SIGTERM')
    }
    expect(await exited).toBe(143) // stopped by SIGTERM after deleting its debug pods
    await api.networking.deleteNamespacedNetworkPolicy({namespace: 'default', name: 'watched'})
    await syncAll()
    expect((await api.core.listNamespacedPod({namespace: DEBUG_NAMESPACE})).items).toHaveLength(0)
  })

  it('rolls a node back when an install fails part-way', async () => {
    const broken = {name: 'broken.bpf.o', data: Buffer.from('not an ELF object'), sha: 'broken', version: 'broken', requirements: {helpers: [], kfuncs: []}}
    const plans = new ClusterPlanner(await readSnapshot(api)).plan()
    await withNodeAccess(api, access, async (session) => {
      // An installed node keeps its programs, attachments and record.
      const installed = await session.shell(lab.nodes[0].name)
      await expect(installNode(installed, plans[0], broken, DEFAULT_PIN_ROOT, () => {})).rejects.toThrow()
      expect((await installed.run(['ls', DEFAULT_PIN_ROOT])).stdout.toString().split('\n').filter(Boolean).sort()).toEqual(['maps', 'progs'])
      // A fresh node is left with nothing at all.
      await uninstallNode(await session.shell(lab.nodes[1].name), DEFAULT_PIN_ROOT)
      const fresh = await session.shell(lab.nodes[1].name)
      await expect(installNode(fresh, plans[1], broken, DEFAULT_PIN_ROOT, () => {})).rejects.toThrow()
      expect((await fresh.run(['test', '-e', DEFAULT_PIN_ROOT])).exitCode).not.toBe(0)
      expect((await fresh.run(['test', '-e', NODE_STATE_FILE])).exitCode).not.toBe(0)
    })
    const [node1, node2] = await clusterStatus(api, access, [], DEFAULT_PIN_ROOT)
    expect([node1.health, node1.attachedInterfaces]).toEqual(['healthy', 2])
    expect([node2.health, node2.attachedInterfaces]).toEqual(['not installed', 0])
    // deny-all still isolates node-1's pods for ingress; egress from them still flows.
    expect((await probe('web-1-2', 'tcp', ips.get('web-2-1')!, 80)).ok).toBe(true)
    expect((await install(api, {...options, dryRun: false})).nodes.map((outcome) => outcome.action)).toEqual(['unchanged', 'installed'])
  })

  it('uninstall restores plain connectivity and is idempotent', async () => {
    const removed = await uninstall(api, options)
    expect(removed.map((outcome) => outcome.action)).toEqual(['removed (2 interfaces)', 'removed (1 interfaces)'])
    expect((await probe('web-1-1', 'tcp', ips.get('web-2-1')!, 80)).ok).toBe(true)
    expect((await uninstall(api, options)).map((outcome) => outcome.action)).toEqual(['not installed', 'not installed'])
    const states = await clusterStatus(api, access, [], DEFAULT_PIN_ROOT)
    expect(states.map((state) => [state.health, state.attachedInterfaces, state.programs.length])).toEqual([['not installed', 0, 0], ['not installed', 0, 0]])
  })
})
