import {Flags} from '@oclif/core'
import {clients} from '../cluster/kubeconfig.js'
import {supportBundle} from '../bundle/bundle.js'
import {bundleNodeColumns} from '../bundle/columns.js'
import {BaseCommand} from '../cli/base-command.js'
import {pinRootFlag} from '../cli/datapath-flags.js'
import {parseDuration} from '../lib/duration.js'
import {nodeAccessOptions, nodeFlags} from '../cli/node-flags.js'

/** Exit code of a bundle that was written but misses parts (see failed.txt). */
export const PARTIAL_EXIT = 3

export default class SupportBundle extends BaseCommand {
  static override description = 'Write one tarball with everything a maintainer needs: cluster objects, and per node the datapath, maps, network and kernel state (partial bundles exit 3)'
  static override examples = ['<%= config.bin %> support-bundle', '<%= config.bin %> support-bundle -f /tmp/b.tar.gz --node worker-1 --since 1h']
  static override flags = {
    ...nodeFlags,
    ...pinRootFlag,
    file: Flags.string({char: 'f', description: 'Output file (default: pinion-bundle-<time>.tar.gz)'}),
    since: Flags.string({description: 'Only logs and events newer than this, e.g. 1h'}),
    'timeout-per-node': Flags.string({description: 'Deadline for each node', default: '60s'}),
    'task-timeout': Flags.string({description: 'Deadline for each file collected', default: '20s'}),
    'event-window': Flags.string({description: 'How long to record live datapath events per node', default: '2s'}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(SupportBundle)
    const file = flags.file ?? `pinion-bundle-${new Date().toISOString().replace(/[:.]/g, '-')}.tar.gz`
    const result = await supportBundle(clients(this.globals), {
      file,
      nodes: flags.node,
      sinceMs: flags.since ? parseDuration(flags.since) : undefined,
      concurrency: flags.concurrency,
      timeoutPerNodeMs: parseDuration(flags['timeout-per-node']),
      taskTimeoutMs: parseDuration(flags['task-timeout']),
      eventWindowMs: parseDuration(flags['event-window']),
      access: nodeAccessOptions(flags),
      pinRoot: flags['pin-root'],
      progress: true,
    })
    const summary = {file: result.file, bytes: result.bytes, partial: result.partial, nodes: result.manifest.nodes, failedTasks: result.manifest.tasks.filter((task) => !task.ok)}
    this.render({
      data: summary,
      rows: Object.entries(result.manifest.nodes).map(([node, status]) => ({node, ...status, failed: result.manifest.tasks.filter((task) => task.scope === node && !task.ok).map((task) => task.file)})),
      columns: bundleNodeColumns,
    })
    this.note(`wrote ${result.file} (${(result.bytes / 1024).toFixed(1)} KiB)${result.partial ? ' — partial: see failed.txt inside' : ''}`)
    if (result.partial) this.exit(PARTIAL_EXIT)
  }
}
