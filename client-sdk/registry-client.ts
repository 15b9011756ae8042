import { randomUUID } from 'node:crypto'
import type { Instance } from './protocol.js'
import { RegisterBody } from './protocol.js'
import { ClientClosedError, RegistryApiError, RollcallError } from './errors.js'
import type { RegisterOptions, RegistrationEvents } from './registration.js'
import { Registration } from './registration.js'
import { RegistryRest } from './rest.js'
import type { ServiceOptions } from './service.js'
import { ServiceClient } from './service.js'
import type { WatchConnectionOptions } from './watch-connection.js'
import { WatchConnection } from './watch-connection.js'

/** Options of a {@link RegistryClient}. */
export interface RegistryClientOptions {
  /** The server, or several nodes of a cluster to fail over between. */
  url: string | readonly string[]
  /** A bearer token for REST and the watch socket. */
  token?: string
  /** Timeout of one REST request. Default 10 s. */
  requestTimeoutMs?: number
  /** Errors the client recovers from by itself (heartbeats, reconnects): for logs. */
  onError?: (err: RollcallError) => void
  /** The watch's fallback and polling settings. */
  watch?: WatchConnectionOptions
  /** The clock of breakers and retry budgets. Default Date.now. */
  now?: () => number
}

/** Options of {@link RegistryClient.drainOnSignal}. */
export interface DrainOptions {
  /** Default SIGTERM and SIGINT. */
  signals?: readonly NodeJS.Signals[]
  /** How long instances stay `draining` (still registered, taking no new traffic) before they deregister. Default 5 s. */
  drainMs?: number
  /** Called once everything is deregistered. Default: end the process as the signal would have. */
  onDrained?: (signal: NodeJS.Signals) => void
}

/**
 * The rollcall client: registers this process's instances and keeps them alive, and
 * watches services into local caches over one shared WebSocket.
 *
 * @example
 * ```ts
 * import { RegistryClient } from 'rollcall/client'
 * const registry = new RegistryClient({ url: 'http://127.0.0.1:7733' })
 * const me = await registry.register({ service: 'orders', host: '10.0.0.7', port: 8080, ttlSeconds: 10 })
 * const billing = registry.service('billing', { balancer: 'least-request' })
 * await billing.ready()
 * const res = await billing.fetch('/v1/invoices')
 * await registry.close()     // deregisters and closes the socket
 * ```
 */
export class RegistryClient {
  readonly rest: RegistryRest
  readonly #watch: WatchConnection
  readonly #services = new Map<string, ServiceClient>()
  readonly #registrations = new Set<Registration>()
  readonly #onError: ((err: RollcallError) => void) | undefined
  readonly #now: () => number
  #closed = false

  constructor(options: RegistryClientOptions) {
    const urls = typeof options.url === 'string' ? [options.url] : options.url
    this.rest = new RegistryRest({
      urls,
      token: options.token,
      ...(options.requestTimeoutMs !== undefined && { timeoutMs: options.requestTimeoutMs }),
    })
    this.#onError = options.onError
    this.#now = options.now ?? Date.now
    this.#watch = new WatchConnection(this.rest, { error: (err) => this.#report(err) }, options.watch)
  }

  /** The watch connection's state: `websocket` or `polling`, and whether it is up. */
  get watchState(): { mode: 'websocket' | 'polling'; connected: boolean; revision: number } {
    return { mode: this.#watch.mode, connected: this.#watch.connected, revision: this.#watch.revision }
  }

  /**
   * Registers an instance and keeps its lease alive until {@link Registration.deregister}
   * or {@link close}. Rejects at once for a body the server would refuse; waits (retrying
   * with backoff) while the server cannot be reached.
   */
  async register(options: RegisterOptions, events: RegistrationEvents = {}): Promise<Registration> {
    if (this.#closed) throw new ClientClosedError()
    const { service, id, ...body } = options
    // Refuse a bad body here, with the field named, rather than retry it forever.
    const checked = RegisterBody.safeParse(body)
    if (!checked.success) {
      const issue = checked.error.issues[0]
      throw new RegistryApiError(400, 'VALIDATION_FAILED', `${issue?.path.join('.') || 'body'}: ${issue?.message}`)
    }
    const registration = new Registration(
      this.rest,
      options,
      id ?? randomUUID(),
      {
        ...events,
        error: (err) => {
          events.error?.(err)
          this.#report(err)
        },
      },
      (r) => this.#registrations.delete(r),
    )
    this.#registrations.add(registration)
    try {
      await registration.start()
    } catch (err) {
      registration.stopLocally()
      throw err
    }
    return registration
  }

  /** The cached view of `service`, watched over the shared socket. Same name, same object. */
  service(name: string, options: ServiceOptions = {}): ServiceClient {
    let s = this.#services.get(name)
    if (s !== undefined) return s
    if (this.#closed) throw new ClientClosedError()
    s = new ServiceClient(name, options, this.#now)
    this.#services.set(name, s)
    this.#watch.watch(name, s)
    return s
  }

  /** Sets every registration of this client to `draining`. */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.#registrations].map((r) => r.setStatus('draining')))
  }

  /**
   * Opt-in: on SIGTERM/SIGINT, set every instance `draining`, wait `drainMs` so callers'
   * caches move away, deregister, close, then end the process as the signal would have
   * (or call `onDrained`). Returns a function that removes the handlers.
   */
  drainOnSignal(options: DrainOptions = {}): () => void {
    const signals = options.signals ?? ['SIGTERM', 'SIGINT']
    const drainMs = options.drainMs ?? 5000
    let started = false
    const handler = (signal: NodeJS.Signals) => {
      if (started) return
      started = true
      void (async () => {
        await this.drain()
        await new Promise((r) => setTimeout(r, drainMs))
        await this.close()
        remove()
        if (options.onDrained !== undefined) options.onDrained(signal)
        else process.kill(process.pid, signal)
      })()
    }
    const remove = () => {
      for (const s of signals) process.off(s, handler)
    }
    for (const s of signals) process.on(s, handler)
    return remove
  }

  /** Deregisters every instance this client registered, closes the socket, stops everything. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await Promise.allSettled([...this.#registrations].map((r) => r.deregister()))
    this.#watch.close()
    this.rest.close()
  }

  #report(err: RollcallError): void {
    if (this.#onError === undefined) return
    try {
      this.#onError(err)
    } catch (listenerError) {
      setImmediate(() => {
        throw listenerError
      })
    }
  }
}

export type { Instance }
