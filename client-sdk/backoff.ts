import type { Random } from './balancers/balancer.js'

/** Options of a {@link Backoff}. */
export interface BackoffOptions {
  /** Ceiling of the first delay. Default 100 ms. */
  initialMs?: number
  /** Cap of the ceiling. Default 30 s. */
  maxMs?: number
  /** Growth of the ceiling per attempt. Default 2. */
  multiplier?: number
  /** Random source, injected so tests can seed it. Default `Math.random`. */
  random?: Random
}

/**
 * Capped exponential backoff with full jitter (AWS's "Exponential Backoff And Jitter"):
 * the n-th delay is uniform in [0, min(maxMs, initialMs x multiplier^n)). Full jitter
 * spreads reconnecting clients over the whole interval, so a registry coming back is not
 * hit by all of them at once. `reset()` on the first good response, as etcd3's watcher
 * does. Pure: it computes delays, the caller sets the timer.
 *
 * @example
 * ```ts
 * const backoff = new Backoff({ initialMs: 200, maxMs: 10_000 })
 * socket.on('close', () => setTimeout(connect, backoff.next()))
 * socket.on('message', () => backoff.reset())
 * ```
 */
export class Backoff {
  readonly #initialMs: number
  readonly #maxMs: number
  readonly #multiplier: number
  readonly #random: Random
  #attempt = 0

  constructor(options: BackoffOptions = {}) {
    this.#initialMs = options.initialMs ?? 100
    this.#maxMs = options.maxMs ?? 30_000
    this.#multiplier = options.multiplier ?? 2
    this.#random = options.random ?? Math.random
    if (!(this.#initialMs > 0) || !(this.#maxMs >= this.#initialMs) || !(this.#multiplier >= 1)) {
      throw new RangeError('backoff needs initialMs > 0, maxMs >= initialMs and multiplier >= 1')
    }
  }

  /** Attempts since the last reset. */
  get attempt(): number {
    return this.#attempt
  }

  /** The ceiling of the next delay. */
  get ceiling(): number {
    // Math.min first keeps the power from growing to Infinity after many attempts.
    return Math.min(this.#maxMs, this.#initialMs * this.#multiplier ** Math.min(this.#attempt, 1024))
  }

  /** The next delay in whole milliseconds, in [0, ceiling), and counts an attempt. */
  next(): number {
    const delay = Math.floor(this.#random() * this.ceiling)
    this.#attempt++
    return delay
  }

  /** Back to the first, shortest delay: call it on success. */
  reset(): void {
    this.#attempt = 0
  }
}
