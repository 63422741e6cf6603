import {ApiException} from '@kubernetes/client-node'
import {describe, expect, it} from 'vitest'
import {loadKubeConfig} from '../../src/cluster/kubeconfig.js'
import {errorMessage} from '../../src/lib/errors.js'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

describe('one-line error messages', () => {
  it('says what an API failure means: credentials by kubeconfig and context, never a raw request', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pinion-errors-'))
    try {
      const path = join(dir, 'kubeconfig')
      writeFileSync(path, 'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: lab, context: {cluster: c, user: u}}]\ncurrent-context: lab\n')
      loadKubeConfig({kubeconfig: path})
      expect(errorMessage(new ApiException(401, 'Unauthorized', '{"kind":"Status","message":"Unauthorized"}', {}))).toBe(`Unauthorized: the API server rejected the credentials in ${path} (context lab)`)
      expect(errorMessage(new ApiException(404, 'Not Found', '{"kind":"Status","message":"pods \\"x\\" not found"}', {}))).toBe('pods "x" not found')
      expect(errorMessage(new Error('request to https://127.0.0.1:6443/api/v1/pods failed, reason: connect ECONNREFUSED 127.0.0.1:6443'))).toBe('cannot reach the API server (connection refused)')
      expect(errorMessage({message: 'plain object\nsecond line'})).toBe('plain object')
      expect(errorMessage({reason: 'no message'})).toBe('{"reason":"no message"}')
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  })
})
