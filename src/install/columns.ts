import {formatDuration} from '../lib/duration.js'
import type {Column} from '../lib/render.js'
import type {NodeOutcome} from '../sync/cluster-sync.js'
import type {NodeStatus} from './status.js'

/*
 * How install, sync, uninstall and status read in a table (the data behind -o
 * json|yaml is the objects themselves).
 */

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

const fill = (row: NodeStatus, name: string) => {
  const map = row.maps.find((candidate) => candidate.name === name)
  return map ? `${map.entries}/${map.maxEntries}` : undefined
}

export const statusColumns: Column<NodeStatus>[] = [
  {header: 'NODE', get: (row) => row.node},
  {header: 'HEALTH', get: (row) => row.health},
  {header: 'AGENT', get: (row) => (row.agent ? `${row.agent.ready ? 'ready' : 'NOT READY'}${row.agent.restarts ? ` (${row.agent.restarts} restarts)` : ''}` : 'none')},
  {header: 'APPLIED RV', get: (row) => row.agent?.appliedResourceVersion, wide: true},
  {header: 'LAG', get: (row) => (row.agent?.lagMs !== undefined ? formatDuration(row.agent.lagMs) : undefined)},
  {header: 'UNENFORCED', get: (row) => row.unenforced.length ? row.unenforced : '0'},
  {header: 'VERSION', get: (row) => row.version},
  {header: 'PROGRAMS', get: (row) => row.programs},
  {header: 'ATTACHED', get: (row) => row.attachedInterfaces},
  {header: 'ENDPOINTS', get: (row) => row.endpoints},
  {header: 'SERVICES', get: (row) => fill(row, 'pinion_services_v2')},
  {header: 'CONNTRACK', get: (row) => fill(row, 'pinion_ct4_v2')},
  {header: 'POLICY', get: (row) => fill(row, 'pinion_policy'), wide: true},
  {header: 'IPCACHE', get: (row) => fill(row, 'pinion_ipcache'), wide: true},
  {header: 'LAST SYNC', get: (row) => row.lastSync},
  {header: 'PROBLEMS', get: (row) => row.problems},
]
