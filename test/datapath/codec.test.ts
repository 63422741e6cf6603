import {describe, expect, it} from 'vitest'
import {Struct} from '../../src/datapath/codec.js'
import {ct4Key, endpointInfo, lb4Key, policyName} from '../../src/datapath/structs.js'

describe('struct codec', () => {
  it('lays fields out with C alignment', () => {
    const struct = new Struct('t', [['a', 'u8'], ['b', 'u32'], ['c', 'u16']])
    expect(struct.fields.map((field) => field.offset)).toEqual([0, 4, 8])
    expect(struct.size).toBe(12)
  })

  it('round-trips addresses, ports in network order and strings', () => {
    const key = {address: '10.96.0.10', dport: 80, backendSlot: 3, proto: 6, scope: 0}
    const bytes = lb4Key.encode(key)
    expect(bytes.subarray(0, 6).toString('hex')).toBe('0a60000a0050')
    expect(lb4Key.decode(bytes)).toEqual(key)
    const name = {namespace: 'default', name: 'deny-all'}
    expect(policyName.decode(policyName.encode(name))).toEqual(name)
  })

  it('decodes MACs and rejects bad input at the edge', () => {
    const info = endpointInfo.decode(endpointInfo.encode({ifindex: 7, mac: '02:00:00:00:00:01'}))
    expect(info.mac).toBe('02:00:00:00:00:01')
    expect(info.ifindex).toBe(7)
    expect(() => ct4Key.encode({daddr: '10.0.0.300'})).toThrow(/invalid IPv4/)
    expect(() => policyName.encode({name: 'x'.repeat(64)})).toThrow(/longer than 63/)
    expect(() => ct4Key.decode(Buffer.alloc(4))).toThrow(/need 16 bytes/)
  })
})
