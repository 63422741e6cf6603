import {Flags} from '@oclif/core'
import {clients} from '../cluster/kubeconfig.js'
import {TCP_FLAGS} from '../datapath/packet.js'
import {BaseCommand} from '../cli/base-command.js'
import {parseDuration} from '../lib/duration.js'
import {pinRootFlag} from '../cli/datapath-flags.js'
import {UsageError} from '../lib/errors.js'
import {nodeAccessOptions, nodeFlags} from '../cli/node-flags.js'
import {observationColumns} from '../traceflow/columns.js'
import {traceflow} from '../traceflow/traceflow.js'

function tcpFlags(text: string): number {
  return text.split(',').reduce((flags, name) => {
    const bit = TCP_FLAGS[name.trim().toUpperCase() as keyof typeof TCP_FLAGS]
    if (bit === undefined) throw new UsageError(`unknown TCP flag "${name}" (use ${Object.keys(TCP_FLAGS).join(', ')})`)
    return flags | bit
  }, 0)
}

export default class Traceflow extends BaseCommand {
  static override description = 'Trace a packet from a pod through the real datapath on each node it crosses: synthetic by default (no traffic is sent, nothing is recorded), or --live'
  static override examples = [
    '<%= config.bin %> traceflow --source default/client --destination default/web-1',
    '<%= config.bin %> traceflow --source default/client --destination-service default/web --dst-port 80',
    '<%= config.bin %> traceflow --source default/client --destination-ip 10.244.2.7 --protocol udp --dst-port 53 --expect dropped',
  ]
  static override flags = {
    ...nodeFlags,
    ...pinRootFlag,
    source: Flags.string({description: 'Source pod, NAMESPACE/NAME', required: true}),
    destination: Flags.string({description: 'Destination pod, NAMESPACE/NAME'}),
    'destination-service': Flags.string({description: 'Destination Service, NAMESPACE/NAME'}),
    'destination-ip': Flags.string({description: 'Destination IPv4 address'}),
    protocol: Flags.string({description: 'Protocol', options: ['tcp', 'udp', 'icmp'], default: 'tcp'}),
    'dst-port': Flags.integer({description: 'Destination port (default: the pod\'s or Service\'s first port of that protocol)', min: 1, max: 65535}),
    'src-port': Flags.integer({description: 'Source port (default: random)', min: 1, max: 65535}),
    'tcp-flags': Flags.string({description: 'TCP flags, comma separated', default: 'SYN'}),
    expect: Flags.string({description: 'Exit 1 unless the result is this', options: ['delivered', 'dropped', 'forwardedoutofnetwork']}),
    live: Flags.boolean({description: 'Send one real, DSCP-tagged packet from the source pod (needs nc/ping in it) and report the trace events every node emitted', default: false}),
    'live-wait': Flags.string({description: 'With --live: how long to wait for the packet\'s trace events (the overall --timeout still holds)', default: '10s'}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Traceflow)
    const trace = await traceflow(clients(this.globals), nodeAccessOptions(flags), {
      source: flags.source,
      destination: flags.destination,
      destinationService: flags['destination-service'],
      destinationIp: flags['destination-ip'],
      protocol: flags.protocol as 'tcp' | 'udp' | 'icmp',
      dstPort: flags['dst-port'],
      srcPort: flags['src-port'],
      tcpFlags: tcpFlags(flags['tcp-flags']),
    }, flags['pin-root'], flags.live ? {timeoutMs: parseDuration(flags['live-wait'])} : undefined)
    if (this.globals.output === 'table' || this.globals.output === 'wide') {
      this.log(`${trace.spec.protocol} ${trace.spec.source} -> ${trace.spec.destination} (${trace.mode})`)
    }
    this.render({
      data: trace,
      rows: trace.observations.map((observation, index) => ({step: index + 1, ...observation})),
      columns: observationColumns,
    })
    if (this.globals.output === 'table' || this.globals.output === 'wide') {
      const color = trace.result === 'Dropped' ? this.color.red : this.color.green
      this.log(`Result: ${color(trace.result)} (${trace.reason})`)
    }
    if (flags.expect && flags.expect !== trace.result.toLowerCase()) this.error(`expected ${flags.expect}, got ${trace.result}: ${trace.reason}`, {exit: 1})
  }
}
