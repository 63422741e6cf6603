/**
 * The node agent on a 3-node lab: pod creation to enforcement (100 pods at
 * once), NetworkPolicy change to enforcement on every node, EndpointSlice
 * change to the load-balancing map, and the agent's RSS and CPU at idle,
 * during churn of 1,000 pods and with 10,000 Services.
 */
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {clients, type Clients} from '../src/cluster/kubeconfig.js'
import {nodeMapTool} from '../src/datapath/maptool.js'
import {DEFAULT_PIN_ROOT, mapPinPath} from '../src/datapath/catalogue.js'
import {endpointInfo, endpointKey, lb4Key, lb4Service} from '../src/datapath/structs.js'
import {install} from '../src/install/install.js'
import {AGENT_STATUS_FILE} from '../src/datapath/node-state.js'
import {labDir, nodeExecPrefix} from '../src/lab/config.js'
import {labDown, labUp} from '../src/lab/lab.js'
import {readState} from '../src/lab/state.js'
import {waitFor} from '../src/lib/wait.js'
import {DEFAULT_IMAGE} from '../src/nodes/debug-pods.js'
import {LocalShell} from '../src/nodes/local-shell.js'
import {defaultSshOptions} from '../src/nodes/ssh-shell.js'
import {percentile, printTable, timed} from './lib.js'

const LAB = 'bagent'
const PODS = Number(process.env.PODS ?? 100)
const CHURN = Number(process.env.CHURN ?? 1000)
const SERVICES = Number(process.env.SERVICES ?? 10_000)
const REPEATS = Number(process.env.REPEATS ?? 20)
const rows: (string | number)[][] = [['measure', 'p50', 'p99', 'max', 'samples']]
const usage: (string | number)[][] = [['agent (node 1)', 'RSS MB', 'CPU % of one core', 'window']]

const summary = await labUp({name: LAB, nodes: 3, podsPerNode: 1})
const api: Clients = clients({kubeconfig: summary.kubeconfig})
const nodes = summary.nodes.map((node) => node.name)
const shells = new Map(readState(LAB)!.nodes.map((node) => [node.name, new LocalShell(node.name, nodeExecPrefix(node))]))
const ms = (value: number) => `${Math.round(value)} ms`
const stats = (label: string, samples: number[]) => {
  const sorted = [...samples].sort((a, b) => a - b)
  rows.push([label, ms(percentile(sorted, 50)), ms(percentile(sorted, 99)), ms(sorted[sorted.length - 1]), sorted.length])
  console.log(rows[rows.length - 1].join('  '))
}

async function dump(node: string, map: string) {
  // The native tool, as the agent itself reads: the bench's polling should cost the two cores little.
  return (await nodeMapTool(shells.get(node)!)).dumpMap(mapPinPath(DEFAULT_PIN_ROOT, map))
}

async function agentPid(node: string): Promise<number> {
  return (JSON.parse((await shells.get(node)!.run(['cat', AGENT_STATUS_FILE])).stdout.toString()) as {pid: number}).pid
}

/** RSS now and CPU used over a window, from /proc. */
async function measureAgent(label: string, during: () => Promise<unknown>): Promise<void> {
  const pid = await agentPid(nodes[0])
  const cpu = () => {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100 // utime + stime, in seconds (USER_HZ 100)
  }
  let peakRss = 0
  const sample = () => {
    const rss = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    if (!rss) throw new Error(`the agent (pid ${pid}) exited during "${label}"`)
    peakRss = Math.max(peakRss, Number(rss[1]) / 1024)
  }
  let failure: unknown
  const sampler = setInterval(() => {
    try {
      sample()
    } catch (error) {
      failure = error
    }
  }, 200)
  const before = cpu()
  const window = await timed(during)
  clearInterval(sampler)
  if (failure) throw failure
  sample()
  usage.push([label, Math.round(peakRss), ((100 * (cpu() - before)) / (window.ms / 1000)).toFixed(1), `${(window.ms / 1000).toFixed(1)} s`])
  console.log(usage[usage.length - 1].join('  '))
}

try {
  const access = {transport: 'pod' as const, image: DEFAULT_IMAGE, concurrency: 8, podStartTimeoutMs: 60_000, ssh: defaultSshOptions(), sshHosts: {}}
  const installed = await timed(() => install(api, {nodes: [], access, pinRoot: DEFAULT_PIN_ROOT, progress: false, dryRun: false, agent: {image: 'ghcr.io/pinion-dev/agent:bench', timeoutMs: 120_000}}))
  if (!installed.value.agent) throw new Error(`install failed: ${JSON.stringify(installed.value.nodes.filter((outcome) => !outcome.ok))}`)
  console.log(`install with the agent on 3 nodes: ${(installed.ms / 1000).toFixed(1)} s`)

  await measureAgent('idle (10 s)', () => new Promise((resolve) => setTimeout(resolve, 10_000)))

  // 1. Pod creation to enforcement: the chained CNI plugin returns only once the pod is enforced, so Running bounds it.
  await api.networking.createNamespacedNetworkPolicy({namespace: 'default', body: {metadata: {name: 'bench-isolate'}, spec: {podSelector: {matchLabels: {role: 'bench'}}, policyTypes: ['Ingress']}}})
  const created = new Map<string, number>()
  await Promise.all(Array.from({length: PODS}, async (_, i) => {
    const name = `bench-${i}`
    created.set(name, Date.now())
    await api.core.createNamespacedPod({namespace: 'default', body: {metadata: {name, labels: {role: 'bench'}}, spec: {nodeName: nodes[i % 3], containers: [{name: 'c', image: 'pinion.dev/lab-server:1'}]}}})
  }))
  const runningAt = new Map<string, number>()
  let unenforcedAtStart = 0
  await waitFor(`${PODS} pods to run`, async () => {
    const {items} = await api.core.listNamespacedPod({namespace: 'default', labelSelector: 'role=bench'})
    for (const pod of items) {
      if (pod.status?.phase !== 'Running' || runningAt.has(pod.metadata!.name!)) continue
      runningAt.set(pod.metadata!.name!, Date.now())
      // Checked as soon as the pod is seen running: its endpoint entry must already be there, isolating it.
      const entry = (await dump(pod.spec!.nodeName!, 'pinion_endpoint')).find((row) => endpointKey.decode(row.key).ip4 === pod.status!.podIP)
      if (!entry || !(endpointInfo.decode(entry.value!).ingressDenyCookie as number)) unenforcedAtStart++
    }
    return runningAt.size === PODS
  }, {timeoutMs: 600_000, intervalMs: 50})
  stats(`pod creation to running and enforced (${PODS} pods at once)`, [...runningAt].map(([name, at]) => at - created.get(name)!))
  // The agent's own part: CNI ADD to the pod enforced, as each agent timed it.
  for (const node of nodes) {
    const cni = (JSON.parse((await shells.get(node)!.run(['cat', AGENT_STATUS_FILE])).stdout.toString()) as {cniAdd?: {count: number; p50Ms: number; p99Ms: number; maxMs: number}}).cniAdd
    if (cni) {
      rows.push([`  of which CNI ADD in the agent on ${node}`, ms(cni.p50Ms), ms(cni.p99Ms), ms(cni.maxMs), cni.count])
      console.log(rows[rows.length - 1].join('  '))
    }
  }

  // 2. NetworkPolicy change to enforcement on every node (the web pod of each node gets isolated, then not).
  const webIps = new Map((await api.core.listNamespacedPod({namespace: 'default', labelSelector: 'app=web'})).items.map((pod) => [pod.spec!.nodeName!, pod.status!.podIP!]))
  const isolated = async (node: string) => {
    const entry = (await dump(node, 'pinion_endpoint')).find((row) => endpointKey.decode(row.key).ip4 === webIps.get(node))
    return Boolean(entry && endpointInfo.decode(entry.value!).ingressDenyCookie)
  }
  const policySamples: number[] = []
  for (let i = 0; i < REPEATS; i++) {
    const started = Date.now()
    if (i % 2 === 0) await api.networking.createNamespacedNetworkPolicy({namespace: 'default', body: {metadata: {name: 'bench-web'}, spec: {podSelector: {matchLabels: {app: 'web'}}, policyTypes: ['Ingress']}}})
    else await api.networking.deleteNamespacedNetworkPolicy({namespace: 'default', name: 'bench-web'})
    const want = i % 2 === 0
    await Promise.all(nodes.map((node) => waitFor(`the policy change on ${node}`, async () => (await isolated(node)) === want, {timeoutMs: 30_000, intervalMs: 50})))
    policySamples.push(Date.now() - started)
  }
  stats('NetworkPolicy change to enforcement on all 3 nodes', policySamples)

  // 3. EndpointSlice change to the load-balancing map (a selector-less Service with a hand-made slice).
  await api.core.createNamespacedService({namespace: 'default', body: {metadata: {name: 'bench-lb'}, spec: {ports: [{name: 'http', port: 80, protocol: 'TCP'}]}}})
  const lbVip = (await api.core.readNamespacedService({namespace: 'default', name: 'bench-lb'})).spec!.clusterIP!
  const backendCount = async (node: string) => {
    const slot = (await dump(node, 'pinion_services_v2')).find((row) => {
      const key = lb4Key.decode(row.key)
      return key.address === lbVip && key.dport === 80 && key.backendSlot === 0
    })
    return slot ? (lb4Service.decode(slot.value!).count as number) : -1
  }
  const sliceSamples: number[] = []
  const addresses: string[] = []
  for (let i = 0; i < REPEATS; i++) {
    addresses.push(`10.244.200.${i + 1}`)
    const body = {metadata: {name: 'bench-lb-x', labels: {'kubernetes.io/service-name': 'bench-lb'}}, addressType: 'IPv4', ports: [{name: 'http', port: 8080, protocol: 'TCP'}], endpoints: addresses.map((ip) => ({addresses: [ip], conditions: {ready: true}}))}
    const started = Date.now()
    if (i === 0) await api.discovery.createNamespacedEndpointSlice({namespace: 'default', body})
    else await api.discovery.replaceNamespacedEndpointSlice({namespace: 'default', name: 'bench-lb-x', body})
    await Promise.all(nodes.map((node) => waitFor(`the new backend on ${node}`, async () => (await backendCount(node)) === addresses.length, {timeoutMs: 30_000, intervalMs: 50})))
    sliceSamples.push(Date.now() - started)
  }
  stats('EndpointSlice change to the Service map on all 3 nodes', sliceSamples)

  // 4. Churn: 1,000 pods come and go on a node without a kubelet (their status set as a kubelet would): remote pods for every agent.
  await api.core.createNode({body: {metadata: {name: 'ghost', labels: {'kubernetes.io/hostname': 'ghost'}}, spec: {taints: [{key: 'bench', value: 'ghost', effect: 'NoSchedule'}]}, status: {addresses: [{type: 'InternalIP', address: '10.99.0.99'}]}}})
  await measureAgent(`churn of ${CHURN} remote pods`, async () => {
    for (let wave = 0; wave < CHURN / 100; wave++) {
      await Promise.all(Array.from({length: 100}, async (_, i) => {
        const name = `churn-${wave}-${i}`
        const pod = await api.core.createNamespacedPod({namespace: 'default', body: {metadata: {name, labels: {app: 'churn', wave: String(wave)}}, spec: {nodeName: 'ghost', containers: [{name: 'c', image: 'pinion.dev/lab-server:1'}]}}})
        await api.core.replaceNamespacedPodStatus({namespace: 'default', name, body: {...pod, status: {phase: 'Running', podIP: `10.250.${wave}.${i + 1}`}}})
      }))
      await Promise.all(Array.from({length: 100}, (_, i) => api.core.deleteNamespacedPod({namespace: 'default', name: `churn-${wave}-${i}`})))
    }
    // Done when every agent has caught up (its ipcache holds no churn address).
    await Promise.all(nodes.map((node) => waitFor('the churn to settle', async () => (JSON.parse((await shells.get(node)!.run(['cat', AGENT_STATUS_FILE])).stdout.toString()) as {lagMs: number}).lagMs === 0, {timeoutMs: 120_000, intervalMs: 100})))
  })

  // 5. 10,000 Services with 5 backends each, in 100 namespaces (the lab's EndpointSlice controller works per namespace).
  const namespaces = 100
  for (let n = 0; n < namespaces; n++) await api.core.createNamespace({body: {metadata: {name: `svc-${n}`}}})
  await measureAgent(`${SERVICES.toLocaleString('en')} Services x 5 backends arrive`, async () => {
    for (let start = 0; start < SERVICES; start += 100) {
      await Promise.all(Array.from({length: Math.min(100, SERVICES - start)}, async (_, k) => {
        const i = start + k
        const namespace = `svc-${i % namespaces}`
        await api.core.createNamespacedService({namespace, body: {metadata: {name: `svc-${i}`}, spec: {ports: [{name: 'http', port: 80, protocol: 'TCP'}]}}})
        await api.discovery.createNamespacedEndpointSlice({namespace, body: {metadata: {name: `svc-${i}-x`, labels: {'kubernetes.io/service-name': `svc-${i}`}}, addressType: 'IPv4', ports: [{name: 'http', port: 8080, protocol: 'TCP'}], endpoints: Array.from({length: 5}, (_, j) => ({addresses: [`10.${245 + (i >> 13)}.${(i >> 5) & 255}.${((i & 31) << 3) + j}`], conditions: {ready: true}}))}})
      }))
    }
    await waitFor('the Services on node 1', async () => (await dump(nodes[0], 'pinion_revnat_v2')).length >= SERVICES, {timeoutMs: 600_000, intervalMs: 500})
  })
  await measureAgent(`idle with ${SERVICES.toLocaleString('en')} Services (10 s)`, () => new Promise((resolve) => setTimeout(resolve, 10_000)))

  printTable('Agent latency (3-node lab, this machine)', rows)
  console.log(`pods seen running without their endpoint entry: ${unenforcedAtStart} of ${PODS}`)
  printTable('Agent resources', usage)
  const log = readFileSync(join(labDir(LAB), 'apiserver.log'), 'utf8')
  if (/Error/.test(log)) console.log(`(the lab API server logged errors; see ${join(labDir(LAB), 'apiserver.log')})`)
} finally {
  await labDown(LAB)
}
