import {Flags} from '@oclif/core'
import {clients} from '../../cluster/kubeconfig.js'
import {BaseCommand} from '../../cli/base-command.js'
import {pinRootFlag} from '../../cli/datapath-flags.js'
import {nodeAccessOptions, nodeFlags} from '../../cli/node-flags.js'
import {UsageError} from '../../lib/errors.js'
import {setLoggingConfig} from '../../monitor/policy-logging.js'
import {LOGGING_ANNOTATION, readLoggingConfig} from '../../cluster/logging-config.js'

export default class PolicyLoggingSet extends BaseCommand {
  static override description = `Log allowed and/or denied connections (like GKE's NetworkLogging). With delegation only policies (allow) or namespaces (deny) annotated ${LOGGING_ANNOTATION}=true are logged. What is not named keeps its current setting (see \`policy-logging get\`)`
  static override examples = ['<%= config.bin %> policy-logging set --deny', '<%= config.bin %> policy-logging set --allow --delegate-allow --deny', '<%= config.bin %> policy-logging set --no-allow --no-deny']
  static override flags = {
    ...nodeFlags,
    ...pinRootFlag,
    allow: Flags.boolean({description: 'Log allowed connections (--no-allow: stop)', allowNo: true}),
    deny: Flags.boolean({description: 'Log denied connections (--no-deny: stop)', allowNo: true}),
    'delegate-allow': Flags.boolean({description: 'Only for NetworkPolicies annotated to log', allowNo: true}),
    'delegate-deny': Flags.boolean({description: 'Only for namespaces annotated to log', allowNo: true}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(PolicyLoggingSet)
    const named = [flags.allow, flags.deny, flags['delegate-allow'], flags['delegate-deny']].filter((value) => value !== undefined)
    // Nothing named would silently switch everything off: refuse, before any cluster access.
    if (named.length === 0) throw new UsageError('say what to log: --allow and/or --deny (with --delegate-allow/--delegate-deny), or --no-allow --no-deny to stop; `policy-logging get` shows the current setting')
    const api = clients(this.globals)
    const current = await readLoggingConfig(api)
    const config = {
      allow: {log: flags.allow ?? current.allow.log, delegate: flags['delegate-allow'] ?? current.allow.delegate},
      deny: {log: flags.deny ?? current.deny.log, delegate: flags['delegate-deny'] ?? current.deny.delegate},
    }
    const results = await setLoggingConfig(api, nodeAccessOptions(flags), flags['pin-root'], config)
    this.render({data: {config, nodes: results}, rows: results, columns: [
      {header: 'NODE', get: (row) => row.node},
      {header: 'RESULT', get: (row) => (row.ok ? `allow=${config.allow.log ? 'on' : 'off'} deny=${config.deny.log ? 'on' : 'off'}` : 'FAILED')},
      {header: 'ERROR', get: (row) => row.error},
    ]})
    const failed = results.filter((result) => !result.ok)
    if (failed.length) this.error(`${failed.length} nodes failed: ${failed.map((result) => `${result.node} (${result.error})`).join('; ')}`, {exit: 1})
  }
}
