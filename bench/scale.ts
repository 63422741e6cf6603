/**
 * The planner at Antrea's published scale (2,000 nodes, 150,000 pods, 40,000
 * NetworkPolicies, 10,000 Services) and fractions of it, on synthetic
 * clusters of the shape an independent harness used: 75 pods per node; per
 * namespace 150 pods in 10 workloads, 10 Services with 5 backends, and 40
 * policies in eight typical shapes (pod and namespace selectors, both, ipBlocks,
 * named ports, default deny, DNS egress).
 *
 *   node --import tsx bench/scale.ts            every scale, each in its own process
 *   node --import tsx bench/scale.ts --scale 10 one scale (percent), JSON on stdout
 *
 * Per scale: one node's full plan (time, peak RSS), then incremental updates
 * (one pod relabelled, one policy changed, one EndpointSlice changed): CPU time
 * and entries written; and the growth exponent of the full plan from 10% to 100%.
 * As root (bench/run.sh), the plan is also written into a scratch datapath and
 * reconciled again with nothing to change: the bytes read back from the "node".
 */
import {execFileSync} from 'node:child_process'
import type * as k8s from '@kubernetes/client-node'
import {ClusterModel, type ModelObjects} from '../src/sync/model.js'
import {NodePlanner} from '../src/sync/node-planner.js'
import {Writable} from 'node:stream'
import {localMapToolPath, MapTool} from '../src/datapath/maptool.js'
import type {NodeShell, RunOptions, RunResult} from '../src/nodes/shell.js'
import {applyEntries} from '../src/sync/apply.js'
import type {NodePlan} from '../src/sync/plan.js'
import {peakRssMb, printTable, scratchDatapath} from './lib.js'

const FULL = {namespaces: 1000, podsPerNode: 75}
const PODS_PER_NAMESPACE = 150
const WORKLOADS = 10
const SERVICES_PER_NAMESPACE = 10
const POLICIES_PER_NAMESPACE = 40

function policyShapes(namespace: string, i: number, workload: (k: number) => string, teams: number): k8s.V1NetworkPolicySpec {
  const app = workload(i % WORKLOADS)
  const peer = workload((i + 1) % WORKLOADS)
  switch (i % 8) {
    case 0:
      return {podSelector: {matchLabels: {app}}, ingress: [{_from: [{podSelector: {matchLabels: {app: peer}}}], ports: [{protocol: 'TCP', port: 8080}]}], policyTypes: ['Ingress']}
    case 1:
      return {podSelector: {matchLabels: {app}}, ingress: [{_from: [{namespaceSelector: {matchLabels: {team: `t${i % teams}`}}}]}], policyTypes: ['Ingress']}
    case 2:
      return {podSelector: {matchLabels: {app}}, ingress: [{_from: [{namespaceSelector: {matchLabels: {env: 'prod'}}, podSelector: {matchLabels: {tier: 'frontend'}}}], ports: [{protocol: 'TCP', port: 443}]}], policyTypes: ['Ingress']}
    case 3:
      return {podSelector: {matchLabels: {app}}, egress: [{to: [{ipBlock: {cidr: '10.0.0.0/8', except: ['10.96.0.0/12']}}, {ipBlock: {cidr: `192.168.${i % 50}.0/24`}}]}], policyTypes: ['Egress']}
    case 4:
      return {podSelector: {matchLabels: {app}}, ingress: [{_from: [{podSelector: {matchLabels: {tier: 'frontend'}}}], ports: [{protocol: 'TCP', port: 'http'}]}], policyTypes: ['Ingress']}
    case 5:
      return {podSelector: {matchLabels: {app}}, egress: [{to: [{podSelector: {matchLabels: {app: peer}}}], ports: [{protocol: 'TCP', port: 'http'}]}], policyTypes: ['Egress']}
    case 6:
      return {podSelector: {}, policyTypes: ['Ingress']}
    default:
      return {podSelector: {matchLabels: {app}}, egress: [{to: [{namespaceSelector: {matchLabels: {'kubernetes.io/metadata.name': 'kube-system'}}}], ports: [{protocol: 'UDP', port: 53}, {protocol: 'TCP', port: 53}]}], policyTypes: ['Egress']}
  }
  void namespace
}

/** A synthetic cluster at `percent` of Antrea's target. */
export function syntheticCluster(percent: number): ModelObjects {
  const namespaces = Math.max(1, Math.round((FULL.namespaces * percent) / 100))
  const totalPods = namespaces * PODS_PER_NAMESPACE
  const nodes = Math.ceil(totalPods / FULL.podsPerNode)
  const teams = 20
  const objects: ModelObjects = {nodes: [], namespaces: [], pods: [], services: [], slices: [], policies: []}
  for (let n = 0; n < nodes; n++) objects.nodes.push({metadata: {name: `node-${n}`}, status: {addresses: [{type: 'InternalIP', address: `172.16.${n >> 8}.${n & 255}`}]}})
  objects.namespaces.push({metadata: {name: 'kube-system', labels: {'kubernetes.io/metadata.name': 'kube-system'}}})
  let pod = 0
  for (let s = 0; s < namespaces; s++) {
    const namespace = `ns-${s}`
    objects.namespaces.push({metadata: {name: namespace, labels: {'kubernetes.io/metadata.name': namespace, team: `t${s % teams}`, env: s % 3 === 0 ? 'prod' : 'dev'}}})
    const workload = (k: number) => `app-${k}`
    const ips: string[][] = Array.from({length: WORKLOADS}, () => [])
    for (let p = 0; p < PODS_PER_NAMESPACE; p++, pod++) {
      const k = p % WORKLOADS
      const ip = `10.${128 + (pod >> 16)}.${(pod >> 8) & 255}.${pod & 255}`
      ips[k].push(ip)
      objects.pods.push({
        metadata: {namespace, name: `pod-${p}`, labels: {app: workload(k), tier: k < 3 ? 'frontend' : 'backend', 'pod-template-hash': `h${k}`}},
        spec: {nodeName: `node-${pod % nodes}`, containers: [{name: 'c', ports: [{name: 'http', containerPort: 8080 + (k % 2), protocol: 'TCP'}]}]},
        status: {phase: 'Running', podIP: ip},
      })
    }
    for (let v = 0; v < SERVICES_PER_NAMESPACE; v++) {
      const index = s * SERVICES_PER_NAMESPACE + v
      objects.services.push({metadata: {namespace, name: `svc-${v}`}, spec: {clusterIP: `10.96.${index >> 8}.${index & 255}`, ports: [{name: 'http', port: 80, protocol: 'TCP'}]}})
      objects.slices.push({metadata: {namespace, name: `svc-${v}-x`, labels: {'kubernetes.io/service-name': `svc-${v}`}}, addressType: 'IPv4', ports: [{name: 'http', port: 8080, protocol: 'TCP'}], endpoints: ips[v].slice(0, 5).map((ip) => ({addresses: [ip], conditions: {ready: true}}))})
    }
    for (let i = 0; i < POLICIES_PER_NAMESPACE; i++) objects.policies.push({metadata: {namespace, name: `pol-${i}`}, spec: policyShapes(namespace, i, workload, teams)})
  }
  return objects
}

function cpuMs<T>(fn: () => T): {value: T; ms: number} {
  const started = process.cpuUsage()
  const value = fn()
  const used = process.cpuUsage(started)
  return {value, ms: (used.user + used.system) / 1000}
}

/** Counts the bytes a node's commands send back (stdout, streamed or not). */
class CountingShell implements NodeShell {
  readonly node = 'scratch'
  bytes = 0
  constructor(private readonly inner: NodeShell) {}
  async run(argv: readonly string[], options?: RunOptions): Promise<RunResult> {
    const sink = options?.stdout
    const counted = sink ? {...options, stdout: new Writable({write: (chunk: Buffer, _encoding, done) => ((this.bytes += chunk.length), sink.write(chunk, done))})} : options
    const result = await this.inner.run(argv, counted)
    this.bytes += result.stdout.length
    return result
  }
  close(): Promise<void> {
    return this.inner.close()
  }
}

/** Write the node's plan into a scratch datapath, then reconcile with nothing to change: bytes read, and a full native dump's for scale. */
async function reconcileBytes(plan: NodePlan): Promise<{nothingToChangeBytes: number; fullDumpBytes: number; reconcileMs: number}> {
  const dp = await scratchDatapath('scale')
  try {
    const shell = new CountingShell(dp.shell)
    const tool = new MapTool(shell, localMapToolPath())
    await applyEntries(tool, dp.root, plan.entries, {programsRunning: false})
    shell.bytes = 0
    const started = Date.now()
    const again = await applyEntries(tool, dp.root, plan.entries)
    if (again.updated + again.deleted !== 0) throw new Error(`the second reconciliation changed ${again.updated + again.deleted} entries`)
    const nothingToChangeBytes = shell.bytes
    const reconcileMs = Date.now() - started
    shell.bytes = 0
    for (const map of new Set(plan.entries.map((entry) => entry.map))) await tool.dumpMap(`${dp.root}/maps/${map}`)
    return {nothingToChangeBytes, fullDumpBytes: shell.bytes, reconcileMs}
  } finally {
    dp.destroy()
  }
}

async function runScale(percent: number): Promise<Record<string, number>> {
  const objects = syntheticCluster(percent)
  const sizes = {nodes: objects.nodes.length, pods: objects.pods.length, policies: objects.policies.length, services: objects.services.length}
  const wall = Date.now()
  const built = cpuMs(() => ClusterModel.fromObjects(objects))
  const model = built.value
  const planner = new NodePlanner(model, 'node-0')
  const planned = cpuMs(() => planner.plan())
  const planWallMs = Date.now() - wall
  const entries = planned.value.entries.length + planned.value.endpoints.length
  // One pod of another node changes labels.
  const target = objects.pods[objects.pods.length - 1] as k8s.V1Pod
  const relabelled = cpuMs(() => {
    model.upsert('Pod', {...target, metadata: {...target.metadata, labels: {...target.metadata!.labels, app: 'app-renamed'}}})
    return planner.flush()
  })
  // One policy in a namespace with an endpoint of this node changes its port.
  const local = planned.value.endpoints[0]
  const policy = objects.policies.find((candidate) => candidate.metadata!.namespace === local.namespace && candidate.metadata!.name === 'pol-0')!
  const changedPolicy = cpuMs(() => {
    model.upsert('NetworkPolicy', {...policy, spec: {...policy.spec!, ingress: [{...policy.spec!.ingress![0], ports: [{protocol: 'TCP', port: 9090}]}]}} as k8s.V1NetworkPolicy)
    return planner.flush()
  })
  const slice = objects.slices[0]
  const changedSlice = cpuMs(() => {
    model.upsert('EndpointSlice', {...slice, endpoints: [...slice.endpoints, {addresses: ['10.200.0.1'], conditions: {ready: true}}]} as k8s.V1EndpointSlice)
    return planner.flush()
  })
  const written = (delta: {upserts: unknown[]; deletes: unknown[]; endpoints: {changed: unknown[]; removed: unknown[]}}) => delta.upserts.length + delta.deletes.length + delta.endpoints.changed.length + delta.endpoints.removed.length
  return {
    percent,
    ...sizes,
    modelMs: built.ms,
    planMs: planned.ms,
    planWallMs,
    entries,
    peakRssMb: peakRssMb(),
    podChangeMs: relabelled.ms,
    podChangeWrites: written(relabelled.value),
    policyChangeMs: changedPolicy.ms,
    policyChangeWrites: written(changedPolicy.value),
    sliceChangeMs: changedSlice.ms,
    sliceChangeWrites: written(changedSlice.value),
    ...(process.getuid?.() === 0 ? await reconcileBytes(planner.plan()) : {}),
  }
}

const scaleArg = process.argv.indexOf('--scale')
if (scaleArg >= 0) {
  process.stdout.write(JSON.stringify(await runScale(Number(process.argv[scaleArg + 1]))) + '\n')
} else {
  const scales = (process.env.SCALES ?? '1,10,25,50,100').split(',').map(Number)
  const results: Record<string, number>[] = []
  for (const percent of scales) {
    // A process per scale: peak RSS is that scale's own.
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--max-old-space-size=4096', new URL(import.meta.url).pathname, '--scale', String(percent)], {encoding: 'utf8', maxBuffer: 1 << 20})
    results.push(JSON.parse(out) as Record<string, number>)
    const last = results[results.length - 1]
    process.stderr.write(`${percent}%: plan ${(last.planWallMs / 1000).toFixed(2)} s, ${last.peakRssMb} MB\n`)
  }
  const s = (ms: number) => (ms / 1000).toFixed(2)
  printTable('One node\'s plan (node-0), CPU seconds; incremental updates, CPU ms and entries written', [
    ['scale', 'nodes / pods / policies / Services', 'model', 'node plan', 'wall (both)', 'entries', 'peak RSS', 'pod relabel', 'policy change', 'slice change'],
    ...results.map((row) => [`${row.percent}%`, `${row.nodes} / ${row.pods} / ${row.policies} / ${row.services}`, s(row.modelMs), s(row.planMs), s(row.planWallMs), row.entries, `${row.peakRssMb} MB`, `${row.podChangeMs.toFixed(1)} ms, ${row.podChangeWrites}`, `${row.policyChangeMs.toFixed(1)} ms, ${row.policyChangeWrites}`, `${row.sliceChangeMs.toFixed(1)} ms, ${row.sliceChangeWrites}`]),
  ])
  const ten = results.find((row) => row.percent === 10)
  const full = results.find((row) => row.percent === 100)
  if (results.some((row) => row.nothingToChangeBytes !== undefined)) {
    printTable('Reconciliation of one node with nothing to change (native map tool: digests first, whole maps only where they differ)', [
      ['scale', 'bytes read from the node', 'a full dump of the same maps', 'wall'],
      ...results.map((row) => [`${row.percent}%`, row.nothingToChangeBytes.toLocaleString('en'), row.fullDumpBytes.toLocaleString('en'), `${row.reconcileMs} ms`]),
    ])
  }
  if (ten && full) console.log(`\ngrowth exponent from 10% to 100% (wall time of model + plan): ${(Math.log(full.planWallMs / ten.planWallMs) / Math.log(10)).toFixed(2)}`)
}
