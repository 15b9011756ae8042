import type { Endpoint } from '../endpoint.js'
import type { Balancer, Random } from './balancer.js'
import { takingTraffic } from './balancer.js'

/** A uniformly random candidate, ignoring weights (use `weighted` for those), as Envoy's random. */
export class RandomBalancer implements Balancer {
  readonly name = 'random' as const
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
    if (list.length === 0) return undefined
    return list[Math.floor(this.#random() * list.length)]
  }
}
