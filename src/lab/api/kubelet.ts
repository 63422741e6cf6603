import {spawn} from 'node:child_process'
import {createHash} from 'node:crypto'
import {closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {processAlive} from '../../lib/process.js'
import {nodeScript} from '../../lib/scripts.js'
import {waitFor} from '../../lib/wait.js'
import {labDir, type LabNode, nodeExecPrefix} from '../config.js'
import {addNetns, addPodInterface, delNetns, shQuiet} from '../netns.js'
import {ApiError, type KubeObject} from './store.js'

const POD_SERVER = nodeScript(import.meta.url, '../pod-server')

interface Sandbox {
  uid: string
  node: string
  netns?: string
  ip: string
  pid?: number
  log: string
}

/** Sandboxes recorded on disk so `lab down` can remove them after a crash. */
export interface SandboxRecord {
  netns: string[]
  pids: number[]
}

export function sandboxRecordPath(lab: string): string {
  return join(labDir(lab), 'sandboxes.json')
}

export function readSandboxRecord(lab: string): SandboxRecord {
  const path = sandboxRecordPath(lab)
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as SandboxRecord) : {netns: [], pids: []}
}

function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 8)
}

interface ContainerPort {
  name?: string
  containerPort: number
  protocol?: string
}

/**
 * The lab's kubelet: gives workload pods a network namespace behind a veth on
 * their node, an IP from the node's pod CIDR and the built-in pod server on
 * their container ports. Host-network pods run in the node's namespaces.
 */
export class LabKubelet {
  private readonly sandboxes = new Map<string, Sandbox>()
  private readonly record: SandboxRecord

  constructor(
    private readonly lab: string,
    private readonly nodes: readonly LabNode[],
  ) {
    this.record = readSandboxRecord(lab)
    mkdirSync(join(labDir(lab), 'logs'), {recursive: true})
  }

  node(name: string): LabNode | undefined {
    return this.nodes.find((node) => node.name === name)
  }

  private save(): void {
    writeFileSync(sandboxRecordPath(this.lab), JSON.stringify(this.record))
  }

  private allocateIp(node: LabNode): string {
    const used = new Set([...this.sandboxes.values()].map((sandbox) => sandbox.ip))
    const base = node.podCidr.split('.').slice(0, 3).join('.')
    for (let host = 10; host < 250; host++) {
      if (!used.has(`${base}.${host}`)) return `${base}.${host}`
    }
    throw new Error(`node ${node.name} has no free pod IP in ${node.podCidr}`)
  }

  logPath(pod: KubeObject): string {
    return join(labDir(this.lab), 'logs', `${pod.metadata.namespace}_${pod.metadata.name}.log`)
  }

  /** Start a pod on its node; returns its IP. */
  async start(pod: KubeObject): Promise<{podIP: string; hostIP: string}> {
    const spec = pod.spec as {nodeName: string; hostNetwork?: boolean; containers: {ports?: ContainerPort[]}[]}
    const node = this.node(spec.nodeName)
    if (!node) throw new Error(`node ${spec.nodeName} is not part of the lab`)
    if (!processAlive(node.holderPid)) throw new Error(`node ${node.name} is down (its namespaces are gone)`)
    const uid = pod.metadata.uid!
    const log = this.logPath(pod)
    writeFileSync(log, '')
    if (spec.hostNetwork) {
      this.sandboxes.set(uid, {uid, node: node.name, ip: node.underlayIp, log})
      return {podIP: node.underlayIp, hostIP: node.underlayIp}
    }
    const ip = this.allocateIp(node)
    const hash = shortHash(uid)
    const netns = `pinion-${this.lab}-p${hash}`
    const sandbox: Sandbox = {uid, node: node.name, netns, ip, log}
    this.sandboxes.set(uid, sandbox)
    this.record.netns.push(netns)
    this.save()
    await addNetns(netns)
    await addPodInterface({nodeNetns: node.netns, podNetns: netns, hostIf: `lx${hash}`, podIp: ip})
    const ports = spec.containers.flatMap((container) => container.ports ?? [])
    const echo = ports.filter((port) => port.name === 'echo').map((port) => port.containerPort)
    const tcp = ports.filter((port) => (port.protocol ?? 'TCP') === 'TCP' && port.name !== 'echo').map((port) => port.containerPort)
    const udp = ports.filter((port) => port.protocol === 'UDP').map((port) => port.containerPort)
    if (tcp.length || udp.length || echo.length) {
      const fd = openSync(log, 'a')
      const child = spawn('ip', ['netns', 'exec', netns, ...POD_SERVER, '--name', `${pod.metadata.namespace}/${pod.metadata.name}`, '--tcp', tcp.join(','), '--udp', udp.join(','), '--echo', echo.join(',')], {detached: true, stdio: ['ignore', fd, fd]})
      closeSync(fd)
      child.unref()
      sandbox.pid = child.pid
      this.record.pids.push(child.pid!)
      this.save()
      await waitFor(`pod ${pod.metadata.name} to listen`, () => readFileSync(log, 'utf8').includes('ready'), {timeoutMs: 15_000})
    }
    return {podIP: ip, hostIP: node.underlayIp}
  }

  async stop(uid: string): Promise<void> {
    const sandbox = this.sandboxes.get(uid)
    if (!sandbox) return
    this.sandboxes.delete(uid)
    if (sandbox.pid) {
      try {
        process.kill(sandbox.pid, 'SIGKILL')
      } catch {
        // already exited
      }
      this.record.pids = this.record.pids.filter((pid) => pid !== sandbox.pid)
    }
    if (sandbox.netns) {
      await delNetns(sandbox.netns)
      this.record.netns = this.record.netns.filter((name) => name !== sandbox.netns)
    }
    this.save()
  }

  async stopAll(): Promise<void> {
    for (const uid of [...this.sandboxes.keys()]) await this.stop(uid)
  }

  execPrefix(pod: KubeObject): string[] {
    const sandbox = this.sandboxes.get(pod.metadata.uid!)
    const phase = (pod.status as {phase?: string} | undefined)?.phase
    if (!sandbox || phase !== 'Running') {
      throw new ApiError(400, 'BadRequest', `unable to upgrade connection: container not found ("${pod.metadata.name}" is ${phase ?? 'not started'})`)
    }
    if (!sandbox.netns) return nodeExecPrefix(this.node(sandbox.node)!)
    return ['nsenter', `--net=/run/netns/${sandbox.netns}`, '--']
  }

  /** Delete leftovers of pods that no longer exist (used at start-up). */
  static async cleanRecord(lab: string): Promise<void> {
    const record = readSandboxRecord(lab)
    for (const pid of record.pids) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // gone
      }
    }
    for (const netns of record.netns) await shQuiet(['ip', 'netns', 'del', netns])
    writeFileSync(sandboxRecordPath(lab), JSON.stringify({netns: [], pids: []}))
  }
}
