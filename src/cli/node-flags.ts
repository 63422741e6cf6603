import {Flags} from '@oclif/core'
import {existsSync} from 'node:fs'
import {homedir} from 'node:os'
import {DEFAULT_IMAGE} from '../nodes/debug-pods.js'
import type {NodeAccessOptions} from '../nodes/node-access.js'
import {parseDuration} from '../lib/duration.js'
import {UsageError} from '../lib/errors.js'

/** Flags of every command that reaches nodes (debug pods or SSH). */
export const nodeFlags = {
  node: Flags.string({description: 'Node to act on (repeatable; default: all nodes)', multiple: true, default: []}),
  transport: Flags.string({description: 'How to reach nodes', options: ['pod', 'ssh'], default: 'pod'}),
  image: Flags.string({description: 'Debug pod image (bpftool, iproute2, util-linux, tar; see images/node-tools)', default: DEFAULT_IMAGE}),
  concurrency: Flags.integer({description: 'Nodes worked on at once', default: 8, min: 1, max: 64}),
  'pod-start-timeout': Flags.string({description: 'How long a debug pod may take to start', default: '60s'}),
  'ssh-user': Flags.string({description: 'SSH user (sudo -n is used when not root)', default: 'root'}),
  'ssh-key': Flags.string({description: 'SSH private key file (default: the agent in $SSH_AUTH_SOCK)'}),
  'ssh-hosts': Flags.string({description: 'NODE=HOST[:PORT] address overrides for SSH (repeatable)', multiple: true, default: []}),
  'ssh-known-hosts': Flags.string({description: 'known_hosts file for host key checks', default: `${homedir()}/.ssh/known_hosts`}),
  'ssh-accept-new': Flags.boolean({description: 'Accept and record unknown SSH host keys (a changed key is always refused)', default: false}),
}

type NodeFlagValues = {
  transport: string
  image: string
  concurrency: number
  'pod-start-timeout': string
  'ssh-user': string
  'ssh-key'?: string
  'ssh-hosts': string[]
  'ssh-known-hosts': string
  'ssh-accept-new': boolean
}

export function nodeAccessOptions(flags: NodeFlagValues): NodeAccessOptions {
  const sshHosts: Record<string, string> = {}
  for (const entry of flags['ssh-hosts']) {
    const [node, address, extra] = entry.split('=')
    const target = address ? /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d+))?$/.exec(address) : null
    if (!node || !target || extra !== undefined) throw new UsageError(`--ssh-hosts takes NODE=HOST[:PORT], got "${entry}"`)
    const port = target[2] === undefined ? 22 : Number(target[2])
    if (!(port >= 1 && port <= 65535)) throw new UsageError(`--ssh-hosts ${entry}: port ${target[2]} is not between 1 and 65535`)
    if (node in sshHosts) throw new UsageError(`--ssh-hosts names ${node} twice`)
    sshHosts[node] = address
  }
  const identityFile = flags['ssh-key']
  if (identityFile !== undefined && !existsSync(identityFile)) throw new UsageError(`--ssh-key ${identityFile}: no such file`)
  if (flags.transport !== 'ssh' && (flags['ssh-hosts'].length || identityFile)) throw new UsageError('--ssh-hosts and --ssh-key need --transport ssh')
  return {
    transport: flags.transport as NodeAccessOptions['transport'],
    image: flags.image,
    concurrency: flags.concurrency,
    podStartTimeoutMs: parseDuration(flags['pod-start-timeout']),
    sshHosts,
    ssh: {user: flags['ssh-user'], identityFile: flags['ssh-key'], knownHosts: flags['ssh-known-hosts'], acceptNew: flags['ssh-accept-new'], maxSessionsPerHost: 4, connectTimeoutMs: 10_000},
  }
}
