import {describe, expect, it} from 'vitest'
import {REDACTED, redactText, redactValue} from '../../src/bundle/redact.js'

describe('bundle redaction', () => {
  it('redacts secret-looking values wherever they hide in an object', () => {
    const pod = {
      metadata: {
        name: 'app',
        managedFields: [{manager: 'kubectl', fieldsV1: {f: 'S0'}}],
        annotations: {'example.com/api-token': 'S1', 'example.com/owner': 'team-a', 'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify({spec: {containers: [{env: [{name: 'DB_PASSWORD', value: 'S2'}], args: ['--token', 'S3']}]}})},
      },
      spec: {
        serviceAccountName: 'default',
        containers: [{
          name: 'app',
          env: [{name: 'DB_PASSWORD', value: 'S4'}, {name: 'DATABASE_URL', value: 'postgres://admin:S5@db:5432/x'}, {name: 'LOG_LEVEL', value: 'debug'}, {name: 'S', valueFrom: {secretKeyRef: {name: 'db', key: 'password'}}}],
          args: ['--db-password=S6', '--password', 'S7', '--verbose', '--port', '8080'],
          command: ['sh', '-c', 'export API_KEY=S8; curl -H "Authorization: Bearer S9abcdefgh" https://u:S10@host/x?token=S11'],
        }],
      },
      data: {password: 'S12', plain: 'visible'},
    }
    const out = JSON.stringify(redactValue(pod))
    expect(out.match(/\bS\d+\b/g) ?? []).toEqual([])
    for (const kept of ['team-a', 'debug', '8080', 'visible', '"key":"password"', 'secretKeyRef', 'https://u:<redacted>@host']) expect(out).toContain(kept)
    expect(out).not.toContain('managedFields')
  })

  it('redacts credentials in free text, and an unparsable last-applied-configuration entirely', () => {
    expect(redactText('connecting to mysql://root:hunter2@db --api-key hunter3 TOKEN=hunter4')).toBe(`connecting to mysql://root:${REDACTED}@db --api-key ${REDACTED} TOKEN=${REDACTED}`)
    expect(redactText('nothing to see: the token expired')).toBe('nothing to see: the token expired')
    expect(redactValue({metadata: {annotations: {'kubectl.kubernetes.io/last-applied-configuration': '{not json password=x'}}})).toEqual({metadata: {annotations: {'kubectl.kubernetes.io/last-applied-configuration': REDACTED}}})
  })
})
