import {execFileSync} from 'node:child_process'
import {readFileSync} from 'node:fs'
import {Ajv2020} from 'ajv/dist/2020.js'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {execInPod} from '../../src/cluster/exec.js'
import type {Clients} from '../../src/cluster/kubeconfig.js'
import {DEFAULT_PIN_ROOT} from '../../src/datapath/catalogue.js'
import {install, uninstall} from '../../src/install/install.js'
import type {LabSummary} from '../../src/lab/lab.js'
import {DEFAULT_IMAGE} from '../../src/nodes/debug-pods.js'
import {defaultSshOptions} from '../../src/nodes/ssh-shell.js'
import {dumpMap, type DumpOptions, resolveMap} from '../../src/maps/dump.js'
import {startLab, stopLab} from '../helpers/lab.js'
import {REPO_ROOT} from '../helpers/system.js'
import {type ClusterOptions} from '../../src/sync/cluster-sync.js'

let lab: LabSummary
let api: Clients
const access = {transport: 'pod' as const, image: DEFAULT_IMAGE, concurrency: 4, podStartTimeoutMs: 20_000, ssh: defaultSshOptions(), sshHosts: {}}
const cluster: ClusterOptions = {nodes: [], access, pinRoot: DEFAULT_PIN_ROOT, progress: false}
const dump = (map: string, extra: Partial<DumpOptions> = {}) => dumpMap(api, access, {map, nodes: [], filters: [], raw: false, pinRoot: DEFAULT_PIN_ROOT, ...extra})
const ajv = new Ajv2020({allErrors: true})
const validators = new Map<string, ReturnType<typeof ajv.compile>>()
const schema = (name: string) => {
  if (!validators.has(name)) validators.set(name, ajv.compile(JSON.parse(readFileSync(`${REPO_ROOT}schemas/map-dump/${name}.json`, 'utf8'))))
  return validators.get(name)!
}

beforeAll(async () => {
  ;({lab, api} = await startLab('maps', 2, 2))
  await api.networking.createNamespacedNetworkPolicy({namespace: 'default', body: {metadata: {name: 'web-in'}, spec: {podSelector: {matchLabels: {app: 'web'}}, ingress: [{_from: [{podSelector: {}}], ports: [{port: 80}]}]}}})
  expect((await install(api, {...cluster, dryRun: false})).nodes.every((outcome) => outcome.ok)).toBe(true)
  const vip = (await api.core.readNamespacedService({namespace: 'default', name: 'web'})).spec!.clusterIP!
  await execInPod(api.config, 'default', 'web-1-1', 'web', [process.execPath, `${REPO_ROOT}dist/lab/probe.js`, 'tcp', vip, '80'])
})

afterAll(async () => {
  await stopLab(lab)
})

describe('pinion map dump', () => {
  it('services: frontends joined with backends, matching the cluster', async () => {
    const [node1] = await dump('services', {nodes: [lab.nodes[0].name]})
    const service = await api.core.readNamespacedService({namespace: 'default', name: 'web'})
    const vip = service.spec!.clusterIP!
    expect(node1.rows!.map((row) => row.frontend).sort()).toEqual([`${vip}:0/ICMP`, `${vip}:53/UDP`, `${vip}:80/TCP`])
    const http = node1.rows!.find((row) => row.frontend === `${vip}:80/TCP`)!
    expect(http.service).toBe('default/web')
    const pods = (await api.core.listNamespacedPod({namespace: 'default', labelSelector: 'app=web'})).items
    expect(http.backends).toEqual(pods.map((pod) => `${pod.status!.podIP}:80 (default/${pod.metadata!.name})`).sort())
    expect(schema('services')([node1])).toBe(true)
  })

  it('endpoint, policy and conntrack rows name pods and policies', async () => {
    const endpoints = await dump('endpoint')
    for (const [index, node] of lab.nodes.entries()) {
      const onNode = (await api.core.listNamespacedPod({namespace: 'default', fieldSelector: `spec.nodeName=${node.name}`})).items.map((pod) => `default/${pod.metadata!.name}`)
      expect(endpoints[index].rows!.map((row) => row.pod).sort()).toEqual(onNode.sort())
      expect(endpoints[index].rows!.every((row) => row.ingressIsolatedBy === 'default/web-in (default deny)')).toBe(true)
    }
    const policy = await dump('policy', {nodes: [lab.nodes[0].name]})
    expect(policy[0].rows).toContainEqual(expect.objectContaining({endpoint: 'default/web-1-1', direction: 'ingress', ports: 'TCP/80', verdict: 'allow', policy: 'default/web-in rule 1'}))
    const ct = await dump('ct')
    const rows = ct.flatMap((node) => node.rows!)
    expect(rows.some((row) => row.scope === 'service' && String(row.source).includes('default/web-1-1'))).toBe(true)
    expect(rows.some((row) => row.scope === 'ingress' && row.allowedBy === 'default/web-in rule 1')).toBe(true)
    // The probe's connection went through the flow cache after its handshake.
    const flowcache = await dump('flowcache')
    const flows = flowcache.flatMap((node) => node.rows!).flatMap((row) => row.flows as {hook: string; source: string; translation?: string}[])
    expect(flows).toContainEqual(expect.objectContaining({hook: 'from_pod', source: expect.stringContaining('default/web-1-1'), translation: expect.stringMatching(/^dnat to /)}))
    for (const [name, result] of [['endpoint', endpoints], ['policy', policy], ['ct4', ct], ['flowcache', flowcache]] as const) expect(schema(name)(result), JSON.stringify(schema(name).errors)).toBe(true)
    for (const name of ['backends', 'revnat', 'polnames', 'ipcache', 'metrics']) {
      const result = await dump(name)
      expect(schema(name)(result), `${name}: ${JSON.stringify(schema(name).errors)}`).toBe(true)
    }
  })

  it('filters, limits and shows raw hex only on request', async () => {
    const filtered = await dump('ipcache', {nodes: [lab.nodes[0].name], filters: ['meaning~web-2-1']})
    expect(filtered[0].rows!.length).toBeGreaterThan(0)
    expect(filtered[0].rows!.every((row) => String(row.meaning).includes('web-2-1'))).toBe(true)
    const limited = await dump('ipcache', {nodes: [lab.nodes[0].name], limit: 2})
    expect(limited[0]).toMatchObject({truncated: true})
    expect(limited[0].rows).toHaveLength(2)
    const raw = await dump('revnat', {nodes: [lab.nodes[0].name], raw: true})
    expect(raw[0].rows![0].key).toMatch(/^[0-9a-f]{8}$/)
  })

  it('the CLI prints stable JSON, and refuses unknown maps with the valid names', () => {
    const out = execFileSync(`${REPO_ROOT}bin/run.js`, ['map', 'dump', 'revnat', '--kubeconfig', lab.kubeconfig, '-o', 'json'], {encoding: 'utf8'})
    expect(schema('revnat')(JSON.parse(out))).toBe(true)
    expect(() => resolveMap('nope')).toThrow(/valid maps are endpoint, services, backends, revnat, ct4, policy, polnames, ipcache, metrics, config, clock, flowcache/)
  })

  it('reports a node without Pinion as an error and still shows the others', async () => {
    await uninstall(api, {...cluster, nodes: [lab.nodes[1].name]})
    const results = await dump('endpoint')
    expect(results[0].ok).toBe(true)
    expect(results[1]).toMatchObject({ok: false, error: expect.stringMatching(/not installed/)})
  })
})
