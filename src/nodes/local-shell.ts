import {spawn} from 'node:child_process'
import {type NodeShell, type RunOptions, type RunResult, ShellTimeoutError} from './shell.js'

/**
 * Runs commands on this host, optionally inside namespaces through a prefix
 * such as ['nsenter', '--net=/run/…', '--']. The lab's nodes and the datapath
 * tests use it; it is also the reference the remote transports must match.
 */
export class LocalShell implements NodeShell {
  constructor(
    readonly node = 'localhost',
    private readonly prefix: readonly string[] = [],
  ) {}

  run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const full = [...this.prefix, ...argv]
    return new Promise((resolve, reject) => {
      const child = spawn(full[0], full.slice(1), {stdio: ['pipe', 'pipe', 'pipe']})
      const stdout: Buffer[] = []
      const stderr: Buffer[] = []
      let timer: NodeJS.Timeout | undefined
      let timedOut = false
      if (options.timeoutMs) {
        timer = setTimeout(() => {
          timedOut = true
          child.kill('SIGKILL')
        }, options.timeoutMs)
      }
      const stop = () => child.kill('SIGTERM')
      if (options.signal?.aborted) stop()
      else options.signal?.addEventListener('abort', stop, {once: true})
      if (options.stdout) child.stdout.pipe(options.stdout, {end: false})
      else child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk))
      child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk))
      child.on('error', (error) => {
        clearTimeout(timer)
        reject(new Error(`${this.node}: cannot run ${full[0]}: ${error.message}`))
      })
      child.on('close', (code, signal) => {
        clearTimeout(timer)
        options.signal?.removeEventListener('abort', stop)
        if (timedOut) {
          reject(new ShellTimeoutError(this.node, argv, options.timeoutMs!))
          return
        }
        resolve({
          exitCode: code ?? (signal ? 128 + 9 : 1),
          stdout: Buffer.concat(stdout),
          stderr: Buffer.concat(stderr).toString('utf8'),
        })
      })
      child.stdin.on('error', () => {}) // the command may exit without reading stdin
      child.stdin.end(options.stdin ?? '')
    })
  }

  async close(): Promise<void> {}
}
