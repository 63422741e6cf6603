import {Args} from '@oclif/core'
import {requestAgent} from '../../agent/client.js'
import {AGENT_SOCKET} from '../../datapath/node-state.js'
import {BaseCommand} from '../../cli/base-command.js'
import {parseDuration} from '../../lib/duration.js'
import {UserError} from '../../lib/errors.js'

export default class AgentRequest extends BaseCommand {
  static override baseFlags = BaseCommand.flagsWithoutDeadline
  static override description = 'Ask the agent of this node (over its local socket) to reconcile now (sync) or report (status); used by `pinion sync` through the agent pod'
  static override examples = ['<%= config.bin %> agent request sync']
  static override args = {
    what: Args.string({description: 'What to ask', options: ['sync', 'status'], required: true}),
  }

  async run(): Promise<void> {
    const {args} = await this.parse(AgentRequest)
    const answer = await requestAgent(AGENT_SOCKET, args.what === 'sync' ? '/sync' : '/status', {}, parseDuration('60s')).catch((error: Error) => {
      throw new UserError(`the agent is not reachable at ${AGENT_SOCKET}: ${error.message}`)
    })
    if (answer.status !== 200) throw new UserError(`the agent answered ${answer.status}: ${String(answer.body.error ?? '')}`)
    this.log(JSON.stringify(answer.body))
  }
}
