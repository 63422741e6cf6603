import {DEBUG_NAMESPACE} from '../nodes/debug-pods.js'
import {apiStatus, type Clients} from './kubeconfig.js'

/** Like GKE's NetworkLogging resource: log allowed and/or denied connections, optionally delegated. */
export interface LoggingConfig {
  allow: {log: boolean; delegate: boolean}
  deny: {log: boolean; delegate: boolean}
}

export const LOGGING_CONFIGMAP = 'pinion-network-logging'
/** On a NetworkPolicy (allow delegation) or a Namespace (deny delegation). */
export const LOGGING_ANNOTATION = 'pinion.dev/enable-logging'
export const DEFAULT_LOGGING: LoggingConfig = {allow: {log: false, delegate: false}, deny: {log: false, delegate: false}}

export async function readLoggingConfig(api: Clients): Promise<LoggingConfig> {
  try {
    const map = await api.core.readNamespacedConfigMap({namespace: DEBUG_NAMESPACE, name: LOGGING_CONFIGMAP})
    return JSON.parse(map.data?.['config.json'] ?? 'null') ?? DEFAULT_LOGGING
  } catch (error) {
    if (apiStatus(error) === 404) return DEFAULT_LOGGING
    throw error
  }
}
