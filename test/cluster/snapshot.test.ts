import {ApiException} from '@kubernetes/client-node'
import {describe, expect, it} from 'vitest'
import {listAll} from '../../src/cluster/snapshot.js'

/** A LIST endpoint over `total` objects that pages by limit/continue, and can expire its token once. */
function fakeList(total: number, expireAt?: number) {
  const calls: {limit: number; _continue?: string}[] = []
  let expired = false
  const list = async (page: {limit: number; _continue?: string}) => {
    calls.push(page)
    const start = page._continue ? Number(page._continue) : 0
    if (expireAt !== undefined && !expired && start === expireAt) {
      expired = true
      throw new ApiException(410, 'Gone', {kind: 'Status', code: 410, reason: 'Expired', message: 'continue token expired'}, {})
    }
    const items = Array.from({length: Math.min(page.limit, total - start)}, (_, index) => start + index)
    const end = start + items.length
    return {items, metadata: {_continue: end < total ? String(end) : undefined}}
  }
  return {list, calls}
}

describe('paginated LIST', () => {
  it('reads every page with limit and continue', async () => {
    const {list, calls} = fakeList(1201)
    expect(await listAll(list, 500)).toEqual(Array.from({length: 1201}, (_, index) => index))
    expect(calls).toEqual([{limit: 500}, {limit: 500, _continue: '500'}, {limit: 500, _continue: '1000'}])
  })

  it('starts again when a continue token has expired (410), never mixing two lists', async () => {
    const {list, calls} = fakeList(30, 20)
    expect(await listAll(list, 10)).toEqual(Array.from({length: 30}, (_, index) => index))
    expect(calls.map((call) => call._continue ?? '')).toEqual(['', '10', '20', '', '10', '20'])
  })

  it('passes other errors on', async () => {
    await expect(listAll(async () => {
      throw new ApiException(403, 'Forbidden', {kind: 'Status', code: 403, message: 'forbidden'}, {})
    })).rejects.toThrow(/403|Forbidden/)
  })
})
