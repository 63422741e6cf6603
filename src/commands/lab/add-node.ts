import {Flags} from '@oclif/core'
import {DEFAULT_LAB_NAME} from '../../lab/config.js'
import {labAddNode} from '../../lab/lab.js'
import {BaseCommand} from '../../cli/base-command.js'
import {labColumns} from './status.js'

export default class LabAddNode extends BaseCommand {
  static override baseFlags = BaseCommand.flagsWithoutDeadline
  static override description = 'Add a node to a running lab (DaemonSets such as the Pinion agent then start on it)'
  static override examples = ['<%= config.bin %> lab add-node', '<%= config.bin %> lab add-node --name dev']
  static override flags = {
    name: Flags.string({description: 'Lab name', default: DEFAULT_LAB_NAME}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(LabAddNode)
    const summary = await labAddNode(flags.name)
    this.render({data: summary, rows: summary.nodes, columns: labColumns})
  }
}
