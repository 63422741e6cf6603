import {describe, expect, it} from 'vitest'
import {EventPipeParser} from '../../src/datapath/events.js'
import {JsonObjectStream} from '../../src/datapath/json-stream.js'

describe('EventPipeParser', () => {
  it('completes a record when its data closes, before bpftool writes the closing brace', () => {
    const parser = new EventPipeParser()
    expect(parser.push('[{"type":9,"cpu":0,"index":0,"timestamp":5,"data":[1,2')).toEqual([])
    const [first] = parser.push(',3]')
    expect(first).toEqual({kind: 'sample', cpu: 0, data: Buffer.from([1, 2, 3])})
    expect(parser.push('},{"type":2,"cpu":1,"index":1,"lost":{"id":7,"count":12}')).toEqual([{kind: 'lost', cpu: 1, count: 12}])
    expect(parser.push('},{"type":9,"cpu":1,"index":1,"timestamp":6,"data":[9]}]\n')).toEqual([{kind: 'sample', cpu: 1, data: Buffer.from([9])}])
  })
})

describe('JsonObjectStream', () => {
  it('splits a chunked array of objects, ignoring brackets inside strings', () => {
    const stream = new JsonObjectStream()
    expect(stream.push('[{"key":["0x01"],"v":"a}]{"},')).toEqual(['{"key":["0x01"],"v":"a}]{"}'])
    expect(stream.push('{"key":["0x02"],"formatted":{"k":1}')).toEqual([])
    expect(stream.push('}]')).toEqual(['{"key":["0x02"],"formatted":{"k":1}}'])
  })
})

describe('JsonObjectStream and bpftool errors', () => {
  it('yields a bare top-level error object', () => {
    expect(new JsonObjectStream().push('{"error":"bpf obj get (x): No such file"}\n')).toEqual(['{"error":"bpf obj get (x): No such file"}'])
  })
})
