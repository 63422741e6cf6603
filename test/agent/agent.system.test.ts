/*
 * The node agent, for real: a two-node lab installed with the agent
 * (DaemonSet, chained CNI plugin), then pods, policies, Services, agent
 * crashes, an API server outage and a third node, with nobody running sync.
 */
import {type ChildProcess, execFileSync, spawn} from 'node:child_process'
import {createHash} from 'node:crypto'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import type * as k8s from '@kubernetes/client-node'
import {CoordinationV1Api, RbacAuthorizationV1Api} from '@kubernetes/client-node'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {execInPod} from '../../src/cluster/exec.js'
import type {Clients} from '../../src/cluster/kubeconfig.js'
import {BpfTool} from '../../src/datapath/bpftool.js'
import {DEFAULT_PIN_ROOT, mapPinPath} from '../../src/datapath/catalogue.js'
import {endpointKey, ipcacheKey, lb4Key, lb4Service} from '../../src/datapath/structs.js'
import {install, uninstall} from '../../src/install/install.js'
import {AGENT_STATUS_FILE, type AgentStatus} from '../../src/datapath/node-state.js'
import {clusterStatus} from '../../src/install/status.js'
import {labDir, nodeExecPrefix} from '../../src/lab/config.js'
import {labAddNode, type LabSummary} from '../../src/lab/lab.js'
import {readState} from '../../src/lab/state.js'
import {processAlive} from '../../src/lib/process.js'
import {waitFor} from '../../src/lib/wait.js'
import {setLoggingConfig} from '../../src/monitor/policy-logging.js'
import {DEFAULT_IMAGE} from '../../src/nodes/debug-pods.js'
import {LocalShell} from '../../src/nodes/local-shell.js'
import {LEASE_NAMESPACE, leaseName} from '../../src/nodes/node-lease.js'
import {defaultSshOptions} from '../../src/nodes/ssh-shell.js'
import {startLab, stopLab} from '../helpers/lab.js'
import {REPO_ROOT} from '../helpers/system.js'
import {POLICY_LOG_FILE, type PolicyLogRecord} from '../../src/datapath/policy-log-records.js'
import {AGENT_NAME, AGENT_NAMESPACE, agentPods} from '../../src/cluster/agent-objects.js'

let lab: LabSummary
let api: Clients
const access = {transport: 'pod' as const, image: DEFAULT_IMAGE, concurrency: 4, podStartTimeoutMs: 20_000, ssh: defaultSshOptions(), sshHosts: {}}
let vip = ''

/** A shell on a lab node (its network and mount namespaces), as the agent itself has. */
function nodeShell(node: string): LocalShell {
  const layout = readState(lab.name)!.nodes.find((candidate) => candidate.name === node)!
  return new LocalShell(node, nodeExecPrefix(layout))
}

/** The pod's own network namespace: probes from it need no API server. */
function podNetns(pod: k8s.V1Pod): string {
  return `pinion-${lab.name}-p${createHash('sha256').update(pod.metadata!.uid!).digest('hex').slice(0, 8)}`
}

async function probeFrom(netns: string, protocol: 'tcp' | 'udp', host: string, port: number, timeoutMs = 1500): Promise<{ok: boolean; reply?: string; error?: string}> {
  const {stdout} = await new LocalShell('probe', ['ip', 'netns', 'exec', netns]).run([process.execPath, `${REPO_ROOT}dist/lab/probe.js`, protocol, host, String(port), String(timeoutMs)])
  return JSON.parse(stdout.toString())
}

async function probe(from: string, protocol: 'tcp' | 'udp', host: string, port: number): Promise<{ok: boolean; reply?: string; error?: string}> {
  const result = await execInPod(api.config, 'default', from, 'web', [process.execPath, `${REPO_ROOT}dist/lab/probe.js`, protocol, host, String(port), '1500'])
  return JSON.parse(result.stdout.toString())
}

async function createPod(name: string, node: string, labels: Record<string, string>): Promise<void> {
  await api.core.createNamespacedPod({namespace: 'default', body: {metadata: {name, labels}, spec: {nodeName: node, containers: [{name: 'web', image: 'pinion.dev/lab-server:1', ports: [{name: 'http', containerPort: 80, protocol: 'TCP'}, {name: 'echo', containerPort: 7, protocol: 'TCP'}]}]}}})
}

async function running(name: string, timeoutMs = 30_000): Promise<k8s.V1Pod> {
  return waitFor(`pod ${name} to run`, async () => {
    const pod = await api.core.readNamespacedPod({namespace: 'default', name})
    return pod.status?.phase === 'Running' ? pod : undefined
  }, {timeoutMs, intervalMs: 20})
}

async function deletePod(name: string): Promise<void> {
  await api.core.deleteNamespacedPod({namespace: 'default', name}).catch(() => undefined)
}

async function agentStatus(node: string): Promise<AgentStatus> {
  const {stdout} = await nodeShell(node).run(['cat', AGENT_STATUS_FILE])
  return JSON.parse(stdout.toString()) as AgentStatus
}

async function mapKeys(node: string, map: string): Promise<Buffer[]> {
  return (await new BpfTool(nodeShell(node)).dumpMap(mapPinPath(DEFAULT_PIN_ROOT, map))).map((row) => row.key)
}

async function hasEndpoint(node: string, ip: string): Promise<boolean> {
  return (await mapKeys(node, 'pinion_endpoint')).some((key) => endpointKey.decode(key).ip4 === ip)
}

async function hasIpcache(node: string, ip: string): Promise<boolean> {
  return (await mapKeys(node, 'pinion_ipcache')).some((key) => {
    const decoded = ipcacheKey.decode(key)
    return decoded.ip4 === ip && decoded.prefixlen === 32
  })
}

async function agentReady(node: string): Promise<k8s.V1Pod> {
  return waitFor(`the agent on ${node} to be ready`, async () => {
    const pod = (await agentPods(api)).get(node)
    return pod?.status?.conditions?.some((condition) => condition.type === 'Ready' && condition.status === 'True') ? pod : undefined
  }, {timeoutMs: 60_000, intervalMs: 100})
}

beforeAll(async () => {
  ;({lab, api} = await startLab('agnt', 2, 1))
  vip = (await api.core.readNamespacedService({namespace: 'default', name: 'web'})).spec!.clusterIP!
  const result = await install(api, {nodes: [], access, pinRoot: DEFAULT_PIN_ROOT, progress: false, dryRun: false, agent: {image: 'ghcr.io/pinion-dev/agent:test', timeoutMs: 90_000}})
  expect(result.nodes.every((outcome) => outcome.ok), JSON.stringify(result.nodes)).toBe(true)
  expect(result.agent).toMatchObject({desired: 2, ready: 2, updated: 2})
}, 180_000)

afterAll(async () => {
  await stopLab(lab)
})

describe('pinion agent', () => {
  it('enforces a pod created after install from its first connection, and gives it Services, with no sync run', async () => {
    await api.networking.createNamespacedNetworkPolicy({namespace: 'default', body: {metadata: {name: 'locked-ingress'}, spec: {podSelector: {matchLabels: {role: 'locked'}}, policyTypes: ['Ingress']}}})
    const node = lab.nodes[1].name
    await createPod('locked-1', node, {role: 'locked'})
    const pod = await running('locked-1')
    // The CNI plugin attached the programs and wrote the endpoint before the pod's containers started.
    expect(await hasEndpoint(node, pod.status!.podIP!)).toBe(true)
    expect(await probe('web-1-1', 'tcp', pod.status!.podIP!, 80)).toMatchObject({ok: false, error: 'timeout'})
    expect((await probe('locked-1', 'tcp', vip, 80)).reply).toMatch(/^pinion default\/web-\d-1 tcp 80/)
    expect((await agentStatus(node)).unenforced).toEqual([])
    const events = (await api.core.listNamespacedEvent({namespace: 'default'})).items.filter((event) => event.involvedObject?.name === 'locked-1')
    expect(events.map((event) => event.reason)).not.toContain('FailedCreatePodSandBox')
    await deletePod('locked-1')
    await api.networking.deleteNamespacedNetworkPolicy({namespace: 'default', name: 'locked-ingress'})
  })

  it('sends traffic to a new backend, and removes a deleted pod\'s entries, within 2 s', async () => {
    await api.core.createNamespacedService({namespace: 'default', body: {metadata: {name: 'fresh'}, spec: {selector: {app: 'fresh'}, ports: [{name: 'http', port: 80, targetPort: 'http', protocol: 'TCP'}]}}})
    const freshVip = (await api.core.readNamespacedService({namespace: 'default', name: 'fresh'})).spec!.clusterIP!
    await createPod('fresh-1', lab.nodes[0].name, {app: 'fresh'})
    const pod = await running('fresh-1')
    const started = Date.now()
    // Every node's Service map holds the backend within 2 s of the pod running; then traffic reaches it.
    for (const node of lab.nodes.map((item) => item.name)) {
      await waitFor(`the backend in ${node}'s Service map`, async () => (await new BpfTool(nodeShell(node)).dumpMap(mapPinPath(DEFAULT_PIN_ROOT, 'pinion_services_v2'))).some((row) => {
        const key = lb4Key.decode(row.key)
        return key.address === freshVip && key.backendSlot === 0 && (lb4Service.decode(row.value!).count as number) === 1
      }), {timeoutMs: Math.max(1, 2000 - (Date.now() - started)), intervalMs: 25})
    }
    expect(Date.now() - started).toBeLessThanOrEqual(2000)
    expect((await probe('web-2-1', 'tcp', freshVip, 80)).reply).toMatch(/^pinion default\/fresh-1 tcp 80/)
    await deletePod('fresh-1')
    const deleted = Date.now()
    for (const node of lab.nodes.map((item) => item.name)) {
      await waitFor(`pod fresh-1's ipcache entry to leave ${node}`, async () => !(await hasIpcache(node, pod.status!.podIP!)), {timeoutMs: 2000, intervalMs: 50})
    }
    await waitFor('its endpoint entry to go', async () => !(await hasEndpoint(lab.nodes[0].name, pod.status!.podIP!)), {timeoutMs: Math.max(1, 2000 - (Date.now() - deleted)), intervalMs: 50})
    expect(Date.now() - deleted).toBeLessThanOrEqual(2000)
    await api.core.deleteNamespacedService({namespace: 'default', name: 'fresh'})
  })

  it('serves Prometheus metrics on its node: forwarded packets, conntrack entries and limit, map fill, sync lag, health', async () => {
    const node = lab.nodes[0].name
    const get = async (path: string) => {
      const script = `fetch('http://127.0.0.1:9965${path}').then(async (r) => process.stdout.write(r.status + '\\n' + await r.text()), (e) => { console.error(e.message); process.exit(1) })`
      const result = await nodeShell(node).run([process.execPath, '-e', script])
      expect(result.exitCode, result.stderr).toBe(0)
      const [status, ...body] = result.stdout.toString().split('\n')
      return {status: Number(status), body: body.join('\n')}
    }
    expect((await probe('web-1-1', 'tcp', vip, 80)).ok).toBe(true)
    expect((await get('/healthz')).status).toBe(200)
    const {status, body} = await get('/metrics')
    expect(status).toBe(200)
    const value = (name: string, labels = '') => {
      const line = body.split('\n').find((candidate) => candidate.startsWith(`${name}${labels} `))
      return line === undefined ? undefined : Number(line.split(' ').pop())
    }
    expect(value('pinion_datapath_packets_total', '{reason="FORWARDED",direction="egress"}')).toBeGreaterThan(0)
    expect(value('pinion_conntrack_entries')).toBeGreaterThan(0)
    expect(value('pinion_conntrack_limit')).toBe(524288)
    expect(value('pinion_map_entries', '{map="pinion_endpoint"}')).toBeGreaterThan(0)
    expect(value('pinion_agent_unenforced_endpoints')).toBe(0)
    expect(value('pinion_agent_sync_lag_seconds')).toBeGreaterThanOrEqual(0)
    expect(body).toMatch(/^# TYPE pinion_conntrack_entries gauge$/m)
  })

  it('keeps an established TCP connection while the agent is killed, and the restarted agent converges', async () => {
    const node = lab.nodes[0].name
    const client = await api.core.readNamespacedPod({namespace: 'default', name: 'web-1-1'})
    const server = (await api.core.readNamespacedPod({namespace: 'default', name: 'web-2-1'})).status!.podIP!
    // A long-lived connection to the echo port: one line per line on stdin.
    const conversation: ChildProcess = spawn('ip', ['netns', 'exec', podNetns(client), process.execPath, '-e', `
      const socket = require('node:net').connect(7, ${JSON.stringify(server)})
      socket.on('data', (data) => process.stdout.write(data))
      socket.on('error', (error) => { process.stdout.write('ERROR ' + error.message + '\\n'); process.exit(1) })
      process.stdin.on('data', (data) => socket.write(data))
      process.stdin.on('end', () => socket.end())
      socket.on('end', () => process.exit(0))`], {stdio: ['pipe', 'pipe', 'inherit']})
    let received = ''
    conversation.stdout!.on('data', (chunk: Buffer) => (received += chunk.toString()))
    const say = async (line: string) => {
      conversation.stdin!.write(`${line}\n`)
      await waitFor(`the echo of "${line}"`, () => received.includes(line), {timeoutMs: 5000})
    }
    await say('before')
    const before = await agentStatus(node)
    const agentPod = await agentReady(node)
    // Its event reader (and anything else it runs) must die with it.
    const children = await waitFor('the agent\'s event reader', () => {
      const pids = execFileSync('ps', ['-o', 'pid=', '--ppid', String(before.pid)], {encoding: 'utf8'}).trim().split(/\s+/).filter(Boolean).map(Number)
      return pids.length ? pids : undefined
    }, {timeoutMs: 10_000})
    process.kill(before.pid, 'SIGKILL')
    await say('agent-dead')
    await waitFor('the killed agent\'s children to go', () => children.every((pid) => !processAlive(pid)), {timeoutMs: 5000})
    // The kubelet restarts it; it adopts the pinned maps and converges without re-creating them.
    await waitFor('the agent to restart', async () => (await agentStatus(node).catch(() => before)).pid !== before.pid, {timeoutMs: 30_000, intervalMs: 100})
    const restarted = await agentReady(node)
    expect(restarted.metadata!.name).toBe(agentPod.metadata!.name)
    expect(restarted.status!.containerStatuses![0].restartCount).toBeGreaterThan(agentPod.status!.containerStatuses![0].restartCount ?? 0)
    await say('after')
    conversation.stdin!.end()
    await new Promise((resolve) => conversation.on('exit', resolve))
    expect(received).not.toContain('ERROR')
    const log = readFileSync(join(labDir(lab.name), 'logs', `${AGENT_NAMESPACE}_${agentPod.metadata!.name}.log`), 'utf8')
    expect(log.match(/converged: \+0\/-0 entries/g)!.length).toBeGreaterThanOrEqual(2) // both runs found the maps right
    // And it follows the cluster again.
    await api.networking.createNamespacedNetworkPolicy({namespace: 'default', body: {metadata: {name: 'after-restart'}, spec: {podSelector: {matchLabels: {app: 'web'}}, policyTypes: ['Ingress']}}})
    await waitFor('the new policy to deny', async () => (await probe('web-2-1', 'tcp', (client.status!.podIP)!, 80)).error === 'timeout', {timeoutMs: 10_000})
    await api.networking.deleteNamespacedNetworkPolicy({namespace: 'default', name: 'after-restart'})
    await waitFor('the policy removal to allow again', async () => (await probe('web-2-1', 'tcp', (client.status!.podIP)!, 80)).ok, {timeoutMs: 10_000})
  })

  it('keeps forwarding while the API server is down for 10 s, and the agents resume when it is back', async () => {
    const client = await api.core.readNamespacedPod({namespace: 'default', name: 'web-1-1'})
    const target = (await api.core.readNamespacedPod({namespace: 'default', name: 'web-2-1'})).status!.podIP!
    const {pid} = JSON.parse(readFileSync(join(labDir(lab.name), 'apiserver.json'), 'utf8')) as {pid: number}
    process.kill(pid, 'SIGSTOP')
    const down = Date.now()
    let probes = 0
    try {
      while (Date.now() - down < 10_000) {
        expect((await probeFrom(podNetns(client), 'tcp', vip, 80)).reply).toMatch(/^pinion default\/web-\d-1 tcp 80/)
        expect((await probeFrom(podNetns(client), 'tcp', target, 80)).ok).toBe(true)
        probes++
      }
    } finally {
      process.kill(pid, 'SIGCONT')
    }
    expect(probes).toBeGreaterThan(3)
    await api.networking.createNamespacedNetworkPolicy({namespace: 'default', body: {metadata: {name: 'after-outage'}, spec: {podSelector: {matchLabels: {app: 'web'}}, policyTypes: ['Ingress']}}})
    await waitFor('the agents to enforce a policy made after the outage', async () => (await probe('web-1-1', 'tcp', target, 80)).error === 'timeout', {timeoutMs: 15_000})
    await api.networking.deleteNamespacedNetworkPolicy({namespace: 'default', name: 'after-outage'})
    await waitFor('the policy removal to allow again', async () => (await probe('web-1-1', 'tcp', target, 80)).ok, {timeoutMs: 10_000})
  })

  it('shares each node\'s writer lease with install: the agents hand their nodes over, then take them back and reconcile', async () => {
    const coordination = api.config.makeApiClient(CoordinationV1Api)
    const lease = (node: string) => coordination.readNamespacedLease({namespace: LEASE_NAMESPACE, name: leaseName(node)})
    const before = new Map<string, {transitions: number; reconciles: number}>()
    for (const node of lab.nodes) {
      const held = await lease(node.name)
      expect(held.spec?.holderIdentity).toBe(`agent:${node.name}`)
      before.set(node.name, {transitions: held.spec?.leaseTransitions ?? 0, reconciles: (await agentStatus(node.name)).fullReconciles})
    }
    const result = await install(api, {nodes: [], access, pinRoot: DEFAULT_PIN_ROOT, progress: false, dryRun: false, agent: {image: 'ghcr.io/pinion-dev/agent:test', timeoutMs: 90_000}})
    expect(result.nodes.every((outcome) => outcome.ok), JSON.stringify(result.nodes)).toBe(true)
    for (const node of lab.nodes) {
      await waitFor(`the agent on ${node.name} to hold its lease again`, async () => {
        const status = await agentStatus(node.name)
        return status.lease?.held && status.fullReconciles > before.get(node.name)!.reconciles
      }, {timeoutMs: 20_000, intervalMs: 200})
      const held = await lease(node.name)
      expect(held.spec?.holderIdentity).toBe(`agent:${node.name}`)
      // Agent -> install -> agent.
      expect(held.spec?.leaseTransitions).toBeGreaterThanOrEqual(before.get(node.name)!.transitions + 2)
    }
  })

  it('never starts a pod while its node\'s agent is stopped, and status names the node and the pod it cannot enforce', async () => {
    const node = lab.nodes[1].name
    const {pid} = await agentStatus(node)
    process.kill(pid, 'SIGSTOP')
    try {
      await createPod('waiting-1', node, {app: 'waiting'})
      await waitFor('the sandbox to be refused', async () => (await api.core.listNamespacedEvent({namespace: 'default'})).items.some((event) => event.involvedObject?.name === 'waiting-1' && event.reason === 'FailedCreatePodSandBox' && /pinion-cni/.test(event.message ?? '')), {timeoutMs: 30_000, intervalMs: 200})
      expect((await api.core.readNamespacedPod({namespace: 'default', name: 'waiting-1'})).status?.phase).toBe('Pending')
      // A pod whose programs are gone (as after a failed attach) is named as unenforced.
      const web = await api.core.readNamespacedPod({namespace: 'default', name: 'web-2-1'})
      const hostIf = (await nodeShell(node).run(['ip', '-o', 'route', 'get', web.status!.podIP!])).stdout.toString().match(/ dev (\S+)/)![1]
      await nodeShell(node).run(['tc', 'qdisc', 'del', 'dev', hostIf, 'clsact'])
      await waitFor('the agent pod to be reported not ready', async () => !(await agentPods(api)).get(node)?.status?.conditions?.some((condition) => condition.type === 'Ready' && condition.status === 'True'), {timeoutMs: 20_000, intervalMs: 200})
      const statuses = await clusterStatus(api, access, [], DEFAULT_PIN_ROOT)
      const status = statuses.find((item) => item.node === node)!
      expect(status.health).toBe('degraded')
      expect(status.unenforced).toEqual(['default/web-2-1 (no programs)'])
      expect(status.problems.join('; ')).toMatch(/agent pinion-agent-\w+ is not ready/)
      const cli = spawn(`${REPO_ROOT}bin/run.js`, ['status', '--kubeconfig', lab.kubeconfig], {stdio: ['ignore', 'pipe', 'pipe']})
      let out = ''
      cli.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()))
      const code = await new Promise((resolve) => cli.on('exit', resolve))
      expect(code).toBe(1)
      expect(out).toContain('default/web-2-1 (no programs)')
    } finally {
      process.kill(pid, 'SIGCONT')
    }
    // Back, the agent lets the pod start enforced; a full reconcile (its own after the lapsed lease, or the one `pinion sync` asks for) re-attaches the other.
    const waiting = await running('waiting-1', 60_000)
    expect(await hasEndpoint(node, waiting.status!.podIP!)).toBe(true)
    const sync = spawn(`${REPO_ROOT}bin/run.js`, ['sync', '--kubeconfig', lab.kubeconfig, '-o', 'json'], {stdio: ['ignore', 'pipe', 'inherit']})
    let synced = ''
    sync.stdout!.on('data', (chunk: Buffer) => (synced += chunk.toString()))
    expect(await new Promise((resolve) => sync.on('exit', resolve))).toBe(0)
    // Stopped past its lease, the agent already reconciled on its own when it came back (someone may have written meanwhile).
    const outcome = (JSON.parse(synced) as {node: string; action: string}[]).find((item) => item.node === node)!
    expect(['synced by agent', 'unchanged (agent)']).toContain(outcome.action)
    expect((await clusterStatus(api, access, [node], DEFAULT_PIN_ROOT))[0]).toMatchObject({health: 'healthy', unenforced: []})
    await deletePod('waiting-1')
  }, 180_000)

  it('writes policy log records on the node without any CLI running, and policy-logging logs reads them', async () => {
    await setLoggingConfig(api, access, DEFAULT_PIN_ROOT, {allow: {log: false, delegate: false}, deny: {log: true, delegate: false}})
    try {
      await api.networking.createNamespacedNetworkPolicy({namespace: 'default', body: {metadata: {name: 'log-deny'}, spec: {podSelector: {matchLabels: {app: 'web'}}, policyTypes: ['Ingress']}}})
      const target = (await api.core.readNamespacedPod({namespace: 'default', name: 'web-2-1'})).status!.podIP!
      await waitFor('the policy to deny', async () => (await probe('web-1-1', 'tcp', target, 80)).error === 'timeout', {timeoutMs: 10_000})
      const node = lab.nodes[1].name
      // Denies of one connection are aggregated for 5 s, then written.
      const record = await waitFor('a deny record in the node\'s policy log', async () => {
        const {stdout} = await nodeShell(node).run(['cat', POLICY_LOG_FILE])
        return stdout.toString().split('\n').filter(Boolean).map((line) => JSON.parse(line) as PolicyLogRecord).find((item) => item.disposition === 'deny' && item.connection.dest_ip === target)
      }, {timeoutMs: 20_000, intervalMs: 250})
      expect(record).toMatchObject({node_name: node, policies: [{kind: 'NetworkPolicy', namespace: 'default', name: 'log-deny'}], dest: {pod_name: 'web-2-1', pod_namespace: 'default'}, src: {pod_name: 'web-1-1'}, connection: {dest_port: 80, protocol: 'tcp', direction: 'ingress'}})
      const cli = spawn(`${REPO_ROOT}bin/run.js`, ['policy-logging', 'logs', '--kubeconfig', lab.kubeconfig, '--tail', '20'], {stdio: ['ignore', 'pipe', 'inherit']})
      let out = ''
      cli.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()))
      expect(await new Promise((resolve) => cli.on('exit', resolve))).toBe(0)
      expect(out.split('\n').filter(Boolean).map((line) => JSON.parse(line) as PolicyLogRecord).some((item) => item.disposition === 'deny' && item.connection.dest_ip === target && item.node_name === node)).toBe(true)
    } finally {
      await api.networking.deleteNamespacedNetworkPolicy({namespace: 'default', name: 'log-deny'}).catch(() => undefined)
      await setLoggingConfig(api, access, DEFAULT_PIN_ROOT, {allow: {log: false, delegate: false}, deny: {log: false, delegate: false}})
    }
  })

  it('brings the datapath to a node added after install, through the DaemonSet', async () => {
    const summary = await labAddNode(lab.name)
    const added = summary.nodes[2].name
    const agent = await agentReady(added)
    expect(agent.metadata!.ownerReferences![0]).toMatchObject({kind: 'DaemonSet', name: AGENT_NAME})
    expect((await nodeShell(added).run(['test', '-e', `${DEFAULT_PIN_ROOT}/progs/from_pod`])).exitCode).toBe(0)
    await api.networking.createNamespacedNetworkPolicy({namespace: 'default', body: {metadata: {name: 'new-node'}, spec: {podSelector: {matchLabels: {role: 'newcomer'}}, policyTypes: ['Ingress']}}})
    await createPod('newcomer-1', added, {role: 'newcomer'})
    const pod = await running('newcomer-1', 60_000)
    expect(await probe('web-1-1', 'tcp', pod.status!.podIP!, 80)).toMatchObject({ok: false, error: 'timeout'})
    expect((await probe('newcomer-1', 'tcp', vip, 80)).reply).toMatch(/^pinion default\/web-\d-1 tcp 80/)
    await deletePod('newcomer-1')
    await api.networking.deleteNamespacedNetworkPolicy({namespace: 'default', name: 'new-node'})
  })

  it('uninstall removes the agent, its RBAC, the CNI chain entry and the datapath; pods then start without it', async () => {
    const outcomes = await uninstall(api, {nodes: [], access, pinRoot: DEFAULT_PIN_ROOT, progress: false, timeoutMs: 60_000})
    expect(outcomes.every((outcome) => outcome.ok), JSON.stringify(outcomes)).toBe(true)
    expect((await agentPods(api)).size).toBe(0)
    await expect(api.config.makeApiClient(RbacAuthorizationV1Api).readClusterRole({name: AGENT_NAME})).rejects.toMatchObject({code: 404})
    for (const node of readState(lab.name)!.nodes.map((item) => item.name)) {
      const conflist = (await nodeShell(node).run(['sh', '-c', 'cat /etc/cni/net.d/*.conflist; ls /etc/cni/net.d /opt/cni/bin'])).stdout.toString()
      expect(conflist).not.toContain('pinion-cni')
      expect((await nodeShell(node).run(['test', '-e', `${DEFAULT_PIN_ROOT}/progs/from_pod`])).exitCode).not.toBe(0)
    }
    await createPod('after-uninstall', lab.nodes[0].name, {app: 'after'})
    expect((await running('after-uninstall')).status!.podIP).toBeTruthy()
    await deletePod('after-uninstall')
  })
})
