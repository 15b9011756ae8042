import type { Endpoint } from '../endpoint.js'
import type { Balancer } from './balancer.js'
import { takingTraffic } from './balancer.js'

/**
 * Smooth weighted round-robin, exactly as nginx's `ngx_http_upstream_get_peer`: every pick
 * adds each candidate's weight to its current weight, takes the candidate with the highest
 * current weight (the first one on a tie) and subtracts the total weight from it. Weights
 * 5, 1, 1 give `a a b a c a a`: each candidate's share is exact over a cycle and heavy
 * candidates are interleaved rather than picked in a burst.
 *
 * O(n) per pick over two typed arrays; no allocation. Current weights are carried over by
 * id across `update()`, so a recompute of the candidate set (a breaker change, a pushed
 * update) does not restart the cycle, which would favour the heaviest candidate each time.
 * nginx's `effective_weight` (lowered on failures) is left out: the breakers do that job.
 */
export class WeightedBalancer implements Balancer {
  readonly name = 'weighted' as const
  #endpoints: Endpoint[] = []
  #weights = new Float64Array(0)
  #current = new Float64Array(0)
  #total = 0

  update(endpoints: readonly Endpoint[]): void {
    const list = takingTraffic(endpoints)
    const carried = new Map<string, number>()
    for (let i = 0; i < this.#endpoints.length; i++) {
      carried.set((this.#endpoints[i] as Endpoint).id, this.#current[i] as number)
    }
    const weights = new Float64Array(list.length)
    const current = new Float64Array(list.length)
    let total = 0
    for (let i = 0; i < list.length; i++) {
      const e = list[i] as Endpoint
      weights[i] = e.weight
      current[i] = carried.get(e.id) ?? 0
      total += e.weight
    }
    this.#endpoints = list
    this.#weights = weights
    this.#current = current
    this.#total = total
  }

  pick(): Endpoint | undefined {
    const n = this.#endpoints.length
    if (n === 0) return undefined
    const weights = this.#weights
    const current = this.#current
    let best = 0
    let bestCurrent = -Infinity
    for (let i = 0; i < n; i++) {
      const c = (current[i] as number) + (weights[i] as number)
      current[i] = c
      if (c > bestCurrent) {
        best = i
        bestCurrent = c
      }
    }
    current[best] = bestCurrent - this.#total
    return this.#endpoints[best]
  }
}
