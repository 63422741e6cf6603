import {clients} from '../../cluster/kubeconfig.js'
import {LOGGING_ANNOTATION, readLoggingConfig} from '../../cluster/logging-config.js'
import {BaseCommand} from '../../cli/base-command.js'

export default class PolicyLoggingGet extends BaseCommand {
  static override description = 'Show the policy logging setting the cluster stores (what `policy-logging set` last chose; the agents and install apply it)'
  static override examples = ['<%= config.bin %> policy-logging get', '<%= config.bin %> policy-logging get -o json']

  async run(): Promise<void> {
    await this.parse(PolicyLoggingGet)
    const config = await readLoggingConfig(clients(this.globals))
    const rows = (['allow', 'deny'] as const).map((verdict) => ({verdict, log: config[verdict].log, delegate: config[verdict].delegate}))
    this.render({data: config, rows, columns: [
      {header: 'VERDICT', get: (row) => row.verdict},
      {header: 'LOGGED', get: (row) => (row.log ? 'yes' : 'no')},
      {header: 'DELEGATED', get: (row) => (row.delegate ? `only where annotated ${LOGGING_ANNOTATION}=true` : 'no')},
    ]})
  }
}
