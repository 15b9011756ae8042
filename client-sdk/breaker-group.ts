import type { BreakerChange, BreakerOptions, EjectionGate } from './breaker.js'
import { Breaker, resolveBreakerOptions } from './breaker.js'

/** What `onChange(listener)` returns: call `dispose()` to stop listening. */
export interface Disposable {
  dispose(): void
}

/** Options of a {@link BreakerGroup}: those of its breakers, plus the group's limit. */
export interface BreakerGroupOptions extends BreakerOptions {
  /** The clock of every breaker in the group. */
  now: () => number
  /**
   * Most instances ejected at once, as a percentage of the group's instances. Default 50.
   * An ejection that would pass it is not made (Envoy ejects at least one host whatever
   * the value; here a service of one instance is never ejected with the default, which
   * the panic threshold would undo anyway).
   */
  maxEjectionPercent?: number
}

/**
 * The breakers of one service's instances: one clock and one set of options, and the
 * max-ejection-percent limit, which a breaker consults (through its {@link EjectionGate})
 * before it ejects. Half-open breakers reached from an ejection still count as ejected
 * until their probe closes them.
 *
 * @example
 * ```ts
 * const breakers = new BreakerGroup({ now: Date.now, maxEjectionPercent: 50 })
 * const b = breakers.add('o-1')
 * breakers.onChange((c) => log.info(c, 'breaker changed'))
 * ```
 */
export class BreakerGroup implements Iterable<Breaker> {
  readonly #options: BreakerOptions & { now: () => number }
  readonly #maxEjectionPercent: number
  readonly #breakers = new Map<string, Breaker>()
  #ejected = 0
  #listeners: Array<(change: BreakerChange) => void> = []
  readonly #gate: EjectionGate = {
    tryEject: () => {
      if ((this.#ejected + 1) * 100 > this.#maxEjectionPercent * this.#breakers.size) return false
      this.#ejected++
      return true
    },
    release: () => {
      this.#ejected--
    },
    changed: (change) => this.#emit(change),
  }

  constructor(options: BreakerGroupOptions) {
    const { maxEjectionPercent = 50, ...rest } = options
    if (!(maxEjectionPercent >= 0 && maxEjectionPercent <= 100)) {
      throw new RangeError(`maxEjectionPercent must be within 0..100, got ${String(maxEjectionPercent)}`)
    }
    resolveBreakerOptions(rest) // fail at construction, not at the first instance
    this.#options = rest
    this.#maxEjectionPercent = maxEjectionPercent
  }

  /** The breaker of `id`, made (closed) if there is none yet. */
  add(id: string): Breaker {
    let b = this.#breakers.get(id)
    if (b === undefined) {
      b = new Breaker(id, this.#options, this.#gate)
      this.#breakers.set(id, b)
    }
    return b
  }

  get(id: string): Breaker | undefined {
    return this.#breakers.get(id)
  }

  /** Forgets `id`'s breaker (the instance is gone), giving back its ejection slot. */
  delete(id: string): boolean {
    const b = this.#breakers.get(id)
    if (b === undefined) return false
    b.dispose()
    this.#breakers.delete(id)
    return true
  }

  /** Instances in the group. */
  get size(): number {
    return this.#breakers.size
  }

  /** Breakers holding an ejection slot: open, or half-open after an ejection. */
  get ejectedCount(): number {
    // Settle time-driven transitions first (a probe timing out gives its slot back).
    for (const b of this.#breakers.values()) void b.state
    return this.#ejected
  }

  [Symbol.iterator](): Iterator<Breaker> {
    return this.#breakers.values()
  }

  /** Calls `listener` after every state change of any breaker in the group. */
  onChange(listener: (change: BreakerChange) => void): Disposable {
    this.#listeners = [...this.#listeners, listener]
    return {
      dispose: () => {
        this.#listeners = this.#listeners.filter((l) => l !== listener)
      },
    }
  }

  #emit(change: BreakerChange): void {
    // The array is replaced, never mutated, on (un)subscribe: iterating it is safe.
    const listeners = this.#listeners
    for (let i = 0; i < listeners.length; i++) {
      try {
        ;(listeners[i] as (c: BreakerChange) => void)(change)
      } catch (err) {
        // A throwing listener must not break the breaker or the other listeners; the error
        // still surfaces, as an uncaught exception, as etcd3 does with user handlers.
        queueMicrotask(() => {
          throw err
        })
      }
    }
  }
}
