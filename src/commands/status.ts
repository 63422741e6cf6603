import {clients} from '../cluster/kubeconfig.js'
import {clusterStatus} from '../install/status.js'
import {BaseCommand} from '../cli/base-command.js'
import {formatDuration} from '../lib/duration.js'
import {pinRootFlag} from '../cli/datapath-flags.js'
import {nodeAccessOptions, nodeFlags} from '../cli/node-flags.js'

export default class Status extends BaseCommand {
  static override description = 'Per node: health, the agent (ready, resourceVersion applied, lag), pods not enforced, programs and attach points, map fill, last sync; exits 1 when any node is not healthy (degraded, unreachable or not installed)'
  static override flags = {...nodeFlags, ...pinRootFlag}

  async run(): Promise<void> {
    const {flags} = await this.parse(Status)
    const statuses = await clusterStatus(clients(this.globals), nodeAccessOptions(flags), flags.node, flags['pin-root'])
    const fill = (row: (typeof statuses)[number], name: string) => {
      const map = row.maps.find((candidate) => candidate.name === name)
      return map ? `${map.entries}/${map.maxEntries}` : undefined
    }
    this.render({
      data: statuses,
      rows: statuses,
      columns: [
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
      ],
    })
    // Anything but healthy on any node (degraded, unreachable, not installed) is a failure for scripts.
    if (statuses.some((status) => status.health !== 'healthy')) this.exit(1)
  }
}
