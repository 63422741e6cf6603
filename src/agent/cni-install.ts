import {existsSync, readdirSync, readFileSync, renameSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {CNI_BACKUP_SUFFIX, CNI_PLUGIN_NAME} from '../datapath/node-state.js'
import {nodeScript} from '../lib/scripts.js'


export interface CniInstallOptions {
  binDir: string
  confDir: string
  socket: string
}

function writeAtomically(path: string, text: string, mode = 0o644): void {
  writeFileSync(`${path}.tmp`, text, {mode})
  renameSync(`${path}.tmp`, path)
}

/**
 * Make pinion-cni the last plugin of the node's chain: the plugin in the CNI
 * bin directory, and an entry at the end of the first conflist (by name) of
 * the configuration directory. Idempotent. Returns what it chained into, or
 * why it could not (no chain to join: pods are then enforced from the watch).
 */
export function installCniPlugin(options: CniInstallOptions): {conflist?: string; problem?: string} {
  if (!existsSync(options.binDir) || !existsSync(options.confDir)) return {problem: `no CNI directories (${options.binDir}, ${options.confDir})`}
  const [runtime, ...script] = nodeScript(import.meta.url, './cni-plugin')
  writeAtomically(join(options.binDir, CNI_PLUGIN_NAME), `#!/bin/sh\n# Installed by the Pinion agent: the chained plugin that enforces a pod before it starts.\nexec ${[runtime, ...script].map((part) => `'${part.replace(/'/g, `'\\''`)}'`).join(' ')} "$@"\n`, 0o755)
  const conflist = readdirSync(options.confDir).filter((name) => name.endsWith('.conflist')).sort()[0]
  if (!conflist) return {problem: `no .conflist in ${options.confDir} to chain into`}
  const path = join(options.confDir, conflist)
  const text = readFileSync(path, 'utf8')
  const config = JSON.parse(text) as {plugins?: {type?: string}[]}
  const plugins = (config.plugins ?? []).filter((plugin) => plugin.type !== CNI_PLUGIN_NAME)
  const wanted = {...config, plugins: [...plugins, {type: CNI_PLUGIN_NAME, agentSocket: options.socket}]}
  if (JSON.stringify(wanted) !== JSON.stringify(config)) {
    if (!existsSync(path + CNI_BACKUP_SUFFIX)) writeAtomically(path + CNI_BACKUP_SUFFIX, text)
    writeAtomically(path, JSON.stringify(wanted, null, 2) + '\n')
  }
  return {conflist: path}
}
