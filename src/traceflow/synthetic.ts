import {resolveInterfaces} from '../datapath/attach.js'
import {NotInstalledError} from '../datapath/node-state.js'
import type {ClusterSnapshot} from '../cluster/snapshot.js'
import {BpfTool} from '../datapath/bpftool.js'
import {programPinPath} from '../datapath/catalogue.js'
import {describeCookie, MARK_DRYRUN} from '../datapath/constants.js'
import {dropReasonText} from '../datapath/drop-reasons.js'
import {decodeDryRun, type DryRunResult} from '../datapath/dryrun.js'
import {buildPacket, parsePacket} from '../datapath/packet.js'
import {skBuff} from '../datapath/structs.js'
import {UserError} from '../lib/errors.js'
import type {NodeAccess} from '../nodes/node-access.js'
import type {NodeShell} from '../nodes/shell.js'
import type {Observation, Traceflow, TraceflowSpec} from './model.js'
import {podsByIp, readPolicyNames} from '../sync/names.js'

/** Run one program on one packet as a dry run: no conntrack, counters or events are written. */
async function dryRun(shell: NodeShell, pinRoot: string, program: 'from_pod' | 'to_pod', packet: Buffer, ifindex: number): Promise<{result: DryRunResult; out: Buffer}> {
  const path = programPinPath(pinRoot, program)
  if ((await shell.run(['test', '-e', path])).exitCode !== 0) throw new UserError(`${shell.node}: ${new NotInstalledError(shell.node, pinRoot).message}`)
  const run = await new BpfTool(shell).progRun(path, packet, skBuff.encode({ifindex, mark: MARK_DRYRUN}))
  const ctx = skBuff.decode(run.ctxOut)
  return {result: decodeDryRun([ctx.cb0, ctx.cb1, ctx.cb2, ctx.cb3, ctx.cb4] as number[]), out: run.dataOut}
}

/** Conntrack then policy, in the order the program runs them; only the step that dropped says Dropped. */
function hookObservations(node: string, result: DryRunResult, names: Map<number, string>, direction: 'egress' | 'ingress'): Observation[] {
  const observations: Observation[] = [{node, component: 'Conntrack', action: result.dropReason === 'CT_CREATE_FAILED' ? 'Dropped' : 'Forwarded', ctState: result.ctState, detail: `connection ${result.ctState}`}]
  const policy = describeCookie(names, result.policyCookie, ' (no rule matched)')
  if (result.policyChecked) {
    const denied = result.dropReason === 'POLICY_DENIED'
    observations.push({node, component: 'NetworkPolicy', action: denied ? 'Dropped' : 'Forwarded', networkPolicy: policy, detail: `${direction} ${denied ? 'denied' : 'allowed'} by ${policy ?? 'no policy'}`})
  }
  const attributed = ['POLICY_DENIED', 'CT_CREATE_FAILED', 'NO_SERVICE_BACKEND', 'BACKEND_MISSING', 'SPOOFED_SOURCE']
  if (result.dropReason && !attributed.includes(result.dropReason)) observations.push({node, component: 'Forwarding', action: 'Dropped', dropReason: result.dropReason, detail: result.dropReason})
  return observations
}

/**
 * Synthetic traceflow: build the packet, run it through the source node's
 * from_pod program, follow the translated destination to the destination
 * node's to_pod program, and report every step. Sends no traffic.
 */
export async function syntheticTrace(access: NodeAccess, snapshot: ClusterSnapshot, spec: TraceflowSpec, pinRoot: string): Promise<Omit<Traceflow, 'spec' | 'mode'>> {
  const observations: Observation[] = []
  const podByIp = podsByIp(snapshot)
  const nodeByIp = new Map(snapshot.nodes.map((node) => [node.status?.addresses?.find((address) => address.type === 'InternalIP')?.address, node.metadata!.name!]))
  const podName = (ip: string) => {
    const pod = podByIp.get(ip)
    return pod ? `${pod.metadata!.namespace}/${pod.metadata!.name}` : undefined
  }
  const packet = buildPacket({src: spec.source.ip, dst: spec.destination.ip, protocol: spec.protocol, srcPort: spec.srcPort, dstPort: spec.destination.port, tcpFlags: spec.tcpFlags, icmpId: spec.srcPort & 0xffff})

  // Source node: the packet leaves the pod.
  const sourceNode = spec.source.node
  const source = await access.shell(sourceNode)
  const sourceIf = (await resolveInterfaces(source)).get(spec.source.ip)
  if (!sourceIf) throw new UserError(`no interface for ${spec.source.namespace}/${spec.source.name} (${spec.source.ip}) on ${sourceNode}`)
  const egress = await dryRun(source, pinRoot, 'from_pod', packet, sourceIf.ifindex)
  const names = await readPolicyNames(source, pinRoot)
  observations.push({node: sourceNode, component: 'SpoofGuard', action: egress.result.dropReason === 'SPOOFED_SOURCE' ? 'Dropped' : 'Received', interface: sourceIf.name, detail: `from ${spec.source.namespace}/${spec.source.name} on ${sourceIf.name}`})
  const out = egress.result.verdict === 'forwarded' ? parsePacket(egress.out) : undefined
  if (egress.result.loadBalanced) {
    const lbDrop = egress.result.dropReason === 'NO_SERVICE_BACKEND' || egress.result.dropReason === 'BACKEND_MISSING'
    observations.push(lbDrop
      ? {node: sourceNode, component: 'LB', action: 'Dropped', dropReason: egress.result.dropReason, detail: dropReasonText(egress.result.dropReason === 'NO_SERVICE_BACKEND' ? 2 : 9)}
      : {node: sourceNode, component: 'LB', action: 'Forwarded', translatedDstIP: out?.dst, translatedDstPod: out && podName(out.dst), detail: out ? `${spec.destination.ip}:${spec.destination.port} -> ${out.dst}:${out.dstPort}${podName(out.dst) ? ` (${podName(out.dst)})` : ''}` : undefined})
  }
  observations.push(...hookObservations(sourceNode, egress.result, names, 'egress'))
  if (!out) {
    const reason = egress.result.dropReason ?? 'UNKNOWN'
    return {result: 'Dropped', reason: `dropped on ${sourceNode}: ${reason}`, observations: observations.map((observation) => (observation.action === 'Dropped' ? {...observation, dropReason: observation.dropReason ?? reason} : observation))}
  }

  // Forwarding decision on the source node.
  const target = podByIp.get(out.dst)
  const lookup = await source.run(['ip', '-j', 'route', 'get', out.dst])
  if (lookup.exitCode !== 0) {
    const why = lookup.stderr.trim().replace(/^RTNETLINK answers: /, '') || 'no route'
    observations.push({node: sourceNode, component: 'Forwarding', action: 'Dropped', dropReason: 'NO_ROUTE', detail: `no route to ${out.dst}: ${why}`})
    return {result: 'Dropped', reason: `dropped on ${sourceNode}: no route to ${out.dst} (${why})`, observations}
  }
  const route = JSON.parse(lookup.stdout.toString('utf8'))[0] as {dev: string; gateway?: string}
  if (!target) {
    observations.push({node: sourceNode, component: 'Forwarding', action: 'ForwardedOutOfNetwork', interface: route.dev, detail: `to ${out.dst} via ${route.dev}${route.gateway ? ` gateway ${route.gateway}` : ''}`})
    return {result: 'ForwardedOutOfNetwork', reason: `${out.dst} is not a pod: the packet leaves the pod network via ${route.dev}`, observations}
  }
  const targetNode = target.spec!.nodeName!
  observations.push({node: sourceNode, component: 'Forwarding', action: 'Forwarded', interface: route.dev, detail: targetNode === sourceNode ? `to local pod interface ${route.dev}` : `via ${route.dev} to ${route.gateway ?? out.dst} (${nodeByIp.get(route.gateway) ?? targetNode})`})

  // Destination node: the packet enters the pod.
  const destination = targetNode === sourceNode ? source : await access.shell(targetNode)
  const targetIf = (await resolveInterfaces(destination)).get(out.dst)
  if (!targetIf) throw new UserError(`no interface for ${podName(out.dst)} (${out.dst}) on ${targetNode}`)
  const ingress = await dryRun(destination, pinRoot, 'to_pod', egress.out, targetIf.ifindex)
  const destinationNames = targetNode === sourceNode ? names : await readPolicyNames(destination, pinRoot)
  if (targetNode !== sourceNode) observations.push({node: targetNode, component: 'Forwarding', action: 'Received', interface: 'eth0', detail: `from ${sourceNode} over the underlay`})
  observations.push(...hookObservations(targetNode, ingress.result, destinationNames, 'ingress'))
  if (ingress.result.verdict === 'dropped') {
    const reason = ingress.result.dropReason ?? 'UNKNOWN'
    return {result: 'Dropped', reason: `dropped on ${targetNode}: ${reason}`, observations: observations.map((observation) => (observation.action === 'Dropped' ? {...observation, dropReason: reason} : observation))}
  }
  observations.push({node: targetNode, component: 'Forwarding', action: 'Delivered', interface: targetIf.name, detail: `to ${podName(out.dst)} on ${targetIf.name}`})
  return {result: 'Delivered', reason: `delivered to ${podName(out.dst)}`, observations}
}
