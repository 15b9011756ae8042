import { Endpoint } from '../../client-sdk/endpoint.js'
import type { EndpointInit } from '../../client-sdk/endpoint.js'

/**
 * mulberry32: a small seeded PRNG with uniform output in [0, 1), so statistical tests are
 * reproducible while their bounds stay honest (they hold for any seed, at ~5 sigma).
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A clock that moves only when told to. */
export class TestClock {
  constructor(public t = 1_000_000) {}
  readonly now = (): number => this.t
  advance(ms: number): void {
    this.t += ms
  }
}

/** `n` endpoints `e0..e{n-1}` on 10.0.0.x, with per-index overrides. */
export function makeEndpoints(n: number, overrides: (i: number) => Partial<EndpointInit> = () => ({})): Endpoint[] {
  return Array.from({ length: n }, (_, i) => new Endpoint({ id: `e${i}`, host: `10.0.0.${i + 1}`, port: 8080, ...overrides(i) }))
}

/** How many times each endpoint id came out of `picks` calls. */
export function countPicks(pick: () => Endpoint | undefined, picks: number): Map<string, number> {
  const counts = new Map<string, number>()
  for (let i = 0; i < picks; i++) {
    const e = pick()
    const id = e === undefined ? '(none)' : e.id
    counts.set(id, (counts.get(id) ?? 0) + 1)
  }
  return counts
}

/** Half-width of a 5-sigma interval for a binomial count of `n` draws at probability `p`. */
export function fiveSigma(n: number, p: number): number {
  return 5 * Math.sqrt(n * p * (1 - p))
}
