import t from 'tap'
import { RetryBudget } from '../../client-sdk/retry-budget.js'
import { TestClock } from './helpers.js'

function drain(budget: RetryBudget): number {
  let n = 0
  while (budget.tryRetry()) n++
  return n
}

t.test('retries are capped at a share of recent requests', async (t) => {
  const clock = new TestClock(0)
  const budget = new RetryBudget({ now: clock.now, ratio: 0.2, minPerSecond: 0 })
  t.equal(budget.tryRetry(), false, 'no requests, no floor: no retry')
  for (let i = 0; i < 100; i++) budget.recordRequest()
  t.equal(budget.available, 20)
  t.equal(drain(budget), 20, '20% of 100')
  t.equal(budget.retries, 20)
  for (let i = 0; i < 10; i++) budget.recordRequest()
  t.equal(drain(budget), 2, '10 more requests earn 2 more retries')
})

t.test('the floor allows a few retries per second to a quiet client', async (t) => {
  const clock = new TestClock(0)
  const budget = new RetryBudget({ now: clock.now, ratio: 0.2, minPerSecond: 1, windowMs: 10_000 })
  t.equal(drain(budget), 10, '1 per second over a 10 s window, with no requests at all')
  for (let i = 0; i < 50; i++) budget.recordRequest()
  t.equal(drain(budget), 10, 'plus 20% of 50')
})

t.test('requests and retries leave the window as it slides', async (t) => {
  const clock = new TestClock(0)
  const budget = new RetryBudget({ now: clock.now, ratio: 0.5, minPerSecond: 0, windowMs: 10_000, buckets: 10 })
  for (let i = 0; i < 10; i++) budget.recordRequest()
  clock.advance(5_000)
  for (let i = 0; i < 10; i++) budget.recordRequest()
  t.equal(budget.requests, 20)
  t.equal(drain(budget), 10)
  clock.advance(5_000) // the first 10 requests are 10 s old: out of the window
  t.equal(budget.requests, 10)
  t.equal(budget.retries, 10, 'the retries were made at 5 s: still in')
  t.equal(budget.tryRetry(), false, '10 retries already for 10 requests at 50%')
  clock.advance(5_000)
  t.equal(budget.requests, 0)
  t.equal(budget.retries, 0)
  clock.advance(1_000_000)
  t.equal(budget.requests, 0, 'a long silence empties it')
  for (let i = 0; i < 4; i++) budget.recordRequest()
  t.equal(drain(budget), 2)
})

t.test('a clock that steps back does not corrupt the counts', async (t) => {
  const clock = new TestClock(50_000)
  const budget = new RetryBudget({ now: clock.now, ratio: 0.2, minPerSecond: 0 })
  for (let i = 0; i < 10; i++) budget.recordRequest()
  clock.advance(-20_000)
  for (let i = 0; i < 10; i++) budget.recordRequest()
  t.equal(budget.requests, 20)
  t.equal(drain(budget), 4)
})

t.test('options are checked', async (t) => {
  const now = () => 0
  t.throws(() => new RetryBudget({ now, ratio: 1.5 }), /ratio must be within 0..1/)
  t.throws(() => new RetryBudget({ now, minPerSecond: -1 }), /minPerSecond/)
  t.throws(() => new RetryBudget({ now, windowMs: 0 }), /windowMs/)
})
