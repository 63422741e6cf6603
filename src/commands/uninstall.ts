import {clients} from '../cluster/kubeconfig.js'
import {outcomeColumns} from '../install/columns.js'
import {uninstall} from '../install/install.js'
import {BaseCommand} from '../cli/base-command.js'
import {reportFailures} from '../cli/outcomes.js'
import {pinRootFlag} from '../cli/datapath-flags.js'
import {nodeAccessOptions, nodeFlags} from '../cli/node-flags.js'

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
