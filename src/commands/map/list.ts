import {clients} from '../../cluster/kubeconfig.js'
import {BaseCommand} from '../../cli/base-command.js'
import {pinRootFlag} from '../../cli/datapath-flags.js'
import {nodeAccessOptions, nodeFlags} from '../../cli/node-flags.js'
import {mapListColumns} from '../../maps/columns.js'
import {listMaps} from '../../maps/dump.js'

export default class MapList extends BaseCommand {
  static override description = 'List every Pinion map per node: type, key/value size, entries, max entries, fill'
  static override flags = {...nodeFlags, ...pinRootFlag}

  async run(): Promise<void> {
    const {flags} = await this.parse(MapList)
    const results = await listMaps(clients(this.globals), nodeAccessOptions(flags), flags.node, flags['pin-root'])
    const rows = results.flatMap((result) => (result.maps ?? []).map((map) => ({node: result.node, ...map})))
    this.render({
      data: results,
      rows,
      columns: mapListColumns,
    })
    for (const failed of results.filter((result) => !result.ok)) this.note(this.errColor.red(`${failed.node}: ${failed.error}`))
    if (results.some((result) => !result.ok)) this.exit(1)
  }
}
