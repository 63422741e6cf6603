import {existsSync} from 'node:fs'
import {request} from 'node:https'
import {execFileSync} from 'node:child_process'
import * as k8s from '@kubernetes/client-node'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import WebSocket from 'ws'
import {execInPod} from '../../src/cluster/exec.js'
import {apiStatus, type Clients} from '../../src/cluster/kubeconfig.js'
import {hostLink, labDir} from '../../src/lab/config.js'
import {labDown, labSecrets, type LabSummary} from '../../src/lab/lab.js'
import {readSandboxRecord} from '../../src/lab/kubelet.js'
import {readState} from '../../src/lab/state.js'
import {processAlive} from '../../src/lib/process.js'
import {waitFor} from '../../src/lib/wait.js'
import {hostPod, startLab, stopLab} from '../helpers/lab.js'

let lab: LabSummary
let api: Clients
let down = false

beforeAll(async () => {
  ;({lab, api} = await startLab('lab'))
  await hostPod(api, 'tools-2', lab.nodes[1].name)
})

afterAll(async () => {
  if (!down) await stopLab(lab)
})

const exec = (pod: string, argv: string[], stdin?: string) => execInPod(api.config, 'default', pod, pod === 'tools-2' ? 'tools' : 'web', argv, {stdin})

async function expectStatus(promise: Promise<unknown>, code: number): Promise<void> {
  let caught: unknown
  try {
    await promise
  } catch (error) {
    caught = error
  }
  expect(caught, `expected HTTP ${code}`).toBeDefined()
  expect(apiStatus(caught)).toBe(code)
}

describe('lab cluster through @kubernetes/client-node', () => {
  it('has three nodes with pod CIDRs and addresses, and running workload pods on each', async () => {
    const {items: nodes} = await api.core.listNode()
    expect(nodes.map((node) => node.metadata!.name)).toEqual(lab.nodes.map((node) => node.name))
    expect(nodes.map((node) => node.spec!.podCIDR)).toEqual(['10.244.1.0/24', '10.244.2.0/24', '10.244.3.0/24'])
    expect(lab.nodes[0].underlayIp).toMatch(/^10\.99\.\d+\.10$/)
    expect(nodes[0].status!.addresses).toContainEqual({type: 'InternalIP', address: lab.nodes[0].underlayIp})
    const {items: pods} = await api.core.listNamespacedPod({namespace: 'default', labelSelector: 'app=web'})
    expect(pods).toHaveLength(6)
    expect(pods.every((pod) => pod.status!.phase === 'Running' && pod.status!.podIP)).toBe(true)
    const onNode2 = await api.core.listPodForAllNamespaces({fieldSelector: `spec.nodeName=${lab.nodes[1].name}`})
    expect(onNode2.items.map((pod) => pod.metadata!.name).sort()).toEqual(['tools-2', 'web-2-1', 'web-2-2'])
  })

  it('execs in a node through a host-network pod: hostname, addresses, exit codes, stdin', async () => {
    expect((await exec('tools-2', ['hostname'])).stdout.toString().trim()).toBe(lab.nodes[1].name)
    expect((await exec('tools-2', ['ip', '-4', 'addr', 'show', 'eth0'])).stdout.toString()).toContain(`${lab.nodes[1].underlayIp}/24`)
    expect((await exec('tools-2', ['sh', '-c', 'echo oops >&2; exit 3']))).toMatchObject({exitCode: 3, stderr: 'oops\n'})
    expect((await exec('tools-2', ['cat'], 'through stdin')).stdout.toString()).toBe('through stdin')
  })

  it('plugs the host into its underlay only: node addresses reachable, other lab addresses unreachable, none via the default route', () => {
    const node = lab.nodes[0].underlayIp
    const subnet = node.split('.').slice(0, 3).join('.')
    expect(execFileSync('ip', ['-4', '-o', 'route', 'get', node], {encoding: 'utf8'})).toMatch(new RegExp(`dev ${hostLink(lab.name)} `))
    execFileSync('ping', ['-c', '1', '-W', '2', node])
    // Lab addresses no lab answers for fail on the host at once; they never leave through its default route.
    for (const address of ['10.244.9.9', '10.96.200.1', `${subnet === '10.99.254' ? '10.99.253' : '10.99.254'}.10`]) {
      let route = ''
      try {
        route = execFileSync('ip', ['-4', '-o', 'route', 'get', address], {encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe']})
      } catch (error) {
        route = String((error as {stderr?: string}).stderr)
      }
      expect(route, address).toMatch(/unreachable|No route to host|Network is unreachable/)
    }
  })

  it('gives every node its own bpffs', async () => {
    await hostPod(api, 'tools-1', lab.nodes[0].name)
    await execInPod(api.config, 'default', 'tools-1', 'tools', ['mkdir', '/sys/fs/bpf/only-on-node-1'])
    expect((await execInPod(api.config, 'default', 'tools-1', 'tools', ['ls', '/sys/fs/bpf'])).stdout.toString()).toContain('only-on-node-1')
    expect((await exec('tools-2', ['ls', '/sys/fs/bpf'])).stdout.toString()).not.toContain('only-on-node-1')
  })

  it('routes pod to pod across nodes: ping and TCP', async () => {
    const target = await api.core.readNamespacedPod({namespace: 'default', name: 'web-3-1'})
    const ip = target.status!.podIP!
    expect((await exec('web-1-1', ['ping', '-c', '1', '-W', '2', ip])).exitCode).toBe(0)
    const probe = await exec('web-1-1', [process.execPath, `${process.cwd()}/dist/lab/probe.js`, 'tcp', ip, '80'])
    expect(JSON.parse(probe.stdout.toString())).toMatchObject({ok: true, reply: expect.stringMatching(/^pinion default\/web-3-1 tcp 80 from 10\.244\.1\./)})
    const log = await api.core.readNamespacedPodLog({namespace: 'default', name: 'web-3-1'})
    expect(log).toMatch(/tcp 80 connection from 10\.244\.1\./)
  })

  it('keeps EndpointSlices in sync with pods and Services', async () => {
    const slices = async () => (await api.discovery.listNamespacedEndpointSlice({namespace: 'default', labelSelector: 'kubernetes.io/service-name=web'})).items
    const endpoints = async () => (await slices()).flatMap((slice) => slice.endpoints.map((endpoint) => endpoint.targetRef!.name)).sort()
    expect(await endpoints()).toEqual(['web-1-1', 'web-1-2', 'web-2-1', 'web-2-2', 'web-3-1', 'web-3-2'])
    expect((await slices())[0].ports).toEqual(expect.arrayContaining([{name: 'http', port: 80, protocol: 'TCP'}, {name: 'dns', port: 53, protocol: 'UDP'}]))
    await api.core.deleteNamespacedPod({namespace: 'default', name: 'web-3-2'})
    await waitFor('the slice to drop web-3-2', async () => !(await endpoints()).includes('web-3-2'))
  })

  it('watches: ADDED, MODIFIED to Running, DELETED', async () => {
    const seen: string[] = []
    const watch = new k8s.Watch(api.config)
    const request = await watch.watch('/api/v1/namespaces/default/pods', {fieldSelector: 'metadata.name=watched'}, (type, pod: k8s.V1Pod) => seen.push(`${type}:${pod.status?.phase}`), () => {})
    try {
      await api.core.createNamespacedPod({namespace: 'default', body: {metadata: {name: 'watched'}, spec: {containers: [{name: 'c', image: 'pinion.dev/lab-server:1'}]}}})
      await waitFor('Running', () => seen.includes('MODIFIED:Running'))
      await api.core.deleteNamespacedPod({namespace: 'default', name: 'watched'})
      await waitFor('DELETED', () => seen.some((event) => event.startsWith('DELETED')))
      expect(seen[0]).toBe('ADDED:Pending')
    } finally {
      request.abort()
    }
  })

  it('answers like a real API server: 404, 409, 422, 403 and 401', async () => {
    await expectStatus(api.core.readNamespacedPod({namespace: 'default', name: 'missing'}), 404)
    await expectStatus(api.core.createNamespacedService({namespace: 'default', body: {metadata: {name: 'web'}, spec: {ports: [{port: 80}]}}}), 409)
    await expectStatus(api.core.createNamespacedPod({namespace: 'default', body: {metadata: {name: 'Bad_Name'}, spec: {containers: [{name: 'c', image: 'x'}]}}}), 422)
    await api.core.createNamespace({body: {metadata: {name: 'locked', labels: {'pod-security.kubernetes.io/enforce': 'baseline'}}}})
    await expectStatus(api.core.createNamespacedPod({namespace: 'locked', body: {metadata: {name: 'priv'}, spec: {hostNetwork: true, containers: [{name: 'c', image: 'x', securityContext: {privileged: true}}]}}}), 403)
    const status = await new Promise<number>((resolve, reject) => {
      request(`${lab.apiServer}/api/v1/pods`, {ca: Buffer.from(api.config.getCurrentCluster()!.caData!, 'base64')}, (res) => resolve(res.statusCode!)).on('error', reject).end()
    })
    expect(status).toBe(401)
  })

  it('reports image pull failures as the pod\'s own reason', async () => {
    await api.core.createNamespacedPod({namespace: 'default', body: {metadata: {name: 'no-image'}, spec: {containers: [{name: 'c', image: 'example.invalid/none:nonexistent'}]}}})
    const waiting = await waitFor('the pull failure', async () => (await api.core.readNamespacedPod({namespace: 'default', name: 'no-image'})).status?.containerStatuses?.[0]?.state?.waiting)
    expect(waiting.reason).toBe('ImagePullBackOff')
  })

  it('speaks the v4 exec protocol too', async () => {
    const pod = await api.core.readNamespacedPod({namespace: 'default', name: 'tools-2'})
    const url = `${lab.apiServer.replace('https', 'wss')}/api/v1/namespaces/default/pods/${pod.metadata!.name}/exec?command=echo&command=v4&stdout=true&stderr=true`
    const frames = await new Promise<Buffer[]>((resolve, reject) => {
      const ws = new WebSocket(url, ['v4.channel.k8s.io'], {ca: Buffer.from(api.config.getCurrentCluster()!.caData!, 'base64'), headers: {Authorization: `Bearer ${labSecrets(lab.name).token}`}})
      const received: Buffer[] = []
      ws.on('message', (data: Buffer) => received.push(data))
      ws.on('close', () => resolve(received))
      ws.on('error', reject)
    })
    expect(frames[0]).toEqual(Buffer.concat([Buffer.from([1]), Buffer.from('v4\n')]))
    expect(JSON.parse(frames.at(-1)!.subarray(1).toString())).toMatchObject({status: 'Success'})
  })
})

describe('kubectl against the lab', () => {
  const kubectl = (...args: string[]) => execFileSync('kubectl', ['--kubeconfig', lab.kubeconfig, ...args], {encoding: 'utf8', input: '', stdio: ['pipe', 'pipe', 'pipe']})
  const apply = (yaml: string, verb = 'apply') => execFileSync('kubectl', ['--kubeconfig', lab.kubeconfig, verb, '-f', '-'], {encoding: 'utf8', input: yaml})

  it('gets, creates, applies and deletes the supported kinds', () => {
    expect(JSON.parse(kubectl('get', 'nodes', '-o', 'json')).items).toHaveLength(3)
    apply('apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kc\n', 'create')
    apply('apiVersion: v1\nkind: Service\nmetadata:\n  name: api\n  namespace: kc\nspec:\n  selector: {app: api}\n  ports: [{port: 8080}]\n')
    apply('apiVersion: v1\nkind: Service\nmetadata:\n  name: api\n  namespace: kc\n  labels: {tier: backend}\nspec:\n  selector: {app: api}\n  ports: [{port: 8080}]\n')
    const service = JSON.parse(kubectl('get', 'svc', 'api', '-n', 'kc', '-o', 'json'))
    expect(service.metadata.labels).toEqual({tier: 'backend'})
    expect(service.spec.clusterIP).toMatch(/^10\.96\./)
    apply('apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: deny\n  namespace: kc\nspec:\n  podSelector: {}\n')
    expect(JSON.parse(kubectl('get', 'netpol', 'deny', '-n', 'kc', '-o', 'json')).spec.policyTypes).toEqual(['Ingress'])
    kubectl('delete', 'netpol', 'deny', '-n', 'kc')
    kubectl('delete', 'namespace', 'kc')
    expect(() => kubectl('get', 'svc', 'api', '-n', 'kc')).toThrow(/not found/)
  })
})

describe('lab down', () => {
  it('leaves no namespace, mount, process or file behind, also after the API server crashed', async () => {
    const state = readState(lab.name)!
    const podServers = readSandboxRecord(lab.name).pids
    expect(podServers.length).toBeGreaterThan(0)
    process.kill(state.api!.pid, 'SIGKILL') // a crash: the daemon cannot clean its pods up itself
    await labDown(lab.name)
    down = true
    const netns = execFileSync('ip', ['netns', 'list'], {encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe']})
    for (const name of state.netns) expect(netns).not.toContain(name)
    expect(netns).not.toContain(`pinion-${lab.name}-`)
    expect(execFileSync('findmnt', ['-rn', '-o', 'TARGET'], {encoding: 'utf8'})).not.toContain(labDir(lab.name))
    for (const pid of state.pids) expect(processAlive(pid), `pid ${pid}`).toBe(false)
    for (const pid of podServers) expect(processAlive(pid), `pod server ${pid}`).toBe(false)
    expect(existsSync(labDir(lab.name))).toBe(false)
    expect(execFileSync('ip', ['-o', 'link', 'show'], {encoding: 'utf8'})).not.toContain(`${hostLink(lab.name)}:`)
    expect(await labDown(lab.name)).toEqual({name: lab.name, existed: false})
  })
})
