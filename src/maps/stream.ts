import type {RawEntry} from '../datapath/bpftool.js'
import {type DumpSummary, nodeMapTool} from '../datapath/maptool.js'
import type {NodeShell} from '../nodes/shell.js'

/**
 * Stream a node's pinned map through the native map tool: entries are
 * decoded and filtered as they arrive, so a large map is never held at once.
 * onEntry returns false to stop early.
 */
export async function streamEntries(shell: NodeShell, path: string, onEntry: (entry: RawEntry) => boolean | void): Promise<DumpSummary> {
  return (await nodeMapTool(shell)).stream(path, onEntry)
}
