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

/** One line describing any thrown value, for per-node / per-task failure reports. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message.split('\n')[0] || error.name
  return String(error)
}
