import type { BalancerName } from './balancers/index.js'
import type { BreakerOptions } from './breaker.js'
import type { Endpoint } from './endpoint.js'
import {
  ConnectionFailedError,
  RequestTimeoutError,
  RetryBudgetExhaustedError,
  isRetryableStatus,
} from './errors.js'
import { PickSet } from './pick-set.js'
import type { ChangeMessage, Instance } from './protocol.js'
import { isRoutable } from './protocol.js'
import { RetryBudget } from './retry-budget.js'
import type { RetryBudgetOptions } from './retry-budget.js'
import type { WatchTarget } from './watch-connection.js'

/** Options of {@link RegistryClient.service}; defaults next to each. */
export interface ServiceOptions {
  /** Default `round-robin`. */
  balancer?: BalancerName
  /** The caller's zone: its instances are preferred while it has enough routable ones. */
  zone?: string
  /** Fewest routable instances the zone needs to be preferred. Default 1. */
  zoneMinInstances?: number
  /** Panic threshold, 0..1: below this share routable, balance over all. Default 0.5. */
  panicThreshold?: number
  /** Breaker settings and max-ejection-percent (default 50). */
  breakers?: BreakerOptions & { maxEjectionPercent?: number }
  /** Timeout of one attempt of {@link ServiceClient.fetch}. Default 10 s. */
  timeoutMs?: number
  /** Most attempts of one fetch, the first included. Default 3. */
  maxAttempts?: number
  /** The retry budget: retries at most `ratio` (0.2) of recent requests. */
  retryBudget?: Omit<RetryBudgetOptions, 'now'>
  /** Methods retried on another instance. Default GET, HEAD, PUT, DELETE, OPTIONS. */
  retryMethods?: readonly string[]
}

/** What {@link ServiceClient.onChange} listeners get. */
export interface ServiceChange {
  service: string
  /** `snapshot` when the whole state was replaced, else the change's op. */
  kind: 'snapshot' | 'upsert' | 'delete'
  revision: number
  instance?: Instance
}

/** Options of one {@link ServiceClient.fetch}. */
export interface ServiceFetchInit extends RequestInit {
  /** Ring-hash key: the same key goes to the same instance. */
  key?: string
  /** Overrides the service's attempt timeout. */
  timeoutMs?: number
}

const DEFAULT_RETRY_METHODS = ['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS']

/** Errors whose request never reached the instance: retried whatever the method. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH'])

function causeCode(err: unknown): string | undefined {
  const cause = (err as { cause?: { code?: string } }).cause
  return cause?.code
}

/**
 * One watched service: a local cache fed by the watch, the balancer and breakers over it,
 * and `fetch` that picks, times out, records outcomes and retries within a budget. While
 * the server is unreachable it keeps serving the last known state.
 *
 * @example
 * ```ts
 * const orders = registry.service('orders', { balancer: 'least-request', zone: 'eu-1a' })
 * await orders.ready()
 * const inst = orders.pick()                       // synchronous, from the cache
 * const res = await orders.fetch('/v1/items')      // picks, retries GETs elsewhere
 * ```
 */
export class ServiceClient implements WatchTarget {
  readonly name: string
  readonly set: PickSet
  readonly #now: () => number
  readonly #timeoutMs: number
  readonly #maxAttempts: number
  readonly #budget: RetryBudget
  readonly #retryMethods: Set<string>
  readonly #listeners = new Set<(change: ServiceChange) => void>()
  readonly #ready: Promise<void>
  #markReady!: () => void
  #isReady = false
  #revision = -1

  /** @internal Made by {@link RegistryClient.service}. */
  constructor(name: string, options: ServiceOptions, now: () => number = Date.now) {
    this.name = name
    this.#now = now
    this.set = new PickSet({
      service: name,
      now,
      balancer: options.balancer ?? 'round-robin',
      ...(options.zone !== undefined && { zone: options.zone }),
      ...(options.zoneMinInstances !== undefined && { zoneMinInstances: options.zoneMinInstances }),
      ...(options.panicThreshold !== undefined && { panicThreshold: options.panicThreshold }),
      ...(options.breakers !== undefined && { breakers: options.breakers }),
    })
    this.#timeoutMs = options.timeoutMs ?? 10_000
    this.#maxAttempts = Math.max(1, options.maxAttempts ?? 3)
    this.#budget = new RetryBudget({ now, ...options.retryBudget })
    this.#retryMethods = new Set((options.retryMethods ?? DEFAULT_RETRY_METHODS).map((m) => m.toUpperCase()))
    this.#ready = new Promise((resolve) => {
      this.#markReady = resolve
    })
  }

  /** Resolves once the first snapshot is in the cache. */
  ready(): Promise<void> {
    return this.#ready
  }

  /** Whether the first snapshot arrived. */
  get isReady(): boolean {
    return this.#isReady
  }

  /** Revision of the last snapshot or change applied. */
  get revision(): number {
    return this.#revision
  }

  /** The routable instances (status up, health passing), as last pushed by the server. */
  instances(): Instance[] {
    const out: Instance[] = []
    for (const e of this.set.all()) if (e.instance !== undefined && isRoutable(e.instance)) out.push(e.instance)
    return out
  }

  /** Every known instance, whatever its state. */
  all(): Instance[] {
    const out: Instance[] = []
    for (const e of this.set.all()) if (e.instance !== undefined) out.push(e.instance)
    return out
  }

  /**
   * An instance for the next request: synchronous, from the cache, allocation-free on the
   * common path. Throws {@link NoInstanceAvailableError} when none is routable.
   */
  pick(key?: string): Endpoint {
    return this.set.pickOrThrow(key)
  }

  /** Listens to every change of this service's cache. Returns a function that stops it. */
  onChange(listener: (change: ServiceChange) => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /** @internal */
  applySnapshot(instances: readonly Instance[], revision: number): void {
    this.set.replaceAll(instances)
    this.#revision = revision
    this.#emit({ service: this.name, kind: 'snapshot', revision })
    if (!this.#isReady) {
      this.#isReady = true
      this.#markReady()
    }
  }

  /** @internal */
  applyChange(change: ChangeMessage): void {
    if (change.op === 'delete') this.set.remove(change.instance.id)
    else this.set.upsert(change.instance)
    this.#revision = change.revision
    this.#emit({ service: this.name, kind: change.op, revision: change.revision, instance: change.instance })
  }

  /**
   * Sends a request to an instance of this service: picks one, applies the timeout,
   * records the outcome in that instance's breaker, and retries idempotent requests (and
   * any request that never reached an instance) on another instance while attempts and
   * the retry budget allow. Resolves with the Response of the last attempt, whatever its
   * status; rejects with a typed error ({@link RequestTimeoutError},
   * {@link ConnectionFailedError}, {@link NoInstanceAvailableError},
   * {@link RetryBudgetExhaustedError}) saying which instance and why.
   *
   * A body must be reusable (a string, a Buffer, URLSearchParams...) to be retried.
   */
  async fetch(path: string, init: ServiceFetchInit = {}): Promise<Response> {
    const { key, timeoutMs = this.#timeoutMs, ...request } = init
    const method = (request.method ?? 'GET').toUpperCase()
    const idempotent = this.#retryMethods.has(method)
    this.#budget.recordRequest()
    let tried: Endpoint | undefined
    for (let attempt = 1; ; attempt++) {
      const ep = this.#pickOther(tried, key)
      tried = ep
      const startedAt = this.#now()
      const signals = [AbortSignal.timeout(timeoutMs)]
      if (request.signal) signals.push(request.signal)
      const signal = AbortSignal.any(signals)
      ep.inFlight++
      let retryable = false
      try {
        const res = await fetch(ep.origin + path, { ...request, signal })
        if (!isRetryableStatus(res.status)) {
          this.set.recordSuccess(ep, startedAt)
          return res
        }
        // A 429 is an instance shedding load, not failing: as Envoy's consecutive-5xx, only
        // 5xx count against its breaker. Both are retried.
        if (res.status >= 500) this.set.recordFailure(ep, startedAt)
        else this.set.recordSuccess(ep, startedAt)
        retryable = idempotent
        // Out of attempts or budget: the caller gets the last answer as it is.
        if (!retryable || attempt >= this.#maxAttempts || !this.#budget.tryRetry()) return res
        await res.body?.cancel().catch(() => undefined)
      } catch (err) {
        if (request.signal?.aborted) throw err
        this.set.recordFailure(ep, startedAt)
        const timedOut = (err as Error).name === 'TimeoutError'
        const lastError = timedOut
          ? new RequestTimeoutError(timeoutMs, { instance: ep, cause: err })
          : new ConnectionFailedError(`cannot reach the instance: ${causeCode(err) ?? (err as Error).message}`, {
              instance: ep,
              cause: err,
            })
        retryable = idempotent || NOT_SENT.has(causeCode(err) ?? '')
        if (!retryable || attempt >= this.#maxAttempts) throw lastError
        if (!this.#budget.tryRetry()) throw new RetryBudgetExhaustedError({ instance: ep, cause: lastError })
      } finally {
        ep.inFlight--
      }
    }
  }

  /** A pick other than `tried` when there is one (a few tries: balancers rotate). */
  #pickOther(tried: Endpoint | undefined, key: string | undefined): Endpoint {
    let ep = this.set.pickOrThrow(key)
    for (let i = 0; tried !== undefined && ep === tried && i < 4; i++) ep = this.set.pickOrThrow(i < 2 ? key : undefined)
    return ep
  }

  #emit(change: ServiceChange): void {
    for (const listener of this.#listeners) {
      try {
        listener(change)
      } catch (err) {
        setImmediate(() => {
          throw err
        })
      }
    }
  }
}
