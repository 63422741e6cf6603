import {Args, Flags} from '@oclif/core'
import {clients} from '../../cluster/kubeconfig.js'
import {BaseCommand} from '../../cli/base-command.js'
import {pinRootFlag} from '../../cli/datapath-flags.js'
import {nodeAccessOptions, nodeFlags} from '../../cli/node-flags.js'
import {shortMapName} from '../../datapath/catalogue.js'
import {FILTER_FIELDS, parseFilters} from '../../maps/decode.js'
import {dumpMap, resolveMap} from '../../maps/dump.js'

/** One line per map: its filter fields, with the values of those that have few. */
function filterHelp(): string {
  return Object.entries(FILTER_FIELDS).map(([map, fields]) => `  ${shortMapName(map)}: ${Object.entries(fields).map(([field, kind]) => (Array.isArray(kind) ? `${field} (${kind.join('|')})` : field)).join(', ')}`).join('\n')
}

/** Maps the programs write as packets pass (the control plane owns the rest). */
const DATAPATH_WRITES = new Set(['pinion_ct4_v2', 'pinion_metrics_v2', 'pinion_flowcache', 'pinion_clock'])

export default class MapDump extends BaseCommand {
  static override description = 'Dump a Pinion map per node as decoded rows (addresses, ports, protocols, states, pod, Service and policy names); never raw hex unless --raw'
  static override examples = [
    '<%= config.bin %> map dump services',
    '<%= config.bin %> map dump ct --filter protocol=TCP --limit 20',
    '<%= config.bin %> map dump policy --node worker-1 -o json',
  ]
  static override args = {map: Args.string({description: 'Map name (endpoint, services, backends, revnat, ct4, policy, polnames, ipcache, metrics, config, clock, flowcache)', required: true})}
  static override flags = {
    ...nodeFlags,
    ...pinRootFlag,
    filter: Flags.string({description: `Keep rows where field=value (or field~substring); repeatable. Fields per map:\n${filterHelp()}`, multiple: true, default: []}),
    limit: Flags.integer({description: 'At most this many rows per node', min: 1}),
    raw: Flags.boolean({description: 'Show keys and values as hex', default: false}),
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(MapDump)
    parseFilters(flags.filter, resolveMap(args.map)) // bad input is refused before any cluster access
    const dumps = await dumpMap(clients(this.globals), nodeAccessOptions(flags), {map: args.map, nodes: flags.node, filters: flags.filter, limit: flags.limit, raw: flags.raw, pinRoot: flags['pin-root']})
    const rows = dumps.flatMap((dump) => (dump.rows ?? []).map((row) => ({node: dump.node, ...row})))
    const fields = [...new Set(rows.flatMap((row) => Object.keys(row)))]
    this.render({data: dumps, rows, columns: fields.map((field) => ({header: field.replace(/([A-Z])/g, ' $1').toUpperCase(), get: (row: Record<string, unknown>) => row[field]})), empty: 'no entries'})
    if (DATAPATH_WRITES.has(resolveMap(args.map).name) && dumps.some((dump) => dump.ok)) this.note('note: the datapath changes this map while it is read: each row is one consistent entry, the rows are not a snapshot of one moment')
    for (const dump of dumps) {
      if (!dump.ok) this.note(this.errColor.red(`${dump.node}: ${dump.error}`))
      else if (dump.truncated) this.note(`${dump.node}: more rows match; raise --limit to see them`)
    }
    if (dumps.some((dump) => !dump.ok)) this.exit(1)
  }
}
