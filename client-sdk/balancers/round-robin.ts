import type { Endpoint } from '../endpoint.js'
import type { Balancer, Random } from './balancer.js'
import { takingTraffic } from './balancer.js'

/**
 * Each candidate in turn, ignoring weights (use `weighted` for those). The cursor starts
 * at a random place, so clients started together do not all send their first request to
 * the same instance (as Envoy's round robin does), and it survives `update()`, so a
 * recompute of the candidate set does not send the next request to the first candidate.
 */
export class RoundRobinBalancer implements Balancer {
  readonly name = 'round-robin' as const
  #endpoints: Endpoint[] = []
  #next: number

  constructor(options: { random?: Random } = {}) {
    this.#next = Math.floor((options.random ?? Math.random)() * 0x10000)
  }

  update(endpoints: readonly Endpoint[]): void {
    this.#endpoints = takingTraffic(endpoints)
  }

  pick(): Endpoint | undefined {
    const list = this.#endpoints
    const n = list.length
    if (n === 0) return undefined
    if (this.#next >= n) this.#next %= n
    return list[this.#next++]
  }
}
