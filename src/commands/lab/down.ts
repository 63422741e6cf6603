import {Flags} from '@oclif/core'
import {DEFAULT_LAB_NAME} from '../../lab/config.js'
import {labDown} from '../../lab/lab.js'
import {BaseCommand} from '../../cli/base-command.js'

export default class LabDown extends BaseCommand {
  static override baseFlags = BaseCommand.flagsWithoutDeadline
  static override description = 'Remove a lab: every namespace, mount, process and pin it made (idempotent)'
  static override flags = {
    name: Flags.string({description: 'Lab name', default: DEFAULT_LAB_NAME}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(LabDown)
    const result = await labDown(flags.name)
    this.render({data: result, rows: [result], columns: [
      {header: 'LAB', get: (row) => row.name},
      {header: 'RESULT', get: (row) => (row.existed ? 'removed' : 'was not up')},
    ]})
  }
}
