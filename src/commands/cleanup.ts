import {clients} from '../cluster/kubeconfig.js'
import {BaseCommand} from '../cli/base-command.js'
import {deleteDebugPods} from '../nodes/debug-pods.js'

export default class Cleanup extends BaseCommand {
  static override description = 'Delete debug pods left behind by interrupted Pinion runs (found by label)'

  async run(): Promise<void> {
    await this.parse(Cleanup)
    const deleted = await deleteDebugPods(clients(this.globals).core)
    this.render({data: {deleted}, rows: deleted.map((name) => ({name})), columns: [{header: 'DELETED POD', get: (row) => row.name}], empty: 'no leftover debug pods'})
  }
}
