import type { Endpoint } from '../endpoint.js'
import type { Balancer, Random } from './balancer.js'
import { takingTraffic } from './balancer.js'

/**
 * Power of two choices, as Envoy's least request: sample two distinct candidates at
 * random and take the one with fewer requests in flight. It avoids the herd behaviour of
 * "always the least loaded" (every client sending to the same idle instance) while still
 * steering away from slow, busy instances.
 *
 * Weights are honoured by comparing `(inFlight + 1) / weight` (cross-multiplied, no
 * division), which is plain P2C when weights are equal; ties go to the first sample, which
 * is random. Envoy switches to an EDF scheduler for unequal weights; this keeps one cheap
 * rule for both.
 */
export class LeastRequestBalancer implements Balancer {
  readonly name = 'least-request' as const
  #endpoints: Endpoint[] = []
  readonly #random: Random

  constructor(options: { random?: Random } = {}) {
    this.#random = options.random ?? Math.random
  }

  update(endpoints: readonly Endpoint[]): void {
    this.#endpoints = takingTraffic(endpoints)
  }

  pick(): Endpoint | undefined {
    const list = this.#endpoints
    const n = list.length
    if (n < 2) return list[0]
    const i = Math.floor(this.#random() * n)
    // A second index drawn from the n-1 others, so the two samples are always distinct.
    let j = Math.floor(this.#random() * (n - 1))
    if (j >= i) j++
    const a = list[i] as Endpoint
    const b = list[j] as Endpoint
    return (a.inFlight + 1) * b.weight <= (b.inFlight + 1) * a.weight ? a : b
  }
}
