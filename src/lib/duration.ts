import {UsageError} from './errors.js'

const UNIT_MS: Record<string, number> = {ms: 1, s: 1000, m: 60_000, h: 3_600_000}

/**
 * Parses Go/kubectl-style durations ("500ms", "10s", "1m30s", "2h"); a bare
 * number means seconds. Returns milliseconds.
 */
export function parseDuration(text: string): number {
  const input = text.trim()
  if (/^\d+(\.\d+)?$/.test(input)) return Math.round(Number(input) * 1000)
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy
  let total = 0
  let consumed = 0
  for (let match = part.exec(input); match; match = part.exec(input)) {
    total += Number(match[1]) * UNIT_MS[match[2]]
    consumed = part.lastIndex
  }
  if (input.length === 0 || consumed !== input.length) {
    throw new UsageError(`invalid duration "${text}": use forms like 500ms, 10s, 1m30s, 2h`)
  }
  return Math.round(total)
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)}s`
  const minutes = Math.floor(ms / 60_000)
  const seconds = Math.round((ms % 60_000) / 1000)
  if (minutes < 60) return `${minutes}m${seconds ? `${seconds}s` : ''}`
  return `${Math.floor(minutes / 60)}h${minutes % 60 ? `${minutes % 60}m` : ''}`
}
