import {Chalk, type ChalkInstance} from 'chalk'
import {createRequire} from 'node:module'
import type TableType from 'cli-table3'
import type {stringify as YamlStringify} from 'yaml'

// Loaded when first used: every command starts without them (start-up time), most print only one format.
const require = createRequire(import.meta.url)
const newTable = (options: TableType.TableConstructorOptions) => new (require('cli-table3') as typeof TableType)(options)
const toYaml = (data: unknown) => (require('yaml') as {stringify: typeof YamlStringify}).stringify(data, {lineWidth: 0})

export const OUTPUT_FORMATS = ['table', 'wide', 'json', 'yaml'] as const
export type OutputFormat = (typeof OUTPUT_FORMATS)[number]

/** A table column: how to read a cell from a row; `wide` columns show only with -o wide. */
export interface Column<T> {
  header: string
  get: (row: T) => unknown
  wide?: boolean
}

/** Colours only for a terminal, and never when NO_COLOR is set (https://no-color.org). */
export function colorFor(stream: {isTTY?: boolean}, env: NodeJS.ProcessEnv = process.env): ChalkInstance {
  const enabled = Boolean(stream.isTTY) && !('NO_COLOR' in env) && env.TERM !== 'dumb'
  return new Chalk({level: enabled ? 3 : 0})
}

function cellText(value: unknown): string {
  if (value === undefined || value === null || value === '') return '-'
  if (Array.isArray(value)) return value.length ? value.map(cellText).join(', ') : '-'
  if (typeof value === 'object') return JSON.stringify(value)
  return String(value)
}

export function renderTable<T>(rows: readonly T[], columns: readonly Column<T>[], options: {wide?: boolean; color?: ChalkInstance} = {}): string {
  const shown = columns.filter((column) => options.wide || !column.wide)
  const color = options.color ?? new Chalk({level: 0})
  const table = newTable({
    head: shown.map((column) => color.bold(column.header)),
    style: {head: [], border: []},
    chars: {
      top: '', 'top-mid': '', 'top-left': '', 'top-right': '',
      bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '',
      left: '', 'left-mid': '', mid: '', 'mid-mid': '',
      right: '', 'right-mid': '', middle: '  ',
    },
    wordWrap: false,
  })
  for (const row of rows) table.push(shown.map((column) => cellText(column.get(row))))
  // cli-table3 pads every cell with one space each side; trim the line ends for clean diffs.
  return table.toString().split('\n').map((line) => line.replace(/^ /, '').trimEnd()).join('\n')
}

export function renderStructured(data: unknown, format: 'json' | 'yaml'): string {
  if (format === 'json') return JSON.stringify(data, null, 2)
  return toYaml(data).trimEnd()
}
