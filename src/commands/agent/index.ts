import {hostname} from 'node:os'
import {Flags} from '@oclif/core'
import {Agent, AGENT_SOCKET, DEFAULT_METRICS_PORT} from '../../agent/agent.js'
import {installCniPlugin} from '../../agent/cni-install.js'
import {POLICY_LOG_FILE} from '../../agent/policy-log.js'
import {serveAgent} from '../../agent/server.js'
import {agentKubeConfig} from '../../cluster/kubeconfig.js'
import {BaseCommand} from '../../cli/base-command.js'
import {mapSizeFlag, pinRootFlag} from '../../cli/datapath-flags.js'
import {parseMapSizes} from '../../sync/capacity.js'
import {parseDuration} from '../../lib/duration.js'
import {UsageError} from '../../lib/errors.js'
import {stopSignal} from '../../lib/stop-signal.js'
import {LocalShell} from '../../nodes/local-shell.js'
import {objectForNode} from '../../datapath/object.js'

export default class AgentCommand extends BaseCommand {
  static override baseFlags = BaseCommand.flagsWithoutDeadline
  static override description = 'Run the node agent (in the pinion-agent DaemonSet): keep this node\'s datapath current from the cluster, enforce pods through the chained CNI plugin, serve metrics and health'
  static override examples = ['<%= config.bin %> agent --node "$NODE_NAME"']
  static override flags = {
    ...pinRootFlag,
    node: Flags.string({description: 'This node\'s name (default: $NODE_NAME, else the hostname)'}),
    'metrics-port': Flags.integer({description: 'Port of /metrics, /healthz, /readyz and /status on every node address', default: DEFAULT_METRICS_PORT}),
    socket: Flags.string({description: 'Local socket for the CNI plugin and `pinion sync`', default: AGENT_SOCKET}),
    'resync-interval': Flags.string({description: 'Full read-back reconciliation at least this often', default: '5m'}),
    debounce: Flags.string({description: 'Coalesce events for this long before writing', default: '20ms'}),
    'cni-bin-dir': Flags.string({description: 'Where CNI plugins live on the node', default: '/opt/cni/bin'}),
    'cni-conf-dir': Flags.string({description: 'Where the node\'s CNI configuration lives', default: '/etc/cni/net.d'}),
    'no-cni': Flags.boolean({description: 'Do not chain pinion-cni (pods are then enforced from the watch only)', default: false}),
    'policy-log-file': Flags.string({description: 'Policy log records (GKE format, JSON lines), rotated by size', default: POLICY_LOG_FILE}),
    'policy-log-rate': Flags.integer({description: 'Policy log records per second; the overflow is dropped and counted', default: 500, min: 1}),
    'policy-log-max-size': Flags.integer({description: 'Rotate the policy log past this many MiB (5 files kept)', default: 10, min: 1}),
    'map-size': mapSizeFlag,
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(AgentCommand)
    const node = flags.node ?? process.env.NODE_NAME ?? hostname()
    if (!node) throw new UsageError('--node is required (or set NODE_NAME)')
    const log = (line: string) => process.stdout.write(`${new Date().toISOString()} ${line}\n`)
    // Whatever the agent runs (the event reader above all) dies with it, even when the agent is SIGKILLed.
    const shell = new LocalShell(node, ['setpriv', '--pdeathsig', 'KILL', '--'])
    const agent = new Agent({
      node,
      pinRoot: flags['pin-root'],
      config: agentKubeConfig(this.globals),
      shell,
      // The object for this node's kernel, chosen as install chooses it.
      object: await objectForNode(shell),
      debounceMs: parseDuration(flags.debounce),
      resyncMs: parseDuration(flags['resync-interval']),
      retryMs: 1000,
      mapSizes: parseMapSizes(flags['map-size'] ?? []),
      policyLog: {file: flags['policy-log-file'], ratePerSecond: flags['policy-log-rate'], denyWindowMs: 5000, maxBytes: flags['policy-log-max-size'] * 1024 * 1024, keep: 5},
      log,
    })
    const stop = stopSignal()
    const server = await serveAgent(agent, {port: flags['metrics-port'], socket: flags.socket})
    log(`pinion agent ${agent.status().version} on ${node}: metrics on :${flags['metrics-port']}, socket ${flags.socket}`)
    const started = agent.start().then(() => {
      if (flags['no-cni']) return
      const chained = installCniPlugin({binDir: flags['cni-bin-dir'], confDir: flags['cni-conf-dir'], socket: flags.socket})
      log(chained.conflist ? `pinion-cni chained into ${chained.conflist}` : `pinion-cni not chained: ${chained.problem}`)
    })
    await Promise.race([started, new Promise<void>((resolve) => stop.addEventListener('abort', () => resolve(), {once: true}))])
    if (!stop.aborted) await new Promise<void>((resolve) => stop.addEventListener('abort', () => resolve(), {once: true}))
    log('stopping: the datapath stays as it is')
    await server.close()
    await agent.stop()
  }
}
