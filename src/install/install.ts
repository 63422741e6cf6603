import type {Clients} from '../cluster/kubeconfig.js'
import {readLoggingConfig} from '../cluster/logging-config.js'
import {MAPS} from '../datapath/catalogue.js'
import {cniUninstallScript} from '../datapath/node-state.js'
import {objectForNode} from '../datapath/object.js'
import {preflight} from '../datapath/preflight.js'
import {nextFlowEpoch, updateNodeConfig} from '../datapath/runtime-config.js'
import {type ClusterOptions, type NodeOutcome, onNodes} from '../sync/cluster-sync.js'
import {planFill} from '../sync/capacity.js'
import {installNode, uninstallNode} from '../sync/node-install.js'
import {agentInstalled} from '../cluster/agent-objects.js'
import {type AgentRollout, applyAgent, removeAgent} from './agent.js'
import {UserError} from '../lib/errors.js'

export interface InstallResult {
  nodes: NodeOutcome[]
  /** The agent DaemonSet, when applied (not with --no-agent, --dry-run, or when a node failed). */
  agent?: AgentRollout
  agentSkipped?: string
}

/** Load the datapath on every node through debug pods or SSH, then apply the agent that keeps it current. */
export async function install(api: Clients, options: ClusterOptions & {dryRun: boolean; agent?: {image: string; timeoutMs: number}}): Promise<InstallResult> {
  const nodes = await installNodes(api, options)
  if (!options.agent || options.dryRun) return {nodes}
  const failed = nodes.filter((outcome) => !outcome.ok)
  if (failed.length) return {nodes, agentSkipped: `the agent was not applied: ${failed.length} node(s) failed`}
  const agent = await applyAgent(api, {image: options.agent.image, pinRoot: options.pinRoot, mapSizes: options.mapSizes, timeoutMs: options.agent.timeoutMs, progress: options.progress ? (text) => process.stderr.write(`${text}\n`) : undefined})
  return {nodes, agent}
}

async function installNodes(api: Clients, options: ClusterOptions & {dryRun: boolean}): Promise<NodeOutcome[]> {
  const logging = await readLoggingConfig(api)
  return onNodes(api, options, 'install', async (shell, plan, report, sizes) => {
    report('preflight')
    // The full datapath where the kernel has its kfunc (6.2+), the compat build before.
    const object = await objectForNode(shell)
    const checks = await preflight(shell, options.pinRoot, object.requirements)
    if (!checks.ok) throw new Error(`preflight failed: ${checks.problems.join('; ')}`)
    const fill = Object.fromEntries([...planFill(plan)].map(([map, entries]) => [map, {entries, max: sizes.get(map) ?? MAPS.find((spec) => spec.name === map)?.maxEntries ?? 0}]))
    const planned = {endpoints: plan.endpoints.length, entries: plan.entries.length + plan.endpoints.length, fill}
    if (options.dryRun) return {action: `would install ${object.name}`, preflight: checks, plan: planned}
    const result = await installNode(shell, plan, object, options.pinRoot, report, {sizes})
    // Policy logging is cluster configuration: a (re)installed node gets it
    // back. New programs must not trust what older ones cached.
    await updateNodeConfig(shell, options.pinRoot, (current) => {
      current.policyLogAllow = logging.allow.log ? 1 : 0
      current.policyLogDeny = logging.deny.log ? 1 : 0
      nextFlowEpoch(current)
    })
    return {action: result.action, preflight: checks, result, plan: planned}
  }, {writes: !options.dryRun, capacity: true})
}

/** Remove the agent (all nodes at once), then Pinion's programs, pins, files and CNI chain entry from each node. */
export async function uninstall(api: Clients, options: ClusterOptions & {timeoutMs?: number}): Promise<NodeOutcome[]> {
  if (await agentInstalled(api)) {
    if (options.nodes.length) throw new UserError('the Pinion agent runs on every node and would reinstall the datapath: uninstall without --node (or run `pinion uninstall` for the whole cluster)', 2)
    await removeAgent(api, options.timeoutMs ?? 120_000)
  }
  return onNodes(api, options, 'uninstall', async (shell, _plan, report) => {
    report('detaching and unpinning')
    await shell.run(cniUninstallScript())
    const result = await uninstallNode(shell, options.pinRoot)
    return {action: result.wasInstalled ? `removed (${result.interfaces} interfaces)` : 'not installed'}
  }, {writes: true, capacity: false})
}
