import {PassThrough, type Readable, Writable} from 'node:stream'
import * as k8s from '@kubernetes/client-node'
import {ShellTimeoutError} from '../nodes/shell.js'

export interface PodExecOptions {
  stdin?: Buffer | string | Readable
  /**
   * End stdin when it is drained. On the v4 protocol ending stdin closes the
   * whole socket, so callers that send a byte count (copy) leave it open.
   */
  endStdin?: boolean
  timeoutMs?: number
  /** Stream stdout here instead of buffering it. */
  stdout?: Writable
  signal?: AbortSignal
}

export interface PodExecResult {
  exitCode: number
  stdout: Buffer
  stderr: string
}

/** Exit code from the metav1.Status of the exec status channel. */
export function exitCodeOf(status: k8s.V1Status): number {
  if (status.status === 'Success') return 0
  const cause = status.details?.causes?.find((candidate) => candidate.reason === 'ExitCode')
  if (cause?.message && /^\d+$/.test(cause.message)) return Number(cause.message)
  throw new Error(status.message ?? 'exec failed without an exit code')
}

/**
 * Run a command in a pod and wait for it to finish. client-node's exec()
 * resolves when the socket opens, so completion is the status frame (exit
 * code) plus the socket closing after the last output.
 */
export async function execInPod(config: k8s.KubeConfig, namespace: string, pod: string, container: string, argv: readonly string[], options: PodExecOptions = {}): Promise<PodExecResult> {
  const stdoutChunks: Buffer[] = []
  const stderrChunks: Buffer[] = []
  const stdout = options.stdout ?? new Writable({write: (chunk: Buffer, _encoding, done) => (stdoutChunks.push(chunk), done())})
  const stderr = new Writable({write: (chunk: Buffer, _encoding, done) => (stderrChunks.push(chunk), done())})
  let stdin: Readable | null = null
  if (options.stdin !== undefined) {
    if (typeof options.stdin === 'string' || Buffer.isBuffer(options.stdin)) {
      const pass = new PassThrough()
      pass.write(options.stdin)
      if (options.endStdin !== false) pass.end()
      stdin = pass
    } else {
      stdin = options.stdin
    }
  }

  // The status frame arrives before the close frame, so it is known once the socket closes.
  let status: k8s.V1Status | undefined
  const socket = await new k8s.Exec(config).exec(namespace, pod, container, [...argv], stdout, stderr, stdin, false, (received) => (status = received))
  const closed = new Promise<void>((resolve) => {
    if (socket.readyState === socket.CLOSED) resolve()
    else socket.addEventListener('close', () => resolve())
  })

  let timer: NodeJS.Timeout | undefined
  // A close handshake the server is slow to answer must not hold the caller (ws waits 30 s for it otherwise).
  const stop = () => {
    socket.close()
    setTimeout(() => (socket as unknown as {terminate?: () => void}).terminate?.(), 2000).unref()
  }
  // A signal that fired while the socket was opening fires no event any more.
  if (options.signal?.aborted) stop()
  else options.signal?.addEventListener('abort', stop, {once: true})
  const deadline = new Promise<never>((_, reject) => {
    if (options.timeoutMs) {
      timer = setTimeout(() => {
        socket.close()
        reject(new ShellTimeoutError(pod, argv, options.timeoutMs!))
      }, options.timeoutMs)
    }
  })
  try {
    await Promise.race([closed, deadline])
    if (!status) {
      // Closed without a status frame: aborted by us, or the pod went away.
      if (options.signal?.aborted) return {exitCode: 130, stdout: Buffer.concat(stdoutChunks), stderr: Buffer.concat(stderrChunks).toString('utf8')}
      throw new Error(`exec in ${namespace}/${pod} ended without an exit status`)
    }
    return {exitCode: exitCodeOf(status), stdout: Buffer.concat(stdoutChunks), stderr: Buffer.concat(stderrChunks).toString('utf8')}
  } finally {
    clearTimeout(timer)
    options.signal?.removeEventListener('abort', stop)
    if (stdin && 'destroy' in stdin) stdin.destroy()
  }
}
