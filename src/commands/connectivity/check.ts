import {Flags} from '@oclif/core'
import {clients} from '../../cluster/kubeconfig.js'
import {connectivityCheck, removeCheckNamespaces} from '../../conformance/check.js'
import {mismatchColumns} from '../../conformance/columns.js'
import {BaseCommand} from '../../cli/base-command.js'
import {pinRootFlag} from '../../cli/datapath-flags.js'
import {parseDuration} from '../../lib/duration.js'
import {nodeAccessOptions, nodeFlags} from '../../cli/node-flags.js'

export default class ConnectivityCheck extends BaseCommand {
  static override description = 'NetworkPolicy conformance: apply scenarios to test pods, probe every pair on TCP/UDP ports, compare with an independent model of Kubernetes semantics'
  static override examples = ['<%= config.bin %> connectivity check', '<%= config.bin %> connectivity check --scenario named-port --scenario port-range -o json']
  static override flags = {
    ...nodeFlags,
    ...pinRootFlag,
    'namespace-prefix': Flags.string({description: 'Prefix of the test namespaces (PREFIXx, PREFIXy, PREFIXz)', default: 'pinion-cc-'}),
    scenario: Flags.string({description: 'Run only these scenarios (repeatable)', multiple: true, default: []}),
    'pod-image': Flags.string({description: 'Image of the test pods (must serve the declared ports and carry node for probing)', default: 'pinion.dev/lab-server:1'}),
    'probe-timeout': Flags.string({description: 'How long one probe waits (a mismatch is probed again with twice this)', default: '1500ms'}),
    cleanup: Flags.boolean({description: 'Delete the test namespaces afterwards', default: false}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(ConnectivityCheck)
    const api = clients(this.globals)
    const results = await connectivityCheck(api, {prefix: flags['namespace-prefix'], image: flags['pod-image'], pinRoot: flags['pin-root'], only: flags.scenario, probeTimeoutMs: parseDuration(flags['probe-timeout']), access: nodeAccessOptions(flags)}, (result) => {
      if (this.globals.output === 'table' || this.globals.output === 'wide') this.note(`${result.ok ? this.errColor.green('PASS') : this.errColor.red('FAIL')} ${result.name}: ${result.description}`)
    })
    if (flags.cleanup) await removeCheckNamespaces(api, flags['namespace-prefix'])
    const mismatches = results.flatMap((result) => result.steps.flatMap((step, index) => step.mismatches.map((cell) => ({scenario: result.name, step: index + 1, ...cell}))))
    this.render({
      data: results,
      rows: mismatches,
      columns: mismatchColumns,
      empty: `all ${results.length} scenarios match the model (${results.reduce((sum, result) => sum + result.steps.reduce((cells, step) => cells + step.cells.length, 0), 0)} probes)`,
    })
    if (mismatches.length) this.error(`${results.filter((result) => !result.ok).length} of ${results.length} scenarios differ from the model`, {exit: 1})
  }
}
