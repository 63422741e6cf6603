import {createHash} from 'node:crypto'

/** Stable 32-bit hash: the same object gets the same id on every node and every run. */
export function hash32(text: string): number {
  return createHash('sha256').update(text).digest().readUInt32BE(0)
}

/**
 * Assign each key a stable id in [min, min + span): its hash, probing forward
 * on collision, in sorted key order so every node computes the same table.
 */
export function stableIds(keys: Iterable<string>, min: number, span: number, what = 'ids'): Map<string, number> {
  const ids = new Map<string, number>()
  const used = new Set<number>()
  const unique = [...new Set(keys)].sort()
  if (unique.length > span) throw new Error(`too many ${what}: ${unique.length}, the datapath holds ${span}`)
  for (const key of unique) {
    let id = min + (hash32(key) % span)
    while (used.has(id)) id = min + ((id - min + 1) % span)
    used.add(id)
    ids.set(key, id)
  }
  return ids
}
