import {Address4} from 'ip-address'
import type {ClusterSnapshot} from '../cluster/snapshot.js'
import {UserError, UsageError} from '../lib/errors.js'
import type {TraceflowSpec} from './model.js'

export interface TraceflowRequest {
  source: string
  destination?: string
  destinationService?: string
  destinationIp?: string
  protocol: 'tcp' | 'udp' | 'icmp'
  dstPort?: number
  srcPort?: number
  tcpFlags: number
}

function splitRef(ref: string, flag: string): {namespace: string; name: string} {
  const parts = ref.split('/')
  if (parts.length === 1 && parts[0]) return {namespace: 'default', name: parts[0]}
  if (parts.length === 2 && parts[0] && parts[1]) return {namespace: parts[0], name: parts[1]}
  throw new UsageError(`${flag} takes NAMESPACE/NAME, got "${ref}"`)
}

/** Turn names into addresses and a node, with clear errors for anything missing. */
export function resolveTraceflow(request: TraceflowRequest, snapshot: ClusterSnapshot): TraceflowSpec {
  const targets = [request.destination, request.destinationService, request.destinationIp].filter(Boolean)
  if (targets.length !== 1) throw new UsageError('give exactly one of --destination, --destination-service, --destination-ip')
  const sourceRef = splitRef(request.source, '--source')
  const source = snapshot.pods.find((pod) => pod.metadata?.namespace === sourceRef.namespace && pod.metadata?.name === sourceRef.name)
  if (!source) throw new UserError(`source pod ${sourceRef.namespace}/${sourceRef.name} not found`)
  if (source.spec?.hostNetwork) throw new UserError(`source pod ${request.source} uses the host network: traceflow starts from a pod interface`)
  if (!source.status?.podIP || !source.spec?.nodeName) throw new UserError(`source pod ${request.source} has no IP or node yet (phase ${source.status?.phase ?? 'unknown'})`)
  const defaultPort = request.protocol === 'icmp' ? 0 : 80
  let destination: TraceflowSpec['destination']
  if (request.destination) {
    const ref = splitRef(request.destination, '--destination')
    const pod = snapshot.pods.find((candidate) => candidate.metadata?.namespace === ref.namespace && candidate.metadata?.name === ref.name)
    if (!pod) throw new UserError(`destination pod ${ref.namespace}/${ref.name} not found`)
    if (!pod.status?.podIP) throw new UserError(`destination pod ${ref.namespace}/${ref.name} has no IP yet`)
    const firstPort = pod.spec?.containers.flatMap((container) => container.ports ?? []).find((port) => (port.protocol ?? 'TCP').toLowerCase() === request.protocol)?.containerPort
    destination = {kind: 'pod', name: `${ref.namespace}/${ref.name}`, ip: pod.status.podIP, port: request.dstPort ?? firstPort ?? defaultPort}
  } else if (request.destinationService) {
    const ref = splitRef(request.destinationService, '--destination-service')
    const service = snapshot.services.find((candidate) => candidate.metadata?.namespace === ref.namespace && candidate.metadata?.name === ref.name)
    if (!service) throw new UserError(`service ${ref.namespace}/${ref.name} not found`)
    const ip = service.spec?.clusterIP
    if (!ip || ip === 'None') throw new UserError(`service ${ref.namespace}/${ref.name} has no ClusterIP (headless)`)
    const ports = (service.spec?.ports ?? []).filter((port) => (port.protocol ?? 'TCP').toLowerCase() === request.protocol)
    if (request.protocol !== 'icmp' && ports.length === 0) throw new UserError(`service ${ref.namespace}/${ref.name} has no ${request.protocol.toUpperCase()} port`)
    if (request.dstPort !== undefined && request.protocol !== 'icmp' && !ports.some((port) => port.port === request.dstPort)) {
      throw new UserError(`service ${ref.namespace}/${ref.name} has no port ${request.dstPort}/${request.protocol.toUpperCase()} (ports: ${ports.map((port) => port.port).join(', ')})`)
    }
    destination = {kind: 'service', name: `${ref.namespace}/${ref.name}`, ip, port: request.protocol === 'icmp' ? 0 : (request.dstPort ?? ports[0].port)}
  } else {
    if (!Address4.isValid(request.destinationIp!) || request.destinationIp!.includes('/')) throw new UsageError(`--destination-ip takes an IPv4 address, got "${request.destinationIp}"`)
    destination = {kind: 'ip', ip: request.destinationIp!, port: request.dstPort ?? defaultPort}
  }
  return {
    source: {namespace: sourceRef.namespace, name: sourceRef.name, ip: source.status.podIP, node: source.spec.nodeName},
    destination,
    protocol: request.protocol,
    srcPort: request.srcPort ?? 33000 + Math.floor(Math.random() * 20000),
    tcpFlags: request.tcpFlags,
  }
}
