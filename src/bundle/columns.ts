import type {Column} from '../lib/render.js'
import type {Manifest} from './bundle.js'

/** One row per node of a bundle: how its collection went, and the files that failed. */
export const bundleNodeColumns: Column<Manifest['nodes'][string] & {node: string; failed: string[]}>[] = [
  {header: 'NODE', get: (row) => row.node},
  {header: 'RESULT', get: (row) => (row.ok ? (row.failed.length ? 'partial' : 'ok') : `FAILED (${row.fallback} fallback)`)},
  {header: 'PINION', get: (row) => row.pinion},
  {header: 'FAILED FILES', get: (row) => row.failed},
  {header: 'ERROR', get: (row) => row.error},
]
