/**
 * The client-side balancers and their factory.
 *
 * @example
 * ```ts
 * const balancer = createBalancer('least-request')
 * balancer.update(endpoints)
 * const ep = balancer.pick()
 * ```
 */
import type { Balancer, BalancerName, Random } from './balancer.js'
import { BALANCER_NAMES } from './balancer.js'
import { LeastRequestBalancer } from './least-request.js'
import { RandomBalancer } from './random.js'
import { RingHashBalancer } from './ring-hash.js'
import type { RingHashOptions } from './ring-hash.js'
import { RoundRobinBalancer } from './round-robin.js'
import { WeightedBalancer } from './weighted.js'
import type { WeightedOptions } from './weighted.js'

export type { Balancer, BalancerName, Random } from './balancer.js'
export { BALANCER_NAMES, takingTraffic } from './balancer.js'
export { LeastRequestBalancer } from './least-request.js'
export { RandomBalancer } from './random.js'
export { RingHashBalancer } from './ring-hash.js'
export type { RingHashOptions } from './ring-hash.js'
export { RoundRobinBalancer } from './round-robin.js'
export { WeightedBalancer } from './weighted.js'
export type { WeightedOptions } from './weighted.js'
export { hashString } from './hash.js'

/** Options of {@link createBalancer}; each balancer reads the ones it needs. */
export interface BalancerOptions {
  /** Random source of random, least-request, the round-robin start and key-less ring-hash picks. */
  random?: Random
  /** Ring-hash only. */
  ringHash?: Omit<RingHashOptions, 'random'>
  /** Weighted only. */
  weighted?: WeightedOptions
}

/** Whether `name` is one of {@link BALANCER_NAMES}. */
export function isBalancerName(name: unknown): name is BalancerName {
  return typeof name === 'string' && (BALANCER_NAMES as readonly string[]).includes(name)
}

/** A new balancer by name. Throws a RangeError naming the valid names for any other name. */
export function createBalancer(name: BalancerName, options: BalancerOptions = {}): Balancer {
  const random = options.random === undefined ? {} : { random: options.random }
  switch (name) {
    case 'round-robin':
      return new RoundRobinBalancer(random)
    case 'random':
      return new RandomBalancer(random)
    case 'weighted':
      return new WeightedBalancer(options.weighted)
    case 'least-request':
      return new LeastRequestBalancer(random)
    case 'ring-hash':
      return new RingHashBalancer({ ...options.ringHash, ...random })
    default: {
      const unknown: never = name
      throw new RangeError(`unknown balancer ${JSON.stringify(unknown)}; one of ${BALANCER_NAMES.join(', ')}`)
    }
  }
}
