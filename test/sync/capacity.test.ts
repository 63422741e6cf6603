import {describe, expect, it} from 'vitest'
import {UsageError, UserError} from '../../src/lib/errors.js'
import {effectiveSizes, MAX_MAP_SIZE, overCapacity, parseMapSizes, plannedSizes} from '../../src/sync/capacity.js'

describe('map sizes', () => {
  it('parses --map-size by short name and alias, and refuses what cannot be sized, with the valid list', () => {
    expect(parseMapSizes(['ct=1048576', 'polnames=65536', 'policy=300000'])).toEqual(new Map([['pinion_ct4_v2', 1048576], ['pinion_polnames', 65536], ['pinion_policy', 300000]]))
    expect(() => parseMapSizes(['config=4'])).toThrow(UsageError)
    expect(() => parseMapSizes(['config=4'])).toThrow(/config cannot be sized; the maps that can are services, backends, ct4, policy, polnames, ipcache/)
    expect(() => parseMapSizes(['revnat=4'])).toThrow(/cannot be sized/)
    expect(() => parseMapSizes(['ct'])).toThrow(/bad --map-size "ct": use MAP=ENTRIES/)
    expect(() => parseMapSizes(['ct=0'])).toThrow(/from 1 to 16777216/)
    expect(() => parseMapSizes([`ct=${MAX_MAP_SIZE + 1}`])).toThrow(UsageError)
  })

  it('plans twice what the plan needs (a power of two) above the built-in size; overrides win', () => {
    const sizes = plannedSizes(new Map([['pinion_polnames', 40_000], ['pinion_policy', 1000]]))
    expect(sizes.get('pinion_polnames')).toBe(131072) // 40,000 policies do not fit the built-in 16,384
    expect(sizes.get('pinion_policy')).toBe(262144) // the built-in size is already enough
    expect(sizes.has('pinion_config')).toBe(false) // fixed by the datapath's code
    expect(plannedSizes(new Map([['pinion_polnames', 40_000]]), new Map([['pinion_polnames', 50_000]])).get('pinion_polnames')).toBe(50_000)
    expect(overCapacity(new Map([['pinion_polnames', 40_000]]), sizes)).toEqual([])
    expect(overCapacity(new Map([['pinion_polnames', 40_000]]))).toEqual(['pinion_polnames needs 40000 entries, its limit is 16384'])
  })

  it('keeps a pinned map at its size, and refuses an override that it would ignore', () => {
    const pinned = new Map([['pinion_ct4_v2', 524288]])
    const planned = plannedSizes(new Map(), new Map([['pinion_polnames', 65536]]))
    expect(effectiveSizes('n1', pinned, planned).get('pinion_ct4_v2')).toBe(524288)
    expect(effectiveSizes('n1', pinned, planned).get('pinion_polnames')).toBe(65536)
    expect(effectiveSizes('n1', pinned, planned, new Map([['pinion_ct4_v2', 524288]])).get('pinion_ct4_v2')).toBe(524288)
    expect(() => effectiveSizes('n1', pinned, planned, new Map([['pinion_ct4_v2', 1 << 20]]))).toThrow(UserError)
    expect(() => effectiveSizes('n1', pinned, planned, new Map([['pinion_ct4_v2', 1 << 20]]))).toThrow(/ct4=1048576: pinion_ct4_v2 on n1 already holds up to 524288 entries.*nothing was changed/)
  })
})
