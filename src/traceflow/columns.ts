import type {Column} from '../lib/render.js'
import type {Observation} from './model.js'

/** A traceflow's observations, numbered in path order. */
export const observationColumns: Column<Observation & {step: number}>[] = [
  {header: '#', get: (row) => row.step},
  {header: 'NODE', get: (row) => row.node},
  {header: 'COMPONENT', get: (row) => row.component},
  {header: 'ACTION', get: (row) => row.action},
  {header: 'DETAIL', get: (row) => row.detail},
  {header: 'DROP REASON', get: (row) => row.dropReason, wide: true},
]
