import {spawnSync} from 'node:child_process'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {execInPod} from '../../src/cluster/exec.js'
import type {Clients} from '../../src/cluster/kubeconfig.js'
import {DEFAULT_PIN_ROOT} from '../../src/datapath/catalogue.js'
import {install, uninstall} from '../../src/install/install.js'
import type {LabSummary} from '../../src/lab/lab.js'
import {monitor, type MonitorOutput} from '../../src/monitor/monitor.js'
import {policyLogs, setLoggingConfig} from '../../src/monitor/policy-logging.js'
import {DEFAULT_IMAGE} from '../../src/nodes/debug-pods.js'
import {defaultSshOptions} from '../../src/nodes/ssh-shell.js'
import {startLab, stopLab} from '../helpers/lab.js'
import {REPO_ROOT} from '../helpers/system.js'
import {type LogSummary, type PolicyLogRecord} from '../../src/datapath/policy-log-records.js'

let lab: LabSummary
let api: Clients
let target = ''
const access = {transport: 'pod' as const, image: DEFAULT_IMAGE, concurrency: 4, podStartTimeoutMs: 20_000, ssh: defaultSshOptions(), sshHosts: {}}
const probe = async (protocol: 'tcp' | 'udp', port: number) => JSON.parse((await execInPod(api.config, 'default', 'web-1-1', 'web', [process.execPath, `${REPO_ROOT}dist/lab/probe.js`, protocol, target, String(port), '500'])).stdout.toString())

/** Run `collect` until `traffic` is done plus a moment for the last events. */
async function during<T>(collect: (signal: AbortSignal, ready: () => void) => Promise<T>, traffic: () => Promise<void>): Promise<T> {
  const stop = new AbortController()
  let markReady = () => {}
  const ready = new Promise<void>((resolve) => (markReady = resolve))
  const running = collect(stop.signal, markReady)
  await ready
  await traffic()
  setTimeout(() => stop.abort(), 1000)
  return running
}

beforeAll(async () => {
  ;({lab, api} = await startLab('mon', 2, 1))
  await api.networking.createNamespacedNetworkPolicy({namespace: 'default', body: {metadata: {name: 'web-http'}, spec: {podSelector: {matchLabels: {app: 'web'}}, ingress: [{ports: [{port: 80}]}]}}})
  expect((await install(api, {nodes: [], access, pinRoot: DEFAULT_PIN_ROOT, progress: false, dryRun: false})).nodes.every((outcome) => outcome.ok)).toBe(true)
  target = (await api.core.readNamespacedPod({namespace: 'default', name: 'web-2-1'})).status!.podIP!
})

afterAll(async () => {
  await stopLab(lab)
})

describe('pinion monitor', () => {
  it('policy-logging set changes only what it names, and get shows the stored setting', async () => {
    const cli = (...args: string[]) => {
      const result = spawnSync(`${REPO_ROOT}bin/run.js`, [...args, '--kubeconfig', lab.kubeconfig], {encoding: 'utf8', env: {...process.env, NO_COLOR: '1'}})
      expect(result.status, `${args.join(' ')}: ${result.stderr}`).toBe(0)
      return result.stdout
    }
    cli('policy-logging', 'set', '--no-allow', '--no-deny')
    cli('policy-logging', 'set', '--deny')
    expect(JSON.parse(cli('policy-logging', 'get', '-o', 'json'))).toEqual({allow: {log: false, delegate: false}, deny: {log: true, delegate: false}})
    cli('policy-logging', 'set', '--allow', '--delegate-allow')
    expect(JSON.parse(cli('policy-logging', 'get', '-o', 'json'))).toEqual({allow: {log: true, delegate: true}, deny: {log: true, delegate: false}})
    expect(cli('policy-logging', 'get')).toMatch(/allow\s+yes\s+only where annotated/)
    cli('policy-logging', 'set', '--no-allow', '--no-delegate-allow', '--no-deny')
    expect(JSON.parse(cli('policy-logging', 'get', '-o', 'json'))).toEqual({allow: {log: false, delegate: false}, deny: {log: false, delegate: false}})
  })

  it('streams a drop with the pod and policy names resolved', async () => {
    const records: MonitorOutput[] = []
    await during((signal, ready) => monitor(api, access, [], DEFAULT_PIN_ROOT, {types: ['drop'], pod: 'default/web-2-1'}, signal, (record) => records.push(record), ready), async () => {
      expect((await probe('udp', 53)).ok).toBe(false)
    })
    const drops = records.filter((record) => record.kind === 'event')
    expect(drops).toHaveLength(1)
    expect(drops[0]).toMatchObject({node: lab.nodes[1].name, type: 'drop', source: expect.stringMatching(/^default\/web-1-1:\d+$/), destination: 'default/web-2-1:53', protocol: 'UDP', dropReason: 'POLICY_DENIED', policy: 'default/web-http'})
    expect(Math.abs(Date.parse((drops[0] as {time: string}).time) - Date.now())).toBeLessThan(30_000)
    expect(records.some((record) => record.kind === 'lost' || record.kind === 'error')).toBe(false)
  })
})

describe('NetworkPolicy logging', () => {
  it('a denied and an allowed connection produce exactly the expected records', async () => {
    await setLoggingConfig(api, access, DEFAULT_PIN_ROOT, {allow: {log: true, delegate: false}, deny: {log: true, delegate: false}})
    const records: PolicyLogRecord[] = []
    await during((signal, ready) => policyLogs(api, access, [], DEFAULT_PIN_ROOT, {ratePerSecond: 500, denyWindowMs: 300, ready}, signal, (record) => records.push(record)), async () => {
      expect((await probe('tcp', 80)).ok).toBe(true)
      expect((await probe('udp', 53)).ok).toBe(false)
    })
    expect(records.map((record) => [record.disposition, record.connection.protocol, record.connection.dest_port])).toEqual([['allow', 'tcp', 80], ['deny', 'udp', 53]])
    for (const record of records) {
      expect(record).toMatchObject({
        connection: {src_ip: expect.stringMatching(/^10\.244\.1\./), dest_ip: target, direction: 'ingress'},
        policies: [{kind: 'NetworkPolicy', namespace: 'default', name: 'web-http'}],
        src: {pod_name: 'web-1-1', pod_namespace: 'default'},
        dest: {pod_name: 'web-2-1', pod_namespace: 'default'},
        node_name: lab.nodes[1].name,
        count: 1,
      })
    }
  })

  it('survives a re-install, and caps a burst above the rate limit, counting the overflow', async () => {
    // A fresh install starts with zeroed maps: logging must come back from the cluster's config.
    await uninstall(api, {nodes: [], access, pinRoot: DEFAULT_PIN_ROOT, progress: false})
    expect((await install(api, {nodes: [], access, pinRoot: DEFAULT_PIN_ROOT, progress: false, dryRun: false})).nodes.map((outcome) => outcome.action)).toEqual(['installed', 'installed'])
    const records: PolicyLogRecord[] = []
    let burstSeconds = 0
    const summary: LogSummary[] = await during((signal, ready) => policyLogs(api, access, [], DEFAULT_PIN_ROOT, {ratePerSecond: 1, denyWindowMs: 100, ready}, signal, (record) => records.push(record)), async () => {
      // Ten denied connections at once; a loaded machine may stretch the burst, so the bound follows its length.
      const started = Date.now()
      await Promise.all(Array.from({length: 10}, () => probe('udp', 53)))
      burstSeconds = (Date.now() - started) / 1000
    })
    const node2 = summary.find((node) => node.node === lab.nodes[1].name)!
    expect(records.length + node2.rateLimited).toBe(10)
    // A token bucket of 1 record per second admits at most 1 + 1 per second of the burst.
    expect(records.length).toBeLessThanOrEqual(2 + Math.ceil(burstSeconds)) // one more for delivery jitter
    expect(node2.rateLimited).toBeGreaterThanOrEqual(1)
    expect(records.every((record) => record.disposition === 'deny')).toBe(true)
  })
})
