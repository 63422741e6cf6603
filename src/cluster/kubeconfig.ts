import {existsSync} from 'node:fs'
import {homedir} from 'node:os'
import * as k8s from '@kubernetes/client-node'
import {describeErrorsWith, UserError} from '../lib/errors.js'

export interface ClusterTarget {
  kubeconfig?: string
  context?: string
}

/** Load a kubeconfig like kubectl does (flag, then $KUBECONFIG, then ~/.kube/config). */
export function loadKubeConfig(target: ClusterTarget = {}): k8s.KubeConfig {
  const path = target.kubeconfig ?? process.env.KUBECONFIG?.split(':')[0] ?? `${homedir()}/.kube/config`
  loaded = {path, context: target.context}
  if (!existsSync(path)) {
    throw new UserError(`no kubeconfig at ${path}: pass --kubeconfig, set KUBECONFIG, or start a lab with \`pinion lab up\``)
  }
  const config = new k8s.KubeConfig()
  try {
    config.loadFromFile(path)
  } catch (error) {
    throw new UserError(`cannot read kubeconfig ${path}: ${(error as Error).message.split('\n')[0]}`)
  }
  if (target.context) {
    if (!config.getContexts().some((context) => context.name === target.context)) {
      throw new UserError(`context "${target.context}" is not in ${path} (have: ${config.getContexts().map((context) => context.name).join(', ') || 'none'})`)
    }
    config.setCurrentContext(target.context)
  }
  if (!config.getCurrentCluster()) throw new UserError(`kubeconfig ${path} has no current cluster`)
  loaded = {path, context: config.getCurrentContext()}
  return config
}

/** The kubeconfig this run loaded, for messages about its credentials. */
let loaded: {path: string; context?: string} | undefined

export interface Clients {
  config: k8s.KubeConfig
  core: k8s.CoreV1Api
  discovery: k8s.DiscoveryV1Api
  networking: k8s.NetworkingV1Api
}

export function clients(target: ClusterTarget = {}): Clients {
  const config = loadKubeConfig(target)
  return {
    config,
    core: config.makeApiClient(k8s.CoreV1Api),
    discovery: config.makeApiClient(k8s.DiscoveryV1Api),
    networking: config.makeApiClient(k8s.NetworkingV1Api),
  }
}

/** The HTTP status of a client-node API error, if it is one. */
export function apiStatus(error: unknown): number | undefined {
  const code = (error as {code?: unknown}).code
  return typeof code === 'number' ? code : undefined
}

/** One line from a client-node API error: what went wrong, never a raw request dump. */
export function apiErrorMessage(error: unknown): string {
  const status = apiStatus(error)
  const where = loaded ? ` in ${loaded.path}${loaded.context ? ` (context ${loaded.context})` : ''}` : ''
  if (status === 401) return `Unauthorized: the API server rejected the credentials${where}`
  const body = (error as {body?: unknown}).body
  let statusMessage: string | undefined
  if (typeof body === 'string') {
    try {
      statusMessage = (JSON.parse(body) as {message?: string}).message
    } catch {
      // not JSON
    }
  } else if (body && typeof body === 'object') {
    statusMessage = (body as {message?: string}).message
  }
  if (status === 403) return `Forbidden: ${statusMessage ?? `the credentials${where} may not do this`}`
  if (statusMessage) return statusMessage
  const message = (error as Error).message ?? String(error)
  const network = /\b(ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|socket hang up)\b/.exec(message)
  if (network) return `cannot reach the API server (${network[1] === 'ECONNREFUSED' ? 'connection refused' : network[1]})`
  // A response cut off mid-way (the server or the path to it went away).
  if (message === 'aborted') return 'cannot reach the API server (connection lost)'
  if (status !== undefined) return `the API server answered HTTP ${status}`
  // fetch-style errors put the request URL first: keep the reason only.
  return message.split('\n')[0].replace(/^request to \S+ failed, reason: /, '')
}

/**
 * The agent's API access: --kubeconfig or $KUBECONFIG when given, else the
 * pod's service account (in-cluster), as client-go's agents do.
 */
export function agentKubeConfig(target: ClusterTarget = {}): k8s.KubeConfig {
  if (target.kubeconfig || process.env.KUBECONFIG) return loadKubeConfig(target)
  if (!process.env.KUBERNETES_SERVICE_HOST) throw new UserError('no API server to watch: not in a pod (KUBERNETES_SERVICE_HOST unset) and no --kubeconfig or KUBECONFIG')
  const config = new k8s.KubeConfig()
  config.loadFromCluster()
  return config
}

// Thrown API errors (client-node's ApiException: "HTTP-Code: 401\nMessage: …") read as one clear line everywhere.
// Failed requests ("request to https://… failed, reason: …") likewise, without the URL.
describeErrorsWith((error) => {
  const message = (error as Error | undefined)?.message ?? ''
  if (apiStatus(error) !== undefined && /^HTTP-Code: /.test(message)) return apiErrorMessage(error)
  if (/^request to \S+ failed, reason: /.test(message)) return apiErrorMessage(error)
  return undefined
})
