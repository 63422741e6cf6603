import {describe, expect, it} from 'vitest'
import {formatDuration, parseDuration} from '../../src/lib/duration.js'
import {UsageError} from '../../src/lib/errors.js'

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['10s', 10_000],
    ['1m30s', 90_000],
    ['2h', 7_200_000],
    ['1.5s', 1500],
    ['7', 7000],
  ])('%s -> %d ms', (text, ms) => expect(parseDuration(text)).toBe(ms))

  it.each(['', '5q', '10 s', 's', '1m junk'])('rejects %j with a usage error', (text) => {
    expect(() => parseDuration(text)).toThrow(UsageError)
  })

  it('formats for humans', () => {
    expect(formatDuration(250)).toBe('250ms')
    expect(formatDuration(2500)).toBe('2.5s')
    expect(formatDuration(90_000)).toBe('1m30s')
    expect(formatDuration(3_660_000)).toBe('1h1m')
  })
})
