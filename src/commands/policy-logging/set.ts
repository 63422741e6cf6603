import {Flags} from '@oclif/core'
import {clients} from '../../cluster/kubeconfig.js'
import {BaseCommand} from '../../cli/base-command.js'
import {pinRootFlag} from '../../cli/datapath-flags.js'
import {nodeAccessOptions, nodeFlags} from '../../cli/node-flags.js'
import {setLoggingConfig} from '../../monitor/policy-logging.js'
import {LOGGING_ANNOTATION} from '../../cluster/logging-config.js'

export default class PolicyLoggingSet extends BaseCommand {
  static override description = `Log allowed and/or denied connections (like GKE's NetworkLogging). With delegation only policies (allow) or namespaces (deny) annotated ${LOGGING_ANNOTATION}=true are logged`
  static override examples = ['<%= config.bin %> policy-logging set --deny', '<%= config.bin %> policy-logging set --allow --delegate-allow --deny']
  static override flags = {
    ...nodeFlags,
    ...pinRootFlag,
    allow: Flags.boolean({description: 'Log allowed connections', default: false}),
    deny: Flags.boolean({description: 'Log denied connections', default: false}),
    'delegate-allow': Flags.boolean({description: 'Only for NetworkPolicies annotated to log', default: false}),
    'delegate-deny': Flags.boolean({description: 'Only for namespaces annotated to log', default: false}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(PolicyLoggingSet)
    const config = {allow: {log: flags.allow, delegate: flags['delegate-allow']}, deny: {log: flags.deny, delegate: flags['delegate-deny']}}
    const results = await setLoggingConfig(clients(this.globals), nodeAccessOptions(flags), flags['pin-root'], config)
    this.render({data: {config, nodes: results}, rows: results, columns: [
      {header: 'NODE', get: (row) => row.node},
      {header: 'RESULT', get: (row) => (row.ok ? `allow=${config.allow.log ? 'on' : 'off'} deny=${config.deny.log ? 'on' : 'off'}` : 'FAILED')},
      {header: 'ERROR', get: (row) => row.error},
    ]})
    const failed = results.filter((result) => !result.ok)
    if (failed.length) this.error(`${failed.length} nodes failed: ${failed.map((result) => `${result.node} (${result.error})`).join('; ')}`, {exit: 1})
  }
}
