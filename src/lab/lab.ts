import {spawn} from 'node:child_process'
import {closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {request} from 'node:https'
import {join} from 'node:path'
import {clients} from '../cluster/kubeconfig.js'
import {errorMessage, UsageError, UserError} from '../lib/errors.js'
import {processAlive} from '../lib/process.js'
import {nodeScript} from '../lib/scripts.js'
import {waitFor} from '../lib/wait.js'
import {createCredentials, kubeconfigYaml, readCredentials} from './certs.js'
import {labDir, type LabNode, labNodeObject, NODE_API_PORT, nodeKubeconfigPath, nodeLayout, underlayNetns, validateLabName} from './config.js'
import {LabKubelet} from './kubelet.js'
import {shQuiet} from './netns.js'
import {createNode, createUnderlay, destroyNamespaces, disconnectHost, routePodCidrs} from './nodes.js'
import {readState, updateState, writeState} from './state.js'
import {createWorkloads} from './workloads.js'

export interface LabUpOptions {
  name: string
  nodes: number
  podsPerNode: number
  progress?: (message: string) => void
}

export interface LabSummary {
  name: string
  kubeconfig: string
  apiServer: string
  healthy: boolean
  nodes: (Pick<LabNode, 'name' | 'underlayIp' | 'podCidr' | 'netns'> & {pods: number})[]
  fixture: string
}

const FIXTURE_NOTE = 'The lab is a development and test fixture, not a Kubernetes distribution.'

function apiInfo(name: string): {port: number; pid: number} | undefined {
  const path = join(labDir(name), 'apiserver.json')
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as {port: number; pid: number}) : undefined
}

async function healthy(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({host: '127.0.0.1', port, path: '/readyz', rejectUnauthorized: false, timeout: 2000}, (res) => {
      res.resume()
      resolve(res.statusCode === 200)
    })
    req.on('error', () => resolve(false))
    req.on('timeout', () => req.destroy())
    req.end()
  })
}

export async function labUp(options: LabUpOptions): Promise<LabSummary> {
  const name = validateLabName(options.name)
  if (!Number.isInteger(options.nodes) || options.nodes < 1 || options.nodes > 10) throw new UsageError('--nodes must be between 1 and 10')
  if (!Number.isInteger(options.podsPerNode) || options.podsPerNode < 0 || options.podsPerNode > 20) throw new UsageError('--pods-per-node must be between 0 and 20')
  if (process.getuid?.() !== 0) throw new UserError('the lab needs root: it creates network and mount namespaces')
  const progress = options.progress ?? (() => {})
  const existing = readState(name)
  if (existing) {
    const api = apiInfo(name)
    if (api && processAlive(api.pid)) throw new UserError(`lab "${name}" is already up (kubeconfig ${join(labDir(name), 'kubeconfig')}); run \`pinion lab down --name ${name}\` first`)
    progress(`removing the remains of an earlier lab "${name}"`)
    await labDown(name)
  }
  mkdirSync(labDir(name), {recursive: true})
  writeState({name, createdAt: new Date().toISOString(), nodes: [], netns: [], pids: []})
  try {
    progress('creating the underlay')
    const subnet = await createUnderlay(name)
    const nodes = Array.from({length: options.nodes}, (_, index) => nodeLayout(name, index, subnet))
    updateState(name, (state) => void (state.nodes = nodes))
    for (const node of nodes) {
      progress(`creating node ${node.name}`)
      await createNode(name, node) // fills in node.holderPid
    }
    await routePodCidrs(nodes)
    progress('starting the API server')
    const credentials = await createCredentials(labDir(name))
    const log = openSync(join(labDir(name), 'apiserver.log'), 'a')
    const [node, ...script] = nodeScript(import.meta.url, './api-main')
    const daemon = spawn(node, [...script, '--lab', name], {detached: true, stdio: ['ignore', log, log]})
    closeSync(log)
    daemon.unref()
    updateState(name, (state) => state.pids.push(daemon.pid!))
    const api = await waitFor('the lab API server to listen', () => {
      if (!processAlive(daemon.pid!)) throw new Error(`the lab API server exited; see ${join(labDir(name), 'apiserver.log')}`)
      return apiInfo(name)
    }, {timeoutMs: 20_000})
    await waitFor('the lab API server to be ready', () => healthy(api.port), {timeoutMs: 20_000})
    const kubeconfig = join(labDir(name), 'kubeconfig')
    writeFileSync(kubeconfig, kubeconfigYaml(name, api.port, credentials), {mode: 0o600})
    // Each node reaches the API on its own loopback, through its relay.
    for (const node of nodes) writeFileSync(nodeKubeconfigPath(name, node.name), kubeconfigYaml(name, NODE_API_PORT, credentials), {mode: 0o600})
    updateState(name, (state) => {
      state.api = api
      state.kubeconfig = kubeconfig
    })
    if (options.podsPerNode > 0) {
      progress(`starting ${options.podsPerNode * options.nodes} workload pods`)
      const api = clients({kubeconfig})
      await createWorkloads(api, nodes.map((node) => node.name), options.podsPerNode)
      await waitFor('the workload pods to run', async () => {
        const {items} = await api.core.listNamespacedPod({namespace: 'default', labelSelector: 'app=web'})
        const failed = items.find((pod) => pod.status?.phase === 'Failed')
        if (failed) throw new Error(`pod ${failed.metadata?.name} failed: ${failed.status?.message}`)
        return items.length > 0 && items.every((pod) => pod.status?.phase === 'Running')
      }, {timeoutMs: 60_000})
    }
    return await labStatus(name)
  } catch (error) {
    progress(`lab up failed (${errorMessage(error)}); removing what it made`)
    await labDown(name)
    throw error
  }
}

/** Add a node to a running lab: its namespaces, routes and CNI chain, then its Node object (DaemonSets then reach it). */
export async function labAddNode(name: string): Promise<LabSummary> {
  validateLabName(name)
  const state = readState(name)
  if (!state?.kubeconfig) throw new UserError(`lab "${name}" is not up: run \`pinion lab up\``)
  if (state.nodes.length >= 10) throw new UserError('a lab holds at most 10 nodes')
  const node = nodeLayout(name, state.nodes.length, state.underlaySubnet ?? 0)
  updateState(name, (current) => void current.nodes.push(node))
  await createNode(name, node)
  const nodes = readState(name)!.nodes
  await routePodCidrs(nodes)
  writeFileSync(nodeKubeconfigPath(name, node.name), kubeconfigYaml(name, NODE_API_PORT, readCredentials(labDir(name))), {mode: 0o600})
  await clients({kubeconfig: state.kubeconfig}).core.createNode({body: labNodeObject(name, node) as never})
  return labStatus(name)
}

/** Remove every namespace, mount, process and file of a lab; idempotent, also after a crash. */
export async function labDown(name: string): Promise<{name: string; existed: boolean}> {
  validateLabName(name)
  const state = readState(name)
  const dir = labDir(name)
  if (!state && !existsSync(dir)) return {name, existed: false}
  const api = apiInfo(name)
  const pids = [...new Set([...(state?.pids ?? []), ...(api ? [api.pid] : [])])]
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM')
    } catch {
      // already gone
    }
  }
  try {
    await waitFor('lab processes to exit', () => pids.every((pid) => !processAlive(pid)), {timeoutMs: 5000})
  } catch {
    for (const pid of pids.filter(processAlive)) process.kill(pid, 'SIGKILL')
  }
  await LabKubelet.cleanRecord(name)
  await disconnectHost(name)
  if (state) {
    await destroyNamespaces(state.netns)
  } else {
    await shQuiet(['ip', 'netns', 'del', underlayNetns(name)])
  }
  rmSync(dir, {recursive: true, force: true})
  return {name, existed: true}
}

export async function labStatus(name: string): Promise<LabSummary> {
  validateLabName(name)
  const state = readState(name)
  if (!state) throw new UserError(`lab "${name}" is not up: run \`pinion lab up\``)
  const api = apiInfo(name)
  const isHealthy = api ? processAlive(api.pid) && (await healthy(api.port)) : false
  const podsPerNode = new Map<string, number>()
  if (isHealthy && state.kubeconfig) {
    const {items} = await clients({kubeconfig: state.kubeconfig}).core.listPodForAllNamespaces()
    for (const pod of items) {
      const node = pod.spec?.nodeName
      if (node) podsPerNode.set(node, (podsPerNode.get(node) ?? 0) + 1)
    }
  }
  return {
    name,
    kubeconfig: state.kubeconfig ?? '',
    apiServer: api ? `https://127.0.0.1:${api.port}` : '',
    healthy: isHealthy,
    nodes: state.nodes.map((node) => ({name: node.name, underlayIp: node.underlayIp, podCidr: node.podCidr, netns: node.netns, pods: podsPerNode.get(node.name) ?? 0})),
    fixture: FIXTURE_NOTE,
  }
}

/** The token and CA key, for tests that prove nothing leaks them. */
export function labSecrets(name: string): {token: string; caKey: string} {
  return {token: readCredentials(labDir(name)).token, caKey: readFileSync(join(labDir(name), 'ca.key'), 'utf8')}
}
