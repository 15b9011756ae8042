import t from 'tap'
import { BreakerState } from '../../client-sdk/breaker.js'
import type { BreakerChange } from '../../client-sdk/breaker.js'
import { BreakerGroup } from '../../client-sdk/breaker-group.js'
import { TestClock } from './helpers.js'

function group(n: number, maxEjectionPercent?: number) {
  const clock = new TestClock()
  const g = new BreakerGroup({ now: clock.now, ...(maxEjectionPercent === undefined ? {} : { maxEjectionPercent }) })
  const breakers = Array.from({ length: n }, (_, i) => g.add(`i${i}`))
  const fail = (i: number, times = 5) => {
    for (let k = 0; k < times; k++) breakers[i]!.recordFailure()
  }
  return { clock, g, breakers, fail }
}

t.test('never more than max-ejection-percent (default 50) ejected at once', async (t) => {
  const { g, breakers, fail } = group(4)
  for (let i = 0; i < 4; i++) fail(i)
  t.same(
    breakers.map((b) => b.state),
    ['open', 'open', 'closed', 'closed'],
    'the ejections that would pass 50% were not made',
  )
  t.equal(g.ejectedCount, 2)
})

t.test('a refused ejection is made at the next failure once a slot is free', async (t) => {
  const { g, breakers, fail, clock } = group(4)
  for (let i = 0; i < 3; i++) fail(i)
  t.equal(breakers[2]!.state, BreakerState.Closed)
  // i0 comes back: its ejection ends and its probe succeeds.
  clock.t = breakers[0]!.nextTransitionAt()
  t.equal(breakers[0]!.state, BreakerState.HalfOpen)
  t.equal(g.ejectedCount, 2, 'half-open after an ejection still holds its slot')
  breakers[0]!.tryAcquireProbe()
  breakers[0]!.recordSuccess()
  t.equal(g.ejectedCount, 1)
  fail(2, 1)
  t.equal(breakers[2]!.state, BreakerState.Open, 'one more failure, and the slot is taken')
  t.equal(g.ejectedCount, 2)
})

t.test('a probe-first half-open takes no slot and is refused one when the group is full', async (t) => {
  const { g, breakers, fail } = group(4)
  fail(0)
  fail(1)
  breakers[2]!.probeFirst()
  t.equal(g.ejectedCount, 2)
  breakers[2]!.tryAcquireProbe()
  breakers[2]!.recordFailure()
  t.equal(breakers[2]!.state, BreakerState.Closed, 'the failed probe would pass 50%: no ejection')
})

t.test('the percentage follows the group size; one instance is never ejected at 50%', async (t) => {
  const one = group(1)
  one.fail(0, 50)
  t.equal(one.breakers[0]!.state, BreakerState.Closed)
  const ten = group(10, 30)
  for (let i = 0; i < 10; i++) ten.fail(i)
  t.equal(ten.g.ejectedCount, 3)
  const all = group(3, 100)
  for (let i = 0; i < 3; i++) all.fail(i)
  t.equal(all.g.ejectedCount, 3)
  const none = group(3, 0)
  for (let i = 0; i < 3; i++) none.fail(i)
  t.equal(none.g.ejectedCount, 0)
})

t.test('removing an ejected instance gives its slot back', async (t) => {
  const { g, breakers, fail } = group(4)
  fail(0)
  fail(1)
  t.ok(g.delete('i0'))
  t.notOk(g.delete('i0'))
  t.equal(g.size, 3)
  t.equal(g.ejectedCount, 1)
  fail(2)
  t.equal(breakers[2]!.state, BreakerState.Closed, '2 of 3 would pass 50%')
  // The removed breaker no longer touches the group.
  breakers[0]!.recordSuccess()
  t.equal(g.ejectedCount, 1)
  t.equal(g.get('i0'), undefined)
  t.not(g.add('i0'), breakers[0], 'a new instance under the same id gets a fresh breaker')
})

t.test('onChange reports every change of every breaker until disposed', async (t) => {
  const { g, fail, clock } = group(4)
  const seen: BreakerChange[] = []
  const sub = g.onChange((c) => seen.push(c))
  fail(1)
  clock.advance(30_000)
  t.equal(g.get('i1')!.state, BreakerState.HalfOpen)
  t.same(
    seen.map((c) => `${c.id} ${c.from}->${c.to}`),
    ['i1 closed->open', 'i1 open->half-open'],
  )
  sub.dispose()
  fail(2)
  t.equal(seen.length, 2)
  t.same([...g].map((b) => b.id), ['i0', 'i1', 'i2', 'i3'])
})

t.test('options are checked at construction', async (t) => {
  const now = () => 0
  t.throws(() => new BreakerGroup({ now, maxEjectionPercent: 101 }), /maxEjectionPercent must be within 0..100/)
  t.throws(() => new BreakerGroup({ now, consecutiveFailures: -1 }), /consecutiveFailures/)
})
