import {Flags} from '@oclif/core'
import {clients} from '../cluster/kubeconfig.js'
import {UsageError} from '../lib/errors.js'
import {BaseCommand} from '../cli/base-command.js'
import {pinRootFlag} from '../cli/datapath-flags.js'
import {parseDuration} from '../lib/duration.js'
import {stopSignal} from '../lib/stop-signal.js'
import {nodeAccessOptions, nodeFlags} from '../cli/node-flags.js'
import {withNodeAccess} from '../nodes/node-access.js'
import {watchAndSync} from '../sync/watch.js'
import {reportFailures} from '../cli/outcomes.js'
import {outcomeColumns} from '../install/columns.js'
import {agentInstalled} from '../cluster/agent-objects.js'
import {sync, syncWith} from '../sync/cluster-sync.js'

export default class Sync extends BaseCommand {
  static override description = 'Recompute the dataplane from the cluster and apply only the differences to every node\'s maps; --watch keeps them current'
  static override examples = ['<%= config.bin %> sync', '<%= config.bin %> sync --watch']
  static override flags = {
    ...nodeFlags,
    ...pinRootFlag,
    watch: Flags.boolean({description: 'Follow API watches and keep maps current until interrupted', default: false}),
    'resync-interval': Flags.string({description: 'With --watch: full resync at least this often', default: '5m'}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Sync)
    const api = clients(this.globals)
    const options = {nodes: flags.node, access: nodeAccessOptions(flags), pinRoot: flags['pin-root'], progress: !flags.watch}
    if (!flags.watch) {
      const outcomes = await sync(api, options)
      this.render({data: outcomes, rows: outcomes, columns: outcomeColumns.filter((column) => column.header !== 'KERNEL')})
      reportFailures(this, outcomes)
      return
    }
    this.followsUntilStopped()
    if (await agentInstalled(api)) throw new UsageError('the Pinion agent keeps every node current: run `pinion sync` (without --watch) to have the agents reconcile now')
    const stop = stopSignal()
    await withNodeAccess(api, options.access, (access) => watchAndSync(api, {debounceMs: 300, resyncMs: parseDuration(flags['resync-interval']), watchTimeoutSeconds: 300, signal: stop, onError: (message) => this.note(`warning: ${message}`)}, async (reason) => {
      const outcomes = await syncWith(api, access, options)
      const line = outcomes.map((outcome) => `${outcome.node}=${outcome.ok ? `${outcome.action}(+${outcome.result?.changes.updated ?? 0}/-${outcome.result?.changes.deleted ?? 0})` : `FAILED(${outcome.error})`}`).join(' ')
      if (this.globals.output === 'json') this.log(JSON.stringify({time: new Date().toISOString(), reason, nodes: outcomes}))
      else this.log(`${new Date().toISOString()} ${reason}: ${line}`)
    }))
  }
}
