import * as k8s from '@kubernetes/client-node'
import type {Clients} from '../cluster/kubeconfig.js'
import {errorMessage} from '../lib/errors.js'

/** The resources whose changes alter the dataplane. */
export const WATCHED_PATHS = [
  '/api/v1/pods',
  '/api/v1/services',
  '/api/v1/namespaces',
  '/api/v1/nodes',
  '/apis/discovery.k8s.io/v1/endpointslices',
  '/apis/networking.k8s.io/v1/networkpolicies',
]

export interface WatchLoopOptions {
  /** Coalesce bursts of events into one sync. */
  debounceMs: number
  /** Full resync even without events, in case a watch silently stalled. */
  resyncMs: number
  /** Server-side watch deadline; the watch is then restarted. */
  watchTimeoutSeconds: number
  signal: AbortSignal
  onError: (message: string) => void
}

/**
 * Call `sync` once, then again after every burst of changes to the watched
 * resources and at least every resyncMs. Each watch has its own deadline and
 * is restarted when it ends or fails (a restart triggers a resync, since
 * events may have been missed). Resolves when `signal` aborts.
 */
export async function watchAndSync(api: Clients, options: WatchLoopOptions, sync: (reason: string) => Promise<void>): Promise<void> {
  const watch = new k8s.Watch(api.config)
  let timer: NodeJS.Timeout | undefined
  let running: Promise<void> = Promise.resolve()
  const reasons = new Set<string>()

  const schedule = (reason: string) => {
    reasons.add(reason)
    clearTimeout(timer)
    timer = setTimeout(() => {
      const why = [...reasons].join(', ')
      reasons.clear()
      running = running.then(() => sync(why)).catch((error) => options.onError(errorMessage(error)))
    }, options.debounceMs)
  }

  const requests: {abort: () => void}[] = []
  const start = (path: string, restart: boolean) => {
    if (options.signal.aborted) return
    void watch
      .watch(path, {timeoutSeconds: options.watchTimeoutSeconds, allowWatchBookmarks: false}, (type) => {
        if (type !== 'BOOKMARK') schedule(`${path.split('/').pop()} changed`)
      }, (error) => {
        if (options.signal.aborted) return
        if (error) options.onError(`watch ${path} failed: ${errorMessage(error)}; restarting`)
        // A restarted watch lists from now: anything in between is caught by a resync.
        schedule(`watch ${path} restarted`)
        setTimeout(() => start(path, true), error ? 1000 : 0)
      })
      .then((request) => requests.push(request))
      .catch((error) => {
        options.onError(`cannot watch ${path}: ${errorMessage(error)}; retrying`)
        setTimeout(() => start(path, restart), 2000)
      })
  }

  await sync('initial sync')
  for (const path of WATCHED_PATHS) start(path, false)
  const resync = setInterval(() => schedule('periodic resync'), options.resyncMs)
  await new Promise<void>((resolve) => options.signal.addEventListener('abort', () => resolve(), {once: true}))
  clearInterval(resync)
  clearTimeout(timer)
  for (const request of requests) request.abort()
  await running
}
