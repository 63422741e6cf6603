import type {Decoded} from './codec.js'
import {CT_STATE_NAME, DIRECTION_NAME, EVENT_FLAG, EVENT_TYPE, EVENT_VERSION, protoName, tcpFlagNames, VERDICT} from './constants.js'
import {dropReasonId, dropReasonText} from './drop-reasons.js'
import {JsonObjectStream} from './json-stream.js'
import {dropEvent, eventHeader, policyEvent, traceEvent} from './structs.js'

/** A datapath event decoded from the perf buffer, with names instead of numbers. */
export interface DatapathEvent {
  type: 'drop' | 'trace' | 'policy'
  /** CLOCK_BOOTTIME nanoseconds on the emitting node. */
  timestamp: number
  endpointId: number
  ifindex: number
  hash: number
  traceflow: boolean
  reply: boolean
  flow: {src: string; dst: string; srcPort: number; dstPort: number; protocol: string; tcpFlags: string; ctState: string; direction: string}
  srcIdentity: number
  dstIdentity: number
  policyCookie: number
  /** drop: reason; policy: allow|deny; trace: observation point. */
  dropReason?: string
  dropReasonText?: string
  verdict?: 'allow' | 'deny'
  tracePoint?: 'from-pod' | 'to-pod'
  /** trace: destination before load balancing, and the backend chosen. */
  origDst?: string
  origDstPort?: number
  backendId?: number
  /** The first bytes of the packet, hex. */
  packet: string
}

function flowOf(raw: Decoded): DatapathEvent['flow'] {
  return {
    src: raw.saddr as string,
    dst: raw.daddr as string,
    srcPort: raw.sport as number,
    dstPort: raw.dport as number,
    protocol: protoName(raw.proto as number),
    tcpFlags: tcpFlagNames(raw.tcpFlags as number),
    ctState: CT_STATE_NAME[raw.ctState as number] ?? 'none',
    direction: DIRECTION_NAME[raw.direction as number] ?? 'unknown',
  }
}

/** Decode one perf sample: a record struct followed by cap_len packet bytes. */
export function decodeEvent(sample: Buffer): DatapathEvent {
  const header = eventHeader.decode(sample)
  // Another layout would decode into wrong fields: refuse it by name (a CLI older or newer than the node's datapath).
  if (header.version !== EVENT_VERSION) throw new Error(`event version ${header.version as number} from the datapath, this CLI reads version ${EVENT_VERSION}: use the CLI that matches the installed datapath (pinion status shows its version)`)
  const struct = header.type === EVENT_TYPE.DROP ? dropEvent : header.type === EVENT_TYPE.TRACE ? traceEvent : header.type === EVENT_TYPE.POLICY ? policyEvent : undefined
  if (!struct) throw new Error(`unknown event type ${header.type}`)
  const raw = struct.decode(sample)
  const flags = header.flags as number
  const event: DatapathEvent = {
    type: header.type === EVENT_TYPE.DROP ? 'drop' : header.type === EVENT_TYPE.TRACE ? 'trace' : 'policy',
    timestamp: header.timestamp as number,
    endpointId: header.source as number,
    ifindex: header.ifindex as number,
    hash: header.hash as number,
    traceflow: Boolean(flags & EVENT_FLAG.TRACEFLOW),
    reply: Boolean(flags & EVENT_FLAG.REPLY),
    flow: flowOf(raw.flow as Decoded),
    srcIdentity: raw.srcIdentity as number,
    dstIdentity: raw.dstIdentity as number,
    policyCookie: raw.policyCookie as number,
    packet: sample.subarray(struct.size, struct.size + (header.capLen as number)).toString('hex'),
  }
  const subtype = header.subtype as number
  if (event.type === 'drop') {
    event.dropReason = dropReasonId(subtype)
    event.dropReasonText = dropReasonText(subtype)
  } else if (event.type === 'policy') {
    event.verdict = subtype === VERDICT.ALLOW ? 'allow' : 'deny'
  } else {
    event.tracePoint = subtype === 1 ? 'from-pod' : 'to-pod'
    event.origDst = raw.origDaddr as string
    event.origDstPort = raw.origDport as number
    event.backendId = raw.backendId as number
  }
  return event
}

export type PipeRecord = {kind: 'sample'; cpu: number; data: Buffer} | {kind: 'lost'; cpu: number; count: number}

/** Parser of `bpftool -j map event_pipe` output: records as they arrive. */
export class EventPipeParser {
  private readonly elements = new JsonObjectStream(true)

  /** Records in the chunk; bpftool's own `{"error": …}` object (no such map, no permission) throws. */
  push(chunk: string): PipeRecord[] {
    return this.elements.push(chunk).map((text) => toRecord(JSON.parse(text)))
  }
}

function toRecord(object: {cpu: number; data?: number[]; lost?: {count: number}; error?: string}): PipeRecord {
  if (typeof object.error === 'string') throw new Error(`bpftool: ${object.error}`)
  if (object.lost) return {kind: 'lost', cpu: object.cpu, count: object.lost.count}
  return {kind: 'sample', cpu: object.cpu, data: Buffer.from(object.data ?? [])}
}
