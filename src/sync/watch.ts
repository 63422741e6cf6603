import {setMaxListeners} from 'node:events'
import type {Clients} from '../cluster/kubeconfig.js'
import {DEFAULT_INFORMER_OPTIONS, Informer, type KubeObjectLike} from '../cluster/informer.js'
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
  /** Server-side watch deadline; the watch is then resumed. */
  watchTimeoutSeconds: number
  signal: AbortSignal
  /** One line per change of state (the API lost, back again; a sync failing, working again) — never one per retry. */
  onError: (message: string) => void
}

/**
 * Call `sync` once, then again after every burst of changes to the watched
 * resources and at least every resyncMs. The watches are informers (list,
 * watch, resume, relist on 410, back-off while the API server is away);
 * a relist after an outage replays every object, so the sync after it sees
 * whatever changed meanwhile. Resolves when `signal` aborts.
 */
export async function watchAndSync(api: Clients, options: WatchLoopOptions, sync: (reason: string) => Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  let running: Promise<void> = Promise.resolve()
  const reasons = new Set<string>()
  let failing = ''
  let ready = false
  const listedPaths = new Set<string>()

  const schedule = (reason: string) => {
    reasons.add(reason)
    if (timer || options.signal.aborted) return
    timer = setTimeout(() => {
      timer = undefined
      const why = [...reasons].join(', ')
      reasons.clear()
      running = running.then(() => sync(why)).then(() => {
        if (failing) options.onError(`sync works again (${why})`)
        failing = ''
      }, (error) => {
        const message = errorMessage(error)
        if (message !== failing) options.onError(`sync failed: ${message}`)
        failing = message
      })
    }, options.debounceMs)
  }

  // Every informer waits on the signal (requests, back-off): more listeners than Node's default warning threshold.
  setMaxListeners(64, options.signal)
  // The watches are followed as one: one line when the first is lost, one when all are back.
  const lost = new Set<string>()
  const onState = (path: string, message: string) => {
    if (/connected again$/.test(message)) {
      lost.delete(path)
      if (lost.size === 0) options.onError('watching the API server again')
    } else {
      if (lost.size === 0) options.onError(`lost the API server's watches (${message.replace(/^\S+: /, '').replace(/; retrying with back-off$/, '')}); retrying with back-off`)
      lost.add(path)
    }
  }
  let allListed: () => void = () => {}
  const listed = new Promise<void>((resolve) => (allListed = resolve))
  const informerOptions = {...DEFAULT_INFORMER_OPTIONS, watchTimeoutSeconds: options.watchTimeoutSeconds}
  const informers = WATCHED_PATHS.map((path) => {
    const what = path.split('/').pop()!
    const changed = () => ready && schedule(`${what} changed`)
    const informer = new Informer<KubeObjectLike>(api.config, path, {
      upsert: changed,
      remove: changed,
      // Lists after the first (an outage, a 410) may hold changes the watch never showed.
      synced: () => {
        if (ready) schedule(`${what} relisted`)
        listedPaths.add(path)
        if (listedPaths.size === WATCHED_PATHS.length) allListed()
      },
      state: (message) => onState(path, message),
    }, informerOptions)
    informer.start(options.signal)
    return informer
  })
  // Everything listed first: the initial sync then sees at least what the watches start from.
  await Promise.race([listed, new Promise((resolve) => options.signal.addEventListener('abort', resolve, {once: true}))])
  if (!options.signal.aborted) {
    await sync('initial sync')
    ready = true
  }
  const resync = setInterval(() => schedule('periodic resync'), options.resyncMs)
  await new Promise<void>((resolve) => (options.signal.aborted ? resolve() : options.signal.addEventListener('abort', () => resolve(), {once: true})))
  clearInterval(resync)
  clearTimeout(timer)
  await Promise.all(informers.map((informer) => informer.stopped()))
  await running
}
