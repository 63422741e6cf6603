import {Flags} from '@oclif/core'
import {clients} from '../cluster/kubeconfig.js'
import {install} from '../install/install.js'
import {BaseCommand} from '../lib/base-command.js'
import {pinRootFlag} from '../lib/datapath-flags.js'
import {nodeAccessOptions, nodeFlags} from '../lib/node-flags.js'
import {outcomeColumns, reportFailures} from './uninstall.js'

export default class Install extends BaseCommand {
  static override description = 'Install the datapath on every node: preflight, load and pin, attach to pod interfaces, fill maps from the cluster (idempotent; upgrades keep conntrack)'
  static override examples = ['<%= config.bin %> install', '<%= config.bin %> install --dry-run', '<%= config.bin %> install --node worker-1 -o json']
  static override flags = {
    ...nodeFlags,
    ...pinRootFlag,
    'dry-run': Flags.boolean({description: 'Run the preflight and print the plan; change nothing on nodes', default: false}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Install)
    const outcomes = await install(clients(this.globals), {nodes: flags.node, access: nodeAccessOptions(flags), pinRoot: flags['pin-root'], dryRun: flags['dry-run'], progress: true})
    this.render({data: outcomes, rows: outcomes, columns: outcomeColumns})
    reportFailures(this, outcomes)
  }
}
