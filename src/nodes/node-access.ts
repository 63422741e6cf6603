import type {Clients} from '../cluster/kubeconfig.js'
import {apiErrorMessage} from '../cluster/kubeconfig.js'
import {onDeadline, runDeadline} from '../lib/deadline.js'
import {UsageError, UserError} from '../lib/errors.js'
import {mapSettled, type Settled} from '../lib/pool.js'
import {acquireLockFile, releaseLockFile} from './lock-file.js'
import {cliIdentity, NodeLease, releaseLeasesHeldBy} from './node-lease.js'
import {createDebugPod, DEBUG_CONTAINER, DEBUG_NAMESPACE, deleteDebugPods, ensureDebugNamespace, newRunId} from './debug-pods.js'
import {PodShell} from './pod-shell.js'
import type {NodeShell} from './shell.js'
import {type SshOptions, SshShell} from './ssh-shell.js'

export type Transport = 'pod' | 'ssh'

export interface NodeAccessOptions {
  transport: Transport
  image: string
  concurrency: number
  podStartTimeoutMs: number
  ssh: SshOptions
  /** node name -> host[:port]; default: the node's InternalIP, port 22. */
  sshHosts: Record<string, string>
}

export interface ExclusiveOptions {
  /** What the run does, as other writers see it named (e.g. `install`). */
  purpose: string
  /** Told once per holder waited for. */
  onWait?: (node: string, holder: string) => void
}

/**
 * Access to nodes for one CLI run: one shell per node (a debug pod, or an
 * SSH connection), bounded concurrency, per-node results, and cleanup that
 * always runs (success, error, Ctrl-C, SIGTERM).
 */
export class NodeAccess {
  readonly runId = newRunId()
  private readonly shells = new Map<string, Promise<NodeShell>>()
  private namespaceReady?: Promise<void>
  private podsCreated = false
  private addresses?: Map<string, string>
  private readonly leases = new Map<string, NodeLease>()
  /** Every identity this run's leases were held under, for the sweep at the end of clean-up. */
  private readonly identities = new Set<string>()
  private closing?: Promise<void>

  constructor(
    private readonly api: Clients,
    private readonly options: NodeAccessOptions,
  ) {}

  /** Node names in the cluster, or the selected ones after checking they exist. */
  async nodes(selected: readonly string[] = []): Promise<string[]> {
    let items
    try {
      items = (await this.api.core.listNode()).items
    } catch (error) {
      throw new UserError(`cannot list nodes: ${apiErrorMessage(error)}`)
    }
    this.addresses = new Map(items.map((node) => [node.metadata!.name!, node.status?.addresses?.find((address) => address.type === 'InternalIP')?.address ?? '']))
    const names = items.map((node) => node.metadata!.name!)
    const unknown = selected.filter((name) => !names.includes(name))
    if (unknown.length) throw new UsageError(`unknown node${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} (nodes: ${names.join(', ')})`)
    // An address for a node that does not exist is a typo: never guess another address for it.
    const unknownSsh = Object.keys(this.options.sshHosts).filter((name) => !names.includes(name))
    if (unknownSsh.length) throw new UsageError(`--ssh-hosts names unknown node${unknownSsh.length > 1 ? 's' : ''} ${unknownSsh.join(', ')} (nodes: ${names.join(', ')})`)
    return selected.length ? [...selected] : names
  }

  shell(node: string): Promise<NodeShell> {
    // A pod made once clean-up has listed this run's pods would outlive the run.
    if (this.closing) return Promise.reject(new Error(`${node}: node access is closing (the run is ending)`))
    let shell = this.shells.get(node)
    if (!shell) {
      shell = this.options.transport === 'ssh' ? this.openSsh(node) : this.openPod(node)
      this.shells.set(node, shell)
    }
    return shell
  }

  private async openPod(node: string): Promise<NodeShell> {
    this.namespaceReady ??= ensureDebugNamespace(this.api.core)
    await this.namespaceReady
    this.podsCreated = true
    const pod = await createDebugPod(this.api.core, node, this.runId, this.options.image, this.options.podStartTimeoutMs)
    return new PodShell(node, this.api.config, DEBUG_NAMESPACE, pod, DEBUG_CONTAINER)
  }

  private async openSsh(node: string): Promise<NodeShell> {
    const target = this.options.sshHosts[node] ?? this.addresses?.get(node)
    if (!target) throw new Error(`no SSH address for ${node}: pass --ssh-hosts ${node}=HOST[:PORT]`)
    const match = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(target)
    if (!match) throw new Error(`bad SSH address "${target}" for ${node}`)
    return SshShell.connect(node, match[1].replace(/^\[|\]$/g, ''), match[2] ? Number(match[2]) : 22, this.options.ssh)
  }

  /** Drop a node's shell so the next use opens a new one (after a failure). */
  forget(node: string): void {
    const shell = this.shells.get(node)
    this.shells.delete(node)
    void shell?.then((opened) => opened.close()).catch(() => {})
  }

  /**
   * Run fn on every node with bounded concurrency; a node's failure is its own
   * result. `exclusive`: fn runs as the node's one writer — it holds the
   * node's lease (and, over SSH, the node's lock file) and waits for any
   * other holder first.
   */
  forEach<T>(nodes: readonly string[], fn: (shell: NodeShell, node: string) => Promise<T>, exclusive?: ExclusiveOptions): Promise<Settled<T>[]> {
    return mapSettled(nodes, this.options.concurrency, async (node) => {
      if (!exclusive) return fn(await this.shell(node), node)
      const lease = new NodeLease(this.api, node, cliIdentity(exclusive.purpose))
      this.leases.set(node, lease)
      this.identities.add(lease.identity)
      try {
        await lease.acquire(runDeadline, (holder) => exclusive.onWait?.(node, holder))
        const shell = await this.shell(node)
        if (this.options.transport === 'ssh') await acquireLockFile(shell, lease.identity)
        try {
          return await fn(shell, node)
        } finally {
          if (this.options.transport === 'ssh') await releaseLockFile(shell, lease.identity).catch(() => {})
        }
      } finally {
        // Listed until it is given back, so a clean-up that starts meanwhile waits for this release too.
        await lease.release()
        this.leases.delete(node)
      }
    })
  }

  /** Close connections and delete this run's debug pods; every caller waits for the same cleanup. */
  close(): Promise<void> {
    this.closing ??= this.cleanUp()
    return this.closing
  }

  private async cleanUp(): Promise<void> {
    // Leases first: the next writer should not wait for them to expire.
    await Promise.allSettled([...this.leases.values()].map((lease) => lease.release()))
    this.leases.clear()
    const shells = [...this.shells.values()]
    this.shells.clear()
    await Promise.allSettled(shells.map(async (shell) => (await shell).close()))
    if (this.podsCreated) {
      this.podsCreated = false
      await deleteDebugPods(this.api.core, this.runId)
    }
    // Last: nothing this run took may stay held once it has gone.
    await releaseLeasesHeldBy(this.api, this.identities).catch(() => undefined)
  }
}

/**
 * Run fn with node access and always clean up, also on Ctrl-C and SIGTERM
 * (the pods are deleted before the process exits).
 */
export async function withNodeAccess<T>(api: Clients, options: NodeAccessOptions, fn: (access: NodeAccess) => Promise<T>): Promise<T> {
  const access = new NodeAccess(api, options)
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: deleting debug pods of run ${access.runId}…\n`)
    void access.close().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  const unregister = onDeadline(() => {
    process.stderr.write(`deadline passed: deleting debug pods of run ${access.runId}…\n`)
    return access.close()
  })
  try {
    return await fn(access)
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    unregister()
    await access.close()
  }
}
