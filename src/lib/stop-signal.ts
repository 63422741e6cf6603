/**
 * The end of a streaming command: Ctrl-C or SIGTERM, or — unless it follows
 * forever — after `durationMs`.
 */
export function stopSignal(durationMs?: number): AbortSignal {
  const stop = new AbortController()
  process.once('SIGINT', () => stop.abort())
  process.once('SIGTERM', () => stop.abort())
  if (durationMs !== undefined) setTimeout(() => stop.abort(), durationMs).unref()
  return stop.signal
}
