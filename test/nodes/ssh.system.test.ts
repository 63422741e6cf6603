/*
 * SSH transport against a real OpenSSH server. sshd listens on 127.0.0.1 but
 * runs in a lab node's mount and UTS namespaces, and its ForceCommand enters
 * the node's network namespace, so a session sees exactly the node.
 */
import {type ChildProcess, execFileSync, spawn} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {connect} from 'node:net'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {Clients} from '../../src/cluster/kubeconfig.js'
import {readState} from '../../src/lab/state.js'
import {nodeExecPrefix} from '../../src/lab/config.js'
import {LocalShell} from '../../src/nodes/local-shell.js'
import {acquireLockFile, LOCK_FILE} from '../../src/nodes/lock-file.js'
import type {LabSummary} from '../../src/lab/lab.js'
import {waitFor} from '../../src/lib/wait.js'
import {DEFAULT_IMAGE} from '../../src/nodes/debug-pods.js'
import {withNodeAccess, type NodeAccessOptions} from '../../src/nodes/node-access.js'
import {type SshOptions, SshShell} from '../../src/nodes/ssh-shell.js'
import {startLab, stopLab} from '../helpers/lab.js'
import {requireSystem} from '../helpers/system.js'

let lab: LabSummary
let api: Clients
let dir: string
let sshd: ChildProcess | undefined
let port = 0

function keygen(path: string): void {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path])
}

beforeAll(async () => {
  requireSystem(['sshd', 'ssh-keygen'])
  ;({lab, api} = await startLab('ssh', 1, 0))
  const node = readState(lab.name)!.nodes[0]
  dir = mkdtempSync(join(tmpdir(), 'pinion-ssh-'))
  keygen(join(dir, 'host_key'))
  keygen(join(dir, 'client_key'))
  keygen(join(dir, 'other_key'))
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client_key.pub')))
  execFileSync('mkdir', ['-p', '/run/sshd'])
  // A port another process holds makes sshd exit: try the next one.
  let lastError: unknown
  for (let attempt = 0; attempt < 3 && !sshd; attempt++) {
    try {
      sshd = await startSshd(node, 20000 + ((process.pid + attempt * 7919) % 20000))
    } catch (error) {
      lastError = error
    }
  }
  if (!sshd) throw lastError
})

/** sshd inside the node's namespaces; resolves once it listens, rejects with its stderr if it exits. */
async function startSshd(node: {holderPid: number; netns: string}, candidate: number): Promise<ChildProcess> {
  const child = spawn('nsenter', [`--mount=/proc/${node.holderPid}/ns/mnt`, `--uts=/proc/${node.holderPid}/ns/uts`, '--', '/usr/sbin/sshd', '-D', '-e', '-f', '/dev/null',
    '-o', `ListenAddress=127.0.0.1:${candidate}`, '-o', `HostKey=${join(dir, 'host_key')}`, '-o', `AuthorizedKeysFile=${join(dir, 'authorized_keys')}`,
    '-o', 'PermitRootLogin=prohibit-password', '-o', 'StrictModes=no', '-o', 'UsePAM=no', '-o', `PidFile=${join(dir, 'sshd.pid')}`,
    '-o', `ForceCommand=nsenter --net=/run/netns/${node.netns} -- sh -c "$SSH_ORIGINAL_COMMAND"`], {stdio: ['ignore', 'ignore', 'pipe']})
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')))
  try {
    // Generous: the suite runs beside labs and the conformance matrix.
    await waitFor('sshd to listen', () => {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`sshd exited: ${stderr.trim() || `code ${child.exitCode}`}`)
      return new Promise<boolean>((resolve) => {
        const socket = connect(candidate, '127.0.0.1', () => (socket.destroy(), resolve(true)))
        socket.on('error', () => resolve(false))
      })
    }, {timeoutMs: 30_000})
  } catch (error) {
    child.kill('SIGKILL')
    throw error
  }
  port = candidate
  return child
}

afterAll(async () => {
  sshd?.kill('SIGKILL')
  await stopLab(lab)
  if (dir) rmSync(dir, {recursive: true, force: true})
})

const sshOptions = (overrides: Partial<SshOptions> = {}): SshOptions => ({user: 'root', identityFile: join(dir, 'client_key'), knownHosts: join(dir, 'known_hosts'), acceptNew: false, maxSessionsPerHost: 2, connectTimeoutMs: 5000, ...overrides})
const hostLine = () => `[127.0.0.1]:${port} ${readFileSync(join(dir, 'host_key.pub'), 'utf8').split(' ').slice(0, 2).join(' ')}\n`

describe('SSH transport', () => {
  it('refuses an unknown host key unless --ssh-accept-new, then records it hashed', async () => {
    rmSync(join(dir, 'known_hosts'), {force: true})
    await expect(SshShell.connect('n1', '127.0.0.1', port, sshOptions())).rejects.toThrow(/not in .*known_hosts: refusing/)
    const shell = await SshShell.connect('n1', '127.0.0.1', port, sshOptions({acceptNew: true}))
    await shell.close()
    expect(readFileSync(join(dir, 'known_hosts'), 'utf8')).toMatch(/^\|1\|/)
    const again = await SshShell.connect('n1', '127.0.0.1', port, sshOptions())
    await again.close()
  })

  it('works with a known host and a good key: runs in the node, quotes arguments, reports exit codes', async () => {
    writeFileSync(join(dir, 'known_hosts'), hostLine())
    const shell = await SshShell.connect('n1', '127.0.0.1', port, sshOptions())
    try {
      expect((await shell.run(['hostname'])).stdout.toString().trim()).toBe(lab.nodes[0].name)
      expect((await shell.run(['ip', '-4', 'addr', 'show', 'eth0'])).stdout.toString()).toContain(lab.nodes[0].underlayIp)
      expect((await shell.run(['printf', '%s|', "it's", 'a b', '$HOME'])).stdout.toString()).toBe("it's|a b|$HOME|")
      expect((await shell.run(['sh', '-c', 'exit 5'])).exitCode).toBe(5)
      expect((await shell.run(['cat'], {stdin: 'piped'})).stdout.toString()).toBe('piped')
    } finally {
      await shell.close()
    }
  })

  it('refuses a wrong client key and a changed host key', async () => {
    writeFileSync(join(dir, 'known_hosts'), hostLine())
    await expect(SshShell.connect('n1', '127.0.0.1', port, sshOptions({identityFile: join(dir, 'other_key')}))).rejects.toThrow(/authentication as root failed/)
    writeFileSync(join(dir, 'known_hosts'), `[127.0.0.1]:${port} ${readFileSync(join(dir, 'other_key.pub'), 'utf8').split(' ').slice(0, 2).join(' ')}\n`)
    await expect(SshShell.connect('n1', '127.0.0.1', port, sshOptions({acceptNew: true}))).rejects.toThrow(/does not match/)
  })

  it('serves node features through --transport ssh with --ssh-hosts', async () => {
    writeFileSync(join(dir, 'known_hosts'), hostLine())
    const options: NodeAccessOptions = {transport: 'ssh', image: DEFAULT_IMAGE, concurrency: 2, podStartTimeoutMs: 1000, ssh: sshOptions(), sshHosts: {[lab.nodes[0].name]: `127.0.0.1:${port}`}}
    const results = await withNodeAccess(api, options, async (access) => access.forEach(await access.nodes(), async (shell) => (await shell.run(['hostname'])).stdout.toString().trim()))
    expect(results).toMatchObject([{item: lab.nodes[0].name, ok: true, value: lab.nodes[0].name}])
  })

  it('reaches a node at its own address without --ssh-hosts (the lab routes its underlay to the host), and holds the node lock file while writing', async () => {
    const node = readState(lab.name)!.nodes[0]
    // A second sshd, in the node's own network namespace, on port 22 of its underlay address.
    const child = spawn('nsenter', [`--net=/run/netns/${node.netns}`, `--mount=/proc/${node.holderPid}/ns/mnt`, `--uts=/proc/${node.holderPid}/ns/uts`, '--', '/usr/sbin/sshd', '-D', '-e', '-f', '/dev/null',
      '-o', `ListenAddress=${node.underlayIp}:22`, '-o', `HostKey=${join(dir, 'host_key')}`, '-o', `AuthorizedKeysFile=${join(dir, 'authorized_keys')}`,
      '-o', 'PermitRootLogin=prohibit-password', '-o', 'StrictModes=no', '-o', 'UsePAM=no', '-o', `PidFile=${join(dir, 'sshd-node.pid')}`], {stdio: ['ignore', 'ignore', 'pipe']})
    try {
      await waitFor('sshd on the node address', () => new Promise<boolean>((resolve) => {
        const socket = connect(22, node.underlayIp, () => (socket.destroy(), resolve(true)))
        socket.on('error', () => resolve(false))
      }), {timeoutMs: 30_000, intervalMs: 100})
      writeFileSync(join(dir, 'known_hosts'), `${node.underlayIp} ${readFileSync(join(dir, 'host_key.pub'), 'utf8').split(' ').slice(0, 2).join(' ')}\n`)
      const options: NodeAccessOptions = {transport: 'ssh', image: DEFAULT_IMAGE, concurrency: 2, podStartTimeoutMs: 1000, ssh: sshOptions(), sshHosts: {}}
      const results = await withNodeAccess(api, options, async (access) => access.forEach(await access.nodes(), async (shell) => {
        const lock = (await shell.run(['cat', LOCK_FILE])).stdout.toString()
        // Another writer on the node (another operator's SSH run) is refused while this one holds it.
        const refused = await acquireLockFile(shell, 'pinion install (other@elsewhere, pid 2)').then(() => 'taken', (error: Error) => error.message)
        return {hostname: (await shell.run(['hostname'])).stdout.toString().trim(), lock, refused}
      }, {purpose: 'test-write'}))
      expect(results[0].error).toBeUndefined()
      expect(results[0].value!.hostname).toBe(node.name)
      expect(results[0].value!.lock).toMatch(/^\d+\npinion test-write \(/)
      expect(results[0].value!.refused).toMatch(/is locked by pinion test-write/)
      // Released afterwards.
      expect((await new LocalShell(node.name, nodeExecPrefix(node)).run(['test', '-e', LOCK_FILE])).exitCode).not.toBe(0)
    } finally {
      child.kill('SIGKILL')
    }
  })
})
