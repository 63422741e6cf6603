/**
 * Kubernetes label and field selectors, parsed once and matched many times.
 * Labels: a=b, a==b, a!=b, a in (x,y), a notin (x), a, !a. Fields: a.b=c, a.b!=c.
 */
export type Matcher = (labels: Record<string, string>) => boolean

export class SelectorError extends Error {}

function splitTopLevel(text: string): string[] {
  const parts: string[] = []
  let depth = 0
  let current = ''
  for (const ch of text) {
    if (ch === '(') depth++
    if (ch === ')') depth--
    if (ch === ',' && depth === 0) {
      parts.push(current.trim())
      current = ''
    } else {
      current += ch
    }
  }
  if (current.trim()) parts.push(current.trim())
  return parts
}

export function parseLabelSelector(text: string | undefined): Matcher {
  if (!text || !text.trim()) return () => true
  const requirements: Matcher[] = splitTopLevel(text).map((part) => {
    let match = /^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(part)
    if (match) {
      const [, key, op, list] = match
      const values = new Set(list.split(',').map((value) => value.trim()).filter(Boolean))
      return op === 'in' ? (labels) => key in labels && values.has(labels[key]) : (labels) => !(key in labels) || !values.has(labels[key])
    }
    match = /^([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)$/.exec(part)
    if (match) {
      const [, key, op, value] = match
      return op === '!=' ? (labels) => labels[key] !== value : (labels) => labels[key] === value
    }
    match = /^(!?)([\w./-]+)$/.exec(part)
    if (match) {
      const [, not, key] = match
      return not ? (labels) => !(key in labels) : (labels) => key in labels
    }
    throw new SelectorError(`unable to parse requirement: "${part}"`)
  })
  return (labels) => requirements.every((requirement) => requirement(labels))
}

/** A matchLabels/matchExpressions selector object (Services, policies, slices). */
export interface LabelSelector {
  matchLabels?: Record<string, string>
  matchExpressions?: {key: string; operator: string; values?: string[]}[]
}

export function matchesSelector(selector: LabelSelector | undefined | null, labels: Record<string, string> = {}): boolean {
  if (!selector) return false
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) if (labels[key] !== value) return false
  for (const expression of selector.matchExpressions ?? []) {
    const has = expression.key in labels
    const values = expression.values ?? []
    switch (expression.operator) {
      case 'In':
        if (!has || !values.includes(labels[expression.key])) return false
        break
      case 'NotIn':
        if (has && values.includes(labels[expression.key])) return false
        break
      case 'Exists':
        if (!has) return false
        break
      case 'DoesNotExist':
        if (has) return false
        break
      default:
        return false
    }
  }
  return true
}

function fieldValue(object: unknown, path: string): string {
  let current: unknown = object
  for (const part of path.split('.')) current = (current as Record<string, unknown> | undefined)?.[part]
  return current === undefined || current === null ? '' : String(current)
}

export function parseFieldSelector(text: string | undefined): (object: unknown) => boolean {
  if (!text || !text.trim()) return () => true
  const requirements = text.split(',').map((part) => {
    const match = /^([\w.]+)\s*(==|=|!=)\s*(.*)$/.exec(part.trim())
    if (!match) throw new SelectorError(`invalid field selector: "${part}"`)
    const [, path, op, value] = match
    return op === '!=' ? (object: unknown) => fieldValue(object, path) !== value : (object: unknown) => fieldValue(object, path) === value
  })
  return (object) => requirements.every((requirement) => requirement(object))
}
