import {Flags} from '@oclif/core'
import {clients} from '../cluster/kubeconfig.js'
import {BaseCommand} from '../cli/base-command.js'
import {pinRootFlag} from '../cli/datapath-flags.js'
import {parseDuration} from '../lib/duration.js'
import {stopSignal} from '../lib/stop-signal.js'
import {nodeAccessOptions, nodeFlags} from '../cli/node-flags.js'
import {compactLine, monitor, type MonitorFilter} from '../monitor/monitor.js'

export default class Monitor extends BaseCommand {
  static override description = 'Stream datapath events (policy verdicts, drops, traces) from every node with pod names resolved; lost events are reported'
  static override examples = [
    '<%= config.bin %> monitor --follow',
    '<%= config.bin %> monitor --type drop --pod default/web-1 --duration 30s',
    '<%= config.bin %> monitor --type policy --verdict deny --follow -o json',
  ]
  static override flags = {
    ...nodeFlags,
    ...pinRootFlag,
    output: Flags.string({char: 'o', description: 'One line per event, or one JSON object per line', options: ['compact', 'json'], default: 'compact', helpGroup: 'GLOBAL'}),
    type: Flags.string({description: 'Event types to show (repeatable; default: all)', options: ['policy', 'drop', 'trace'], multiple: true, default: []}),
    pod: Flags.string({description: 'Only events to or from this pod, NAMESPACE/NAME'}),
    verdict: Flags.string({description: 'Only policy verdicts of this kind', options: ['allow', 'deny']}),
    follow: Flags.boolean({char: 'f', description: 'Keep streaming until interrupted', default: false}),
    duration: Flags.string({description: 'Without --follow: how long to listen', default: '5s'}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Monitor)
    if (flags.follow) this.followsUntilStopped()
    const stop = stopSignal(flags.follow ? undefined : parseDuration(flags.duration))
    const filter: MonitorFilter = {types: flags.type as MonitorFilter['types'], pod: flags.pod, verdict: flags.verdict as MonitorFilter['verdict']}
    let lost = 0
    await monitor(clients(this.globals), nodeAccessOptions(flags), flags.node, flags['pin-root'], filter, stop, (record) => {
      if (record.kind === 'lost') lost += record.count
      if (flags.output === 'json') this.log(JSON.stringify(record))
      else if (record.kind === 'event') this.log(compactLine(record))
      else if (record.kind === 'lost') this.note(this.errColor.yellow(`${record.node}: LOST ${record.count} events on CPU ${record.cpu} (perf buffer overrun)`))
      else this.note(this.errColor.red(`${record.node}: ${record.message}`))
    })
    if (lost) this.note(this.errColor.yellow(`${lost} events were lost in total`))
  }
}
