import t from 'tap'
import { Breaker, BreakerState } from '../../client-sdk/breaker.js'
import type { BreakerChange, BreakerOptions, EjectionGate } from '../../client-sdk/breaker.js'
import { TestClock } from './helpers.js'

const SECOND = 1000

/** A breaker on a test clock whose changes are collected. */
function setup(options: BreakerOptions = {}) {
  const clock = new TestClock()
  const changes: BreakerChange[] = []
  const gate: EjectionGate = { tryEject: () => true, release: () => {}, changed: (c) => changes.push(c) }
  const breaker = new Breaker('o-1', { ...options, now: clock.now }, gate)
  const fail = (n: number) => {
    for (let i = 0; i < n; i++) breaker.recordFailure()
  }
  return { clock, breaker, changes, fail }
}

t.test('closed -> open after 5 consecutive failures, not 4; a success starts the count over', async (t) => {
  const { breaker, fail, changes, clock } = setup()
  t.equal(breaker.state, BreakerState.Closed)
  fail(4)
  breaker.recordSuccess()
  fail(4)
  t.equal(breaker.state, BreakerState.Closed, '4 + success + 4 is not 5 in a row')
  fail(1)
  t.equal(breaker.state, BreakerState.Open)
  t.equal(breaker.ejections, 1)
  t.same(changes, [
    { id: 'o-1', from: 'closed', to: 'open', reason: 'consecutive-failures', at: clock.t, ejections: 1, until: clock.t + 30 * SECOND },
  ])
  t.equal(breaker.nextTransitionAt(), clock.t + 30 * SECOND)
})

t.test('open -> half-open when the ejection time ends; exactly one probe; success closes', async (t) => {
  const { breaker, fail, changes, clock } = setup()
  fail(5)
  t.notOk(breaker.tryAcquireProbe(), 'no probe while open')
  clock.advance(30 * SECOND - 1)
  t.equal(breaker.state, BreakerState.Open, 'still open 1 ms before the end')
  clock.advance(1)
  t.equal(breaker.state, BreakerState.HalfOpen)
  t.ok(breaker.awaitingProbe)
  t.equal(breaker.nextTransitionAt(), Infinity, 'no deadline until the probe goes out')
  t.ok(breaker.tryAcquireProbe(), 'the one probe')
  t.notOk(breaker.tryAcquireProbe(), 'not a second one')
  t.notOk(breaker.awaitingProbe)
  t.equal(breaker.nextTransitionAt(), clock.t + 30 * SECOND, 'probe timeout')
  clock.advance(50)
  breaker.recordSuccess(clock.t - 50)
  t.equal(breaker.state, BreakerState.Closed)
  t.same(
    changes.map((c) => `${c.from}->${c.to}:${c.reason}`),
    ['closed->open:consecutive-failures', 'open->half-open:ejection-ended', 'half-open->closed:probe-succeeded'],
  )
})

t.test('a failed probe re-ejects for base x times ejected, up to the cap', async (t) => {
  const { breaker, fail, clock } = setup({ baseEjectionMs: 10 * SECOND, maxEjectionMs: 35 * SECOND })
  fail(5)
  const durations: number[] = []
  for (let round = 0; round < 5; round++) {
    const until = breaker.nextTransitionAt()
    durations.push(until - clock.t)
    clock.t = until
    t.equal(breaker.state, BreakerState.HalfOpen)
    t.ok(breaker.tryAcquireProbe())
    breaker.recordFailure()
    t.equal(breaker.state, BreakerState.Open, `round ${round}: probe failed, open again`)
  }
  t.same(durations, [10, 20, 30, 35, 35].map((s) => s * SECOND))
  t.equal(breaker.ejections, 6)
})

t.test('the ejection count decays while closed, one per decay interval, as Envoy', async (t) => {
  const { breaker, fail, clock } = setup({ baseEjectionMs: 10 * SECOND, decayIntervalMs: 10 * SECOND })
  const ejectAndRecover = () => {
    fail(5)
    const d = breaker.nextTransitionAt() - clock.t
    clock.t = breaker.nextTransitionAt()
    breaker.tryAcquireProbe()
    breaker.recordSuccess()
    return d
  }
  t.equal(ejectAndRecover(), 10 * SECOND)
  t.equal(ejectAndRecover(), 20 * SECOND, 'failing again at once: twice as long')
  t.equal(ejectAndRecover(), 30 * SECOND)
  clock.advance(25 * SECOND)
  t.equal(breaker.ejections, 1, '3 ejections, 2 intervals healthy')
  t.equal(ejectAndRecover(), 20 * SECOND, 'counted from the decayed 1')
  clock.advance(10 * 60 * SECOND)
  t.equal(breaker.ejections, 0, 'decays to 0, not below')
  t.equal(ejectAndRecover(), 10 * SECOND)
})

t.test('failure rate over the window ejects flapping instances that never fail 5 in a row', async (t) => {
  const { breaker, changes } = setup() // window 20, minimum 10, threshold 0.5
  // fail, fail, ok, ... : 2/3 failures, never more than 2 in a row.
  let outcomes = 0
  while (breaker.state === BreakerState.Closed && outcomes < 100) {
    if (outcomes % 3 === 2) breaker.recordSuccess()
    else breaker.recordFailure()
    outcomes++
  }
  t.equal(breaker.state, BreakerState.Open)
  t.equal(outcomes, 10, 'ejected as soon as the minimum of 10 requests is reached')
  t.equal(changes[0]!.reason, 'failure-rate')
})

t.test('a failure rate under the threshold, or too few requests, does not eject', async (t) => {
  const { breaker } = setup({ failureRateThreshold: 0.5, minimumRequests: 10 })
  for (let i = 0; i < 9; i++) {
    if (i % 2 === 0) breaker.recordFailure()
    else breaker.recordSuccess()
  }
  t.equal(breaker.state, BreakerState.Closed, '5 of 9 failed, but under the minimum of 10')
  const low = setup()
  for (let i = 0; i < 200; i++) {
    if (i % 3 === 0) low.breaker.recordFailure()
    else low.breaker.recordSuccess()
  }
  t.equal(low.breaker.state, BreakerState.Closed, '1 in 3 failing stays under 50%')
})

t.test('outcomes older than windowMs do not count toward the rate', async (t) => {
  const { breaker, clock } = setup({ consecutiveFailures: 0, windowMs: 60 * SECOND, minimumRequests: 10 })
  for (let i = 0; i < 9; i++) breaker.recordFailure()
  clock.advance(61 * SECOND)
  breaker.recordFailure()
  t.equal(breaker.state, BreakerState.Closed, '9 old failures and 1 new: 1 request in the window')
  for (let i = 0; i < 8; i++) breaker.recordFailure()
  t.equal(breaker.state, BreakerState.Closed, '9 in the window')
  breaker.recordFailure()
  t.equal(breaker.state, BreakerState.Open, '10 in the window, all failed')
})

t.test('outcomes of requests sent before the current state began are ignored', async (t) => {
  const { breaker, fail, clock } = setup()
  const sentBefore = clock.t
  clock.advance(1)
  fail(5)
  clock.advance(30 * SECOND)
  t.equal(breaker.state, BreakerState.HalfOpen)
  breaker.recordSuccess(sentBefore)
  t.equal(breaker.state, BreakerState.HalfOpen, 'a late success of an old request does not close it')
  breaker.recordFailure(sentBefore)
  t.equal(breaker.state, BreakerState.HalfOpen, 'nor does a late failure re-open it')
  t.ok(breaker.tryAcquireProbe())
  breaker.recordSuccess(clock.t)
  t.equal(breaker.state, BreakerState.Closed)
})

t.test('outcomes while open change nothing (traffic sent in panic mode)', async (t) => {
  const { breaker, fail, clock } = setup()
  fail(5)
  const until = breaker.nextTransitionAt()
  breaker.recordSuccess()
  breaker.recordFailure()
  t.equal(breaker.state, BreakerState.Open)
  t.equal(breaker.nextTransitionAt(), until)
  clock.t = until
  t.equal(breaker.state, BreakerState.HalfOpen)
})

t.test('a probe that never reports closes the breaker after probeTimeoutMs', async (t) => {
  const { breaker, fail, clock, changes } = setup({ probeTimeoutMs: 5 * SECOND })
  fail(5)
  clock.t = breaker.nextTransitionAt()
  t.ok(breaker.tryAcquireProbe())
  clock.advance(5 * SECOND - 1)
  t.equal(breaker.state, BreakerState.HalfOpen)
  clock.advance(1)
  t.equal(breaker.state, BreakerState.Closed)
  t.equal(changes.at(-1)!.reason, 'probe-timed-out')
})

t.test('probeFirst: an instance reported passing again gets one probe before full traffic', async (t) => {
  const { breaker, changes } = setup()
  breaker.probeFirst()
  t.equal(breaker.state, BreakerState.HalfOpen)
  t.notOk(breaker.ejected, 'not an ejection: holds no slot')
  t.equal(breaker.ejections, 0)
  t.ok(breaker.tryAcquireProbe())
  t.notOk(breaker.tryAcquireProbe())
  breaker.recordSuccess()
  t.equal(breaker.state, BreakerState.Closed)
  t.same(
    changes.map((c) => c.reason),
    ['recovered', 'probe-succeeded'],
  )
})

t.test('probeFirst: a failed probe ejects; an open breaker stays open', async (t) => {
  const { breaker } = setup()
  breaker.probeFirst()
  breaker.tryAcquireProbe()
  breaker.recordFailure()
  t.equal(breaker.state, BreakerState.Open)
  t.ok(breaker.ejected)
  const until = breaker.nextTransitionAt()
  breaker.probeFirst()
  t.equal(breaker.state, BreakerState.Open, 'the server passing does not undo failures seen here')
  t.equal(breaker.nextTransitionAt(), until)
})

t.test('disabled rules', async (t) => {
  const { breaker, fail } = setup({ consecutiveFailures: 0, failureRateThreshold: 0 })
  fail(1000)
  t.equal(breaker.state, BreakerState.Closed)
})

t.test('options are checked', async (t) => {
  const now = () => 0
  t.throws(() => new Breaker('x', { now, baseEjectionMs: -1 }), /baseEjectionMs must be a finite number >= 0/)
  t.throws(() => new Breaker('x', { now, failureRateThreshold: 2 }), /failureRateThreshold must be <= 1/)
  t.throws(() => new Breaker('x', { now, windowSize: Number.NaN }), /windowSize/)
})

t.test('a breaker outside a group works on its own', async (t) => {
  const clock = new TestClock()
  const b = new Breaker('solo', { now: clock.now, consecutiveFailures: 2 })
  b.recordFailure()
  b.recordFailure()
  t.equal(b.state, BreakerState.Open)
  t.ok(b.ejected)
})
