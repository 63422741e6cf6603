import {execFileSync} from 'node:child_process'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {Clients} from '../../src/cluster/kubeconfig.js'
import {DEFAULT_PIN_ROOT} from '../../src/datapath/catalogue.js'
import {TCP_FLAGS} from '../../src/datapath/packet.js'
import {execInPod} from '../../src/cluster/exec.js'
import {install, uninstall} from '../../src/install/install.js'
import type {LabSummary} from '../../src/lab/lab.js'
import {dumpMap} from '../../src/maps/dump.js'
import {DEFAULT_IMAGE} from '../../src/nodes/debug-pods.js'
import {defaultSshOptions} from '../../src/nodes/ssh-shell.js'
import type {TraceflowRequest} from '../../src/traceflow/resolve.js'
import {traceflow} from '../../src/traceflow/traceflow.js'
import {startLab, stopLab} from '../helpers/lab.js'
import {REPO_ROOT} from '../helpers/system.js'
import {type ClusterOptions, sync} from '../../src/sync/cluster-sync.js'

let lab: LabSummary
let api: Clients
const access = {transport: 'pod' as const, image: DEFAULT_IMAGE, concurrency: 4, podStartTimeoutMs: 20_000, ssh: defaultSshOptions(), sshHosts: {}}
const cluster: ClusterOptions = {nodes: [], access, pinRoot: DEFAULT_PIN_ROOT, progress: false}
const trace = (request: Partial<TraceflowRequest>) => traceflow(api, access, {source: 'default/web-1-1', protocol: 'tcp', tcpFlags: TCP_FLAGS.SYN, ...request}, DEFAULT_PIN_ROOT)

beforeAll(async () => {
  ;({lab, api} = await startLab('trace', 2, 2))
  await api.core.createNamespacedService({namespace: 'default', body: {metadata: {name: 'empty'}, spec: {selector: {app: 'nothing'}, ports: [{port: 80}]}}})
  expect((await install(api, {...cluster, dryRun: false})).nodes.every((outcome) => outcome.ok)).toBe(true)
})

afterAll(async () => {
  await stopLab(lab)
})

describe('synthetic traceflow', () => {
  it('delivers pod to pod on the same node and across nodes', async () => {
    const local = await trace({destination: 'default/web-1-2'})
    expect(local.result).toBe('Delivered')
    expect(new Set(local.observations.map((observation) => observation.node))).toEqual(new Set([lab.nodes[0].name]))
    const remote = await trace({destination: 'default/web-2-1', protocol: 'udp'})
    expect(remote.result).toBe('Delivered')
    expect(remote.observations.map((observation) => `${observation.node}:${observation.component}:${observation.action}`)).toEqual([
      `${lab.nodes[0].name}:SpoofGuard:Received`,
      `${lab.nodes[0].name}:Conntrack:Forwarded`,
      `${lab.nodes[0].name}:Forwarding:Forwarded`,
      `${lab.nodes[1].name}:Forwarding:Received`,
      `${lab.nodes[1].name}:Conntrack:Forwarded`,
      `${lab.nodes[1].name}:Forwarding:Delivered`,
    ])
    expect(remote.observations[2].detail).toContain(lab.nodes[1].underlayIp)
  })

  it('shows the DNAT of a Service to a backend pod', async () => {
    const result = await trace({destinationService: 'default/web', dstPort: 80})
    const lb = result.observations.find((observation) => observation.component === 'LB')!
    expect(lb.action).toBe('Forwarded')
    expect(lb.translatedDstPod).toMatch(/^default\/web-\d-\d$/)
    expect(result.result).toBe('Delivered')
    expect(result.reason).toContain(lb.translatedDstPod)
  })

  it('names the policy that denies, and leaves no conntrack or counter trace', async () => {
    await api.networking.createNamespacedNetworkPolicy({namespace: 'default', body: {metadata: {name: 'only-dns'}, spec: {podSelector: {matchLabels: {app: 'web'}}, ingress: [{ports: [{protocol: 'UDP', port: 53}]}]}}})
    try {
      expect((await sync(api, cluster)).every((outcome) => outcome.ok)).toBe(true)
      // Real traffic first, so there are counters and conntrack entries a dry run could disturb.
      const target = (await api.core.readNamespacedPod({namespace: 'default', name: 'web-2-1'})).status!.podIP!
      await execInPod(api.config, 'default', 'web-1-1', 'web', [process.execPath, `${REPO_ROOT}dist/lab/probe.js`, 'udp', target, '53'])
      // IPv6 neighbour discovery on the veths keeps NOT_IPV4 counters moving: compare the rest.
      const dump = async (map: string) => (await dumpMap(api, access, {map, nodes: [], filters: [], raw: false, pinRoot: DEFAULT_PIN_ROOT})).map((node) => (node.rows ?? []).filter((row) => row.reason !== 'NOT_IPV4'))
      const before = [await dump('ct4'), await dump('metrics')]
      expect(before[0].flat().length).toBeGreaterThan(0)
      expect(before[1].flat().length).toBeGreaterThan(0)
      const denied = await trace({destination: 'default/web-2-1', dstPort: 80})
      expect(denied.result).toBe('Dropped')
      const policy = denied.observations.find((observation) => observation.component === 'NetworkPolicy')!
      expect(policy).toMatchObject({node: lab.nodes[1].name, action: 'Dropped', networkPolicy: 'default/only-dns (no rule matched)', dropReason: 'POLICY_DENIED'})
      const allowed = await trace({destination: 'default/web-2-1', protocol: 'udp', dstPort: 53})
      expect(allowed.observations.find((observation) => observation.component === 'NetworkPolicy')).toMatchObject({action: 'Forwarded', networkPolicy: 'default/only-dns rule 1'})
      const after = [await dump('ct4'), await dump('metrics')]
      // Conntrack lifetimes count down between the dumps; everything else must be identical.
      const stable = (rows: unknown) => JSON.stringify(rows, (key, value) => (key === 'expiresInSeconds' ? undefined : value))
      expect(stable(after)).toBe(stable(before))
    } finally {
      await api.networking.deleteNamespacedNetworkPolicy({namespace: 'default', name: 'only-dns'})
      await sync(api, cluster)
    }
  })

  it('reports a Service without ready backends as Dropped with that reason', async () => {
    const result = await trace({destinationService: 'default/empty'})
    expect(result.result).toBe('Dropped')
    expect(result.observations.find((observation) => observation.component === 'LB')).toMatchObject({action: 'Dropped', dropReason: 'NO_SERVICE_BACKEND'})
  })

  it('live mode traces a real tagged packet and agrees with the synthetic trace', async () => {
    const live = (request: Partial<TraceflowRequest>) => traceflow(api, access, {source: 'default/web-1-1', protocol: 'tcp', tcpFlags: TCP_FLAGS.SYN, ...request}, DEFAULT_PIN_ROOT, {timeoutMs: 10_000})
    for (const request of [{destination: 'default/web-1-2'}, {destination: 'default/web-2-1', protocol: 'udp' as const, dstPort: 53}, {destinationService: 'default/web', dstPort: 80}]) {
      const [synthetic, real] = [await trace(request), await live(request)]
      expect(real.mode).toBe('live')
      expect(real.result, JSON.stringify(real)).toBe(synthetic.result)
      expect(real.observations.at(-1)).toMatchObject({component: 'Forwarding', action: 'Delivered'})
    }
    const lb = (await live({destinationService: 'default/web', dstPort: 80})).observations.find((observation) => observation.component === 'LB')!
    expect(lb.translatedDstPod).toMatch(/^default\/web-\d-\d$/)
    await api.networking.createNamespacedNetworkPolicy({namespace: 'default', body: {metadata: {name: 'deny-web'}, spec: {podSelector: {matchLabels: {app: 'web'}}}}})
    try {
      await sync(api, cluster)
      const [synthetic, real] = [await trace({destination: 'default/web-2-1', protocol: 'udp', dstPort: 53}), await live({destination: 'default/web-2-1', protocol: 'udp', dstPort: 53})]
      expect([synthetic.result, real.result]).toEqual(['Dropped', 'Dropped'])
      const policy = (result: typeof real) => result.observations.find((observation) => observation.component === 'NetworkPolicy')!
      expect(policy(real)).toMatchObject({action: 'Dropped', node: lab.nodes[1].name, networkPolicy: policy(synthetic).networkPolicy})
    } finally {
      await api.networking.deleteNamespacedNetworkPolicy({namespace: 'default', name: 'deny-web'})
      await sync(api, cluster)
    }
    // The traceflow tag is cleared again on every node.
    const config = await dumpMap(api, access, {map: 'config', nodes: [], filters: [], raw: false, pinRoot: DEFAULT_PIN_ROOT})
    expect(config.flatMap((node) => node.rows!.map((row) => row.traceDscp))).toEqual([0, 0])
  })

  it('gives clear errors, and --expect makes the CLI usable in CI', async () => {
    await expect(trace({source: 'default/nope', destination: 'default/web-2-1'})).rejects.toThrow('source pod default/nope not found')
    await expect(trace({destinationService: 'default/missing'})).rejects.toThrow('service default/missing not found')
    const cli = (...args: string[]) => {
      try {
        execFileSync(`${REPO_ROOT}bin/run.js`, ['traceflow', '--kubeconfig', lab.kubeconfig, '--source', 'default/web-1-1', ...args], {stdio: 'pipe'})
        return 0
      } catch (error) {
        return `${(error as {status: number}).status}: ${(error as {stderr: Buffer}).stderr.toString().trim()}`
      }
    }
    expect(cli('--destination', 'default/web-2-1', '--expect', 'delivered')).toBe(0)
    expect(cli('--destination', 'default/web-2-1', '--expect', 'dropped')).toBe('1: Error: expected dropped, got Delivered: delivered to default/web-2-1')
    await uninstall(api, {...cluster, nodes: [lab.nodes[0].name]})
    await expect(trace({destination: 'default/web-2-1'})).rejects.toThrow(/node-1: not installed/)
  })
})
