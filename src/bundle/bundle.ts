import {type FileHandle, open, rename, stat, unlink} from 'node:fs/promises'
import * as k8s from '@kubernetes/client-node'
import {stringify} from 'yaml'
import {apiErrorMessage, type Clients} from '../cluster/kubeconfig.js'
import {readSnapshot} from '../cluster/snapshot.js'
import {onDeadline} from '../lib/deadline.js'
import {errorMessage, UsageError} from '../lib/errors.js'
import {mapSettled} from '../lib/pool.js'
import {NodeProgress} from '../lib/progress.js'
import {PINION_VERSION} from '../lib/version-info.js'
import {DEBUG_NAMESPACE} from '../nodes/debug-pods.js'
import {type NodeAccessOptions, withNodeAccess} from '../nodes/node-access.js'
import {NotInstalledError, requireInstalled} from '../datapath/node-state.js'
import {BundleArchive} from './archive.js'
import {redactText, redactValue} from './redact.js'
import {nodeTasks} from './node-tasks.js'
import {clusterNames} from '../sync/names.js'

export interface BundleOptions {
  file: string
  nodes: readonly string[]
  /** Only logs and events newer than this (ms); undefined = all. */
  sinceMs?: number
  concurrency: number
  timeoutPerNodeMs: number
  taskTimeoutMs: number
  eventWindowMs: number
  access: NodeAccessOptions
  pinRoot: string
  progress: boolean
}

export interface TaskRecord {
  scope: string
  file: string
  ok: boolean
  /** Why the task did not run (e.g. Pinion is not installed on the node); not a failure. */
  skipped?: string
  durationMs: number
  error?: string
}

export interface Manifest {
  tool: {name: string; version: string}
  createdAt: string
  clusterVersion?: string
  since?: string
  nodesAsked: string[]
  nodes: Record<string, {ok: boolean; durationMs: number; error?: string; fallback?: string; pinion?: 'installed' | 'not installed'}>
  tasks: TaskRecord[]
  checksums: Record<string, string>
}

export interface BundleResult {
  file: string
  bytes: number
  partial: boolean
  manifest: Manifest
}

async function withTimeout<T>(ms: number, what: string, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController()
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      run(controller.signal),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          controller.abort()
          reject(new Error(`${what} timed out after ${ms} ms`))
        }, ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Collect a support bundle: cluster objects, and per node the datapath and
 * network state, as tasks on bounded worker pools, each with a timeout. A
 * failed task or node is recorded (manifest.json, failed.txt), never fatal:
 * the bundle is always written. Secrets are never collected.
 */
export async function supportBundle(api: Clients, options: BundleOptions): Promise<BundleResult> {
  // The destination is checked (and held) before anything is collected; the bundle appears under its name only when complete.
  const partPath = `${options.file}.part-${process.pid}`
  let output: FileHandle
  try {
    output = await open(partPath, 'w', 0o600)
  } catch (error) {
    throw new UsageError(`cannot write the bundle to ${options.file}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such directory' : (error as NodeJS.ErrnoException).code ?? errorMessage(error)}`)
  }
  const unregister = onDeadline(() => unlink(partPath).catch(() => {}))
  try {
    const result = await collect(api, options, output)
    await rename(partPath, options.file)
    return {...result, bytes: (await stat(options.file)).size}
  } catch (error) {
    await output.close().catch(() => {})
    await unlink(partPath).catch(() => {})
    throw error
  } finally {
    unregister()
  }
}

async function collect(api: Clients, options: BundleOptions, output: FileHandle): Promise<Omit<BundleResult, 'bytes'>> {
  const archive = new BundleArchive()
  const tasks: TaskRecord[] = []
  const record = async (scope: string, file: string, run: (signal: AbortSignal) => Promise<string | Buffer>, timeoutMs = options.taskTimeoutMs) => {
    const started = Date.now()
    try {
      archive.add(scope === 'cluster' ? `cluster/${file}` : `nodes/${scope}/${file}`, await withTimeout(timeoutMs, `${scope} ${file}`, run))
      tasks.push({scope, file, ok: true, durationMs: Date.now() - started})
    } catch (error) {
      tasks.push({scope, file, ok: false, durationMs: Date.now() - started, error: errorMessage(error)})
    }
  }
  const since = options.sinceMs ? Date.now() - options.sinceMs : undefined
  const manifest: Manifest = {tool: {name: 'pinion', version: PINION_VERSION}, createdAt: new Date().toISOString(), since: since ? new Date(since).toISOString() : undefined, nodesAsked: [...options.nodes], nodes: {}, tasks, checksums: {}}

  // Cluster: objects as YAML. Secrets are never listed.
  const snapshot = await readSnapshot(api)
  try {
    const version = await api.config.makeApiClient(k8s.VersionApi).getCode()
    manifest.clusterVersion = version.gitVersion
  } catch (error) {
    tasks.push({scope: 'cluster', file: 'version', ok: false, durationMs: 0, error: apiErrorMessage(error)})
  }
  const objects: Record<string, unknown[]> = {nodes: snapshot.nodes, namespaces: snapshot.namespaces, pods: snapshot.pods, services: snapshot.services, endpointslices: snapshot.slices, networkpolicies: snapshot.policies}
  for (const [name, items] of Object.entries(objects)) await record('cluster', `${name}.yaml`, async () => stringify(redactValue(items)))
  await record('cluster', 'events.yaml', async () => {
    const {items} = await api.core.listEventForAllNamespaces()
    const recent = items.filter((event) => !since || Date.parse(String(event.lastTimestamp ?? event.eventTime ?? event.metadata?.creationTimestamp ?? 0)) >= since)
    return stringify(redactValue(recent))
  })
  await record('cluster', 'pinion-system.yaml', async () => {
    const {items} = await api.core.listNamespacedPod({namespace: DEBUG_NAMESPACE}).catch(() => ({items: [] as k8s.V1Pod[]}))
    return stringify(redactValue(items))
  })

  // Nodes: each on its own deadline; a node that cannot be reached falls back to what the API knows.
  const names = clusterNames(snapshot)
  const perNode = nodeTasks(options.pinRoot, names, options.eventWindowMs, since ? new Date(since) : undefined)
  const pinion = new Map<string, 'installed' | 'not installed'>()
  await withNodeAccess(api, {...options.access, concurrency: options.concurrency}, async (access) => {
    const nodes = await access.nodes(options.nodes)
    manifest.nodesAsked = nodes
    const progress = options.progress ? new NodeProgress(nodes, 'bundle') : undefined
    const results = await mapSettled(nodes, options.concurrency, (node) => withTimeout(options.timeoutPerNodeMs, `node ${node}`, async () => {
      progress?.update(node, 'reaching the node')
      const shell = await access.shell(node)
      // A node without Pinion still gives its network and kernel state; the datapath files are skipped, and said so.
      const installed = await requireInstalled(shell, options.pinRoot).then(() => true, (error) => {
        if (error instanceof NotInstalledError) return false
        throw error
      })
      pinion.set(node, installed ? 'installed' : 'not installed')
      const runnable = perNode.filter((task) => installed || !task.datapath)
      for (const task of perNode.filter((candidate) => !runnable.includes(candidate))) tasks.push({scope: node, file: task.file, ok: true, skipped: 'Pinion is not installed on this node', durationMs: 0})
      let done = 0
      await mapSettled(runnable.map((task) => task.file), 4, async (file) => {
        const task = runnable.find((candidate) => candidate.file === file)!
        await record(node, file, (signal) => task.run(shell, signal))
        progress?.update(node, `${++done}/${runnable.length} files`)
      })
      const failed = tasks.filter((task) => task.scope === node && !task.ok).length
      progress?.done(node, [installed ? '' : 'not installed', failed ? `${failed} tasks failed` : ''].filter(Boolean).join('; ') || undefined)
    }))
    for (const result of results) {
      manifest.nodes[result.item] = {ok: result.ok, durationMs: result.durationMs, error: result.error, pinion: pinion.get(result.item)}
      if (!result.ok) {
        progress?.done(result.item, result.error)
        manifest.nodes[result.item].fallback = 'api'
        const nodeObject = snapshot.nodes.find((node) => node.metadata?.name === result.item)
        archive.add(`nodes/${result.item}/api/node.yaml`, stringify(redactValue(nodeObject)))
        const onNode = snapshot.pods.filter((pod) => pod.spec?.nodeName === result.item)
        archive.add(`nodes/${result.item}/api/pods.yaml`, stringify(redactValue(onNode)))
        // What the node's pods logged, through the API server (honours --since).
        for (const pod of onNode.filter((candidate) => !candidate.spec?.hostNetwork)) {
          const {namespace, name} = pod.metadata as {namespace: string; name: string}
          await record(result.item, `api/logs/${namespace}_${name}.log`, async () => {
            return redactText(await api.core.readNamespacedPodLog({namespace, name, sinceSeconds: options.sinceMs ? Math.ceil(options.sinceMs / 1000) : undefined, tailLines: 2000}))
          })
        }
      }
    }
    await progress?.finish()
  })

  const failures = [
    ...Object.entries(manifest.nodes).filter(([, node]) => !node.ok).map(([name, node]) => `node ${name}: ${node.error}`),
    ...tasks.filter((task) => !task.ok).map((task) => `${task.scope} ${task.file}: ${task.error}`),
  ]
  if (failures.length) archive.add('failed.txt', failures.join('\n') + '\n')
  manifest.checksums = archive.checksums()
  archive.add('manifest.json', JSON.stringify(manifest, null, 2))
  const root = `pinion-bundle-${manifest.createdAt.replace(/[:.]/g, '-')}`
  await archive.write(root, output)
  return {file: options.file, partial: failures.length > 0, manifest}
}
