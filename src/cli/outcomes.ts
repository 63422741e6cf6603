import type {NodeOutcome} from '../sync/cluster-sync.js'
import type {BaseCommand} from './base-command.js'

/** Exit non-zero naming every failed node and why. */
export function reportFailures(command: BaseCommand, outcomes: readonly NodeOutcome[]): void {
  const failed = outcomes.filter((outcome) => !outcome.ok)
  if (failed.length) command.error(`${failed.length} of ${outcomes.length} nodes failed: ${failed.map((outcome) => `${outcome.node} (${outcome.error})`).join('; ')}`, {exit: 1})
}
