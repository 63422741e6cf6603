import {errorMessage} from './errors.js'

export interface Settled<T> {
  item: string
  ok: boolean
  value?: T
  error?: string
  durationMs: number
}

/**
 * Run fn over items with at most `limit` at once. One item's failure never
 * stops the others: every item gets a result, in input order.
 */
export async function mapSettled<T>(items: readonly string[], limit: number, fn: (item: string) => Promise<T>): Promise<Settled<T>[]> {
  const results: Settled<T>[] = new Array(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const index = next++
      const started = Date.now()
      try {
        results[index] = {item: items[index], ok: true, value: await fn(items[index]), durationMs: Date.now() - started}
      } catch (error) {
        results[index] = {item: items[index], ok: false, error: errorMessage(error), durationMs: Date.now() - started}
      }
    }
  }
  await Promise.all(Array.from({length: Math.max(1, Math.min(limit, items.length))}, worker))
  return results
}

/** A counting semaphore: at most `size` holders at once. */
export class Semaphore {
  private waiting: (() => void)[] = []
  private active = 0

  constructor(private readonly size: number) {}

  async use<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.size) await new Promise<void>((resolve) => this.waiting.push(resolve))
    this.active++
    try {
      return await fn()
    } finally {
      this.active--
      this.waiting.shift()?.()
    }
  }
}
