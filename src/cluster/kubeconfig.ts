import {existsSync} from 'node:fs'
import {homedir} from 'node:os'
import * as k8s from '@kubernetes/client-node'
import {UserError} from '../lib/errors.js'

export interface ClusterTarget {
  kubeconfig?: string
  context?: string
}

/** Load a kubeconfig like kubectl does (flag, then $KUBECONFIG, then ~/.kube/config). */
export function loadKubeConfig(target: ClusterTarget = {}): k8s.KubeConfig {
  const path = target.kubeconfig ?? process.env.KUBECONFIG?.split(':')[0] ?? `${homedir()}/.kube/config`
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
  return config
}

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

/** One line from a client-node API error: the Status message when there is one. */
export function apiErrorMessage(error: unknown): string {
  const body = (error as {body?: unknown}).body
  if (typeof body === 'string') {
    try {
      const status = JSON.parse(body) as {message?: string}
      if (status.message) return status.message
    } catch {
      // not JSON
    }
  }
  const message = (error as Error).message ?? String(error)
  if (/ECONNREFUSED/.test(message)) return `cannot reach the API server (connection refused)`
  return message.split('\n')[0]
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
