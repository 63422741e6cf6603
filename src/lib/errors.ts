/**
 * Errors a user can act on. The base command prints their message as one line
 * (no stack trace) and exits with `exitCode`.
 */
export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message)
    this.name = 'UserError'
  }
}

/** Bad input at the edge (flags, arguments, files): exit code 2 like a flag error. */
export class UsageError extends UserError {
  constructor(message: string) {
    super(message, 2)
    this.name = 'UsageError'
  }
}

type Describer = (error: unknown) => string | undefined
const describers: Describer[] = []

/** Let a layer that knows an error type (e.g. API errors) say it in one line. */
export function describeErrorsWith(describer: Describer): void {
  describers.push(describer)
}

/** One line describing any thrown value, for per-node / per-task failure reports. */
export function errorMessage(error: unknown): string {
  for (const describe of describers) {
    const line = describe(error)
    if (line) return line
  }
  if (error instanceof Error) return error.message.split('\n')[0] || error.name
  if (error && typeof error === 'object' && typeof (error as {message?: unknown}).message === 'string') return (error as {message: string}).message.split('\n')[0]
  if (error && typeof error === 'object') {
    try {
      return JSON.stringify(error).slice(0, 200)
    } catch {
      return Object.prototype.toString.call(error)
    }
  }
  return String(error)
}
