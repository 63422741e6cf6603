import {clients} from '../../cluster/kubeconfig.js'
import {BaseCommand} from '../../cli/base-command.js'
import {UsageError} from '../../lib/errors.js'
import {nodeAccessOptions, nodeFlags} from '../../cli/node-flags.js'
import {runOnNodes} from '../../nodes/run-command.js'

export default class NodeExec extends BaseCommand {
  static override description = 'Run a command on nodes through privileged debug pods (or SSH) and show each node\'s result'
  static override examples = ['<%= config.bin %> node exec -- uname -r', '<%= config.bin %> node exec --node worker-1 -- bpftool prog show']
  static override strict = false
  static override flags = {...nodeFlags}

  async run(): Promise<void> {
    const {flags, argv} = await this.parse(NodeExec)
    const command = argv as string[]
    if (command.length === 0) throw new UsageError('give the command after --, e.g. pinion node exec -- uname -r')
    const results = await runOnNodes(clients(this.globals), nodeAccessOptions(flags), flags.node, command, this.globals.timeoutMs)
    this.render({
      data: results,
      rows: results,
      columns: [
        {header: 'NODE', get: (row) => row.node},
        {header: 'EXIT', get: (row) => row.exitCode ?? 'error'},
        {header: 'OUTPUT', get: (row) => (row.error ?? `${row.stdout ?? ''}${row.stderr ?? ''}`).trimEnd()},
      ],
    })
    const failed = results.filter((result) => !result.ok)
    if (failed.length) this.error(`${failed.length} of ${results.length} nodes failed: ${failed.map((result) => result.node).join(', ')}`, {exit: 1})
  }
}
