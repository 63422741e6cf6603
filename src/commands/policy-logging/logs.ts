import {Flags} from '@oclif/core'
import {clients} from '../../cluster/kubeconfig.js'
import {BaseCommand} from '../../cli/base-command.js'
import {pinRootFlag} from '../../cli/datapath-flags.js'
import {parseDuration} from '../../lib/duration.js'
import {stopSignal} from '../../lib/stop-signal.js'
import {nodeAccessOptions, nodeFlags} from '../../cli/node-flags.js'
import {nodePolicyLogs, policyLogs} from '../../monitor/policy-logging.js'
import {agentInstalled} from '../../cluster/agent-objects.js'

export default class PolicyLoggingLogs extends BaseCommand {
  static override description = 'Print policy log records, one JSON object per connection (first packet only; denies aggregated; rate limited per node). With the agent, the records it wrote to /var/log/network/policy_action.log on each node (--tail, then --follow); without it, a live capture for --duration'
  static override flags = {
    ...nodeFlags,
    ...pinRootFlag,
    follow: Flags.boolean({char: 'f', description: 'Keep streaming until interrupted', default: false}),
    duration: Flags.string({description: 'Without --follow: how long to listen', default: '10s'}),
    'rate-limit': Flags.integer({description: 'Records per second per node; the overflow is dropped and counted', default: 500, min: 1}),
    'deny-window': Flags.string({description: 'Denies of one connection within this window become one record', default: '5s'}),
    tail: Flags.integer({description: 'With the agent: how many of the records already written to print first (all nodes, by time)', default: 100, min: 0}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(PolicyLoggingLogs)
    if (flags.follow) this.followsUntilStopped()
    const api = clients(this.globals)
    if (await agentInstalled(api)) {
      // The agents write the records on each node: read those files (and follow them).
      const stop = stopSignal()
      await nodePolicyLogs(api, nodeAccessOptions(flags), flags.node, {tail: flags.tail, follow: flags.follow}, stop, (record) => this.log(JSON.stringify(record)), (node, message) => this.note(this.errColor.yellow(`${node}: ${message}`)))
      return
    }
    const stop = stopSignal(flags.follow ? undefined : parseDuration(flags.duration))
    const summary = await policyLogs(api, nodeAccessOptions(flags), flags.node, flags['pin-root'], {ratePerSecond: flags['rate-limit'], denyWindowMs: parseDuration(flags['deny-window']), onNodeError: (node, message) => this.note(this.errColor.red(`${node}: ${message}`))}, stop, (record) => this.log(JSON.stringify(record)))
    for (const node of summary) {
      if (node.rateLimited || node.lostEvents) this.note(this.errColor.yellow(`${node.node}: ${node.rateLimited} records over the rate limit dropped, ${node.lostEvents} events lost`))
    }
  }
}
