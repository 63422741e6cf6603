import {createHash} from 'node:crypto'
import {existsSync, readFileSync} from 'node:fs'
import {fileURLToPath} from 'node:url'
import type {Clients} from '../cluster/kubeconfig.js'
import {readSnapshot} from '../cluster/snapshot.js'
import {BPF_OBJECT} from '../datapath/catalogue.js'
import {UserError} from '../lib/errors.js'
import {NodeProgress} from '../lib/progress.js'
import {PINION_VERSION} from '../lib/version-info.js'
import {type NodeAccess, type NodeAccessOptions, withNodeAccess} from '../nodes/node-access.js'
import type {NodeShell} from '../nodes/shell.js'
import {checkCapacity} from '../sync/capacity.js'
import {ClusterPlanner, type NodePlan} from '../sync/plan.js'
import {type DatapathObject, installNode, type NodeInstallResult, uninstallNode} from './node-install.js'
import {readLoggingConfig} from '../monitor/policy-logging.js'
import {readNodeRecord} from './node-state.js'
import {nextFlowEpoch, updateNodeConfig} from './runtime-config.js'
import {preflight, type Preflight} from './preflight.js'

export interface ClusterOptions {
  nodes: readonly string[]
  access: NodeAccessOptions
  pinRoot: string
  /** Show progress on stderr. */
  progress: boolean
}

export interface NodeOutcome {
  node: string
  ok: boolean
  action?: string
  preflight?: Preflight
  result?: NodeInstallResult
  plan?: {endpoints: number; entries: number}
  error?: string
  durationMs: number
}

/** The compiled datapath shipped with this CLI. */
export function datapathObject(): DatapathObject {
  const path = fileURLToPath(new URL(`../../dist/bpf/${BPF_OBJECT}`, import.meta.url))
  if (!existsSync(path)) throw new UserError(`the datapath object ${path} is missing: run \`make build\``)
  const data = readFileSync(path)
  return {data, sha: createHash('sha256').update(data).digest('hex'), version: PINION_VERSION}
}

/**
 * Run one step on every selected node with the cluster's plan for it, with
 * progress, bounded concurrency and per-node outcomes (one node's failure
 * never stops the others).
 */
type NodeStep = (shell: NodeShell, plan: NodePlan, report: (text: string) => void) => Promise<Omit<NodeOutcome, 'node' | 'durationMs' | 'ok'>>

async function onNodes(api: Clients, options: ClusterOptions, label: string, step: NodeStep): Promise<NodeOutcome[]> {
  return withNodeAccess(api, options.access, (access) => onNodesWith(api, access, options, label, step))
}

async function onNodesWith(api: Clients, access: NodeAccess, options: ClusterOptions, label: string, step: NodeStep): Promise<NodeOutcome[]> {
  const planner = new ClusterPlanner(await readSnapshot(api))
  const nodes = await access.nodes(options.nodes)
  // Every node's plan must fit before any node is touched; plans are made one node at a time.
  for (const node of nodes) checkCapacity(planner.planNode(node))
  const progress = options.progress ? new NodeProgress(nodes, label) : undefined
  const settled = await access.forEach(nodes, async (shell, node) => {
    progress?.update(node, 'starting')
    try {
      const outcome = await step(shell, planner.planNode(node), (text) => progress?.update(node, text))
      progress?.done(node)
      return outcome
    } catch (error) {
      progress?.done(node, (error as Error).message)
      throw error
    }
  })
  await progress?.finish()
  // A node that failed gets a fresh shell next time (its debug pod may be gone).
  for (const result of settled) if (!result.ok) access.forget(result.item)
  return settled.map((result) => ({node: result.item, ok: result.ok, ...result.value, error: result.error, durationMs: result.durationMs}))
}

export async function install(api: Clients, options: ClusterOptions & {dryRun: boolean}): Promise<NodeOutcome[]> {
  const object = datapathObject()
  const logging = await readLoggingConfig(api)
  return onNodes(api, options, 'install', async (shell, plan, report) => {
    report('preflight')
    const checks = await preflight(shell, options.pinRoot)
    if (!checks.ok) throw new Error(`preflight failed: ${checks.problems.join('; ')}`)
    const planned = {endpoints: plan.endpoints.length, entries: plan.entries.length + plan.endpoints.length}
    if (options.dryRun) return {action: 'would install', preflight: checks, plan: planned}
    const result = await installNode(shell, plan, object, options.pinRoot, report)
    // Policy logging is cluster configuration: a (re)installed node gets it
    // back. New programs must not trust what older ones cached.
    await updateNodeConfig(shell, options.pinRoot, (current) => {
      current.policyLogAllow = logging.allow.log ? 1 : 0
      current.policyLogDeny = logging.deny.log ? 1 : 0
      nextFlowEpoch(current)
    })
    return {action: result.action, preflight: checks, result, plan: planned}
  })
}

/** Recompute from the cluster and apply only the differences; nodes must be installed. */
export async function sync(api: Clients, options: ClusterOptions): Promise<NodeOutcome[]> {
  return withNodeAccess(api, options.access, (access) => syncWith(api, access, options))
}

export async function syncWith(api: Clients, access: NodeAccess, options: ClusterOptions): Promise<NodeOutcome[]> {
  const object = datapathObject()
  return onNodesWith(api, access, options, 'sync', async (shell, plan, report) => {
    const record = await readNodeRecord(shell)
    if (!record) throw new Error('Pinion is not installed on this node: run `pinion install`')
    // Sync keeps the installed programs: it only fills maps and attaches new pods.
    const result = await installNode(shell, plan, {...object, sha: record.objectSha}, options.pinRoot, report)
    return {action: result.changes.updated + result.changes.deleted > 0 ? 'synced' : 'unchanged', result}
  })
}

export async function uninstall(api: Clients, options: ClusterOptions): Promise<NodeOutcome[]> {
  return onNodes(api, options, 'uninstall', async (shell, _plan, report) => {
    report('detaching and unpinning')
    const result = await uninstallNode(shell, options.pinRoot)
    return {action: result.wasInstalled ? `removed (${result.interfaces} interfaces)` : 'not installed'}
  })
}
