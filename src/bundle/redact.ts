/**
 * What a support bundle must never carry: values of secret-looking names
 * (env vars, annotations, labels, fields, flags), credentials in URLs,
 * bearer tokens — also where they hide inside kubectl's
 * last-applied-configuration and in free text (logs, event messages).
 */
export const REDACTED = '<redacted>'

/** A name that says its value is a secret. */
const SENSITIVE = /pass|secret|token|credential|api[-_]?key|private[-_]?key|access[-_]?key|auth/i
/** Object fields whose names match SENSITIVE but hold references or settings, not secrets. */
const SAFE_FIELDS = new Set(['automountServiceAccountToken', 'serviceAccountToken', 'secretKeyRef', 'secretRef', 'secret', 'tokenExpirationSeconds', 'expirationSeconds', 'secretName'])
const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration'

const NAME = String.raw`[\w.-]*(?:pass|secret|token|credential|api[-_]?key|private[-_]?key|access[-_]?key)[\w.-]*`
const TEXT_RULES: [RegExp, string][] = [
  // scheme://user:password@host
  [/([a-z][a-z0-9+.-]*:\/\/[^\s/:@]*:)[^\s@/]+@/gi, `$1${REDACTED}@`],
  // Authorization: Bearer/Basic <credentials>
  [/\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, `$1 ${REDACTED}`],
  // "password": "value" (JSON in text)
  [new RegExp(String.raw`("${NAME}"\s*:\s*")(?:[^"\\]|\\.)*"`, 'gi'), `$1${REDACTED}"`],
  // --db-password=value, DB_PASSWORD=value, password: value
  [new RegExp(String.raw`(\b${NAME}\s*[=:]\s*)(?!${REDACTED})[^\s&"',;]+`, 'gi'), `$1${REDACTED}`],
  // --db-password value
  [new RegExp(String.raw`(--?${NAME})\s+(?!-)(?!${REDACTED})[^\s"',;]+`, 'gi'), `$1 ${REDACTED}`],
]

export function redactText(text: string): string {
  let out = text
  for (const [pattern, replacement] of TEXT_RULES) out = out.replace(pattern, replacement)
  return out
}

/** A flag that takes a secret as its next argument (`--password`, `-token`). */
const SECRET_FLAG = new RegExp(String.raw`^--?${NAME}$`, 'i')

function redactArray(items: unknown[]): unknown[] {
  return items.map((item, index) => {
    const previous = items[index - 1]
    if (typeof item === 'string' && typeof previous === 'string' && SECRET_FLAG.test(previous)) return REDACTED
    return redactValue(item)
  })
}

/** Annotations and labels: secret-looking keys lose their values; last-applied-configuration is redacted inside. */
function redactAnnotations(annotations: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(annotations)) {
    if (typeof value !== 'string') out[key] = redactValue(value)
    else if (key === LAST_APPLIED) out[key] = redactEmbeddedJson(value)
    else if (SENSITIVE.test(key)) out[key] = REDACTED
    else out[key] = redactText(value)
  }
  return out
}

function redactEmbeddedJson(text: string): string {
  try {
    return JSON.stringify(redactValue(JSON.parse(text)))
  } catch {
    return REDACTED
  }
}

export function redactValue(value: unknown): unknown {
  if (typeof value === 'string') return redactText(value)
  if (Array.isArray(value)) return redactArray(value)
  if (!value || typeof value !== 'object') return value
  const object = value as Record<string, unknown>
  // An env entry {name, value}: the name says whether the value is secret.
  const envLike = typeof object.name === 'string' && 'value' in object && SENSITIVE.test(object.name)
  const out: Record<string, unknown> = {}
  for (const [key, field] of Object.entries(object)) {
    if (key === 'managedFields') continue
    if (envLike && key === 'value') out[key] = REDACTED
    else if ((key === 'annotations' || key === 'labels') && field && typeof field === 'object' && !Array.isArray(field)) out[key] = redactAnnotations(field as Record<string, unknown>)
    else if (typeof field === 'string' && SENSITIVE.test(key) && !SAFE_FIELDS.has(key)) out[key] = REDACTED
    else out[key] = redactValue(field)
  }
  return out
}
