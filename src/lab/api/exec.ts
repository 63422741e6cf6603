import {spawn} from 'node:child_process'
import type {WebSocket} from 'ws'

/** Kubernetes remote-command channels. */
const STDIN = 0
const STDOUT = 1
const STDERR = 2
const STATUS = 3
const CLOSE = 255

/** Pause the child's output while this much is queued on the socket. */
const HIGH_WATER = 4 * 1024 * 1024

function frame(channel: number, data: Buffer | string): Buffer {
  const payload = typeof data === 'string' ? Buffer.from(data) : data
  return Buffer.concat([Buffer.from([channel]), payload])
}

/**
 * Run one exec session over a channel.k8s.io WebSocket: stdin from channel 0
 * (v5 closes it with [255, 0]; v4 clients send a byte count instead), stdout
 * and stderr back on 1 and 2 with backpressure, then a metav1.Status with the
 * exit code on channel 3, then a normal close.
 */
export function handleExec(ws: WebSocket, argv: string[], options: {stdin: boolean}): void {
  const child = spawn(argv[0], argv.slice(1), {stdio: ['pipe', 'pipe', 'pipe']})
  let queued = 0
  let finished = false

  const forward = (channel: number) => (chunk: Buffer) => {
    queued += chunk.length
    if (queued > HIGH_WATER) {
      child.stdout.pause()
      child.stderr.pause()
    }
    ws.send(frame(channel, chunk), () => {
      queued -= chunk.length
      if (queued <= HIGH_WATER / 2) {
        child.stdout.resume()
        child.stderr.resume()
      }
    })
  }
  child.stdout.on('data', forward(STDOUT))
  child.stderr.on('data', forward(STDERR))
  child.stdin.on('error', () => {})
  if (!options.stdin) child.stdin.end()

  ws.on('message', (data: Buffer, isBinary: boolean) => {
    const bytes = isBinary ? data : Buffer.from(data.toString(), 'utf8')
    if (bytes.length === 0) return
    if (bytes[0] === STDIN && options.stdin) child.stdin.write(bytes.subarray(1))
    else if (bytes[0] === CLOSE && bytes[1] === STDIN) child.stdin.end()
  })
  ws.on('close', () => {
    // The client went away: the command must not outlive its session.
    if (!finished) child.kill('SIGKILL')
  })

  const finish = (status: Record<string, unknown>) => {
    if (finished) return
    finished = true
    ws.send(frame(STATUS, JSON.stringify({metadata: {}, ...status})), () => ws.close(1000))
  }
  child.on('error', (error) => finish({status: 'Failure', reason: 'InternalError', message: `failed to run ${argv.at(-1)}: ${error.message}`}))
  child.on('close', (code, signal) => {
    if (code === 0) return finish({status: 'Success'})
    const exitCode = code ?? 128 + (signal === 'SIGKILL' ? 9 : 15)
    finish({
      status: 'Failure',
      reason: 'NonZeroExitCode',
      message: `command terminated with non-zero exit code: error executing command, exit code ${exitCode}`,
      details: {causes: [{reason: 'ExitCode', message: String(exitCode)}]},
    })
  })
}
