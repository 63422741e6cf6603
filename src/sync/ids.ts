import {createHash} from 'node:crypto'

/** Stable 32-bit hash: the same object gets the same id on every node and every run. */
export function hash32(text: string): number {
  return createHash('sha256').update(text).digest().readUInt32BE(0)
}

/**
 * Ids in [min, min + span) for keys that come and go: a key's id is its hash,
 * probing forward on collision, and it keeps that id while anything holds it
 * (acquire/release count holders). Acquiring keys in sorted order on an empty
 * allocator gives every node and every run the same table.
 */
export class IdAllocator {
  private readonly ids = new Map<string, {id: number; holders: number}>()
  private readonly used = new Set<number>()

  constructor(
    readonly min: number,
    readonly span: number,
    readonly what = 'ids',
  ) {}

  get size(): number {
    return this.ids.size
  }

  get(key: string): number | undefined {
    return this.ids.get(key)?.id
  }

  /** The key's id, allocated on first use; `preferred` (an id already in use on a node) is taken when free. */
  acquire(key: string, preferred?: number): number {
    const held = this.ids.get(key)
    if (held) {
      held.holders++
      return held.id
    }
    if (this.ids.size >= this.span) throw new Error(`too many ${this.what}: ${this.ids.size + 1}, the datapath holds ${this.span}`)
    let id = preferred !== undefined && preferred >= this.min && preferred < this.min + this.span && !this.used.has(preferred) ? preferred : this.min + (hash32(key) % this.span)
    while (this.used.has(id)) id = this.min + ((id - this.min + 1) % this.span)
    this.used.add(id)
    this.ids.set(key, {id, holders: 1})
    return id
  }

  release(key: string): void {
    const held = this.ids.get(key)
    if (!held || --held.holders > 0) return
    this.ids.delete(key)
    this.used.delete(held.id)
  }

  entries(): IterableIterator<[string, number]> {
    return (function* (ids) {
      for (const [key, {id}] of ids) yield [key, id] as [string, number]
    })(this.ids)
  }
}

/** Ids for a fixed set of keys, as an IdAllocator gives them when acquired in sorted order. */
export function stableIds(keys: Iterable<string>, min: number, span: number, what = 'ids'): Map<string, number> {
  const unique = [...new Set(keys)].sort()
  if (unique.length > span) throw new Error(`too many ${what}: ${unique.length}, the datapath holds ${span}`)
  const allocator = new IdAllocator(min, span, what)
  return new Map(unique.map((key) => [key, allocator.acquire(key)]))
}
