import type { Endpoint } from '../endpoint.js'
import type { Balancer, Random } from './balancer.js'
import { takingTraffic } from './balancer.js'
import { hashString } from './hash.js'

/** Options of {@link RingHashBalancer}. */
export interface RingHashOptions {
  /** Random source for picks without a key. Default `Math.random`. */
  random?: Random
  /**
   * Points on the ring of an endpoint of average weight; an endpoint gets points in
   * proportion to its weight (at least one). Default 160: the spread of each endpoint's
   * share of keys is about 1/sqrt(160), under 8%.
   */
  vnodes?: number
  /** Most points on the ring, whatever the number of endpoints. Default 2^20 (12 MiB). */
  maxRingSize?: number
}

/** 2^21 entries: the entry index packs into the low 21 bits below a 32-bit hash in a double. */
const INDEX_BITS = 2 ** 21

/**
 * Consistent hashing by a key, as Envoy's ring hash (Karger et al.): every endpoint owns
 * points on a 32-bit ring, placed by hashing `id#n`, and a key goes to the owner of the
 * first point at or after the key's hash. When one of N endpoints leaves, only the keys on
 * its arcs move, about 1/N of them; the others keep their endpoint. Points depend only on
 * ids and weights, never on list order, so every client maps a key to the same instance.
 *
 * `update()` builds the ring (O(P log P) for P points); `pick(key)` hashes the key and
 * searches one slice of a typed array. A pick without a key lands on a random point.
 */
export class RingHashBalancer implements Balancer {
  readonly name = 'ring-hash' as const
  readonly #random: Random
  readonly #vnodes: number
  readonly #maxRingSize: number
  #endpoints: Endpoint[] = []
  /** Hash of each point, ascending. */
  #hashes = new Uint32Array(0)
  /** Index in #endpoints of each point's owner. */
  #owners = new Int32Array(0)
  /**
   * First point of each slice of the ring, slices being the top `32 - #shift` bits of a
   * hash (about one point per slice): a pick binary-searches one slice, not the whole
   * ring, which saves a dozen cache-unfriendly steps on a ring of 16,000 points.
   */
  #slices = new Uint32Array(1)
  #shift = 32

  constructor(options: RingHashOptions = {}) {
    this.#random = options.random ?? Math.random
    this.#vnodes = Math.max(1, Math.floor(options.vnodes ?? 160))
    this.#maxRingSize = Math.min(INDEX_BITS, Math.max(1, Math.floor(options.maxRingSize ?? 2 ** 20)))
  }

  /** Points on the ring now (for tests and metrics). */
  get ringSize(): number {
    return this.#hashes.length
  }

  update(endpoints: readonly Endpoint[]): void {
    // Sorted by id so that the rare hash collision is broken the same way by every client.
    const list = takingTraffic(endpoints).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    let totalWeight = 0
    for (const e of list) totalWeight += e.weight
    const perAverage = Math.max(1, Math.min(this.#vnodes, Math.floor(this.#maxRingSize / Math.max(1, list.length))))
    const counts = list.map((e) => Math.max(1, Math.round((perAverage * e.weight * list.length) / totalWeight)))
    const size = counts.reduce((a, b) => a + b, 0)
    // Each point as one double, hash * 2^21 + point index, so a native numeric sort orders
    // them by hash (then index) without an object per point.
    const packed = new Float64Array(size)
    const ownerOfPoint = new Int32Array(size)
    let p = 0
    for (let i = 0; i < list.length; i++) {
      const id = (list[i] as Endpoint).id
      for (let n = 0; n < (counts[i] as number); n++) {
        packed[p] = hashString(`${id}#${n}`) * INDEX_BITS + p
        ownerOfPoint[p] = i
        p++
      }
    }
    packed.sort()
    const hashes = new Uint32Array(size)
    const owners = new Int32Array(size)
    for (let k = 0; k < size; k++) {
      const v = packed[k] as number
      const point = v % INDEX_BITS
      hashes[k] = (v - point) / INDEX_BITS
      owners[k] = ownerOfPoint[point] as number
    }
    const bits = Math.min(16, Math.max(1, Math.ceil(Math.log2(Math.max(2, size)))))
    const shift = 32 - bits
    const slices = new Uint32Array((1 << bits) + 1)
    let k = 0
    for (let slice = 0; slice <= 1 << bits; slice++) {
      while (k < size && (hashes[k] as number) >>> shift < slice) k++
      slices[slice] = k
    }
    this.#endpoints = list
    this.#hashes = hashes
    this.#owners = owners
    this.#slices = slices
    this.#shift = shift
  }

  pick(key?: string): Endpoint | undefined {
    const hashes = this.#hashes
    const n = hashes.length
    if (n === 0) return undefined
    const h = key === undefined ? Math.floor(this.#random() * 0x100000000) : hashString(key)
    // First point whose hash is >= h: in h's slice, else the first point of a later slice
    // (which slices[s + 1] is); past the last point the ring wraps to the first.
    const slice = h >>> this.#shift
    let lo = this.#slices[slice] as number
    let hi = this.#slices[slice + 1] as number
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((hashes[mid] as number) < h) lo = mid + 1
      else hi = mid
    }
    if (lo === n) lo = 0
    return this.#endpoints[this.#owners[lo] as number]
  }
}
