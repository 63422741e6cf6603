import {Command, Flags, type Interfaces} from '@oclif/core'
import type {ChalkInstance} from 'chalk'
import {armDeadline, disarmDeadline} from '../lib/deadline.js'
import {parseDuration} from '../lib/duration.js'
import {errorMessage, UsageError, UserError} from '../lib/errors.js'
import {type Column, colorFor, OUTPUT_FORMATS, type OutputFormat, renderStructured, renderTable} from '../lib/render.js'

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof BaseCommand)['baseFlags'] & T['flags']>

/** Global options every command shares, resolved once in init(). */
export interface GlobalOptions {
  kubeconfig?: string
  context?: string
  output: OutputFormat
  verbose: boolean
  timeoutMs: number
  /** --timeout was given on the command line (not the default). */
  timeoutExplicit: boolean
}

/** A command result and how to show it as a table; json/yaml print `data` as is. */
export interface Rendered<T> {
  data: unknown
  rows?: readonly T[]
  columns?: readonly Column<T>[]
  /** Printed instead of an empty table. */
  empty?: string
}

const GLOBAL_FLAGS = {
  kubeconfig: Flags.string({description: 'Path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)', helpGroup: 'GLOBAL'}),
  context: Flags.string({description: 'Kubeconfig context to use', helpGroup: 'GLOBAL'}),
  output: Flags.string({char: 'o', description: 'Output format', options: [...OUTPUT_FORMATS], default: 'table', helpGroup: 'GLOBAL'}),
  verbose: Flags.boolean({char: 'v', description: 'Show debug detail and stack traces', default: false, helpGroup: 'GLOBAL'}),
  timeout: Flags.string({description: 'Overall deadline: past it, work in flight is cancelled and cleaned up and the command exits 1 (e.g. 30s, 5m)', default: '5m', helpGroup: 'GLOBAL'}),
}
const GLOBAL_FLAGS_WITHOUT_DEADLINE = {kubeconfig: GLOBAL_FLAGS.kubeconfig, context: GLOBAL_FLAGS.context, output: GLOBAL_FLAGS.output, verbose: GLOBAL_FLAGS.verbose}

/**
 * Base of every Pinion command: global flags, output rendering, and the error
 * policy (one red line on stderr, exit 2 for usage errors and 1 for failures,
 * the stack trace only with --verbose).
 */
export abstract class BaseCommand extends Command {
  static override baseFlags: typeof GLOBAL_FLAGS_WITHOUT_DEADLINE & Partial<Pick<typeof GLOBAL_FLAGS, 'timeout'>> = GLOBAL_FLAGS

  /** Base flags of commands that run until stopped or manage their own lifetime (no overall deadline). */
  static readonly flagsWithoutDeadline = GLOBAL_FLAGS_WITHOUT_DEADLINE

  protected globals!: GlobalOptions
  protected color!: ChalkInstance
  protected errColor!: ChalkInstance

  public override async init(): Promise<void> {
    await super.init()
    this.color = colorFor(process.stdout)
    this.errColor = colorFor(process.stderr)
    // Parse the full command here for the globals (flag errors surface early, as usage errors).
    const {flags} = await this.parse(this.ctor as typeof BaseCommand)
    const global = flags as Partial<Interfaces.InferredFlags<typeof BaseCommand.baseFlags>>
    this.globals = {
      kubeconfig: global.kubeconfig,
      context: global.context,
      output: (global.output ?? 'table') as OutputFormat,
      verbose: global.verbose ?? false,
      timeoutMs: global.timeout === undefined ? 0 : parseDuration(global.timeout),
      timeoutExplicit: this.argv.some((arg) => arg === '--timeout' || arg.startsWith('--timeout=')),
    }
    // The overall deadline holds for everything the command does; commands without the flag have none.
    if (global.timeout !== undefined) {
      if (this.globals.timeoutMs <= 0) throw new UsageError('--timeout must be longer than 0')
      armDeadline(this.globals.timeoutMs, global.timeout, (line) => process.stderr.write(`${this.errColor.red(line)}\n`))
    }
  }

  /** For modes that follow until interrupted (watch, follow): no deadline unless --timeout was given. */
  protected followsUntilStopped(): void {
    if (!this.globals.timeoutExplicit) disarmDeadline()
  }

  /** Print a result in the format chosen with -o. Structured output goes to stdout only. */
  protected render<T>(result: Rendered<T>): void {
    const format = this.globals.output
    if (format === 'json' || format === 'yaml') {
      this.log(renderStructured(result.data, format))
      return
    }
    if (!result.rows || !result.columns) {
      this.log(renderStructured(result.data, 'yaml'))
      return
    }
    if (result.rows.length === 0 && result.empty) {
      this.log(result.empty)
      return
    }
    this.log(renderTable(result.rows, result.columns, {wide: format === 'wide', color: this.color}))
  }

  /** Progress and notes for humans: stderr, so stdout stays machine-readable. */
  protected note(message: string): void {
    process.stderr.write(`${message}\n`)
  }

  protected debugLog(message: string): void {
    if (this.globals?.verbose) process.stderr.write(this.errColor.dim(`debug: ${message}\n`))
  }

  public override async catch(error: Error & {exitCode?: number; oclif?: {exit?: number}; code?: string}): Promise<never> {
    // this.exit() throws an EEXIT error: let oclif finish it silently.
    if (error.code === 'EEXIT') throw error
    // init() may have failed before globals were parsed: fall back to argv.
    const verbose = this.globals?.verbose ?? (this.argv.includes('--verbose') || this.argv.includes('-v'))
    const message = error.message || String(error)
    const isParseError = 'parse' in error || /^Parsing --/.test(message)
    const exitCode = isParseError ? 2 : error instanceof UserError ? error.exitCode : (error.oclif?.exit ?? 1)
    const color = this.errColor ?? colorFor(process.stderr)
    const firstLine = isParseError ? parseErrorLine(message) : errorMessage(error)
    const hint = isParseError ? ' (see --help)' : ''
    process.stderr.write(color.red(`Error: ${firstLine}${hint}`) + '\n')
    if (verbose && error.stack) process.stderr.write(color.dim(error.stack) + '\n')
    return this.exit(exitCode)
  }
}

/** oclif's "Parsing --flag\n\treason\nSee more help" as one line that keeps the reason. */
function parseErrorLine(message: string): string {
  const lines = message.split('\n').map((line) => line.trim()).filter((line) => line && !/^See more help/.test(line))
  const flag = /^Parsing (--[\w-]+)/.exec(lines[0] ?? '')?.[1]
  if (!flag || lines.length < 2) return lines.join(': ')
  const reason = lines.slice(1).join('; ')
  return reason.startsWith(flag) ? reason : `${flag}: ${reason}`
}
