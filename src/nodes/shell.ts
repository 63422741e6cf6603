import type {Writable} from 'node:stream'

/**
 * The one narrow interface every node-side feature is written against: run a
 * command (argv, never a shell string) with optional stdin, get its exit code
 * and output. Debug pods, SSH and local namespaces implement it.
 */
export interface RunOptions {
  stdin?: Buffer | string
  /**
   * The command reads a known byte count and needs no EOF: keep stdin open so
   * transports where closing stdin ends the session (exec v4) still work.
   */
  keepStdinOpen?: boolean
  /** Per-command deadline; the command is killed and the call rejects with ShellTimeoutError. */
  timeoutMs?: number
  /** Stream stdout here instead of buffering it (large dumps, event streams). */
  stdout?: Writable
  /** Stops a long-running command (e.g. an event stream); the call resolves normally. */
  signal?: AbortSignal
}

export interface RunResult {
  exitCode: number
  /** Empty when RunOptions.stdout was given. */
  stdout: Buffer
  stderr: string
}

export interface NodeShell {
  /** The node's name, for messages. */
  readonly node: string
  run(argv: readonly string[], options?: RunOptions): Promise<RunResult>
  close(): Promise<void>
}

export class ShellTimeoutError extends Error {
  constructor(node: string, argv: readonly string[], timeoutMs: number) {
    super(`${node}: \`${argv.join(' ')}\` did not finish within ${timeoutMs} ms`)
    this.name = 'ShellTimeoutError'
  }
}

export class CommandFailedError extends Error {
  constructor(
    readonly node: string,
    readonly argv: readonly string[],
    readonly result: RunResult,
  ) {
    const detail = result.stderr.trim().split('\n').pop() || result.stdout.toString('utf8').trim().split('\n').pop() || 'no output'
    super(`${node}: \`${argv.slice(0, 4).join(' ')}${argv.length > 4 ? ' …' : ''}\` exited ${result.exitCode}: ${detail}`)
    this.name = 'CommandFailedError'
  }
}

/** Run and insist on exit code 0. */
export async function runChecked(shell: NodeShell, argv: readonly string[], options?: RunOptions): Promise<RunResult> {
  const result = await shell.run(argv, options)
  if (result.exitCode !== 0) throw new CommandFailedError(shell.node, argv, result)
  return result
}

/** POSIX shell quoting of one argument, for transports that take a command string. */
export function shellQuote(argument: string): string {
  if (/^[\w@%+=:,./-]+$/.test(argument)) return argument
  return `'${argument.replace(/'/g, `'\\''`)}'`
}
