import {Flags} from '@oclif/core'
import {DEFAULT_LAB_NAME} from '../../lab/config.js'
import {labStatus, type LabSummary} from '../../lab/lab.js'
import {BaseCommand} from '../../cli/base-command.js'
import type {Column} from '../../lib/render.js'

export const labColumns: Column<LabSummary['nodes'][number]>[] = [
  {header: 'NODE', get: (row) => row.name},
  {header: 'UNDERLAY IP', get: (row) => row.underlayIp},
  {header: 'POD CIDR', get: (row) => row.podCidr},
  {header: 'PODS', get: (row) => row.pods},
  {header: 'NETNS', get: (row) => row.netns, wide: true},
]

export default class LabStatus extends BaseCommand {
  static override baseFlags = BaseCommand.flagsWithoutDeadline
  static override description = 'Show a lab: its API server, kubeconfig and nodes'
  static override flags = {
    name: Flags.string({description: 'Lab name', default: DEFAULT_LAB_NAME}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(LabStatus)
    const summary = await labStatus(flags.name)
    if (this.globals.output === 'table' || this.globals.output === 'wide') {
      this.note(`lab ${summary.name}: API ${summary.apiServer || '-'} ${summary.healthy ? '(healthy)' : '(NOT RESPONDING)'}; kubeconfig ${summary.kubeconfig}`)
    }
    this.render({data: summary, rows: summary.nodes, columns: labColumns})
    if (!summary.healthy) this.exit(1)
  }
}
