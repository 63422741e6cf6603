import {mapPinPath} from '../datapath/catalogue.js'
import {Struct} from '../datapath/codec.js'
import type {MapIo} from '../datapath/maptool.js'
import {ctEntry} from '../datapath/structs.js'

/** The first release's ct_entry (pinion_ct4): a u16 rev-NAT index. */
export const ctEntryV1 = new Struct('ct_entry', [
  ['tx_packets', 'u64'],
  ['tx_bytes', 'u64'],
  ['rx_packets', 'u64'],
  ['rx_bytes', 'u64'],
  ['lifetime', 'u32'],
  ['rev_nat_index', 'u16'],
  ['flags', 'u16'],
  ['src_identity', 'u32'],
  ['backend_id', 'u32'],
  ['policy_cookie', 'u32'],
  ['tx_tcp_flags', 'u8'],
  ['rx_tcp_flags', 'u8'],
  ['egress_refreshed', 'u16'],
])

/** Maps whose entries an upgrade carries over into their new layout (same key, same fields). */
const MIGRATIONS = [{from: 'pinion_ct4', fromValue: ctEntryV1, to: 'pinion_ct4_v2', toValue: ctEntry}]

/**
 * Copy state the control plane cannot rebuild (conntrack: established
 * connections and their backends) from a retired map into its successor,
 * before the new programs are attached. Maps the plan fills need nothing.
 * `pinned`: the map names pinned before the new object was loaded.
 * Returns how many entries were carried over.
 */
export async function migrateRetiredMaps(maps: MapIo, pinRoot: string, pinned: ReadonlySet<string>): Promise<number> {
  let copied = 0
  for (const {from, fromValue, to, toValue} of MIGRATIONS) {
    if (!pinned.has(from)) continue
    const source = mapPinPath(pinRoot, from)
    const rows = await maps.dumpMap(source)
    const entries = rows.filter((row) => row.value).map((row) => ({key: row.key, value: toValue.encode(fromValue.decode(row.value!))}))
    await maps.batch(mapPinPath(pinRoot, to), entries)
    copied += entries.length
  }
  return copied
}
