import {clients} from '../cluster/kubeconfig.js'
import {clusterStatus} from '../install/status.js'
import {BaseCommand} from '../lib/base-command.js'
import {pinRootFlag} from '../lib/datapath-flags.js'
import {nodeAccessOptions, nodeFlags} from '../lib/node-flags.js'

export default class Status extends BaseCommand {
  static override description = 'Per node: version, programs and attach points, map fill levels, endpoints, last sync, health'
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
    if (statuses.some((status) => status.health === 'degraded' || status.health === 'unreachable')) this.exit(1)
  }
}
