import type {Clients} from '../cluster/kubeconfig.js'
import type {Settled} from '../lib/pool.js'
import {type NodeAccessOptions, withNodeAccess} from './node-access.js'

export interface NodeCommandResult {
  node: string
  ok: boolean
  exitCode?: number
  stdout?: string
  stderr?: string
  error?: string
  durationMs: number
}

/** Run one command on many nodes; every node reports, whatever the others do. */
export async function runOnNodes(api: Clients, options: NodeAccessOptions, selected: readonly string[], argv: readonly string[], timeoutMs: number): Promise<NodeCommandResult[]> {
  return withNodeAccess(api, options, async (access) => {
    const nodes = await access.nodes(selected)
    const results: Settled<{exitCode: number; stdout: string; stderr: string}>[] = await access.forEach(nodes, async (shell) => {
      const result = await shell.run(argv, {timeoutMs})
      return {exitCode: result.exitCode, stdout: result.stdout.toString('utf8'), stderr: result.stderr}
    })
    return results.map((result) => ({node: result.item, ok: result.ok && result.value!.exitCode === 0, ...result.value, error: result.error, durationMs: result.durationMs}))
  })
}
