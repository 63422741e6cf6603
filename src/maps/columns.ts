import type {MapFill} from '../datapath/map-fill.js'
import type {Column} from '../lib/render.js'

/** `map list`: one row per node and map. */
export const mapListColumns: Column<MapFill & {node: string}>[] = [
  {header: 'NODE', get: (row) => row.node},
  {header: 'MAP', get: (row) => row.name},
  {header: 'TYPE', get: (row) => row.type},
  {header: 'KEY', get: (row) => `${row.keySize}B`},
  {header: 'VALUE', get: (row) => `${row.valueSize}B`},
  {header: 'ENTRIES', get: (row) => row.entries},
  {header: 'MAX', get: (row) => row.maxEntries},
  {header: 'FILL', get: (row) => (row.maxEntries ? `${((100 * row.entries) / row.maxEntries).toFixed(1)}%` : '-')},
]
