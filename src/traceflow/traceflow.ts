import type {Clients} from '../cluster/kubeconfig.js'
import {readSnapshot} from '../cluster/snapshot.js'
import {type NodeAccessOptions, withNodeAccess} from '../nodes/node-access.js'
import type {Traceflow} from './model.js'
import {resolveTraceflow, type TraceflowRequest} from './resolve.js'
import {liveTrace} from './live.js'
import {syntheticTrace} from './synthetic.js'

export async function traceflow(api: Clients, access: NodeAccessOptions, request: TraceflowRequest, pinRoot: string, live?: {timeoutMs: number}): Promise<Traceflow> {
  const snapshot = await readSnapshot(api)
  const spec = resolveTraceflow(request, snapshot)
  const described = {
    source: `${spec.source.namespace}/${spec.source.name} (${spec.source.ip})`,
    destination: `${spec.destination.name ? `${spec.destination.kind} ${spec.destination.name} ` : ''}${spec.destination.ip}${spec.protocol === 'icmp' ? '' : `:${spec.destination.port}`}`,
    protocol: spec.protocol.toUpperCase(),
    srcPort: spec.protocol === 'icmp' ? undefined : spec.srcPort,
    dstPort: spec.protocol === 'icmp' ? undefined : spec.destination.port,
  }
  const trace = await withNodeAccess(api, access, (session) => (live ? liveTrace(session, api.config, snapshot, spec, pinRoot, live.timeoutMs) : syntheticTrace(session, snapshot, spec, pinRoot)))
  return {mode: live ? 'live' : 'synthetic', spec: described, ...trace}
}
