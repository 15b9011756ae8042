import type { Endpoint } from '../endpoint.js'
import type { Balancer } from './balancer.js'
import { takingTraffic } from './balancer.js'

/** Options of {@link WeightedBalancer}. */
export interface WeightedOptions {
  /**
   * Most work (cycle length x candidates) spent on precomputing a cycle at `update()`.
   * Above it, picks run nginx's O(n) loop instead. Default 2,000,000 (a millisecond or two).
   */
  maxPrecomputeWork?: number
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b]
  return a
}

/**
 * One step of nginx's smooth weighted round-robin over `current` (mutated): add each
 * weight to its current weight, take the highest (the first on a tie), subtract the total.
 */
function step(weights: Float64Array, current: Float64Array, total: number): number {
  let best = 0
  let bestCurrent = -Infinity
  for (let i = 0; i < weights.length; i++) {
    const c = (current[i] as number) + (weights[i] as number)
    current[i] = c
    if (c > bestCurrent) {
      best = i
      bestCurrent = c
    }
  }
  current[best] = bestCurrent - total
  return best
}

/**
 * Smooth weighted round-robin, exactly as nginx's `ngx_http_upstream_get_peer`: every pick
 * adds each candidate's weight to its current weight, takes the candidate with the highest
 * current weight (the first one on a tie) and subtracts the total weight from it. Weights
 * 5, 1, 1 give `a a b a c a a`: each candidate's share is exact over a cycle and heavy
 * candidates are interleaved rather than picked in a burst.
 *
 * nginx does that O(n) loop per pick. Since the sequence from the start state repeats
 * every (total weight / gcd of the weights) picks, `update()` precomputes one cycle when
 * that is cheap (always, for equal weights: the cycle is n long), and a pick is then one
 * array read. Larger cycles fall back to nginx's loop per pick.
 *
 * An `update()` keeps the position in the cycle (or, without one, the current weights by
 * id) rather than go back to the start, so a recompute of the candidate set (a breaker
 * change, a pushed update) neither repeats the sequence's beginning, which favours the
 * heaviest candidate, nor breaks the sequence when the candidates are unchanged. nginx's `effective_weight` (lowered on failures) is left
 * out: the breakers do that job.
 */
export class WeightedBalancer implements Balancer {
  readonly name = 'weighted' as const
  readonly #maxWork: number
  #endpoints: Endpoint[] = []
  /** One precomputed cycle of indexes into #endpoints, or empty when too long to precompute. */
  #cycle = new Int32Array(0)
  /** Picks made so far: the position in the cycle. */
  #position = 0
  // The live algorithm's state, used when there is no precomputed cycle.
  #weights = new Float64Array(0)
  #current = new Float64Array(0)
  #total = 0

  constructor(options: WeightedOptions = {}) {
    this.#maxWork = options.maxPrecomputeWork ?? 2_000_000
  }

  update(endpoints: readonly Endpoint[]): void {
    const list = takingTraffic(endpoints)
    const n = list.length
    const weights = new Float64Array(n)
    let total = 0
    let divisor = 0
    for (let i = 0; i < n; i++) {
      const w = (list[i] as Endpoint).weight
      weights[i] = w
      total += w
      // Only integer weights (all that the protocol allows) have a usable gcd.
      divisor = Number.isInteger(w) && divisor >= 0 ? gcd(divisor, w) : -1
    }
    const cycleLength = divisor > 0 ? total / divisor : Infinity
    let cycle = new Int32Array(0)
    if (n > 0 && cycleLength * n <= this.#maxWork) {
      cycle = new Int32Array(cycleLength)
      const current = new Float64Array(n)
      for (let k = 0; k < cycleLength; k++) cycle[k] = step(weights, current, total)
    }
    // The live state is carried over by id, for the same reason as the position.
    const carried = new Map<string, number>()
    for (let i = 0; i < this.#endpoints.length; i++) {
      carried.set((this.#endpoints[i] as Endpoint).id, this.#current[i] as number)
    }
    const current = new Float64Array(n)
    for (let i = 0; i < n; i++) current[i] = carried.get((list[i] as Endpoint).id) ?? 0
    this.#endpoints = list
    this.#cycle = cycle
    this.#weights = weights
    this.#current = current
    this.#total = total
    if (cycle.length > 0) this.#position %= cycle.length
  }

  pick(): Endpoint | undefined {
    const cycle = this.#cycle
    if (cycle.length > 0) {
      if (this.#position >= cycle.length) this.#position = 0
      return this.#endpoints[cycle[this.#position++] as number]
    }
    if (this.#endpoints.length === 0) return undefined
    return this.#endpoints[step(this.#weights, this.#current, this.#total)]
  }
}
