import {Flags} from '@oclif/core'
import {DEFAULT_LAB_NAME} from '../../lab/config.js'
import {labUp} from '../../lab/lab.js'
import {BaseCommand} from '../../cli/base-command.js'
import {labColumns} from './status.js'

export default class LabUp extends BaseCommand {
  static override baseFlags = BaseCommand.flagsWithoutDeadline
  static override description = 'Start a local multi-node lab cluster: nodes are namespaces, with a Kubernetes-compatible API on 127.0.0.1 (a development and test fixture; needs root)'
  static override examples = ['<%= config.bin %> lab up', '<%= config.bin %> lab up --nodes 2 --pods-per-node 1 --name dev']
  static override flags = {
    nodes: Flags.integer({description: 'Number of nodes (1-10)', default: 3}),
    'pods-per-node': Flags.integer({description: 'Sample web pods per node (0-20)', default: 2}),
    name: Flags.string({description: 'Lab name', default: DEFAULT_LAB_NAME}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(LabUp)
    const summary = await labUp({name: flags.name, nodes: flags.nodes, podsPerNode: flags['pods-per-node'], progress: (message) => this.note(`• ${message}`)})
    this.render({data: summary, rows: summary.nodes, columns: labColumns})
    if (this.globals.output === 'table' || this.globals.output === 'wide') {
      this.note(`\nlab "${summary.name}" is up. ${summary.fixture}\nUse it with:  export KUBECONFIG=${summary.kubeconfig}`)
    }
  }
}
