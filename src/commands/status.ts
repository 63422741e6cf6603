import {clients} from '../cluster/kubeconfig.js'
import {statusColumns} from '../install/columns.js'
import {clusterStatus} from '../install/status.js'
import {BaseCommand} from '../cli/base-command.js'
import {pinRootFlag} from '../cli/datapath-flags.js'
import {nodeAccessOptions, nodeFlags} from '../cli/node-flags.js'

export default class Status extends BaseCommand {
  static override description = 'Per node: health, the agent (ready, resourceVersion applied, lag), pods not enforced, programs and attach points, map fill, last sync; exits 1 when any node is not healthy (degraded, unreachable or not installed)'
  static override flags = {...nodeFlags, ...pinRootFlag}

  async run(): Promise<void> {
    const {flags} = await this.parse(Status)
    const statuses = await clusterStatus(clients(this.globals), nodeAccessOptions(flags), flags.node, flags['pin-root'])
    this.render({
      data: statuses,
      rows: statuses,
      columns: statusColumns,
    })
    // Anything but healthy on any node (degraded, unreachable, not installed) is a failure for scripts.
    if (statuses.some((status) => status.health !== 'healthy')) this.exit(1)
  }
}
