import WebSocket from 'ws'
import type { ChangeMessage, Instance, InstancesResponse } from './protocol.js'
import { ServerMessage } from './protocol.js'
import { Backoff } from './backoff.js'
import { RollcallError } from './errors.js'
import type { RegistryRest } from './rest.js'

/** What a cached service implements to be fed by the watch. */
export interface WatchTarget {
  /** The whole state of the service as of `revision`. */
  applySnapshot(instances: readonly Instance[], revision: number): void
  /** One change above the last revision applied. */
  applyChange(change: ChangeMessage): void
}

/** Events of the watch connection. */
export interface WatchEvents {
  connected?: (mode: 'websocket' | 'polling') => void
  disconnected?: (reason: string) => void
  error?: (err: RollcallError) => void
}

/** Options of the {@link WatchConnection}. */
export interface WatchConnectionOptions {
  /** Upgrade answers other than 101 in a row before falling back to blocking queries. Default 2. */
  fallbackAfter?: number
  /** How often polling mode tries the WebSocket again. Default 60 s. */
  retryWebSocketMs?: number
  /** The wait of each blocking query in polling mode. Default 30 s. */
  pollWaitSeconds?: number
  random?: () => number
}

/**
 * The one WebSocket that every service a client watches shares. It subscribes each
 * service, feeds snapshots and changes to their caches, and when the socket drops it
 * reconnects with backoff (reset by the first good message, as etcd3's watcher) and
 * resumes with `since` = the last revision seen, so no change is missed; the server
 * answers with a snapshot instead when that is too old, and the caches take it.
 *
 * If the WebSocket cannot be used at all (the upgrade keeps getting an HTTP answer, as
 * behind a proxy that does not pass upgrades), it falls back to blocking queries over
 * REST, one per service, and tries the socket again now and then.
 */
export class WatchConnection {
  readonly #rest: RegistryRest
  readonly #targets = new Map<string, WatchTarget>()
  /** Services that have had a snapshot, so a resume with `since` covers them. */
  readonly #synced = new Set<string>()
  readonly #events: WatchEvents
  readonly #backoff: Backoff
  readonly #fallbackAfter: number
  readonly #retryWebSocketMs: number
  readonly #pollWait: number
  #ws: WebSocket | undefined
  #open = false
  #revision = -1
  #refusedUpgrades = 0
  #mode: 'websocket' | 'polling' = 'websocket'
  #timer: NodeJS.Timeout | undefined
  #polling: AbortController | undefined
  #closed = false

  constructor(rest: RegistryRest, events: WatchEvents = {}, options: WatchConnectionOptions = {}) {
    this.#rest = rest
    this.#events = events
    this.#backoff = new Backoff({ initialMs: 100, maxMs: 10_000, ...(options.random && { random: options.random }) })
    this.#fallbackAfter = options.fallbackAfter ?? 2
    this.#retryWebSocketMs = options.retryWebSocketMs ?? 60_000
    this.#pollWait = options.pollWaitSeconds ?? 30
  }

  /** The newest revision received. */
  get revision(): number {
    return this.#revision
  }

  /** `websocket`, or `polling` after falling back to blocking queries. */
  get mode(): 'websocket' | 'polling' {
    return this.#mode
  }

  /** Whether the socket is open (or polling runs). */
  get connected(): boolean {
    return this.#open
  }

  /** Starts watching `service` into `target`. Connects on first use. */
  watch(service: string, target: WatchTarget): void {
    if (this.#closed || this.#targets.has(service)) return
    this.#targets.set(service, target)
    if (this.#mode === 'polling') this.#poll(service, target, this.#polling?.signal)
    else if (this.#ws === undefined) this.#connect()
    else if (this.#open) this.#send({ type: 'subscribe', services: [service] })
  }

  /** Closes the socket and stops reconnecting and polling. */
  close(): void {
    this.#closed = true
    clearTimeout(this.#timer)
    this.#polling?.abort()
    this.#ws?.terminate()
    this.#ws = undefined
  }

  #connect(): void {
    if (this.#closed) return
    const url = this.#rest.url.replace(/^http/, 'ws') + '/v1/watch'
    const ws = new WebSocket(url, { headers: this.#rest.headers(), perMessageDeflate: false })
    this.#ws = ws
    ws.on('open', () => {
      this.#open = true
      this.#refusedUpgrades = 0
      const resume = this.#revision >= 0 ? [...this.#targets.keys()].filter((s) => this.#synced.has(s)) : []
      const fresh = [...this.#targets.keys()].filter((s) => !resume.includes(s))
      // A resume must be the connection's first subscribe; services never synced get a snapshot.
      if (resume.length > 0) this.#send({ type: 'subscribe', services: resume, since: this.#revision })
      if (fresh.length > 0) this.#send({ type: 'subscribe', services: fresh })
      this.#events.connected?.('websocket')
    })
    ws.on('message', (data) => this.#receive(data.toString()))
    ws.on('unexpected-response', (_req, res) => {
      res.resume()
      this.#refusedUpgrades++
      this.#report(new RollcallError('REGISTRY_UNAVAILABLE', `watch upgrade refused with HTTP ${res.statusCode}`, true))
      ws.terminate()
    })
    ws.on('error', (err) => this.#report(new RollcallError('REGISTRY_UNAVAILABLE', err.message, true, { cause: err })))
    ws.on('close', (code) => {
      if (this.#ws !== ws) return
      this.#ws = undefined
      const wasOpen = this.#open
      this.#open = false
      if (this.#closed) return
      if (wasOpen) this.#events.disconnected?.(`socket closed (${code})`)
      if (!wasOpen && this.#refusedUpgrades === 0) this.#rest.failover()
      if (this.#refusedUpgrades >= this.#fallbackAfter) return this.#startPolling()
      this.#timer = setTimeout(() => this.#connect(), this.#backoff.next())
    })
  }

  #send(message: unknown): void {
    this.#ws?.send(JSON.stringify(message))
  }

  #receive(text: string): void {
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      return this.#report(new RollcallError('INTERNAL', 'watch: the server sent a frame that is not JSON', false))
    }
    const result = ServerMessage.safeParse(parsed)
    if (!result.success) {
      return this.#report(new RollcallError('INTERNAL', `watch: unexpected frame: ${result.error.message}`, false))
    }
    const m = result.data
    this.#backoff.reset()
    switch (m.type) {
      case 'snapshot':
        for (const [service, list] of Object.entries(m.services)) {
          const target = this.#targets.get(service)
          if (target === undefined) continue
          this.#synced.add(service)
          target.applySnapshot(list, m.revision)
        }
        if (m.revision > this.#revision) this.#revision = m.revision
        return
      case 'change':
        this.#targets.get(m.service)?.applyChange(m)
        if (m.revision > this.#revision) this.#revision = m.revision
        return
      case 'error':
        return this.#report(new RollcallError(m.error.code, `watch: ${m.error.message}`, false))
      default: {
        const never: never = m
        throw new Error(`unknown message ${String(never)}`)
      }
    }
  }

  #startPolling(): void {
    this.#mode = 'polling'
    this.#open = true
    this.#polling = new AbortController()
    const signal = this.#polling.signal
    this.#events.connected?.('polling')
    for (const [service, target] of this.#targets) this.#poll(service, target, signal)
    // Now and then, see whether the socket works again.
    this.#timer = setTimeout(() => {
      if (this.#closed) return
      this.#polling?.abort()
      this.#mode = 'websocket'
      this.#open = false
      this.#refusedUpgrades = 0
      this.#revision = -1
      this.#synced.clear()
      this.#connect()
    }, this.#retryWebSocketMs)
    this.#timer.unref()
  }

  /** A blocking-query loop for one service, until `signal` aborts. */
  #poll(service: string, target: WatchTarget, signal: AbortSignal | undefined): void {
    const backoff = new Backoff({ initialMs: 200, maxMs: 10_000 })
    const loop = async () => {
      let index = -1
      while (signal?.aborted === false && !this.#closed) {
        try {
          const query = index < 0 ? '' : `?index=${index}&wait=${this.#pollWait}s`
          const res = await this.#rest.request<InstancesResponse>(
            'GET',
            `/v1/services/${encodeURIComponent(service)}/instances${query}`,
            undefined,
            { timeoutMs: (this.#pollWait + 10) * 1000, signal },
          )
          backoff.reset()
          if (res.body.revision !== index) {
            index = res.body.revision
            target.applySnapshot(res.body.instances, res.body.revision)
          }
        } catch (err) {
          if (signal?.aborted || this.#closed) return
          this.#report(err instanceof RollcallError ? err : new RollcallError('REGISTRY_UNAVAILABLE', String(err), true))
          await new Promise((r) => setTimeout(r, backoff.next()))
        }
      }
    }
    void loop()
  }

  #report(err: RollcallError): void {
    try {
      this.#events.error?.(err)
    } catch (listenerError) {
      setImmediate(() => {
        throw listenerError
      })
    }
  }
}
