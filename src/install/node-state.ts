import {type NodeShell, runChecked} from '../nodes/shell.js'

/** Where Pinion keeps its files on a node (objects, install record). */
export const NODE_STATE_DIR = '/var/lib/pinion'
export const NODE_STATE_FILE = `${NODE_STATE_DIR}/state.json`

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
