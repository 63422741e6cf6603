import {BaseCommand} from '../cli/base-command.js'
import {versionInfo} from '../cli/version-info.js'

export default class Version extends BaseCommand {
  static override baseFlags = BaseCommand.flagsWithoutDeadline
  static override description = 'Show the CLI version, the datapath ABI it speaks and the local runtime'
  static override examples = ['<%= config.bin %> version', '<%= config.bin %> version -o json']

  async run(): Promise<void> {
    await this.parse(Version)
    const info = versionInfo()
    this.render({
      data: info,
      rows: Object.entries(info).map(([field, value]) => ({field, value})),
      columns: [
        {header: 'FIELD', get: (row) => row.field},
        {header: 'VALUE', get: (row) => row.value},
      ],
    })
  }
}
