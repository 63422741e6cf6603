import {UserError} from './errors.js'

/** The run's overall deadline (--timeout) passed. */
export class DeadlineError extends UserError {
  constructor(readonly timeout: string) {
    super(`did not finish within the overall deadline (--timeout ${timeout}); work in progress was cancelled and cleaned up`, 1)
    this.name = 'DeadlineError'
  }
}

type Cleanup = () => Promise<void>

const controller = new AbortController()
const cleanups = new Set<Cleanup>()
let timer: NodeJS.Timeout | undefined

/** Aborts when the run's deadline passes; long waits (leases, debug pods) stop on it. */
export const runDeadline: AbortSignal = controller.signal

/**
 * Arm the deadline: when it passes, every registered cleanup runs (debug pods
 * deleted, leases released), the reason is printed as one line, and the
 * process exits 1 — whatever the command was waiting on.
 */
export function armDeadline(timeoutMs: number, label: string, print: (line: string) => void): void {
  clearTimeout(timer)
  timer = setTimeout(() => {
    const error = new DeadlineError(label)
    controller.abort(error)
    const work = Promise.allSettled([...cleanups].map((cleanup) => cleanup()))
    // Cleanup gets a bounded grace period of its own.
    const grace = new Promise((resolve) => setTimeout(resolve, 30_000).unref())
    void Promise.race([work, grace]).then(() => {
      print(`Error: ${error.message}`)
      process.exit(1)
    })
  }, timeoutMs)
  timer.unref()
}

/** Run `cleanup` if the deadline passes while the returned function has not been called. */
export function onDeadline(cleanup: Cleanup): () => void {
  cleanups.add(cleanup)
  return () => cleanups.delete(cleanup)
}

/** No deadline for this run (a command that follows until stopped). */
export function disarmDeadline(): void {
  clearTimeout(timer)
  timer = undefined
}
