import {readFileSync} from 'node:fs'
import {homedir} from 'node:os'
import {Client, type ConnectConfig} from 'ssh2'
import {Semaphore} from '../lib/pool.js'
import {addHostKey, checkHostKey} from './known-hosts.js'
import {type NodeShell, type RunOptions, type RunResult, shellQuote, ShellTimeoutError} from './shell.js'

export interface SshOptions {
  user: string
  /** Private key file; else the agent in $SSH_AUTH_SOCK. */
  identityFile?: string
  knownHosts: string
  /** Accept and record an unknown host key (never a changed one). */
  acceptNew: boolean
  maxSessionsPerHost: number
  connectTimeoutMs: number
}

export function defaultSshOptions(): SshOptions {
  return {user: 'root', knownHosts: `${homedir()}/.ssh/known_hosts`, acceptNew: false, maxSessionsPerHost: 4, connectTimeoutMs: 10_000}
}

/**
 * A node reached over SSH (ssh2). Host keys are verified against known_hosts
 * and never accepted silently; every argument is shell-quoted; a non-root
 * user runs commands through `sudo -n`.
 */
export class SshShell implements NodeShell {
  private readonly sessions: Semaphore

  private constructor(
    readonly node: string,
    private readonly client: Client,
    private readonly options: SshOptions,
  ) {
    this.sessions = new Semaphore(options.maxSessionsPerHost)
  }

  static connect(node: string, host: string, port: number, options: SshOptions): Promise<SshShell> {
    const client = new Client()
    let refusal: string | undefined
    const config: ConnectConfig = {
      host,
      port,
      username: options.user,
      readyTimeout: options.connectTimeoutMs,
      hostVerifier: (key: Buffer) => {
        const verdict = checkHostKey(options.knownHosts, host, port, key)
        if (verdict === 'known') return true
        if (verdict === 'unknown' && options.acceptNew) {
          addHostKey(options.knownHosts, host, port, key)
          return true
        }
        refusal = verdict === 'mismatch'
          ? `host key of ${host}:${port} does not match ${options.knownHosts}: possible man-in-the-middle, refusing`
          : `host key of ${host}:${port} is not in ${options.knownHosts}: refusing (add it, or pass --ssh-accept-new)`
        return false
      },
    }
    if (options.identityFile) config.privateKey = readFileSync(options.identityFile)
    else if (process.env.SSH_AUTH_SOCK) config.agent = process.env.SSH_AUTH_SOCK
    return new Promise((resolve, reject) => {
      client.once('ready', () => resolve(new SshShell(node, client, options)))
      client.once('error', (error: Error & {level?: string}) => {
        if (refusal) reject(new Error(`${node}: ${refusal}`))
        else if (error.level === 'client-authentication') reject(new Error(`${node}: SSH authentication as ${options.user} failed (key refused)`))
        else reject(new Error(`${node}: SSH to ${host}:${port} failed: ${error.message}`))
      })
      client.connect(config)
    })
  }

  run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const command = (this.options.user === 'root' ? argv : ['sudo', '-n', '--', ...argv]).map(shellQuote).join(' ')
    return this.sessions.use(() => new Promise<RunResult>((resolve, reject) => {
      this.client.exec(command, (error, channel) => {
        if (error) return reject(new Error(`${this.node}: ${error.message}`))
        const stdout: Buffer[] = []
        const stderr: Buffer[] = []
        let exitCode = 255
        let timer: NodeJS.Timeout | undefined
        if (options.timeoutMs) {
          timer = setTimeout(() => {
            channel.close()
            reject(new ShellTimeoutError(this.node, argv, options.timeoutMs!))
          }, options.timeoutMs)
        }
        const stop = () => channel.close()
        if (options.signal?.aborted) stop()
        else options.signal?.addEventListener('abort', stop, {once: true})
        if (options.stdout) channel.pipe(options.stdout, {end: false})
        else channel.on('data', (chunk: Buffer) => stdout.push(chunk))
        channel.stderr.on('data', (chunk: Buffer) => stderr.push(chunk))
        channel.on('exit', (code: number | null) => (exitCode = code ?? 255))
        channel.on('close', () => {
          clearTimeout(timer)
          options.signal?.removeEventListener('abort', stop)
          resolve({exitCode, stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr).toString('utf8')})
        })
        if (options.stdin !== undefined) channel.write(options.stdin)
        if (!options.keepStdinOpen) channel.end()
      })
    }))
  }

  async close(): Promise<void> {
    this.client.end()
  }
}
