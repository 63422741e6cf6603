import {Flags} from '@oclif/core'
import {clients} from '../cluster/kubeconfig.js'
import {DEFAULT_AGENT_IMAGE} from '../install/agent.js'
import {install} from '../install/install.js'
import {BaseCommand} from '../cli/base-command.js'
import {mapSizeFlag, pinRootFlag} from '../cli/datapath-flags.js'
import {parseMapSizes} from '../sync/capacity.js'
import {nodeAccessOptions, nodeFlags} from '../cli/node-flags.js'
import {reportFailures} from '../cli/outcomes.js'
import {outcomeColumns} from '../install/columns.js'
import {AGENT_NAME, AGENT_NAMESPACE} from '../cluster/agent-objects.js'

export default class Install extends BaseCommand {
  static override description = 'Install the datapath on every node: preflight, load and pin, attach to pod interfaces, fill maps from the cluster (idempotent; upgrades keep conntrack)'
  static override examples = ['<%= config.bin %> install', '<%= config.bin %> install --dry-run', '<%= config.bin %> install --node worker-1 -o json', '<%= config.bin %> install --map-size ct=1048576 --map-size polnames=65536']
  static override flags = {
    ...nodeFlags,
    ...pinRootFlag,
    'dry-run': Flags.boolean({description: 'Run the preflight and print the plan; change nothing on nodes', default: false}),
    'no-agent': Flags.boolean({description: 'Do not run the node agent: the datapath then changes only when you run `pinion sync`', default: false}),
    'agent-image': Flags.string({description: 'Image of the node agent (see images/agent)', default: DEFAULT_AGENT_IMAGE}),
    'map-size': mapSizeFlag,
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Install)
    const mapSizes = parseMapSizes(flags['map-size'] ?? [])
    const result = await install(clients(this.globals), {nodes: flags.node, access: nodeAccessOptions(flags), pinRoot: flags['pin-root'], mapSizes, dryRun: flags['dry-run'], progress: true, agent: flags['no-agent'] ? undefined : {image: flags['agent-image'], timeoutMs: this.globals.timeoutMs}})
    this.render({data: result, rows: result.nodes, columns: outcomeColumns})
    if (result.agent) this.note(`agent: ready on ${result.agent.ready} of ${result.agent.desired} nodes (DaemonSet ${AGENT_NAMESPACE}/${AGENT_NAME})`)
    if (result.agentSkipped) this.note(`warning: ${result.agentSkipped}`)
    reportFailures(this, result.nodes)
  }
}
