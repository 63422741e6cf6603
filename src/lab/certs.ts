import {randomBytes} from 'node:crypto'
import {readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {stringify} from 'yaml'
import {sh} from './netns.js'

export interface LabCredentials {
  caCert: string
  serverCert: string
  serverKey: string
  token: string
}

/**
 * A CA and a serving certificate for 127.0.0.1 (EC P-256 via openssl, fast and
 * standard), and a random bearer token. Files are 0600 under the run directory.
 */
export async function createCredentials(dir: string): Promise<LabCredentials> {
  const path = (name: string) => join(dir, name)
  await sh(['openssl', 'ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', path('ca.key')])
  await sh(['openssl', 'req', '-x509', '-new', '-key', path('ca.key'), '-days', '30', '-subj', '/CN=pinion-lab-ca', '-out', path('ca.crt')])
  await sh(['openssl', 'ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', path('server.key')])
  await sh(['openssl', 'req', '-new', '-key', path('server.key'), '-subj', '/CN=pinion-lab-apiserver', '-out', path('server.csr')])
  writeFileSync(path('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n')
  await sh(['openssl', 'x509', '-req', '-in', path('server.csr'), '-CA', path('ca.crt'), '-CAkey', path('ca.key'), '-CAcreateserial', '-days', '30', '-extfile', path('server.ext'), '-out', path('server.crt')])
  const token = randomBytes(24).toString('hex')
  writeFileSync(path('token'), token, {mode: 0o600})
  await sh(['chmod', '600', path('ca.key'), path('server.key')])
  return readCredentials(dir)
}

export function readCredentials(dir: string): LabCredentials {
  const read = (name: string) => readFileSync(join(dir, name), 'utf8')
  return {caCert: read('ca.crt'), serverCert: read('server.crt'), serverKey: read('server.key'), token: read('token').trim()}
}

export function kubeconfigYaml(lab: string, port: number, credentials: LabCredentials): string {
  const name = `pinion-lab-${lab}`
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': name,
    clusters: [{name, cluster: {server: `https://127.0.0.1:${port}`, 'certificate-authority-data': Buffer.from(credentials.caCert).toString('base64')}}],
    users: [{name, user: {token: credentials.token}}],
    contexts: [{name, context: {cluster: name, user: name, namespace: 'default'}}],
  })
}
