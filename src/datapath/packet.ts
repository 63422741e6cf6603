import {ipv4ToBytes, ipv4ToString} from './codec.js'
import {IPPROTO} from './constants.js'

/**
 * Builds and parses Ethernet/IPv4 packets with valid checksums: the input of
 * synthetic traceflow and of the datapath tests.
 */
export type Protocol = 'tcp' | 'udp' | 'icmp' | 'sctp'

export interface PacketSpec {
  src: string
  dst: string
  protocol: Protocol
  srcMac?: string
  dstMac?: string
  srcPort?: number
  dstPort?: number
  /** TCP flags byte; default SYN. */
  tcpFlags?: number
  /** ICMP type (8 = echo request, 0 = echo reply) and echo identifier. */
  icmpType?: number
  icmpId?: number
  ttl?: number
  /** 6-bit DSCP (traceflow tags live packets with it). */
  dscp?: number
  payload?: Buffer
}

export interface ParsedPacket {
  src: string
  dst: string
  protocol: Protocol | 'other'
  srcPort: number
  dstPort: number
  tcpFlags: number
  icmpType: number
  icmpId: number
  ttl: number
  dscp: number
  ipChecksumValid: boolean
  l4ChecksumValid: boolean
}

export const TCP_FLAGS = {FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10} as const

const ETH_LEN = 14
const IP_LEN = 20

function macBytes(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((part) => Number.parseInt(part, 16)))
}

/** RFC 1071 one's complement sum, folded and inverted. */
export function internetChecksum(...parts: Buffer[]): number {
  let sum = 0
  for (const part of parts) {
    for (let i = 0; i < part.length; i += 2) sum += (part[i] << 8) + (i + 1 < part.length ? part[i + 1] : 0)
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16)
  return ~sum & 0xffff
}

let crcTable: Uint32Array | undefined
/** CRC32c (Castagnoli), SCTP's checksum. */
function crc32c(data: Buffer): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256)
    for (let n = 0; n < 256; n++) {
      let c = n
      for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1
      crcTable[n] = c >>> 0
    }
  }
  let crc = 0xffffffff
  for (const byte of data) crc = crcTable[(crc ^ byte) & 0xff] ^ (crc >>> 8)
  return (crc ^ 0xffffffff) >>> 0
}

function pseudoHeader(src: Buffer, dst: Buffer, proto: number, length: number): Buffer {
  const header = Buffer.alloc(12)
  src.copy(header, 0)
  dst.copy(header, 4)
  header[9] = proto
  header.writeUInt16BE(length, 10)
  return header
}

function buildL4(spec: PacketSpec, src: Buffer, dst: Buffer): Buffer {
  const payload = spec.payload ?? Buffer.alloc(0)
  switch (spec.protocol) {
    case 'tcp': {
      const segment = Buffer.alloc(20 + payload.length)
      segment.writeUInt16BE(spec.srcPort ?? 40000, 0)
      segment.writeUInt16BE(spec.dstPort ?? 80, 2)
      segment.writeUInt32BE(1, 4) // sequence number
      segment[12] = 5 << 4 // data offset: 5 words
      segment[13] = spec.tcpFlags ?? TCP_FLAGS.SYN
      segment.writeUInt16BE(64240, 14) // window
      payload.copy(segment, 20)
      segment.writeUInt16BE(internetChecksum(pseudoHeader(src, dst, IPPROTO.tcp, segment.length), segment), 16)
      return segment
    }
    case 'udp': {
      const datagram = Buffer.alloc(8 + payload.length)
      datagram.writeUInt16BE(spec.srcPort ?? 40000, 0)
      datagram.writeUInt16BE(spec.dstPort ?? 53, 2)
      datagram.writeUInt16BE(datagram.length, 4)
      payload.copy(datagram, 8)
      datagram.writeUInt16BE(internetChecksum(pseudoHeader(src, dst, IPPROTO.udp, datagram.length), datagram) || 0xffff, 6)
      return datagram
    }
    case 'icmp': {
      const message = Buffer.alloc(8 + payload.length)
      message[0] = spec.icmpType ?? 8
      message.writeUInt16BE(spec.icmpId ?? 0x1234, 4)
      message.writeUInt16BE(1, 6) // sequence
      payload.copy(message, 8)
      message.writeUInt16BE(internetChecksum(message), 2)
      return message
    }
    case 'sctp': {
      // Common header + an INIT chunk, enough for a first packet.
      const packet = Buffer.alloc(12 + 20)
      packet.writeUInt16BE(spec.srcPort ?? 40000, 0)
      packet.writeUInt16BE(spec.dstPort ?? 9000, 2)
      packet[12] = 1 // INIT
      packet.writeUInt16BE(20, 14)
      packet.writeUInt32BE(0x01020304, 16) // initiate tag
      packet.writeUInt32BE(65535, 20) // a_rwnd
      packet.writeUInt16BE(1, 24)
      packet.writeUInt16BE(1, 26)
      packet.writeUInt32BE(1, 28)
      packet.writeUInt32LE(crc32c(packet), 8)
      return packet
    }
  }
}

export function buildPacket(spec: PacketSpec): Buffer {
  const src = ipv4ToBytes(spec.src)
  const dst = ipv4ToBytes(spec.dst)
  const l4 = buildL4(spec, src, dst)
  const frame = Buffer.alloc(ETH_LEN + IP_LEN + l4.length)
  macBytes(spec.dstMac ?? '02:00:00:00:00:02').copy(frame, 0)
  macBytes(spec.srcMac ?? '02:00:00:00:00:01').copy(frame, 6)
  frame.writeUInt16BE(0x0800, 12)
  const ip = frame.subarray(ETH_LEN, ETH_LEN + IP_LEN)
  ip[0] = 0x45
  ip[1] = (spec.dscp ?? 0) << 2
  ip.writeUInt16BE(IP_LEN + l4.length, 2)
  ip.writeUInt16BE(0x4000, 6) // don't fragment
  ip[8] = spec.ttl ?? 64
  ip[9] = IPPROTO[spec.protocol]
  src.copy(ip, 12)
  dst.copy(ip, 16)
  ip.writeUInt16BE(internetChecksum(ip), 10)
  l4.copy(frame, ETH_LEN + IP_LEN)
  return frame
}

export function parsePacket(frame: Buffer): ParsedPacket {
  if (frame.length < ETH_LEN + IP_LEN || frame.readUInt16BE(12) !== 0x0800) throw new Error('not an Ethernet/IPv4 frame')
  const ihl = (frame[ETH_LEN] & 0x0f) * 4
  const ip = frame.subarray(ETH_LEN, ETH_LEN + ihl)
  const total = ip.readUInt16BE(2)
  const l4 = frame.subarray(ETH_LEN + ihl, ETH_LEN + total)
  const proto = ip[9]
  const protocol = (Object.entries(IPPROTO).find(([, number]) => number === proto)?.[0] ?? 'other') as ParsedPacket['protocol']
  const parsed: ParsedPacket = {
    src: ipv4ToString(ip, 12),
    dst: ipv4ToString(ip, 16),
    protocol,
    srcPort: 0,
    dstPort: 0,
    tcpFlags: 0,
    icmpType: 0,
    icmpId: 0,
    ttl: ip[8],
    dscp: ip[1] >> 2,
    ipChecksumValid: internetChecksum(ip) === 0,
    l4ChecksumValid: true,
  }
  const pseudo = pseudoHeader(ip.subarray(12, 16), ip.subarray(16, 20), proto, l4.length)
  if (protocol === 'tcp' || protocol === 'udp' || protocol === 'sctp') {
    parsed.srcPort = l4.readUInt16BE(0)
    parsed.dstPort = l4.readUInt16BE(2)
  }
  if (protocol === 'tcp') {
    parsed.tcpFlags = l4[13]
    parsed.l4ChecksumValid = internetChecksum(pseudo, l4) === 0
  } else if (protocol === 'udp') {
    parsed.l4ChecksumValid = l4.readUInt16BE(6) === 0 || internetChecksum(pseudo, l4) === 0
  } else if (protocol === 'icmp') {
    parsed.icmpType = l4[0]
    parsed.icmpId = l4.readUInt16BE(4)
    parsed.l4ChecksumValid = internetChecksum(l4) === 0
  } else if (protocol === 'sctp') {
    const copy = Buffer.from(l4)
    const expected = copy.readUInt32LE(8)
    copy.writeUInt32LE(0, 8)
    parsed.l4ChecksumValid = crc32c(copy) === expected
  }
  return parsed
}
