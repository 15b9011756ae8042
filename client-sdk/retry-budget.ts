/** Options of a {@link RetryBudget}; defaults are Finagle's. */
export interface RetryBudgetOptions {
  /** The clock. */
  now: () => number
  /** Retries allowed as a share of the requests in the window, 0..1. Default 0.2. */
  ratio?: number
  /**
   * Retries allowed per second whatever the traffic, so a quiet client can still retry.
   * Averaged over the window: the window grants `minPerSecond x windowMs / 1000`. Default 10.
   */
  minPerSecond?: number
  /** Length of the sliding window. Default 10 s. */
  windowMs?: number
  /** Buckets the window slides by. Default 10 (one per second with the default window). */
  buckets?: number
}

/**
 * A retry budget, as Finagle's RetryBudget and Envoy's retry_budget: retries may add at
 * most `ratio` of the recent requests (plus a small floor), so that when an upstream is
 * failing, retries cannot multiply the load on it. Counts live in a ring of time buckets
 * (typed arrays, nothing allocated per call) sliding with the injected clock.
 *
 * @example
 * ```ts
 * const budget = new RetryBudget({ now: Date.now })
 * budget.recordRequest()               // every first attempt
 * if (!budget.tryRetry()) throw new RetryBudgetExhaustedError({ cause: lastError })
 * ```
 */
export class RetryBudget {
  readonly #now: () => number
  readonly #ratio: number
  readonly #floor: number
  readonly #bucketMs: number
  readonly #requests: Float64Array
  readonly #retries: Float64Array
  /** Absolute number (now / bucketMs) of the bucket written last. */
  #head = -Infinity
  #requestTotal = 0
  #retryTotal = 0

  constructor(options: RetryBudgetOptions) {
    const ratio = options.ratio ?? 0.2
    const minPerSecond = options.minPerSecond ?? 10
    const windowMs = options.windowMs ?? 10_000
    const buckets = Math.floor(options.buckets ?? 10)
    if (!(ratio >= 0 && ratio <= 1)) throw new RangeError(`retry budget ratio must be within 0..1, got ${ratio}`)
    if (!(minPerSecond >= 0)) throw new RangeError(`retry budget minPerSecond must be >= 0, got ${minPerSecond}`)
    if (!(windowMs > 0) || !(buckets >= 1)) throw new RangeError('retry budget windowMs and buckets must be positive')
    this.#now = options.now
    this.#ratio = ratio
    this.#floor = (minPerSecond * windowMs) / 1000
    this.#bucketMs = windowMs / buckets
    this.#requests = new Float64Array(buckets)
    this.#retries = new Float64Array(buckets)
  }

  /** Counts one request (a first attempt, not a retry). */
  recordRequest(): void {
    const i = this.#slide()
    this.#requests[i] = (this.#requests[i] as number) + 1
    this.#requestTotal++
  }

  /** Takes one retry from the budget: true (and counted) if the budget has one left. */
  tryRetry(): boolean {
    const i = this.#slide()
    if (this.#retryTotal + 1 > this.#ratio * this.#requestTotal + this.#floor) return false
    this.#retries[i] = (this.#retries[i] as number) + 1
    this.#retryTotal++
    return true
  }

  /** Retries the budget would allow now. */
  get available(): number {
    this.#slide()
    return Math.max(0, Math.floor(this.#ratio * this.#requestTotal + this.#floor - this.#retryTotal))
  }

  /** Requests counted in the window now. */
  get requests(): number {
    this.#slide()
    return this.#requestTotal
  }

  /** Retries counted in the window now. */
  get retries(): number {
    this.#slide()
    return this.#retryTotal
  }

  /** Moves the window to now, emptying the buckets that fell out of it; returns the current bucket. */
  #slide(): number {
    const n = this.#requests.length
    const bucket = Math.floor(this.#now() / this.#bucketMs)
    // A clock that steps back keeps writing into the newest bucket rather than corrupt the ring.
    if (bucket > this.#head) {
      const steps = Math.min(n, bucket - this.#head)
      for (let k = 1; k <= steps; k++) {
        const i = (((bucket - steps + k) % n) + n) % n
        this.#requestTotal -= this.#requests[i] as number
        this.#retryTotal -= this.#retries[i] as number
        this.#requests[i] = 0
        this.#retries[i] = 0
      }
      this.#head = bucket
    }
    return ((this.#head % n) + n) % n
  }
}
