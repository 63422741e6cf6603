import type {Column} from '../lib/render.js'
import type {Cell} from './check.js'

/** A probe whose outcome differs from the model, with its scenario and step. */
export const mismatchColumns: Column<Cell & {scenario: string; step: number}>[] = [
  {header: 'SCENARIO', get: (row) => row.scenario},
  {header: 'STEP', get: (row) => row.step},
  {header: 'FROM', get: (row) => row.from},
  {header: 'TO', get: (row) => row.to},
  {header: 'PROBE', get: (row) => row.probe},
  {header: 'EXPECTED', get: (row) => (row.expected ? 'allowed' : 'denied')},
  {header: 'OBSERVED', get: (row) => (row.observed ? 'allowed' : 'denied')},
]
