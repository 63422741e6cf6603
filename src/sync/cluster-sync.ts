import {execInPod} from '../cluster/exec.js'
import {AGENT_NAMESPACE, agentInstalled, agentPods} from '../cluster/agent-objects.js'
import type {Clients} from '../cluster/kubeconfig.js'
import {readSnapshot} from '../cluster/snapshot.js'
import {pinnedMapInfo} from '../datapath/maptool.js'
import type {Preflight} from '../datapath/preflight.js'
import {errorMessage} from '../lib/errors.js'
import {NodeProgress} from '../lib/progress.js'
import {type NodeAccess, type NodeAccessOptions, withNodeAccess} from '../nodes/node-access.js'
import type {NodeShell} from '../nodes/shell.js'
import {checkCapacity, effectiveSizes, planFill, plannedSizes} from './capacity.js'
import {type NodeInstallResult, syncNode} from './node-install.js'
import {ClusterPlanner, type NodePlan} from './plan.js'

/*
 * Working on every selected node with the cluster's plan for it (install,
 * sync and uninstall share it), and sync itself: recompute from the cluster
 * and apply only the differences.
 */

export interface ClusterOptions {
  nodes: readonly string[]
  access: NodeAccessOptions
  pinRoot: string
  /** Show progress on stderr. */
  progress: boolean
  /** --map-size: entries of resizable maps when install creates them. */
  mapSizes?: ReadonlyMap<string, number>
}

export interface NodeOutcome {
  node: string
  ok: boolean
  action?: string
  preflight?: Preflight
  result?: NodeInstallResult
  /** What the plan puts on the node: endpoints, entries, and each map's fill against its size. */
  plan?: {endpoints: number; entries: number; fill: Record<string, {entries: number; max: number}>}
  error?: string
  durationMs: number
}

/**
 * Run one step on every selected node with the cluster's plan for it, with
 * progress, bounded concurrency and per-node outcomes (one node's failure
 * never stops the others).
 */
/** `sizes`: what each resizable map of the node holds at most, or will when this run creates it. */
export type NodeStep = (shell: NodeShell, plan: NodePlan, report: (text: string) => void, sizes: ReadonlyMap<string, number>) => Promise<Omit<NodeOutcome, 'node' | 'durationMs' | 'ok'>>

export interface StepOptions {
  /** Each node is worked on as its one writer (its lease held; other writers waited for). */
  writes: boolean
  /** Every node's plan must fit its maps before any node is touched (not for uninstall). */
  capacity: boolean
}

export async function onNodes(api: Clients, options: ClusterOptions, label: string, step: NodeStep, how: StepOptions): Promise<NodeOutcome[]> {
  return withNodeAccess(api, options.access, (access) => onNodesWith(api, access, options, label, step, how))
}

/**
 * The sizes each node's maps have or will have (read from the nodes, which
 * changes nothing), every plan checked against them; plans are made one node
 * at a time.
 */
async function checkedSizes(access: NodeAccess, planner: ClusterPlanner, nodes: readonly string[], options: ClusterOptions): Promise<Map<string, Map<string, number>>> {
  const pinned = await access.forEach(nodes, async (shell) => new Map([...(await pinnedMapInfo(shell, options.pinRoot))].map(([name, info]) => [name, info.max])))
  const sizes = new Map<string, Map<string, number>>()
  for (const [index, node] of nodes.entries()) {
    const plan = planner.planNode(node)
    // A node that cannot be read fails in the run itself; its plan is checked against the sizes install would create.
    const effective = effectiveSizes(node, pinned[index].value ?? new Map(), plannedSizes(planFill(plan), options.mapSizes), options.mapSizes)
    checkCapacity(plan, effective)
    sizes.set(node, effective)
  }
  return sizes
}

export async function onNodesWith(api: Clients, access: NodeAccess, options: ClusterOptions, label: string, step: NodeStep, how: StepOptions): Promise<NodeOutcome[]> {
  const planner = new ClusterPlanner(await readSnapshot(api))
  const nodes = await access.nodes(options.nodes)
  const sizes = how.capacity ? await checkedSizes(access, planner, nodes, options) : new Map<string, Map<string, number>>()
  const writes = how.writes
  const progress = options.progress ? new NodeProgress(nodes, label) : undefined
  const exclusive = writes ? {purpose: label, onWait: (node: string, holder: string) => progress?.update(node, `waiting for ${holder}`)} : undefined
  const settled = await access.forEach(nodes, async (shell, node) => {
    progress?.update(node, 'starting')
    try {
      const outcome = await step(shell, planner.planNode(node), (text) => progress?.update(node, text), sizes.get(node) ?? new Map())
      progress?.done(node)
      return outcome
    } catch (error) {
      progress?.done(node, (error as Error).message)
      throw error
    }
  }, exclusive)
  await progress?.finish()
  // A node that failed gets a fresh shell next time (its debug pod may be gone).
  for (const result of settled) if (!result.ok) access.forget(result.item)
  return settled.map((result) => ({node: result.item, ok: result.ok, ...result.value, error: result.error, durationMs: result.durationMs}))
}

/**
 * Recompute from the cluster and apply only the differences; nodes must be
 * installed. Where the agent runs, it is the node's one writer: sync asks each
 * agent to reconcile now and reports what it did.
 */
export async function sync(api: Clients, options: ClusterOptions): Promise<NodeOutcome[]> {
  if (await agentInstalled(api)) return syncThroughAgents(api, options)
  return withNodeAccess(api, options.access, (access) => syncWith(api, access, options))
}

async function syncThroughAgents(api: Clients, options: ClusterOptions): Promise<NodeOutcome[]> {
  const agents = await agentPods(api)
  const nodes = options.nodes.length ? [...options.nodes] : (await api.core.listNode()).items.map((node) => node.metadata!.name!)
  return Promise.all(nodes.map(async (node): Promise<NodeOutcome> => {
    const started = Date.now()
    const pod = agents.get(node)
    try {
      if (!pod) throw new Error('no agent pod on this node')
      const run = await execInPod(api.config, AGENT_NAMESPACE, pod.metadata!.name!, 'agent', ['pinion', 'agent', 'request', 'sync'], {timeoutMs: 120_000})
      if (run.exitCode !== 0) throw new Error(run.stderr.trim().split('\n').pop() || `exit ${run.exitCode}`)
      const answer = JSON.parse(run.stdout.toString('utf8')) as {updated: number; deleted: number; reattached: number; endpoints: number; unenforced: number}
      if (answer.unenforced) throw new Error(`${answer.unenforced} pod(s) not enforced (see \`pinion status\`)`)
      const changes = {updated: answer.updated, deleted: answer.deleted, byMap: {}}
      return {node, ok: true, action: answer.updated + answer.deleted + answer.reattached ? 'synced by agent' : 'unchanged (agent)', result: {action: 'synced', interfaces: answer.endpoints, endpoints: answer.endpoints, changes}, durationMs: Date.now() - started}
    } catch (error) {
      return {node, ok: false, error: errorMessage(error), durationMs: Date.now() - started}
    }
  }))
}

export async function syncWith(api: Clients, access: NodeAccess, options: ClusterOptions): Promise<NodeOutcome[]> {
  return onNodesWith(api, access, options, 'sync', async (shell, plan, report) => {
    // Sync keeps the installed programs: it only fills maps and attaches new pods.
    const result = await syncNode(shell, plan, options.pinRoot, report)
    return {action: result.action, result}
  }, {writes: true, capacity: true})
}
