import {existsSync, mkdirSync, readFileSync, renameSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {labDir, type LabNode} from './config.js'

/**
 * What a lab made, written before each thing is made so `lab down` can remove
 * it all, also after a crash half-way through `lab up`.
 */
export interface LabState {
  name: string
  createdAt: string
  nodes: LabNode[]
  /** S of the lab's underlay 10.99.S.0/24, reachable from the host through hostLink(). */
  underlaySubnet?: number
  /** Every network namespace the lab made (nodes, underlay, pods). */
  netns: string[]
  /** Processes the lab started (namespace holders, API server). */
  pids: number[]
  api?: {port: number; pid: number}
  kubeconfig?: string
}

export function statePath(name: string): string {
  return join(labDir(name), 'state.json')
}

export function readState(name: string): LabState | undefined {
  const path = statePath(name)
  if (!existsSync(path)) return undefined
  return JSON.parse(readFileSync(path, 'utf8')) as LabState
}

/** Atomic write: a crash never leaves a torn state file. */
export function writeState(state: LabState): void {
  mkdirSync(labDir(state.name), {recursive: true})
  const path = statePath(state.name)
  writeFileSync(`${path}.tmp`, JSON.stringify(state, null, 2))
  renameSync(`${path}.tmp`, path)
}

/** Read-modify-write of the state file (the CLI and the API server both record into it). */
export function updateState(name: string, change: (state: LabState) => void): LabState {
  const state = readState(name)
  if (!state) throw new Error(`lab "${name}" has no state file`)
  change(state)
  writeState(state)
  return state
}
