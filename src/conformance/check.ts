import type * as k8s from '@kubernetes/client-node'
import {execInPod} from '../cluster/exec.js'
import {apiStatus, type Clients} from '../cluster/kubeconfig.js'
import {UserError} from '../lib/errors.js'
import {nodeScript} from '../lib/scripts.js'
import {waitFor} from '../lib/wait.js'
import {type NodeAccessOptions, withNodeAccess} from '../nodes/node-access.js'
import {expectedAllowed, type ModelPod, type Probe, type World} from './model.js'
import {type Layout, scenarios} from './scenarios.js'
import {syncWith} from '../sync/cluster-sync.js'

const PODS = ['a', 'b', 'c']
const PORTS = [{name: 'serve-80-tcp', port: 80, protocol: 'TCP'}, {name: 'serve-81-tcp', port: 81, protocol: 'TCP'}, {name: 'serve-80-udp', port: 80, protocol: 'UDP'}]
const PROBES: Probe[] = PORTS.map((port) => ({protocol: port.protocol as Probe['protocol'], port: port.port}))
/** The Service in x over pod b, probed through its VIP. */
const SERVICE = 'svc-b'

export interface CheckOptions {
  prefix: string
  image: string
  pinRoot: string
  only?: readonly string[]
  probeTimeoutMs: number
  access: NodeAccessOptions
}

export interface Cell {
  from: string
  to: string
  probe: string
  expected: boolean
  observed: boolean
}

export interface ScenarioResult {
  name: string
  description: string
  steps: {cells: Cell[]; mismatches: Cell[]}[]
  ok: boolean
}

async function ensure(create: () => Promise<unknown>): Promise<void> {
  try {
    await create()
  } catch (error) {
    if (apiStatus(error) !== 409) throw error
  }
}

/** Namespaces x, y, z with pods a, b, c serving TCP 80/81 and UDP 80, and a Service over x/b. */
async function setUp(api: Clients, options: CheckOptions): Promise<{layout: Layout; pods: ModelPod[]; vip: string}> {
  const names = ['x', 'y', 'z'].map((suffix) => `${options.prefix}${suffix}`)
  for (const namespace of names) {
    await ensure(() => api.core.createNamespace({body: {metadata: {name: namespace, labels: {ns: namespace}}}}))
    for (const name of PODS) {
      await ensure(() => api.core.createNamespacedPod({namespace, body: {metadata: {name, labels: {pod: name}}, spec: {containers: [{name: 'serve', image: options.image, ports: PORTS.map((port) => ({name: port.name, containerPort: port.port, protocol: port.protocol}))}]}}}))
    }
  }
  await ensure(() => api.core.createNamespacedService({namespace: names[0], body: {metadata: {name: SERVICE}, spec: {selector: {pod: 'b'}, ports: [{name: 'p80', port: 80, protocol: 'TCP'}, {name: 'p81', port: 81, protocol: 'TCP'}]}}}))
  const pods = await waitFor('the connectivity-check pods to run', async () => {
    const found: k8s.V1Pod[] = []
    for (const namespace of names) found.push(...(await api.core.listNamespacedPod({namespace})).items)
    const failed = found.find((pod) => pod.status?.phase === 'Failed')
    if (failed) throw new UserError(`pod ${failed.metadata!.namespace}/${failed.metadata!.name} failed: ${failed.status?.message}`)
    return found.length === names.length * PODS.length && found.every((pod) => pod.status?.phase === 'Running' && pod.status.podIP) ? found : undefined
  }, {timeoutMs: 60_000, intervalMs: 250})
  const model: ModelPod[] = pods.map((pod) => ({namespace: pod.metadata!.namespace!, name: pod.metadata!.name!, ip: pod.status!.podIP!, labels: pod.metadata!.labels ?? {}, ports: PORTS}))
  const vip = (await api.core.readNamespacedService({namespace: names[0], name: SERVICE})).spec!.clusterIP!
  const ip = (namespace: string, name: string) => model.find((candidate) => candidate.namespace === namespace && candidate.name === name)!.ip
  return {layout: {x: names[0], y: names[1], z: names[2], ip}, pods: model, vip}
}

async function replacePolicies(api: Clients, namespaces: readonly string[], policies: readonly k8s.V1NetworkPolicy[]): Promise<void> {
  for (const namespace of namespaces) {
    for (const existing of (await api.networking.listNamespacedNetworkPolicy({namespace})).items) {
      await api.networking.deleteNamespacedNetworkPolicy({namespace, name: existing.metadata!.name!})
    }
  }
  for (const policy of policies) await api.networking.createNamespacedNetworkPolicy({namespace: policy.metadata!.namespace!, body: policy})
}

/** Every source pod probes every target at once (one exec per source). */
async function probeMatrix(api: Clients, pods: readonly ModelPod[], serviceNamespace: string, vip: string, options: CheckOptions): Promise<Map<string, boolean>> {
  const probeScript = nodeScript(import.meta.url, '../lab/probe')
  const observed = new Map<string, boolean>()
  const targets = [
    ...pods.flatMap((pod) => PROBES.map((probe) => ({to: `${pod.namespace}/${pod.name}`, probe, address: pod.ip}))),
    ...PROBES.filter((probe) => probe.protocol === 'TCP').map((probe) => ({to: `service/${SERVICE}`, probe, address: vip})),
  ]
  await Promise.all(pods.map(async (source) => {
    // A pod reaching itself through its own Service needs hairpin SNAT, which v1 lacks.
    const mine = targets.filter((target) => !(target.to.startsWith('service/') && source.namespace === serviceNamespace && source.name === 'b'))
    const argv = [...probeScript, 'many', String(options.probeTimeoutMs), ...mine.map((target) => `${target.probe.protocol.toLowerCase()}:${target.address}:${target.probe.port}`)]
    const result = await execInPod(api.config, source.namespace, source.name, 'serve', argv, {timeoutMs: options.probeTimeoutMs + 15_000})
    if (result.exitCode !== 0) throw new UserError(`probing from ${source.namespace}/${source.name} failed (exit ${result.exitCode}): ${result.stderr.trim().split('\n').pop()}`)
    const answers = JSON.parse(result.stdout.toString('utf8')) as {ok: boolean; error?: string}[]
    mine.forEach((target, index) => {
      // A refused connection reached the pod: the policy let it through.
      observed.set(`${source.namespace}/${source.name}|${target.to}|${target.probe.protocol}/${target.probe.port}`, answers[index].ok || answers[index].error === 'refused')
    })
  }))
  return observed
}

/** The model's answer for one matrix cell "from|to|PROTO/port"; a Service stands for its backend x/b. */
function expectedFor(world: World, pods: readonly ModelPod[], serviceNamespace: string, key: string): boolean {
  const [from, to, probeText] = key.split('|')
  const [protocol, port] = probeText.split('/')
  const named = (name: string) => pods.find((pod) => `${pod.namespace}/${pod.name}` === name)!
  // Policy applies to the Service's backend, after DNAT.
  const target = to.startsWith('service/') ? named(`${serviceNamespace}/b`) : named(to)
  return expectedAllowed(world, named(from), target, {protocol: protocol as Probe['protocol'], port: Number(port)})
}

/**
 * Apply each scenario's policies, sync the dataplane, probe every pod pair on
 * every port, and compare with the independent model of the semantics.
 */
export async function connectivityCheck(api: Clients, options: CheckOptions, onScenario?: (result: ScenarioResult) => void): Promise<ScenarioResult[]> {
  const {layout, pods, vip} = await setUp(api, options)
  const namespaces = [layout.x, layout.y, layout.z]
  const namespaceLabels = Object.fromEntries(namespaces.map((namespace) => [namespace, {ns: namespace}]))
  const selected = scenarios(layout).filter((scenario) => !options.only?.length || options.only.includes(scenario.name))
  if (options.only?.length && selected.length !== options.only.length) {
    throw new UserError(`unknown scenario: valid ones are ${scenarios(layout).map((scenario) => scenario.name).join(', ')}`)
  }
  const results: ScenarioResult[] = []
  await withNodeAccess(api, options.access, async (access) => {
    for (const scenario of selected) {
      const steps: ScenarioResult['steps'] = []
      for (const policies of scenario.steps) {
        await replacePolicies(api, namespaces, policies)
        const synced = await syncWith(api, access, {nodes: [], access: options.access, pinRoot: options.pinRoot, progress: false})
        const failed = synced.filter((outcome) => !outcome.ok)
        if (failed.length) throw new UserError(`sync failed on ${failed.map((outcome) => `${outcome.node} (${outcome.error})`).join(', ')}`)
        const observed = await probeMatrix(api, pods, layout.x, vip, options)
        // A mismatch must reproduce: a probe lost to load (a SYN retransmit takes 1 s) is tried again.
        const world0: World = {pods, namespaces: namespaceLabels, policies: [...policies]}
        const suspicious = [...observed].filter(([key, seen]) => seen !== expectedFor(world0, pods, layout.x, key))
        if (suspicious.length) {
          const again = await probeMatrix(api, pods, layout.x, vip, {...options, probeTimeoutMs: options.probeTimeoutMs * 2})
          for (const [key] of suspicious) observed.set(key, again.get(key)!)
        }
        const cells: Cell[] = [...observed].map(([key, seen]) => {
          const [from, to, probe] = key.split('|')
          return {from, to, probe, expected: expectedFor(world0, pods, layout.x, key), observed: seen}
        })
        steps.push({cells, mismatches: cells.filter((cell) => cell.expected !== cell.observed)})
      }
      const result = {name: scenario.name, description: scenario.description, steps, ok: steps.every((step) => step.mismatches.length === 0)}
      results.push(result)
      onScenario?.(result)
    }
    await replacePolicies(api, namespaces, [])
    await syncWith(api, access, {nodes: [], access: options.access, pinRoot: options.pinRoot, progress: false})
  })
  return results
}

/** Remove the test namespaces (and so their pods, Service and policies). */
export async function removeCheckNamespaces(api: Clients, prefix: string): Promise<void> {
  for (const suffix of ['x', 'y', 'z']) {
    try {
      await api.core.deleteNamespace({name: `${prefix}${suffix}`})
    } catch (error) {
      if (apiStatus(error) !== 404) throw error
    }
  }
}
