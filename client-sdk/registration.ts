import type { HeartbeatResult, Instance, InstanceStatus, RegisterInput } from './protocol.js'
import { Backoff } from './backoff.js'
import { ClientClosedError, RegistryApiError, RollcallError } from './errors.js'
import type { RegistryRest } from './rest.js'

/** What {@link RegistryClient.register} takes: the registration body plus service and id. */
export interface RegisterOptions extends RegisterInput {
  service: string
  /** Default: a random UUID, kept for the life of the registration. */
  id?: string
}

/** What a registration can change later with {@link Registration.update}. */
export interface RegistrationUpdate {
  status?: InstanceStatus
  weight?: number
  tags?: string[]
  metadata?: Record<string, string>
}

/** Events of a registration, for logs and metrics. None of them throws into the host. */
export interface RegistrationEvents {
  /** Registered (again): at start, and after the server forgot the instance (404). */
  registered?: (instance: Instance) => void
  /** A heartbeat or registration failed; the registration keeps trying. */
  error?: (err: RollcallError) => void
}

/** A random factor in [0.8, 1): heartbeats of many instances spread out instead of lining up. */
const jitter = (random: () => number) => 0.8 + random() * 0.2

/**
 * One instance this process registered: it heartbeats every ttl/3 with jitter, registers
 * again when the server answers 404 (it restarted on an empty store, or removed the
 * instance), and backs off with jitter while the server cannot be reached. Nothing here
 * throws into the host process: failures go to the `error` event and the loop goes on.
 *
 * @example
 * ```ts
 * const me = await registry.register({ service: 'orders', host: '10.0.0.7', port: 8080, ttlSeconds: 10 })
 * await me.setStatus('draining')
 * await me.deregister()
 * ```
 */
export class Registration {
  readonly service: string
  readonly id: string
  readonly #rest: RegistryRest
  readonly #body: RegisterInput
  readonly #events: RegistrationEvents
  readonly #backoff: Backoff
  readonly #random: () => number
  readonly #onEnd: (r: Registration) => void
  #timer: NodeJS.Timeout | undefined
  #instance: Instance | undefined
  #stopped = false
  #beating: Promise<void> = Promise.resolve()

  /** @internal Made by {@link RegistryClient.register}. */
  constructor(
    rest: RegistryRest,
    options: RegisterOptions,
    id: string,
    events: RegistrationEvents,
    onEnd: (r: Registration) => void,
    random: () => number = Math.random,
  ) {
    const { service, id: _id, ...body } = options
    this.service = service
    this.id = id
    this.#rest = rest
    this.#body = body
    this.#events = events
    this.#onEnd = onEnd
    this.#random = random
    this.#backoff = new Backoff({ initialMs: 200, maxMs: 10_000, random })
  }

  /** The instance as the server last returned it. */
  get instance(): Instance | undefined {
    return this.#instance
  }

  /** Whether {@link deregister} was called (or the client closed). */
  get stopped(): boolean {
    return this.#stopped
  }

  get #path(): string {
    return `/v1/services/${encodeURIComponent(this.service)}/instances/${encodeURIComponent(this.id)}`
  }

  get #intervalMs(): number {
    return ((this.#body.ttlSeconds ?? 30) * 1000) / 3
  }

  /**
   * Registers for the first time. A rejected body (VALIDATION_FAILED, FORBIDDEN...) rejects:
   * that is the caller's bug. An unreachable server is retried with backoff until it
   * answers or the registration is stopped.
   */
  async start(): Promise<Instance> {
    for (;;) {
      try {
        const instance = await this.#register()
        this.#schedule(this.#intervalMs * jitter(this.#random))
        return instance
      } catch (err) {
        if (err instanceof RegistryApiError && !err.retryable) throw err
        if (err instanceof ClientClosedError || this.#stopped) throw err instanceof RollcallError ? err : new ClientClosedError()
        this.#report(err)
        await new Promise((r) => setTimeout(r, this.#backoff.next()))
      }
    }
  }

  /** Sets the instance's status (`draining` before shutdown, `up` again...). */
  setStatus(status: InstanceStatus): Promise<Instance> {
    return this.update({ status })
  }

  /** Changes status, weight, tags or metadata, here and in what a re-registration sends. */
  async update(update: RegistrationUpdate): Promise<Instance> {
    Object.assign(this.#body, update)
    const res = await this.#rest.request<Instance>('PATCH', this.#path, update)
    if (res.status === 404) return this.#register()
    this.#instance = res.body
    return res.body
  }

  /** Stops heartbeating and removes the instance from the registry. A 404 is fine. */
  async deregister(): Promise<void> {
    this.#stop()
    await this.#beating
    await this.#rest.request('DELETE', this.#path)
  }

  /** @internal Stops the loop without a request: the client is closing anyway. */
  stopLocally(): void {
    this.#stop()
  }

  #stop(): void {
    if (this.#stopped) return
    this.#stopped = true
    clearTimeout(this.#timer)
    this.#onEnd(this)
  }

  async #register(): Promise<Instance> {
    const res = await this.#rest.request<Instance>('PUT', this.#path, this.#body)
    this.#instance = res.body
    this.#backoff.reset()
    this.#events.registered?.(res.body)
    return res.body
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return
    this.#timer = setTimeout(() => {
      this.#beating = this.#beat()
    }, delayMs)
    // A registration alone does not keep the process alive; the host's server does.
    this.#timer.unref()
  }

  async #beat(): Promise<void> {
    try {
      const res = await this.#rest.request<HeartbeatResult>('PUT', `${this.#path}/heartbeat`)
      if (this.#stopped) return
      if (res.status === 404) await this.#register()
      this.#backoff.reset()
      this.#schedule(this.#intervalMs * jitter(this.#random))
    } catch (err) {
      if (this.#stopped) return
      this.#report(err)
      // Back off, but never wait longer than a heartbeat interval: the lease is running.
      this.#schedule(Math.min(this.#backoff.next(), this.#intervalMs))
    }
  }

  #report(err: unknown): void {
    const e = err instanceof RollcallError ? err : new RollcallError('REGISTRY_UNAVAILABLE', String(err), true, { cause: err })
    try {
      this.#events.error?.(e)
    } catch (listenerError) {
      setImmediate(() => {
        throw listenerError
      })
    }
  }
}
