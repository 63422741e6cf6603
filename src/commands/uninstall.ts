import {clients} from '../cluster/kubeconfig.js'
import {uninstall} from '../install/install.js'
import {BaseCommand} from '../cli/base-command.js'
import {pinRootFlag} from '../cli/datapath-flags.js'
import {formatDuration} from '../lib/duration.js'
import {nodeAccessOptions, nodeFlags} from '../cli/node-flags.js'
import type {Column} from '../lib/render.js'
import {type NodeOutcome} from '../sync/cluster-sync.js'

export const outcomeColumns: Column<NodeOutcome>[] = [
  {header: 'NODE', get: (row) => row.node},
  {header: 'RESULT', get: (row) => (row.ok ? row.action : 'FAILED')},
  {header: 'KERNEL', get: (row) => row.preflight?.kernel},
  {header: 'ENDPOINTS', get: (row) => row.result?.endpoints ?? row.plan?.endpoints},
  {header: 'MAP CHANGES', get: (row) => (row.result ? `+${row.result.changes.updated} -${row.result.changes.deleted}` : row.plan ? `${row.plan.entries} planned` : undefined)},
  {header: 'MAP FILL', get: (row) => (row.plan ? Object.entries(row.plan.fill).map(([map, fill]) => `${map.replace(/^pinion_/, '')} ${fill.entries}/${fill.max}`) : undefined), wide: true},
  {header: 'TIME', get: (row) => formatDuration(row.durationMs)},
  {header: 'ERROR', get: (row) => row.error},
]

/** Exit non-zero naming every failed node and why. */
export function reportFailures(command: BaseCommand, outcomes: readonly NodeOutcome[]): void {
  const failed = outcomes.filter((outcome) => !outcome.ok)
  if (failed.length) command.error(`${failed.length} of ${outcomes.length} nodes failed: ${failed.map((outcome) => `${outcome.node} (${outcome.error})`).join('; ')}`, {exit: 1})
}

export default class Uninstall extends BaseCommand {
  static override description = 'Remove the node agent, then detach and unpin everything Pinion made on every node (idempotent)'
  static override flags = {...nodeFlags, ...pinRootFlag}

  async run(): Promise<void> {
    const {flags} = await this.parse(Uninstall)
    const outcomes = await uninstall(clients(this.globals), {nodes: flags.node, access: nodeAccessOptions(flags), pinRoot: flags['pin-root'], progress: true, timeoutMs: this.globals.timeoutMs})
    this.render({data: outcomes, rows: outcomes, columns: outcomeColumns.filter((column) => ['NODE', 'RESULT', 'TIME', 'ERROR'].includes(column.header))})
    reportFailures(this, outcomes)
  }
}
