import {describe, expect, it} from 'vitest'
import {colorFor, renderStructured, renderTable} from '../../src/lib/render.js'

const rows = [
  {name: 'node-1', pods: 2, ip: '10.0.0.1'},
  {name: 'node-2', pods: 0, ip: undefined},
]
const columns = [
  {header: 'NAME', get: (row: (typeof rows)[number]) => row.name},
  {header: 'PODS', get: (row: (typeof rows)[number]) => row.pods},
  {header: 'IP', get: (row: (typeof rows)[number]) => row.ip, wide: true},
]

describe('render', () => {
  it('renders an aligned table without wide columns by default', () => {
    const lines = renderTable(rows, columns).split('\n')
    expect(lines[0]).toMatch(/^NAME\s+PODS$/)
    expect(lines[1]).toMatch(/^node-1\s+2$/)
    expect(lines).toHaveLength(3)
  })

  it('adds wide columns with -o wide and shows empty cells as -', () => {
    const lines = renderTable(rows, columns, {wide: true}).split('\n')
    expect(lines[0]).toMatch(/^NAME\s+PODS\s+IP$/)
    expect(lines[2]).toMatch(/^node-2\s+0\s+-$/)
  })

  it('prints JSON and YAML', () => {
    expect(JSON.parse(renderStructured(rows, 'json'))).toEqual(rows)
    expect(renderStructured({a: 1}, 'yaml')).toBe('a: 1')
  })

  it('switches colours off for pipes and NO_COLOR', () => {
    expect(colorFor({isTTY: false}, {}).level).toBe(0)
    expect(colorFor({isTTY: true}, {NO_COLOR: ''}).level).toBe(0)
    expect(colorFor({isTTY: true}, {}).level).toBeGreaterThan(0)
  })
})
