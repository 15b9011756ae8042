import t from 'tap'
import { RingHashBalancer, createBalancer, hashString } from '../../client-sdk/balancers/index.js'
import type { Endpoint } from '../../client-sdk/endpoint.js'
import { countPicks, makeEndpoints, seededRandom } from './helpers.js'

const KEYS = Array.from({ length: 100_000 }, (_, i) => `user-${i}`)

function owners(b: { pick(key?: string): Endpoint | undefined }): string[] {
  return KEYS.map((k) => b.pick(k)!.id)
}

t.test('the hash is stable and spreads similar strings', async (t) => {
  // Pinned: every client, in every version, must place keys the same way.
  t.equal(hashString(''), hashString(''))
  t.equal(hashString('user-1'), 0x778f8aec)
  t.not(hashString('o-1#0'), hashString('o-1#1'))
  // The top bit of hashes of 10,000 similar strings is set about half the time.
  let high = 0
  for (let i = 0; i < 10_000; i++) if (hashString(`o-${i}`) >= 0x80000000) high++
  t.ok(high > 4750 && high < 5250, `top bit set in ${high} of 10000`)
})

t.test('the same key goes to the same endpoint, in any client, whatever the list order', async (t) => {
  const eps = makeEndpoints(10)
  const a = createBalancer('ring-hash')
  a.update(eps)
  const b = createBalancer('ring-hash')
  b.update([...eps].reverse())
  let unstable = 0
  let differ = 0
  for (let i = 0; i < 10_000; i++) {
    const key = KEYS[i]!
    const first = a.pick(key)!
    for (let n = 0; n < 3; n++) if (a.pick(key) !== first) unstable++
    if (b.pick(key)!.id !== first.id) differ++
  }
  t.equal(unstable, 0, 'repeated picks of a key agree')
  t.equal(differ, 0, 'two clients agree on every key')
})

t.test('keys spread evenly over equal endpoints', async (t) => {
  const ring = new RingHashBalancer()
  ring.update(makeEndpoints(10))
  t.equal(ring.ringSize, 1600, '160 points for each endpoint of average weight')
  const counts = new Map<string, number>()
  for (const id of owners(ring)) counts.set(id, (counts.get(id) ?? 0) + 1)
  t.equal(counts.size, 10)
  // With 160 points each, a share's spread is about 1/sqrt(160) ~ 8% of 10%: 5 sigma is 4%.
  for (const [id, c] of counts) t.ok(c > 6000 && c < 14_000, `${id} owns ${c} of 100000 keys`)
})

t.test('weights set the share of keys', async (t) => {
  const ring = new RingHashBalancer()
  ring.update(makeEndpoints(4, (i) => ({ weight: i === 3 ? 300 : 100 })))
  const counts = new Map<string, number>()
  for (const id of owners(ring)) counts.set(id, (counts.get(id) ?? 0) + 1)
  const heavy = counts.get('e3')!
  t.ok(heavy > 42_000 && heavy < 58_000, `weight 300 of 600 owns ${heavy} of 100000 keys`)
  for (const id of ['e0', 'e1', 'e2']) {
    const c = counts.get(id)!
    t.ok(c > 10_000 && c < 23_000, `weight 100 of 600: ${id} owns ${c}`)
  }
})

t.test('when one of 10 leaves, only its keys move (about 1/10 of them)', async (t) => {
  const eps = makeEndpoints(10)
  const ring = createBalancer('ring-hash')
  ring.update(eps)
  const before = owners(ring)
  const leaving = 'e4'
  ring.update(eps.filter((e) => e.id !== leaving))
  const after = owners(ring)
  let moved = 0
  let movedFromOthers = 0
  for (let i = 0; i < KEYS.length; i++) {
    if (before[i] === after[i]) continue
    moved++
    if (before[i] !== leaving) movedFromOthers++
  }
  const share = moved / KEYS.length
  t.ok(share > 0.05 && share < 0.2, `${(share * 100).toFixed(1)}% of keys moved`)
  t.equal(movedFromOthers, 0, 'keys of the endpoints that stayed did not move')
  t.notOk(after.includes(leaving))
  // Its keys spread over the others rather than all landing on one neighbour.
  const heirs = new Set(after.filter((_, i) => before[i] === leaving))
  t.ok(heirs.size >= 5, `the leaver's keys went to ${heirs.size} endpoints`)
  // And when it comes back, it gets exactly its keys back.
  ring.update(eps)
  t.same(owners(ring), before)
})

t.test('when one joins 9, it takes about 1/10 of the keys and only from others', async (t) => {
  const eps = makeEndpoints(10)
  const ring = createBalancer('ring-hash')
  ring.update(eps.slice(0, 9))
  const before = owners(ring)
  ring.update(eps)
  const after = owners(ring)
  let moved = 0
  for (let i = 0; i < KEYS.length; i++) {
    if (before[i] === after[i]) continue
    moved++
    if (after[i] !== 'e9') t.fail(`key ${KEYS[i]} moved between two old endpoints`)
  }
  t.ok(moved / KEYS.length > 0.05 && moved / KEYS.length < 0.2, `${moved} keys moved`)
})

t.test('a pick without a key lands on a random point', async (t) => {
  const ring = createBalancer('ring-hash', { random: seededRandom(17) })
  ring.update(makeEndpoints(4))
  const counts = countPicks(() => ring.pick(), 40_000)
  t.equal(counts.size, 4)
  for (const [id, c] of counts) t.ok(c > 6000 && c < 14_000, `${id}: ${c}`)
})

t.test('the ring size is bounded', async (t) => {
  const ring = new RingHashBalancer({ maxRingSize: 1000, vnodes: 160 })
  ring.update(makeEndpoints(50))
  t.equal(ring.ringSize, 1000, '20 points each instead of 160')
  const tiny = new RingHashBalancer({ maxRingSize: 10 })
  tiny.update(makeEndpoints(50))
  t.equal(tiny.ringSize, 50, 'every endpoint keeps at least one point')
})

t.test('lookups agree with a brute-force ring, wrap-around included', async (t) => {
  // Reference: every point `id#n` (160 each at equal weights); a key goes to the point
  // with the smallest hash >= the key's, or to the smallest point of all.
  for (const n of [1, 3, 10, 57]) {
    const eps = makeEndpoints(n)
    const points = eps
      .flatMap((e) => Array.from({ length: 160 }, (_, k) => ({ h: hashString(`${e.id}#${k}`), id: e.id })))
      .sort((a, b) => a.h - b.h || (a.id < b.id ? -1 : 1))
    const ring = new RingHashBalancer()
    ring.update(eps)
    let wrong = 0
    const keys = [...KEYS.slice(0, 3000), 'z', '', String.fromCharCode(0xffff)]
    for (const key of keys) {
      const h = hashString(key)
      const expected = (points.find((p) => p.h >= h) ?? points[0]!).id
      if (ring.pick(key)!.id !== expected) wrong++
    }
    t.equal(wrong, 0, `${n} endpoints: ${keys.length} keys`)
  }
})
