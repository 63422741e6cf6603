/**
 * Poll `check` until it returns a value other than undefined/false, or fail
 * after `timeoutMs` with `what` in the message. For conditions we cannot be
 * notified of (a reader attaching, a namespace appearing).
 */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, options: {timeoutMs?: number; intervalMs?: number} = {}): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000)
  const interval = options.intervalMs ?? 25
  for (;;) {
    const value = await check()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${options.timeoutMs ?? 10_000} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, interval))
  }
}
