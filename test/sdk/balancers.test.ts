import t from 'tap'
import { BALANCER_NAMES, WeightedBalancer, createBalancer, isBalancerName } from '../../client-sdk/balancers/index.js'
import type { BalancerName } from '../../client-sdk/balancers/index.js'
import { countPicks, fiveSigma, makeEndpoints, seededRandom } from './helpers.js'

t.test('createBalancer makes each balancer by name and refuses others', async (t) => {
  for (const name of BALANCER_NAMES) {
    const b = createBalancer(name, { random: seededRandom(1) })
    t.equal(b.name, name)
    t.equal(b.pick(), undefined, `${name}: no candidate, no pick`)
  }
  t.ok(isBalancerName('ring-hash'))
  t.notOk(isBalancerName('fastest'))
  t.throws(() => createBalancer('fastest' as BalancerName), /unknown balancer "fastest"; one of round-robin/)
})

t.test('weight 0 is never picked, by any balancer', async (t) => {
  const eps = makeEndpoints(6, (i) => ({ weight: i % 2 === 0 ? 0 : 100 }))
  for (const name of BALANCER_NAMES) {
    const b = createBalancer(name, { random: seededRandom(7) })
    b.update(eps)
    let k = 0
    const counts = countPicks(() => b.pick(`k${k++}`), 5000)
    t.same([...counts.keys()].sort(), ['e1', 'e3', 'e5'], name)
  }
  const allZero = makeEndpoints(3, () => ({ weight: 0 }))
  for (const name of BALANCER_NAMES) {
    const b = createBalancer(name)
    b.update(allZero)
    t.equal(b.pick('k'), undefined, `${name}: only weight 0 -> nothing`)
  }
})

t.test('a single candidate is always the pick', async (t) => {
  const [only] = makeEndpoints(1)
  for (const name of BALANCER_NAMES) {
    const b = createBalancer(name, { random: seededRandom(3) })
    b.update([only!])
    for (let i = 0; i < 10; i++) t.equal(b.pick(`k${i}`), only, name)
  }
})

t.test('round-robin visits each candidate once per cycle, and keeps its place across updates', async (t) => {
  const eps = makeEndpoints(5)
  const b = createBalancer('round-robin', { random: seededRandom(11) })
  b.update(eps)
  for (let cycle = 0; cycle < 4; cycle++) {
    const seen = new Set<string>()
    for (let i = 0; i < 5; i++) seen.add(b.pick()!.id)
    t.equal(seen.size, 5, `cycle ${cycle}: every endpoint once`)
  }
  // Order is the list order from a random start: consecutive picks are consecutive indexes.
  const first = b.pick()!
  const second = b.pick()!
  t.equal(eps.indexOf(second), (eps.indexOf(first) + 1) % 5)
  // A recompute with the same candidates continues the cycle instead of restarting it.
  b.update(eps)
  t.equal(eps.indexOf(b.pick()!), (eps.indexOf(second) + 1) % 5)
  // A smaller set: the cursor wraps into it.
  b.update(eps.slice(0, 2))
  const counts = countPicks(() => b.pick(), 10)
  t.same([...counts.values()], [5, 5])
})

t.test('two round-robin clients with different seeds start at different places', async (t) => {
  const eps = makeEndpoints(100)
  const starts = new Set<string>()
  for (let seed = 1; seed <= 20; seed++) {
    const b = createBalancer('round-robin', { random: seededRandom(seed) })
    b.update(eps)
    starts.add(b.pick()!.id)
  }
  t.ok(starts.size >= 10, `20 clients started on ${starts.size} different endpoints`)
})

t.test('random spreads picks evenly (5 sigma bounds)', async (t) => {
  const n = 10
  const picks = 100_000
  const b = createBalancer('random', { random: seededRandom(42) })
  b.update(makeEndpoints(n))
  const counts = countPicks(() => b.pick(), picks)
  t.equal(counts.size, n)
  const bound = fiveSigma(picks, 1 / n)
  for (const [id, c] of counts) t.ok(Math.abs(c - picks / n) < bound, `${id}: ${c} within ${picks / n} +- ${bound.toFixed(0)}`)
})

t.test('weighted is smooth weighted round-robin, as nginx', async (t) => {
  t.test('weights 5, 1, 1 give a a b a c a a, cycle after cycle', async (t) => {
    const [a, b, c] = makeEndpoints(3, (i) => ({ id: 'abc'[i]!, weight: [5, 1, 1][i]! }))
    const w = createBalancer('weighted')
    w.update([a!, b!, c!])
    const seq = Array.from({ length: 21 }, () => w.pick()!.id).join(' ')
    t.equal(seq, 'a a b a c a a a a b a c a a a a b a c a a')
  })

  t.test('shares are exact over each cycle of the total weight', async (t) => {
    const weights = [1, 2, 3, 4, 10, 30]
    const eps = makeEndpoints(weights.length, (i) => ({ weight: weights[i]! }))
    const w = createBalancer('weighted')
    w.update(eps)
    const total = weights.reduce((x, y) => x + y, 0)
    const counts = countPicks(() => w.pick(), total * 7)
    for (let i = 0; i < weights.length; i++) t.equal(counts.get(`e${i}`), weights[i]! * 7, `e${i} weight ${weights[i]}`)
  })

  t.test('heavy candidates are interleaved, not picked in a burst', async (t) => {
    const eps = makeEndpoints(2, (i) => ({ weight: i === 0 ? 3 : 1 }))
    const w = createBalancer('weighted')
    w.update(eps)
    const seq = Array.from({ length: 8 }, () => w.pick()!.id).join(' ')
    t.equal(seq, 'e0 e0 e1 e0 e0 e0 e1 e0')
  })

  t.test('an update with the same candidates continues the sequence', async (t) => {
    const eps = makeEndpoints(3, (i) => ({ id: 'abc'[i]!, weight: [5, 1, 1][i]! }))
    for (const w of [createBalancer('weighted'), new WeightedBalancer({ maxPrecomputeWork: 0 })]) {
      w.update(eps)
      const before = [w.pick()!.id, w.pick()!.id, w.pick()!.id]
      w.update(eps)
      const after = Array.from({ length: 4 }, () => w.pick()!.id)
      t.same([...before, ...after], ['a', 'a', 'b', 'a', 'c', 'a', 'a'])
    }
  })

  t.test('recomputes do not send the first picks to the heaviest each time', async (t) => {
    const eps = makeEndpoints(4, (i) => ({ weight: i === 0 ? 2 : 1 }))
    for (const w of [createBalancer('weighted'), new WeightedBalancer({ maxPrecomputeWork: 0 })]) {
      w.update(eps)
      const counts = new Map<string, number>()
      for (let i = 0; i < 500; i++) {
        w.update(eps) // a recompute before every pick
        const id = w.pick()!.id
        counts.set(id, (counts.get(id) ?? 0) + 1)
      }
      t.same(Object.fromEntries(counts), { e0: 200, e1: 100, e2: 100, e3: 100 }, 'shares stay exact')
    }
  })

  t.test('the precomputed cycle and the live loop give the same sequence', async (t) => {
    const random = seededRandom(99)
    for (let trial = 0; trial < 20; trial++) {
      const n = 2 + Math.floor(random() * 12)
      const eps = makeEndpoints(n, () => ({ weight: Math.floor(random() * 12) }))
      const cycled = new WeightedBalancer()
      const live = new WeightedBalancer({ maxPrecomputeWork: 0 })
      cycled.update(eps)
      live.update(eps)
      const total = eps.reduce((x, e) => x + e.weight, 0)
      const a = Array.from({ length: total * 3 }, () => cycled.pick()?.id).join(',')
      const b = Array.from({ length: total * 3 }, () => live.pick()?.id).join(',')
      if (a !== b) t.fail(`weights ${eps.map((e) => e.weight)}: ${a} vs ${b}`)
    }
    t.pass('20 random weight sets agree over 3 cycles')
  })

  t.test('large cycles fall back to the live loop with the same shares', async (t) => {
    const weights = Array.from({ length: 50 }, (_, i) => 1 + ((i * 37) % 1000))
    const eps = makeEndpoints(50, (i) => ({ weight: weights[i]! }))
    const w = new WeightedBalancer({ maxPrecomputeWork: 1000 })
    w.update(eps)
    const total = weights.reduce((x, y) => x + y, 0)
    const counts = countPicks(() => w.pick(), total)
    for (let i = 0; i < 50; i++) if (counts.get(`e${i}`) !== weights[i]) t.fail(`e${i}: ${counts.get(`e${i}`)} != ${weights[i]}`)
    t.pass('every share exact over one cycle')
  })
})

t.test('least-request prefers the less loaded', async (t) => {
  t.test('of two, always the one with fewer requests in flight', async (t) => {
    const [a, b] = makeEndpoints(2)
    const lr = createBalancer('least-request', { random: seededRandom(5) })
    lr.update([a!, b!])
    a!.inFlight = 3
    b!.inFlight = 1
    for (let i = 0; i < 100; i++) t.equal(lr.pick(), b)
    b!.inFlight = 4
    for (let i = 0; i < 100; i++) t.equal(lr.pick(), a)
  })

  t.test('an idle one among busy ones wins every comparison it is sampled in', async (t) => {
    const n = 10
    const picks = 100_000
    const eps = makeEndpoints(n)
    for (const e of eps) e.inFlight = 5
    eps[3]!.inFlight = 0
    const lr = createBalancer('least-request', { random: seededRandom(9) })
    lr.update(eps)
    const counts = countPicks(() => lr.pick(), picks)
    // P(sampled in two distinct draws) = 2/n; it wins every time it is sampled.
    const expected = (picks * 2) / n
    const bound = fiveSigma(picks, 2 / n)
    t.ok(Math.abs(counts.get('e3')! - expected) < bound, `idle picked ${counts.get('e3')}, expected ${expected}`)
    // The others share the rest evenly: (1 - 2/n) / (n - 1) each.
    const other = (picks * (1 - 2 / n)) / (n - 1)
    for (const [id, c] of counts) {
      if (id !== 'e3') t.ok(Math.abs(c - other) < fiveSigma(picks, other / picks), `${id}: ${c} ~ ${other.toFixed(0)}`)
    }
  })

  t.test('under a simulated load it keeps in-flight counts lower than random', async (t) => {
    // Each pick adds a request; each step, every endpoint finishes one with probability 0.5
    // (a slow endpoint with 0.1). P2C should route around the slow one.
    const run = (name: BalancerName): number => {
      const random = seededRandom(21)
      const eps = makeEndpoints(8)
      const b = createBalancer(name, { random })
      b.update(eps)
      let slowPeak = 0
      for (let step = 0; step < 20_000; step++) {
        b.pick()!.inFlight++
        for (let i = 0; i < eps.length; i++) {
          const e = eps[i]!
          if (e.inFlight > 0 && random() < (i === 0 ? 0.02 : 0.5)) e.inFlight--
        }
        slowPeak = Math.max(slowPeak, eps[0]!.inFlight)
      }
      return slowPeak
    }
    const lr = run('least-request')
    const rnd = run('random')
    t.ok(lr * 4 < rnd, `slow endpoint's peak in flight: least-request ${lr}, random ${rnd}`)
  })

  t.test('weights scale the load each endpoint is expected to carry', async (t) => {
    const [light, heavy] = makeEndpoints(2, (i) => ({ weight: i === 0 ? 100 : 300 }))
    const lr = createBalancer('least-request', { random: seededRandom(2) })
    lr.update([light!, heavy!])
    light!.inFlight = 1
    heavy!.inFlight = 2 // 3/300 < 2/100: the heavy one is relatively less loaded
    t.equal(lr.pick(), heavy)
    heavy!.inFlight = 6 // 7/300 > 2/100
    t.equal(lr.pick(), light)
  })
})
