import type { Endpoint } from '../endpoint.js'

/** A source of uniform numbers in [0, 1), injected so tests can seed it. Default `Math.random`. */
export type Random = () => number

/** The balancers the SDK ships, by the name an options object uses. */
export const BALANCER_NAMES = ['round-robin', 'random', 'weighted', 'least-request', 'ring-hash'] as const
export type BalancerName = (typeof BALANCER_NAMES)[number]

/**
 * Chooses one endpoint per request from a candidate set.
 *
 * `update()` is called when the candidate set changes (the pick set decides which
 * endpoints are candidates: routable, not ejected, in the preferred zone) and does all the
 * precomputation; `pick()` is called per request, is synchronous and allocates nothing.
 * Endpoints of weight 0 (or less) are never picked, whatever the balancer.
 *
 * A balancer keeps references to the endpoints it was given and reads their live fields
 * where it balances on them (`inFlight` for least-request); a weight change needs an
 * `update()` to take effect.
 */
export interface Balancer {
  readonly name: BalancerName
  /** Replaces the candidate set. The array is not kept; the endpoints are. */
  update(endpoints: readonly Endpoint[]): void
  /**
   * One endpoint, or undefined when there is no candidate. `key` is the affinity key of
   * ring-hash (a user id, a cache key); the other balancers ignore it.
   */
  pick(key?: string): Endpoint | undefined
}

/** The endpoints that may take new traffic: weight above 0. A fresh array. */
export function takingTraffic(endpoints: readonly Endpoint[]): Endpoint[] {
  const out: Endpoint[] = []
  for (const e of endpoints) if (e.weight > 0) out.push(e)
  return out
}
