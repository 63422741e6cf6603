import {type ChildProcess, spawn} from 'node:child_process'
import {createHash} from 'node:crypto'
import {closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {processAlive} from '../lib/process.js'
import {nodeScript} from '../lib/scripts.js'
import {waitFor} from '../lib/wait.js'
import {labDir, type LabNode, nodeExecPrefix, nodeKubeconfigPath} from './config.js'
import {addNetns, delNetns, sh, shQuiet} from './netns.js'
import {readState} from './state.js'
import {ApiError, type KubeObject} from './api/store.js'

const POD_SERVER = nodeScript(import.meta.url, './pod-server')
const CLI = fileURLToPath(new URL('../../bin/run.js', import.meta.url))

/**
 * Images the lab runs as real processes instead of its pod server, mapped to
 * the local build: the agent image runs this checkout's `pinion`.
 */
export const LOCAL_IMAGES = ['ghcr.io/pinion-dev/agent']

export function isLocalImage(image: string | undefined): boolean {
  return LOCAL_IMAGES.some((name) => image?.split('@')[0].replace(/:[^/:]*$/, '') === name)
}

interface Probe {
  httpGet?: {path?: string; port: number | string}
  periodSeconds?: number
  failureThreshold?: number
  initialDelaySeconds?: number
}

interface Container {
  name: string
  image?: string
  command?: string[]
  args?: string[]
  env?: {name: string; value?: string; valueFrom?: {fieldRef?: {fieldPath: string}}}[]
  ports?: ContainerPort[]
  readinessProbe?: Probe
  livenessProbe?: Probe
}

interface ContainerPort {
  name?: string
  containerPort: number
  protocol?: string
}

interface Sandbox {
  uid: string
  node: string
  netns?: string
  ip: string
  pid?: number
  /** The pod's network namespace is held by this process (a pause container), so CNI plugins can name it as /proc/PID/ns/net. */
  pausePid?: number
  containerId?: string
  cniArgs?: string
  log: string
  /** Local-image containers: their process, restarts and probe timers. */
  process?: {child?: ChildProcess; restarts: number; backoffMs: number; timers: NodeJS.Timeout[]; stopped: boolean; ready: boolean; livenessFailures: number}
}

/** What the kubelet tells the controller about a running pod (readiness, restarts). */
export interface ContainerReport {
  ready: boolean
  restartCount: number
  running: boolean
  lastExitCode?: number
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

/** A failure to set up a pod's network that the kubelet retries (a CNI plugin said no). */
export class SandboxError extends Error {}

interface CniPluginConfig {
  type: string
  [field: string]: unknown
}

/**
 * The lab's kubelet: gives workload pods a network namespace by running the
 * node's CNI chain (the conflist in the node's /etc/cni/net.d, plugins from
 * /opt/cni/bin, CNI_* environment, prevResult), an IP from the node's pod
 * CIDR and the built-in pod server on their container ports. Host-network
 * pods run in the node's namespaces; local images (the agent) run as real
 * processes there, restarted with back-off and probed for readiness.
 */
export class LabKubelet {
  private readonly sandboxes = new Map<string, Sandbox>()
  private readonly record: SandboxRecord
  /** Told when a local-image container changes (ready, restarted, exited). */
  onReport: (uid: string, report: ContainerReport) => void = () => {}

  constructor(
    private readonly lab: string,
    private readonly nodes: LabNode[],
  ) {
    this.record = readSandboxRecord(lab)
    mkdirSync(join(labDir(lab), 'logs'), {recursive: true})
  }

  node(name: string): LabNode | undefined {
    return this.nodes.find((node) => node.name === name)
  }

  /** A node added to the lab after start-up: its layout comes from the lab's state. */
  learnNode(name: string): void {
    if (this.node(name)) return
    const node = readState(this.lab)?.nodes.find((candidate) => candidate.name === name)
    if (node) this.nodes.push(node)
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

  private remember(pid: number | undefined): void {
    if (pid === undefined) return
    this.record.pids.push(pid)
    this.save()
  }

  private forgetPid(pid: number | undefined): void {
    if (pid === undefined) return
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // already exited
    }
    this.record.pids = this.record.pids.filter((candidate) => candidate !== pid)
  }

  /** Start a pod on its node; returns its IP. */
  async start(pod: KubeObject): Promise<{podIP: string; hostIP: string}> {
    const spec = pod.spec as {nodeName: string; hostNetwork?: boolean; containers: Container[]}
    const node = this.node(spec.nodeName)
    if (!node) throw new Error(`node ${spec.nodeName} is not part of the lab`)
    if (!processAlive(node.holderPid)) throw new Error(`node ${node.name} is down (its namespaces are gone)`)
    const uid = pod.metadata.uid!
    const log = this.logPath(pod)
    if (!this.sandboxes.has(uid)) writeFileSync(log, '')
    if (spec.hostNetwork) {
      const sandbox: Sandbox = {uid, node: node.name, ip: node.underlayIp, log}
      this.sandboxes.set(uid, sandbox)
      const local = spec.containers.find((container) => isLocalImage(container.image))
      if (local) this.runLocal(pod, sandbox, node, local)
      return {podIP: node.underlayIp, hostIP: node.underlayIp}
    }
    let sandbox = this.sandboxes.get(uid)
    if (!sandbox) {
      const hash = shortHash(uid)
      sandbox = {uid, node: node.name, netns: `pinion-${this.lab}-p${hash}`, ip: this.allocateIp(node), log, containerId: `lab${hash}`}
      this.sandboxes.set(uid, sandbox)
      this.record.netns.push(sandbox.netns!)
      this.save()
      await addNetns(sandbox.netns!)
      const pause = spawn('nsenter', [`--net=/run/netns/${sandbox.netns}`, '--', 'sleep', 'infinity'], {detached: true, stdio: 'ignore'})
      pause.unref()
      sandbox.pausePid = pause.pid
      this.remember(pause.pid)
    }
    sandbox.cniArgs = `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod.metadata.namespace};K8S_POD_NAME=${pod.metadata.name};K8S_POD_INFRA_CONTAINER_ID=${sandbox.containerId};K8S_POD_UID=${uid};IP=${sandbox.ip}`
    try {
      await this.cni('ADD', node, sandbox)
    } catch (error) {
      // Undo what part of the chain did, then let the caller retry later.
      await this.cni('DEL', node, sandbox).catch(() => undefined)
      throw error
    }
    const ports = spec.containers.flatMap((container) => container.ports ?? [])
    const echo = ports.filter((port) => port.name === 'echo').map((port) => port.containerPort)
    const tcp = ports.filter((port) => (port.protocol ?? 'TCP') === 'TCP' && port.name !== 'echo').map((port) => port.containerPort)
    const udp = ports.filter((port) => port.protocol === 'UDP').map((port) => port.containerPort)
    if (tcp.length || udp.length || echo.length) {
      const fd = openSync(log, 'a')
      const child = spawn('ip', ['netns', 'exec', sandbox.netns!, ...POD_SERVER, '--name', `${pod.metadata.namespace}/${pod.metadata.name}`, '--tcp', tcp.join(','), '--udp', udp.join(','), '--echo', echo.join(',')], {detached: true, stdio: ['ignore', fd, fd]})
      closeSync(fd)
      child.unref()
      sandbox.pid = child.pid
      this.remember(child.pid)
      await waitFor(`pod ${pod.metadata.name} to listen`, () => readFileSync(log, 'utf8').includes('ready'), {timeoutMs: 15_000})
    }
    return {podIP: sandbox.ip, hostIP: node.underlayIp}
  }

  /** The node's CNI network list: the first .conflist (by name) in its /etc/cni/net.d. */
  private async conflist(node: LabNode): Promise<{cniVersion: string; name: string; plugins: CniPluginConfig[]}> {
    const text = await sh([...nodeExecPrefix(node), 'sh', '-c', 'f=$(ls /etc/cni/net.d/*.conflist 2>/dev/null | sort | head -n 1); [ -n "$f" ] && cat "$f"'])
      .catch(() => {
        throw new SandboxError(`node ${node.name} has no CNI configuration in /etc/cni/net.d`)
      })
    return JSON.parse(text) as {cniVersion: string; name: string; plugins: CniPluginConfig[]}
  }

  /** Run the chain as the CNI spec says: ADD in order passing prevResult, DEL in reverse. */
  private async cni(command: 'ADD' | 'DEL', node: LabNode, sandbox: Sandbox): Promise<void> {
    const list = await this.conflist(node)
    const plugins = command === 'ADD' ? list.plugins : [...list.plugins].reverse()
    let previous: unknown
    for (const plugin of plugins) {
      const config = {...plugin, cniVersion: list.cniVersion, name: list.name, ...(previous ? {prevResult: previous} : {})}
      const env = {CNI_COMMAND: command, CNI_CONTAINERID: sandbox.containerId!, CNI_NETNS: sandbox.pausePid ? `/proc/${sandbox.pausePid}/ns/net` : '', CNI_IFNAME: 'eth0', CNI_ARGS: sandbox.cniArgs ?? '', CNI_PATH: '/opt/cni/bin', PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}
      const result = await this.runPlugin(node, plugin.type, env, JSON.stringify(config))
      if (result.code !== 0) {
        let message = result.stdout.trim() || result.stderr.trim()
        try {
          const error = JSON.parse(result.stdout) as {msg?: string; details?: string; code?: number}
          message = `${error.msg ?? 'failed'}${error.details ? ` (${error.details})` : ''} [code ${error.code}]`
        } catch {
          // not a CNI error object
        }
        if (command === 'ADD') throw new SandboxError(`plugin ${plugin.type} failed to set up pod network: ${message}`)
      } else if (command === 'ADD') {
        previous = JSON.parse(result.stdout)
      }
    }
  }

  private runPlugin(node: LabNode, type: string, env: Record<string, string>, stdin: string): Promise<{code: number; stdout: string; stderr: string}> {
    if (!/^[\w.-]+$/.test(type)) return Promise.resolve({code: 1, stdout: '', stderr: `invalid plugin type ${type}`})
    return new Promise((resolve) => {
      const child = spawn(nodeExecPrefix(node)[0], [...nodeExecPrefix(node).slice(1), `/opt/cni/bin/${type}`], {env, stdio: ['pipe', 'pipe', 'pipe']})
      let stdout = ''
      let stderr = ''
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
      child.on('error', (error) => resolve({code: 127, stdout, stderr: error.message}))
      child.on('close', (code) => {
        clearTimeout(timer)
        resolve({code: code ?? 1, stdout, stderr})
      })
      child.stdin.on('error', () => {})
      child.stdin.end(stdin)
    })
  }

  // ---- local images (the agent) ----

  private environment(pod: KubeObject, container: Container, node: LabNode): Record<string, string> {
    const fields: Record<string, string | undefined> = {'spec.nodeName': node.name, 'metadata.name': pod.metadata.name, 'metadata.namespace': pod.metadata.namespace, 'status.podIP': node.underlayIp, 'status.hostIP': node.underlayIp, 'spec.serviceAccountName': (pod.spec as {serviceAccountName?: string}).serviceAccountName}
    const env: Record<string, string> = {PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', KUBECONFIG: nodeKubeconfigPath(this.lab, node.name)}
    for (const item of container.env ?? []) {
      const value = item.valueFrom?.fieldRef ? fields[item.valueFrom.fieldRef.fieldPath] : item.value
      if (value !== undefined) env[item.name] = value
    }
    return env
  }

  /** argv of a local-image container: `pinion …` is this checkout's CLI. */
  private argv(container: Container): string[] {
    const argv = [...(container.command ?? ['pinion']), ...(container.args ?? [])]
    return argv[0] === 'pinion' ? [process.execPath, CLI, ...argv.slice(1)] : argv
  }

  private runLocal(pod: KubeObject, sandbox: Sandbox, node: LabNode, container: Container): void {
    const state: NonNullable<Sandbox['process']> = {restarts: 0, backoffMs: 1000, timers: [], stopped: false, ready: false, livenessFailures: 0}
    sandbox.process = state
    const report = () => this.onReport(sandbox.uid, {ready: state.ready, restartCount: state.restarts, running: Boolean(state.child && state.child.exitCode === null)})
    const launch = () => {
      if (state.stopped) return
      const fd = openSync(sandbox.log, 'a')
      const argv = [...nodeExecPrefix(node), ...this.argv(container)]
      const child = spawn(argv[0], argv.slice(1), {env: this.environment(pod, container, node), detached: true, stdio: ['ignore', fd, fd]})
      closeSync(fd)
      child.unref()
      state.child = child
      this.remember(child.pid)
      const started = Date.now()
      child.on('exit', (code, signal) => {
        this.forgetPid(child.pid)
        this.save()
        state.ready = false
        if (state.stopped) return
        state.restarts++
        // Back-off doubles up to 30 s, and resets after a run of a minute (the kubelet's is 10 s to 5 min).
        if (Date.now() - started > 60_000) state.backoffMs = 1000
        const wait = state.backoffMs
        state.backoffMs = Math.min(state.backoffMs * 2, 30_000)
        writeFileSync(sandbox.log, `${new Date().toISOString()} [lab kubelet] container ${container.name} exited (${signal ?? code}); restarting in ${wait} ms\n`, {flag: 'a'})
        this.onReport(sandbox.uid, {ready: false, restartCount: state.restarts, running: false, lastExitCode: code ?? 137})
        state.timers.push(setTimeout(launch, wait))
      })
      report()
    }
    launch()
    this.probe(sandbox, node, container, state, report)
  }

  /** httpGet probes, run in the node's network namespace (where the container listens). */
  private probe(sandbox: Sandbox, node: LabNode, container: Container, state: NonNullable<Sandbox['process']>, report: () => void): void {
    const check = async (probe: Probe): Promise<boolean> => {
      const port = Number(typeof probe.httpGet!.port === 'string' ? container.ports?.find((candidate) => candidate.name === probe.httpGet!.port)?.containerPort : probe.httpGet!.port)
      const request = `GET ${probe.httpGet!.path ?? '/'} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n`
      const result = await new Promise<string>((resolve) => {
        const child = spawn('nsenter', [`--net=/run/netns/${node.netns}`, '--', 'nc', '-w', '2', '127.0.0.1', String(port)], {stdio: ['pipe', 'pipe', 'ignore']})
        let out = ''
        child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
        child.on('error', () => resolve(''))
        child.on('close', () => resolve(out))
        child.stdin.on('error', () => {})
        child.stdin.end(request)
      })
      return /^HTTP\/1\.[01] 2\d\d/.test(result)
    }
    const every = (probe: Probe | undefined, onResult: (ok: boolean) => void) => {
      if (!probe?.httpGet) return
      const tick = async () => {
        if (state.stopped) return
        if (state.child && state.child.exitCode === null) onResult(await check(probe))
        if (!state.stopped) state.timers.push(setTimeout(() => void tick(), Math.max(1, probe.periodSeconds ?? 10) * 1000))
      }
      state.timers.push(setTimeout(() => void tick(), (probe.initialDelaySeconds ?? 0) * 1000))
    }
    let readinessFailures = 0
    every(container.readinessProbe, (ok) => {
      // Ready on the first success; not ready after failureThreshold failures in a row.
      readinessFailures = ok ? 0 : readinessFailures + 1
      const ready = ok || (state.ready && readinessFailures < (container.readinessProbe?.failureThreshold ?? 3))
      if (ready === state.ready) return
      state.ready = ready
      report()
    })
    if (!container.readinessProbe) {
      state.ready = true
      report()
    }
    every(container.livenessProbe, (ok) => {
      state.livenessFailures = ok ? 0 : state.livenessFailures + 1
      if (state.livenessFailures >= (container.livenessProbe?.failureThreshold ?? 3)) {
        state.livenessFailures = 0
        writeFileSync(sandbox.log, `${new Date().toISOString()} [lab kubelet] liveness probe failed; killing container ${container.name}\n`, {flag: 'a'})
        state.child?.kill('SIGKILL')
      }
    })
  }

  async stop(uid: string): Promise<void> {
    const sandbox = this.sandboxes.get(uid)
    if (!sandbox) return
    this.sandboxes.delete(uid)
    if (sandbox.process) {
      sandbox.process.stopped = true
      for (const timer of sandbox.process.timers) clearTimeout(timer)
      const child = sandbox.process.child
      if (child && child.exitCode === null) {
        // Like a container runtime: SIGTERM, then SIGKILL after a grace period.
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
        child.kill('SIGTERM')
        const grace = setTimeout(() => child.kill('SIGKILL'), 10_000)
        await exited
        clearTimeout(grace)
      }
      this.forgetPid(child?.pid)
    }
    if (sandbox.netns && sandbox.containerId) {
      const node = this.node(sandbox.node)
      if (node && processAlive(node.holderPid)) await this.cni('DEL', node, sandbox).catch(() => undefined)
    }
    this.forgetPid(sandbox.pid)
    this.forgetPid(sandbox.pausePid)
    if (sandbox.netns) {
      await delNetns(sandbox.netns)
      this.record.netns = this.record.netns.filter((name) => name !== sandbox.netns)
    }
    this.save()
  }

  async stopAll(): Promise<void> {
    for (const uid of [...this.sandboxes.keys()]) await this.stop(uid)
  }

  /** Kill a local-image container's process (as a crash would); the kubelet restarts it. */
  killContainer(uid: string): number | undefined {
    const child = this.sandboxes.get(uid)?.process?.child
    child?.kill('SIGKILL')
    return child?.pid
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

  /** exec argv inside a pod: in a local-image container, `pinion` is this checkout's CLI. */
  execCommand(pod: KubeObject, command: string[]): string[] {
    const containers = (pod.spec as {containers?: Container[]}).containers ?? []
    if (command[0] === 'pinion' && containers.some((container) => isLocalImage(container.image))) return [process.execPath, CLI, ...command.slice(1)]
    return command
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
