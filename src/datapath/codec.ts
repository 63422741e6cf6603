import {endianness} from 'node:os'

/**
 * A tiny schema language for the C structs in bpf/include/pinion_abi.h.
 * Offsets follow C's natural alignment, so a schema written in C field order
 * has the C layout; test/datapath/abi.system.test.ts proves it against the BTF.
 *
 * Field types: u8 u16 u32 u64 (host order, as maps store them), be16 (a port in
 * network order, decoded to a number), ipv4 (a __u32 in network order, decoded
 * to dotted quad), mac (6 bytes), char[N] (NUL-terminated string), pad[N]
 * (always zero, hidden when decoding), u8[N] (raw bytes, hex), or a nested Struct.
 */
export type FieldType = 'u8' | 'u16' | 'u32' | 'u64' | 'be16' | 'ipv4' | 'mac' | `char[${number}]` | `pad[${number}]` | `u8[${number}]` | Struct

export interface Field {
  /** The C member name; decoded objects use its camelCase form. */
  name: string
  key: string
  type: FieldType
  offset: number
  size: number
  align: number
}

const LITTLE = endianness() === 'LE'

const SCALAR_SIZE: Record<string, number> = {u8: 1, u16: 2, u32: 4, u64: 8, be16: 2, ipv4: 4, mac: 6}

export function camelCase(cName: string): string {
  return cName.replace(/_+$/, '').replace(/_([a-z0-9])/g, (_, ch: string) => ch.toUpperCase())
}

function arrayLength(type: string): number | undefined {
  const match = /^(?:char|pad|u8)\[(\d+)\]$/.exec(type)
  return match ? Number(match[1]) : undefined
}

function sizeAndAlign(type: FieldType): {size: number; align: number} {
  if (type instanceof Struct) return {size: type.size, align: type.align}
  const length = arrayLength(type)
  if (length !== undefined) return {size: length, align: 1}
  if (type === 'mac') return {size: 6, align: 1}
  const size = SCALAR_SIZE[type]
  if (!size) throw new Error(`unknown field type ${type}`)
  return {size, align: size}
}

export type Decoded = Record<string, unknown>

export class Struct {
  readonly fields: readonly Field[]
  readonly size: number
  readonly align: number
  private compiled?: (buffer: Buffer, base: number) => Decoded

  constructor(
    readonly name: string,
    members: ReadonlyArray<readonly [string, FieldType]>,
  ) {
    let offset = 0
    let align = 1
    const fields: Field[] = []
    for (const [fieldName, type] of members) {
      const layout = sizeAndAlign(type)
      offset = Math.ceil(offset / layout.align) * layout.align
      fields.push({name: fieldName, key: camelCase(fieldName), type, offset, ...layout})
      offset += layout.size
      align = Math.max(align, layout.align)
    }
    this.fields = fields
    this.align = align
    this.size = Math.ceil(offset / align) * align
  }

  decode(buffer: Buffer, base = 0): Decoded {
    if (buffer.length - base < this.size) {
      throw new Error(`${this.name}: need ${this.size} bytes, got ${buffer.length - base}`)
    }
    return this.decoder(buffer, base)
  }

  /**
   * A decoder made once per struct: one reader per visible field and an
   * object literal of fixed shape (decoding is the hot loop of every map dump).
   */
  private get decoder(): (buffer: Buffer, base: number) => Decoded {
    if (!this.compiled) {
      const visible = this.fields.filter((field) => !(typeof field.type === 'string' && field.type.startsWith('pad[')))
      const body = `return {${visible.map((field, index) => `${JSON.stringify(field.key)}: readers[${index}](buffer, base + ${field.offset})`).join(', ')}}`
      const make = new Function('readers', `return (buffer, base) => { ${body} }`) as (readers: FieldReader[]) => (buffer: Buffer, base: number) => Decoded
      this.compiled = make(visible.map(fieldReader))
    }
    return this.compiled
  }

  encode(value: Decoded, into?: Buffer, base = 0): Buffer {
    // From the shared pool (small buffers), zero-filled: far less for the GC than one ArrayBuffer each.
    const buffer = into ?? Buffer.allocUnsafe(this.size).fill(0)
    for (const field of this.fields) encodeField(buffer, base + field.offset, field, value[field.key])
    return buffer
  }
}

function writeUnsigned(buffer: Buffer, offset: number, size: number, value: number): void {
  switch (size) {
    case 1:
      buffer.writeUInt8(value, offset)
      return
    case 2:
      if (LITTLE) buffer.writeUInt16LE(value, offset)
      else buffer.writeUInt16BE(value, offset)
      return
    case 4:
      if (LITTLE) buffer.writeUInt32LE(value >>> 0, offset)
      else buffer.writeUInt32BE(value >>> 0, offset)
      return
    default:
      if (LITTLE) buffer.writeBigUInt64LE(BigInt(value), offset)
      else buffer.writeBigUInt64BE(BigInt(value), offset)
  }
}

export function ipv4ToString(buffer: Buffer, offset = 0): string {
  return `${buffer[offset]}.${buffer[offset + 1]}.${buffer[offset + 2]}.${buffer[offset + 3]}`
}

export function ipv4ToBytes(address: string): Buffer {
  const parts = address.split('.')
  if (parts.length !== 4 || parts.some((part) => !/^\d{1,3}$/.test(part) || Number(part) > 255)) {
    throw new Error(`invalid IPv4 address "${address}"`)
  }
  return Buffer.from(parts.map(Number))
}

type FieldReader = (buffer: Buffer, offset: number) => unknown

function fieldReader(field: Field): FieldReader {
  const {type, size} = field
  if (type instanceof Struct) return (buffer, offset) => type.decode(buffer, offset)
  if (type === 'ipv4') return ipv4ToString
  if (type === 'be16') return (buffer, offset) => buffer.readUInt16BE(offset)
  if (type === 'mac') return (buffer, offset) => [...buffer.subarray(offset, offset + 6)].map((byte) => byte.toString(16).padStart(2, '0')).join(':')
  if (type.startsWith('char[')) {
    return (buffer, offset) => {
      const raw = buffer.subarray(offset, offset + size)
      const end = raw.indexOf(0)
      return raw.subarray(0, end === -1 ? raw.length : end).toString('utf8')
    }
  }
  if (type.startsWith('u8[')) return (buffer, offset) => buffer.subarray(offset, offset + size).toString('hex')
  if (size === 8) {
    // Two 32-bit halves: counters stay far below 2^53 and Number keeps JSON output plain (no BigInt per field).
    return LITTLE ? (buffer, offset) => buffer.readUInt32LE(offset) + buffer.readUInt32LE(offset + 4) * 0x1_0000_0000 : (buffer, offset) => buffer.readUInt32BE(offset) * 0x1_0000_0000 + buffer.readUInt32BE(offset + 4)
  }
  if (size === 4) return LITTLE ? (buffer, offset) => buffer.readUInt32LE(offset) : (buffer, offset) => buffer.readUInt32BE(offset)
  if (size === 2) return LITTLE ? (buffer, offset) => buffer.readUInt16LE(offset) : (buffer, offset) => buffer.readUInt16BE(offset)
  return (buffer, offset) => buffer.readUInt8(offset)
}

function encodeField(buffer: Buffer, offset: number, field: Field, value: unknown): void {
  const {type} = field
  if (type instanceof Struct) {
    type.encode((value as Decoded | undefined) ?? {}, buffer, offset)
    return
  }
  if (typeof type === 'string' && type.startsWith('pad[')) return
  if (value === undefined || value === null) return // the buffer starts zero-filled
  if (type === 'ipv4') {
    ipv4ToBytes(String(value)).copy(buffer, offset)
  } else if (type === 'be16') {
    buffer.writeUInt16BE(Number(value), offset)
  } else if (type === 'mac') {
    const bytes = String(value).split(':').map((part) => Number.parseInt(part, 16))
    if (bytes.length !== 6 || bytes.some((byte) => !(byte >= 0 && byte <= 255))) throw new Error(`invalid MAC "${value}"`)
    Buffer.from(bytes).copy(buffer, offset)
  } else if (type.startsWith('char[')) {
    const bytes = Buffer.from(String(value), 'utf8')
    if (bytes.length >= field.size) throw new Error(`${field.name}: "${value}" is longer than ${field.size - 1} bytes`)
    bytes.copy(buffer, offset)
  } else if (type.startsWith('u8[')) {
    Buffer.from(String(value), 'hex').copy(buffer, offset, 0, field.size)
  } else {
    writeUnsigned(buffer, offset, field.size, Number(value))
  }
}
