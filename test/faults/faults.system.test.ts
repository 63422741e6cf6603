/*
 * Fault injection against a real three-node lab, through the built CLI as an
 * operator runs it: concurrent writers, a node without Pinion, unwritable
 * output, planted secrets, bad pin roots, deadlines, and the API server
 * going away under `sync --watch`. The lab runs without the agent, so the
 * CLI is the only writer besides the ones each test starts.
 */
import {type ChildProcess, execFileSync, spawn} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {createServer, type Server, type Socket, connect} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import * as k8s from '@kubernetes/client-node'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {Clients} from '../../src/cluster/kubeconfig.js'
import {BpfTool} from '../../src/datapath/bpftool.js'
import {DEFAULT_PIN_ROOT, mapPinPath} from '../../src/datapath/catalogue.js'
import {pinnedMapInfo} from '../../src/datapath/maptool.js'
import {NODE_STATE_FILE} from '../../src/datapath/node-state.js'
import {nodeExecPrefix} from '../../src/lab/config.js'
import type {LabSummary} from '../../src/lab/lab.js'
import {readState} from '../../src/lab/state.js'
import {waitFor} from '../../src/lib/wait.js'
import {DEBUG_NAMESPACE} from '../../src/nodes/debug-pods.js'
import {LocalShell} from '../../src/nodes/local-shell.js'
import {LEASE_NAMESPACE, leaseName} from '../../src/nodes/node-lease.js'
import {startLab, stopLab} from '../helpers/lab.js'
import {REPO_ROOT} from '../helpers/system.js'

let lab: LabSummary
let api: Clients
let dir: string

interface Run {
  code: number | null
  stdout: string
  stderr: string
  ms: number
}

/** The built CLI against the lab, as a child process (so deadlines and exits are real). */
function pinion(args: string[], options: {kubeconfig?: string; onLine?: (line: string) => void} = {}): {child: ChildProcess; done: Promise<Run>} {
  const started = Date.now()
  const child = spawn(`${REPO_ROOT}bin/run.js`, [...args, '--kubeconfig', options.kubeconfig ?? lab.kubeconfig], {env: {...process.env, NO_COLOR: '1'}, stdio: ['ignore', 'pipe', 'pipe']})
  let stdout = ''
  let stderr = ''
  let partial = ''
  child.stdout!.on('data', (chunk: Buffer) => {
    stdout += chunk.toString()
    partial += chunk.toString()
    const lines = partial.split('\n')
    partial = lines.pop()!
    for (const line of lines) options.onLine?.(line)
  })
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const done = new Promise<Run>((resolve) => child.on('exit', (code) => resolve({code, stdout, stderr, ms: Date.now() - started})))
  return {child, done}
}

const run = (...args: string[]) => pinion(args).done

function nodeShell(node: string): LocalShell {
  const layout = readState(lab.name)!.nodes.find((candidate) => candidate.name === node)!
  return new LocalShell(node, nodeExecPrefix(layout))
}

async function installedOn(node: string): Promise<boolean> {
  return (await nodeShell(node).run(['test', '-e', `${DEFAULT_PIN_ROOT}/progs/from_pod`])).exitCode === 0
}

/** Debug pods still there once deletions asked for have had a few seconds to finish. */
/** Each test sets up the nodes it needs: Pinion on these, and not on those. */
async function arrange(on: readonly string[], off: readonly string[] = []): Promise<void> {
  for (const node of off) if (await installedOn(node)) expect((await run('uninstall', '--node', node)).code).toBe(0)
  const missing = []
  for (const node of on) if (!(await installedOn(node))) missing.push(node)
  if (missing.length) {
    const result = await run('install', '--no-agent', ...missing.flatMap((node) => ['--node', node]))
    expect(result.code, result.stderr).toBe(0)
  }
}

const allNodes = () => lab.nodes.map((node) => node.name)

async function debugPods(): Promise<string[]> {
  const list = async () => (await api.core.listNamespacedPod({namespace: DEBUG_NAMESPACE})).items.map((pod) => pod.metadata!.name!).filter((name) => name.startsWith('pinion-debug-'))
  return waitFor('debug pods to be gone', async () => ((await list()).length === 0 ? [] : false), {timeoutMs: 15_000, intervalMs: 200}).catch(() => list())
}

async function leaseHolders(): Promise<(string | undefined)[]> {
  const coordination = api.config.makeApiClient(k8s.CoordinationV1Api)
  return Promise.all(lab.nodes.map(async (node) => {
    const lease = await coordination.readNamespacedLease({namespace: LEASE_NAMESPACE, name: leaseName(node.name)}).catch(() => undefined)
    return lease?.spec?.holderIdentity ?? undefined
  }))
}

/** Make the node's lease look held by `holder` (renewed at `renewed`, 15 s), or free with holder undefined. */
async function holdLease(node: string, holder: string | undefined, renewed = new Date()): Promise<void> {
  const coordination = api.config.makeApiClient(k8s.CoordinationV1Api)
  const name = leaseName(node)
  const lease = await coordination.readNamespacedLease({namespace: LEASE_NAMESPACE, name})
  const time = renewed.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z') as unknown as Date
  lease.spec = {...lease.spec, holderIdentity: holder, leaseDurationSeconds: 15, acquireTime: time, renewTime: time}
  await coordination.replaceNamespacedLease({namespace: LEASE_NAMESPACE, name, body: lease})
}

beforeAll(async () => {
  ;({lab, api} = await startLab('flt', 3, 1))
  dir = mkdtempSync(join(tmpdir(), 'pinion-faults-'))
})

afterAll(async () => {
  await stopLab(lab)
  if (dir) rmSync(dir, {recursive: true, force: true})
})

describe('fault injection (built CLI, three-node lab)', () => {
  it('two installs at once: one writer per node, both succeed, every node installed', async () => {
    await arrange([], allNodes())
    const [first, second] = await Promise.all([run('install', '--no-agent'), run('install', '--no-agent')])
    expect(first.code, first.stderr).toBe(0)
    expect(second.code, second.stderr).toBe(0)
    // The run that came second on a node waited for the first and named it.
    expect(first.stderr + second.stderr).toMatch(/waiting for pinion install \(\S+@\S+, pid \d+\)/)
    for (const node of lab.nodes) expect(await installedOn(node.name)).toBe(true)
    const status = await run('status')
    expect(status.code, status.stdout + status.stderr).toBe(0)
    expect(await leaseHolders()).toEqual(lab.nodes.map(() => undefined))
    expect(await debugPods()).toEqual([])
  })

  it('a lease held by a live run is waited for; one whose holder died is taken over', async () => {
    const node = lab.nodes[0].name
    await arrange([node])
    const hold = (holder: string, renewed: Date) => holdLease(node, holder, renewed)
    await hold('pinion install (someone@elsewhere, pid 1)', new Date())
    const blocked = await run('sync', '--node', node, '--timeout', '4s')
    expect(blocked.code).toBe(1)
    expect(blocked.stderr).toMatch(/waiting for pinion install \(someone@elsewhere, pid 1\)/)
    expect(blocked.stderr).toMatch(/overall deadline \(--timeout 4s\)/)
    // A run killed long ago: its lease is stale and taken at once.
    await hold('pinion install (someone@elsewhere, pid 1)', new Date(Date.now() - 10 * 60_000))
    const sync = await run('sync', '--node', node)
    expect(sync.code, sync.stderr).toBe(0)
    expect(sync.ms).toBeLessThan(30_000)
    expect(await leaseHolders()).toEqual(lab.nodes.map(() => undefined))
  })

  it('sync --watch never re-installs a node uninstalled under it', async () => {
    const node = lab.nodes[1].name
    await arrange(allNodes())
    const lines: string[] = []
    const watch = pinion(['sync', '--watch', '--resync-interval', '1h'], {onLine: (line) => lines.push(line)})
    try {
      await waitFor('the initial sync', () => lines.some((line) => /initial sync/.test(line)), {timeoutMs: 60_000, intervalMs: 100})
      const uninstalled = await run('uninstall', '--node', node)
      expect(uninstalled.code, uninstalled.stderr).toBe(0)
      const before = lines.length
      // Changes make the watch sync again, after the uninstall.
      await api.core.createNamespacedConfigMap({namespace: 'default', body: {metadata: {name: 'unrelated'}}})
      await api.core.patchNamespacedPod({namespace: 'default', name: 'web-1-1', body: {metadata: {labels: {touched: 'yes'}}}}, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch))
      await waitFor('a sync pass after the uninstall', () => lines.slice(before).some((line) => line.includes(`${node}=`)), {timeoutMs: 30_000, intervalMs: 100})
      const pass = lines.slice(before).find((line) => line.includes(`${node}=`))!
      expect(pass).toMatch(new RegExp(`${node}=FAILED\\(not installed`))
      expect(await installedOn(node)).toBe(false)
      expect((await nodeShell(node).run(['test', '-e', NODE_STATE_FILE])).exitCode).not.toBe(0)
    } finally {
      watch.child.kill('SIGINT')
      await watch.done
    }
    expect(await debugPods()).toEqual([])
  })

  it('support-bundle with one node uninstalled: says so for that node, collects the rest, leaves nothing behind', async () => {
    const node = lab.nodes[1].name
    await arrange([lab.nodes[0].name, lab.nodes[2].name], [node])
    const file = join(dir, 'partial-install.tar.gz')
    const result = await run('support-bundle', '-f', file, '--event-window', '500ms')
    expect([0, 3], result.stderr).toContain(result.code)
    expect(result.stderr).not.toMatch(/at \S+ \(|event_header/)
    const manifest = JSON.parse(execFileSync('tar', ['xzf', file, '--wildcards', '*/manifest.json', '-O'], {encoding: 'utf8'}))
    expect(manifest.nodes[node]).toMatchObject({ok: true, pinion: 'not installed'})
    expect(manifest.tasks.filter((task: {scope: string; skipped?: string}) => task.scope === node && task.skipped).map((task: {file: string}) => task.file)).toContain('events.json')
    for (const other of [lab.nodes[0].name, lab.nodes[2].name]) expect(manifest.nodes[other]).toMatchObject({ok: true, pinion: 'installed'})
    const listing = execFileSync('tar', ['tzf', file], {encoding: 'utf8'})
    expect(listing).toMatch(new RegExp(`nodes/${node}/ip-route.txt`))
    expect(listing).toMatch(new RegExp(`nodes/${lab.nodes[0].name}/events.json`))
    // monitor on that node alone says "not installed", exits 1, and removes its debug pod.
    const monitor = await run('monitor', '--node', node, '--duration', '1s')
    expect(monitor.code).toBe(1)
    expect(monitor.stderr).toMatch(new RegExp(`${node}: not installed`))
    const logs = await run('policy-logging', 'logs', '--node', node, '--duration', '1s')
    expect(logs.code).toBe(1)
    expect(logs.stderr).toMatch(new RegExp(`${node}: not installed`))
    expect(await debugPods()).toEqual([])
  })

  it('an unwritable bundle path is refused before anything is collected', async () => {
    const result = await run('support-bundle', '-f', '/proc/no-such-dir/bundle.tar.gz')
    expect(result.code).toBe(2)
    expect(result.stderr.trim()).toBe('Error: cannot write the bundle to /proc/no-such-dir/bundle.tar.gz: no such directory')
    expect(result.ms).toBeLessThan(10_000)
    expect(await debugPods()).toEqual([])
  })

  it('redacts every planted secret from the whole bundle', async () => {
    const planted = ['PLANTED-ENV-7f3a', 'PLANTED-URL-19cc', 'PLANTED-ARG-5d21', 'PLANTED-ARG2-0b8e', 'PLANTED-ANNOT-6e44', 'PLANTED-CMD-2a90']
    const pod: k8s.V1Pod = {
      metadata: {name: 'secretive', namespace: 'default', annotations: {'example.com/api-token': planted[4]}},
      spec: {nodeName: lab.nodes[0].name, containers: [{
        name: 'app',
        image: 'pinion.dev/node-tools:1',
        command: ['sh', '-c', `export DB_PASSWORD=${planted[5]}; exec sleep infinity`],
        args: [`--db-password=${planted[2]}`, '--token', planted[3]],
        env: [{name: 'DB_PASSWORD', value: planted[0]}, {name: 'DATABASE_URL', value: `postgres://admin:${planted[1]}@db:5432/app`}],
      }]},
    }
    // As `kubectl apply` leaves it: the whole object again, in an annotation.
    pod.metadata!.annotations!['kubectl.kubernetes.io/last-applied-configuration'] = JSON.stringify(pod)
    await api.core.createNamespacedPod({namespace: 'default', body: pod})
    try {
      const file = join(dir, 'secrets.tar.gz')
      const result = await run('support-bundle', '-f', file, '--event-window', '500ms')
      expect([0, 3], result.stderr).toContain(result.code)
      const unpacked = mkdtempSync(join(dir, 'secrets-'))
      execFileSync('tar', ['xzf', file, '-C', unpacked])
      const everything = execFileSync('sh', ['-c', 'find . -type f -exec cat {} +'], {cwd: unpacked, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024})
      expect(everything).toContain('secretive')
      expect(everything).toContain('<redacted>')
      for (const value of planted) expect(everything, value).not.toContain(value)
    } finally {
      await api.core.deleteNamespacedPod({namespace: 'default', name: 'secretive'})
    }
  })

  it('a bad pin root is refused, and a failed install at another root leaves the working one alone', async () => {
    const node = lab.nodes[0].name
    await arrange([node])
    const quoted = await run('install', '--no-agent', '--node', node, '--pin-root', "/sys/fs/bpf/y'; true; '")
    expect(quoted.code).toBe(2)
    expect(quoted.stderr.trim().split('\n')).toHaveLength(1)
    const recordBefore = (await nodeShell(node).run(['cat', NODE_STATE_FILE])).stdout.toString()
    const other = await run('install', '--no-agent', '--node', node, '--pin-root', '/sys/fs/bpf/other')
    expect(other.code).toBe(1)
    expect(other.stdout + other.stderr).toMatch(/Pinion is installed on \S+ at \/sys\/fs\/bpf\/pinion/)
    // The default root's datapath still runs: programs attached, record unchanged, nothing pinned at the other root.
    expect(await installedOn(node)).toBe(true)
    expect((await nodeShell(node).run(['cat', NODE_STATE_FILE])).stdout.toString()).toBe(recordBefore)
    expect((await nodeShell(node).run(['test', '-e', '/sys/fs/bpf/other'])).exitCode).not.toBe(0)
    const status = await run('status', '--node', node)
    expect(status.code, status.stdout).toBe(0)
  })

  it('--timeout holds for status, install and sync: cancelled, cleaned up, exit 1 naming the deadline', async () => {
    const status = await run('status', '--timeout', '1ms')
    expect(status.code).toBe(1)
    expect(status.stderr).toMatch(/overall deadline \(--timeout 1ms\)/)
    await arrange(allNodes())
    // One node's lease is held by a live run, so the deadline always comes mid-run, whatever the machine's speed:
    // the other nodes are worked on (debug pods made, leases taken) while that one is waited for.
    const [busy] = allNodes()
    const holder = 'pinion install (someone@elsewhere, pid 1)'
    await holdLease(busy, holder)
    try {
      for (const [command, deadline] of [['install', '2s'], ['sync', '1s']]) {
        const result = await run(command, '--timeout', deadline, ...(command === 'install' ? ['--no-agent'] : []))
        expect(result.code, `${command}: ${result.stderr}`).toBe(1)
        expect(result.stderr).toContain(`waiting for ${holder}`)
        expect(result.stderr).toContain(`overall deadline (--timeout ${deadline})`)
        // The deadline plus the clean-up (debug pods deleted, leases released), not the whole run.
        expect(result.ms).toBeLessThan(Number.parseInt(deadline, 10) * 1000 + 8000)
        expect(await debugPods()).toEqual([])
        expect(await leaseHolders()).toEqual(lab.nodes.map((node) => (node.name === busy ? holder : undefined)))
      }
    } finally {
      await holdLease(busy, undefined)
    }
  })

  it('a plan that does not fit any node is refused before any node is touched, naming the map, the count and the limit', async () => {
    await arrange(allNodes())
    const policyEntries = async () => Promise.all(lab.nodes.map(async (node) => (await new BpfTool(nodeShell(node.name)).dumpMap(mapPinPath(DEFAULT_PIN_ROOT, 'pinion_policy'))).length))
    const before = await policyEntries()
    // 601 CIDRs x 501 ports: about 301,000 entries for each selected pod, over pinion_policy's 262,144.
    const peers = Array.from({length: 601}, (_, index) => ({ipBlock: {cidr: `172.16.${Math.floor(index / 250)}.${index % 250}/32`}}))
    const ports = Array.from({length: 501}, (_, index) => ({protocol: 'TCP', port: 1000 + index}))
    await api.networking.createNamespacedNetworkPolicy({namespace: 'default', body: {metadata: {name: 'too-big'}, spec: {podSelector: {matchLabels: {app: 'web'}}, policyTypes: ['Ingress'], ingress: [{_from: peers, ports}]}}})
    try {
      const result = await run('sync')
      expect(result.code).toBe(1)
      expect(result.stderr).toMatch(/does not fit: pinion_policy needs \d{6} entries, its limit is 262144; nothing was changed/)
      expect(await policyEntries()).toEqual(before)
    } finally {
      await api.networking.deleteNamespacedNetworkPolicy({namespace: 'default', name: 'too-big'})
    }
  }, 120_000)

  it('--map-size sizes the maps install creates; a pinned map keeps its size, another size is refused; bad values exit 2', async () => {
    const [node] = allNodes()
    await arrange([], [node])
    const sizes = async () => new Map([...(await pinnedMapInfo(nodeShell(node), DEFAULT_PIN_ROOT))].map(([name, info]) => [name, info.max]))
    const bad = await run('install', '--no-agent', '--node', node, '--map-size', 'config=4')
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/config cannot be sized; the maps that can are/)
    expect(await installedOn(node)).toBe(false)
    const installed = await run('install', '--no-agent', '--node', node, '--map-size', 'ct=65536', '--map-size', 'polnames=40000')
    expect(installed.code, installed.stderr).toBe(0)
    const created = await sizes()
    expect(created.get('pinion_ct4_v2')).toBe(65536)
    expect(created.get('pinion_polnames')).toBe(40000)
    expect(created.get('pinion_policy')).toBe(262144)
    const status = await run('status', '--node', node)
    expect(status.code, status.stdout + status.stderr).toBe(0)
    const refused = await run('install', '--no-agent', '--node', node, '--map-size', 'ct=131072')
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/pinion_ct4_v2 on \S+ already holds up to 65536 entries.*nothing was changed/)
    // Without --map-size, install and sync keep what is pinned.
    expect((await run('install', '--no-agent', '--node', node)).code).toBe(0)
    expect((await run('sync', '--node', node)).code).toBe(0)
    expect(await sizes()).toEqual(created)
  })

  it('sync --watch rides out the API server going away: few lines, and it catches up when it is back', {timeout: 180_000}, async () => {
    await arrange([lab.nodes[0].name])
    // The CLI reaches the API through a proxy this test can cut: connections refused while it is down.
    const server = new URL(lab.apiServer)
    let sockets: Socket[] = []
    const listen = (proxy: Server, port: number) => new Promise<void>((resolve) => proxy.listen(port, '127.0.0.1', resolve))
    const makeProxy = () => createServer((client) => {
      const upstream = connect(Number(server.port), server.hostname)
      sockets.push(client, upstream)
      client.pipe(upstream).pipe(client)
      client.on('error', () => upstream.destroy())
      upstream.on('error', () => client.destroy())
    })
    let proxy = makeProxy()
    await listen(proxy, 0)
    const port = (proxy.address() as {port: number}).port
    const kubeconfig = join(dir, 'proxied.kubeconfig')
    writeFileSync(kubeconfig, readFileSync(lab.kubeconfig, 'utf8').replace(lab.apiServer, `https://127.0.0.1:${port}`))
    const stdout: string[] = []
    const watch = pinion(['sync', '--watch', '--node', lab.nodes[0].name], {kubeconfig, onLine: (line) => stdout.push(line)})
    try {
      await waitFor('the initial sync', () => stdout.some((line) => /initial sync/.test(line)), {timeoutMs: 60_000, intervalMs: 100})
      // Down for 8 s: every connection cut, new ones refused.
      const closed = new Promise<void>((resolve) => proxy.close(() => resolve()))
      for (const socket of sockets) socket.destroy()
      sockets = []
      await closed
      await new Promise((resolve) => setTimeout(resolve, 8000))
      expect(watch.child.exitCode).toBeNull() // still watching
      proxy = makeProxy()
      await listen(proxy, port)
      await api.networking.createNamespacedNetworkPolicy({namespace: 'default', body: {metadata: {name: 'after-outage'}, spec: {podSelector: {}, policyTypes: ['Ingress']}}})
      const before = stdout.length
      await waitFor('a sync after the outage', () => stdout.slice(before).some((line) => /networkpolicies (changed|relisted)/.test(line) && /=(synced|unchanged)/.test(line)), {timeoutMs: 45_000, intervalMs: 200})
    } finally {
      watch.child.kill('SIGINT')
      proxy.close()
      for (const socket of sockets) socket.destroy()
    }
    const result = await watch.done
    const warnings = result.stderr.split('\n').filter((line) => line.startsWith('warning:'))
    // One line when the watches were lost, one when they were back (at most a sync failure and its recovery besides).
    expect(warnings.length, result.stderr).toBeGreaterThanOrEqual(2)
    expect(warnings.length, result.stderr).toBeLessThanOrEqual(4)
    expect(warnings.join('\n')).toMatch(/lost the API server's watches \(cannot reach the API server/)
    expect(warnings.join('\n')).toMatch(/watching the API server again/)
    expect(result.stderr).not.toMatch(/\[object Object\]|https:\/\/127\.0\.0\.1:\d+\/api/)
    await api.networking.deleteNamespacedNetworkPolicy({namespace: 'default', name: 'after-outage'})
  })
})
