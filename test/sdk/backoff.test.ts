import t from 'tap'
import { Backoff } from '../../client-sdk/backoff.js'
import { seededRandom } from './helpers.js'

t.test('the ceiling doubles per attempt up to the cap; delays stay within [0, ceiling)', async (t) => {
  const b = new Backoff({ initialMs: 100, maxMs: 5_000, random: seededRandom(4) })
  const ceilings: number[] = []
  for (let i = 0; i < 10; i++) {
    const ceiling = b.ceiling
    ceilings.push(ceiling)
    const d = b.next()
    t.ok(d >= 0 && d < ceiling && Number.isInteger(d), `attempt ${i}: ${d} in [0, ${ceiling})`)
  }
  t.same(ceilings, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000])
  t.equal(b.attempt, 10)
})

t.test('full jitter: delays spread over the whole interval', async (t) => {
  const b = new Backoff({ initialMs: 1000, maxMs: 1000, random: seededRandom(8) })
  const delays = Array.from({ length: 10_000 }, () => b.next())
  const mean = delays.reduce((x, y) => x + y, 0) / delays.length
  // Uniform on [0, 1000): mean 500, sd of the mean 289/sqrt(10000) ~ 2.9.
  t.ok(Math.abs(mean - 500) < 15, `mean ${mean.toFixed(1)}`)
  t.ok(Math.min(...delays) < 10 && Math.max(...delays) > 990)
})

t.test('the extremes of the random source give 0 and just under the ceiling', async (t) => {
  const lo = new Backoff({ initialMs: 100, random: () => 0 })
  t.equal(lo.next(), 0)
  const hi = new Backoff({ initialMs: 100, random: () => 0.999999 })
  t.equal(hi.next(), 99)
  t.equal(hi.next(), 199)
})

t.test('reset goes back to the first ceiling', async (t) => {
  const b = new Backoff({ initialMs: 50, random: () => 0.5 })
  b.next()
  b.next()
  b.next()
  t.equal(b.ceiling, 400)
  b.reset()
  t.equal(b.attempt, 0)
  t.equal(b.ceiling, 50)
  t.equal(b.next(), 25)
})

t.test('many attempts stay at the cap, never Infinity or NaN', async (t) => {
  const b = new Backoff({ initialMs: 100, maxMs: 30_000, random: () => 0.5 })
  for (let i = 0; i < 5000; i++) b.next()
  t.equal(b.ceiling, 30_000)
  t.equal(b.next(), 15_000)
})

t.test('options are checked', async (t) => {
  t.throws(() => new Backoff({ initialMs: 0 }), RangeError)
  t.throws(() => new Backoff({ initialMs: 100, maxMs: 50 }), RangeError)
  t.throws(() => new Backoff({ multiplier: 0.5 }), RangeError)
})
