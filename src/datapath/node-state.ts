import {NODE_STATE_DIR} from './catalogue.js'
import {type NodeShell, runChecked} from '../nodes/shell.js'

export {NODE_STATE_DIR}
export const NODE_STATE_FILE = `${NODE_STATE_DIR}/state.json`
/** The agent's own report (written by it after every sync) and its local socket. */
export const AGENT_STATUS_FILE = `${NODE_STATE_DIR}/agent.json`
export const AGENT_SOCKET = `${NODE_STATE_DIR}/agent.sock`

/** The chained CNI plugin the agent installs, and the suffix of the conflist copy it keeps to undo that. */
export const CNI_PLUGIN_NAME = 'pinion-cni'
export const CNI_BACKUP_SUFFIX = '.pinion-orig'

/** Shell that takes pinion-cni out of a node's chain again (run by uninstall on the node). */
export function cniUninstallScript(binDir = '/opt/cni/bin', confDir = '/etc/cni/net.d'): string[] {
  return ['sh', '-c', `for orig in "$2"/*${CNI_BACKUP_SUFFIX}; do [ -e "$orig" ] && mv "$orig" "\${orig%${CNI_BACKUP_SUFFIX}}"; done; rm -f "$1/${CNI_PLUGIN_NAME}"; true`, 'cni-uninstall', binDir, confDir]
}

/** A command that needs Pinion on a node found none there (the node is reported, the others carry on). */
export class NotInstalledError extends Error {
  constructor(readonly node: string, pinRoot: string) {
    super(`not installed (no Pinion datapath at ${pinRoot}: run \`pinion install\`, or check --pin-root)`)
    this.name = 'NotInstalledError'
  }
}

/** Throws NotInstalledError unless the node has Pinion's programs and maps pinned under pinRoot. */
export async function requireInstalled(shell: NodeShell, pinRoot: string): Promise<void> {
  const result = await shell.run(['sh', '-c', 'test -d "$1/maps" && test -e "$1/progs/from_pod"', 'installed', pinRoot])
  if (result.exitCode !== 0) throw new NotInstalledError(shell.node, pinRoot)
}

/** What the agent reports about itself: /status, AGENT_STATUS_FILE, and `pinion status`. */
export interface AgentStatus {
  node: string
  pid: number
  version: string
  startedAt: string
  ready: boolean
  /** Newest resourceVersion of any watched resource whose changes are on the node. */
  appliedResourceVersion: string
  lastSyncAt?: string
  lastSyncMs?: number
  /** How long the oldest change not yet written has waited (0 when in sync). */
  lagMs: number
  syncs: number
  fullReconciles: number
  endpoints: number
  unenforced: {pod: string; problem: string}[]
  policyErrors: {policy: string; error: string}[]
  /** Objects the planner could not turn into entries (they keep their last ones). */
  planErrors: string[]
  attachErrors: number
  errors: {time: string; message: string}[]
  /** The node's writer lease: held by this agent, or by whom while a CLI changes the node. */
  lease?: {name: string; held: boolean; holder?: string}
  fill: Record<string, number>
  /** How long CNI ADD took here (the agent's part of starting a pod), over the last 1,000. */
  cniAdd?: {count: number; p50Ms: number; p99Ms: number; maxMs: number}
}

/** What an install left on a node, read by status, sync and upgrades. */
export interface NodeRecord {
  version: string
  abi: number
  objectSha: string
  pinRoot: string
  installedAt: string
  lastSync: string
  interfaces: string[]
  endpoints: number
}

export async function readNodeRecord(shell: NodeShell): Promise<NodeRecord | undefined> {
  const result = await shell.run(['cat', NODE_STATE_FILE])
  if (result.exitCode !== 0) return undefined
  try {
    return JSON.parse(result.stdout.toString('utf8')) as NodeRecord
  } catch {
    return undefined
  }
}

export async function writeNodeRecord(shell: NodeShell, record: NodeRecord): Promise<void> {
  const text = JSON.stringify(record, null, 2)
  await runChecked(shell, ['sh', '-c', 'mkdir -p "$1" && head -c "$2" > "$3.tmp" && mv "$3.tmp" "$3"', 'write-state', NODE_STATE_DIR, String(Buffer.byteLength(text)), NODE_STATE_FILE], {stdin: text, keepStdinOpen: true})
}
