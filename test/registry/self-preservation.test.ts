import t from 'tap'
import type { CoreFixture } from '../helpers/registry.js'
import { openCore, registerNow } from '../helpers/registry.js'

const TTL = 10

async function fleet(fx: CoreFixture, n: number, service = 'orders'): Promise<void> {
  for (let i = 0; i < n; i++) await registerNow(fx.registry, service, `i-${i}`, { ttlSeconds: TTL, deregisterAfterSeconds: 60 })
}

function events(fx: CoreFixture): boolean[] {
  const seen: boolean[] = []
  fx.registry.onSelfPreservation((on) => seen.push(on))
  return seen
}

t.test('expiry is suspended when more than the threshold share would lapse at once', async (t) => {
  const fx = await openCore()
  const { registry, clock, changes } = fx
  const seen = events(fx)
  await fleet(fx, 10)
  const rev = registry.revision
  clock.advance(TTL * 1000)
  const report = registry.sweep()
  t.same(report, { expired: 0, removed: 0, held: 10, selfPreservation: true })
  t.equal(registry.selfPreservation, true)
  t.same(seen, [true], 'switching on is emitted once')
  t.equal(registry.revision, rev, 'no instance expired: no change')
  t.same(registry.healthCounts(), { passing: 10, critical: 0, unknown: 0 })

  clock.advance(1000)
  t.equal(registry.sweep().held, 10, 'still held on the next sweep')
  t.same(seen, [true], 'and not emitted again')

  // Renewals recover: 6 of 10 heartbeat, so 4 lapsed leases are under the 50% share.
  for (let i = 0; i < 6; i++) registry.heartbeat('orders', `i-${i}`)
  const resumed = registry.sweep()
  t.equal(resumed.selfPreservation, false)
  t.equal(resumed.expired, 4, 'the instances that did not renew now expire')
  t.equal(registry.selfPreservation, false)
  t.same(seen, [true, false], 'switching off is emitted')
  t.same(registry.healthCounts(), { passing: 6, critical: 4, unknown: 0 })
  t.equal(registry.revision, rev + 4)
  await registry.flush()
  t.same(
    changes.slice(-4).map((c) => [c.instance.id, c.instance.health]),
    [6, 7, 8, 9].map((i) => [`i-${i}`, 'critical']),
  )
})

t.test('exactly the threshold share lapsing is not more than it: expiry goes on', async (t) => {
  const fx = await openCore()
  const seen = events(fx)
  await fleet(fx, 10)
  fx.clock.advance(TTL * 1000 - 1)
  for (let i = 0; i < 5; i++) fx.registry.heartbeat('orders', `i-${i}`)
  fx.clock.advance(1)
  const report = fx.registry.sweep()
  t.equal(report.expired, 5)
  t.equal(report.selfPreservation, false)
  t.same(seen, [])
})

t.test('a registry smaller than minInstances expires normally', async (t) => {
  const fx = await openCore()
  const seen = events(fx)
  await fleet(fx, 9)
  fx.clock.advance(TTL * 1000)
  const report = fx.registry.sweep()
  t.equal(report.expired, 9, 'all 9 of 9 expire: below the default minimum of 10')
  t.equal(report.selfPreservation, false)
  t.same(seen, [])
  t.same(fx.registry.healthCounts(), { passing: 0, critical: 9, unknown: 0 })
})

t.test('threshold and minInstances are options', async (t) => {
  const fx = await openCore({ selfPreservation: { threshold: 0.25, minInstances: 4 } })
  const seen = events(fx)
  await fleet(fx, 4)
  fx.clock.advance(TTL * 1000 - 1)
  for (let i = 0; i < 2; i++) fx.registry.heartbeat('orders', `i-${i}`)
  fx.clock.advance(1)
  t.equal(fx.registry.sweep().held, 2, '2 of 4 is more than 25%')
  t.same(seen, [true])
})

t.test('removals of instances already critical go on under self-preservation', async (t) => {
  const fx = await openCore()
  const { registry, clock } = fx
  await registerNow(registry, 'old', 'x', { ttlSeconds: 1, deregisterAfterSeconds: 5 })
  clock.advance(1000)
  registry.sweep()
  t.equal(registry.get('old', 'x')!.health, 'critical')
  await fleet(fx, 10)
  clock.advance(TTL * 1000)
  const report = registry.sweep()
  t.equal(report.selfPreservation, true)
  t.equal(report.removed, 1)
  t.equal(registry.get('old', 'x'), undefined)
})

t.test('lapses spread over several sweeps count together within the window (a partition)', async (t) => {
  const fx = await openCore()
  const { registry, clock } = fx
  const seen = events(fx)
  await fleet(fx, 10)
  // The registry loses its clients: leases lapse a few at a time, over several sweeps.
  clock.advance(TTL * 1000 - 2)
  for (let i = 3; i < 10; i++) registry.heartbeat('orders', `i-${i}`)
  clock.advance(2)
  t.equal(registry.sweep().expired, 3, '3 of 10 lapse: under the share, they expire')
  clock.advance(TTL * 1000)
  const second = registry.sweep()
  t.equal(second.held, 7, 'the next 7 would make 10 of 10 within the window: held')
  t.equal(second.selfPreservation, true)
  t.same(seen, [true])
  // Renewals come back for 5 of the 7; the 3 early expiries are still within the window.
  for (let i = 3; i < 8; i++) registry.heartbeat('orders', `i-${i}`)
  const third = registry.sweep()
  t.equal(third.expired, 2, '2 due + 3 recent = 5, not more than half: expiry resumes')
  t.same(seen, [true, false])
})

t.test('window 0 counts one sweep only, as the bare rule', async (t) => {
  const fx = await openCore({ selfPreservation: { windowMs: 0 } })
  const { registry, clock } = fx
  await fleet(fx, 10)
  clock.advance(TTL * 1000 - 2)
  for (let i = 3; i < 10; i++) registry.heartbeat('orders', `i-${i}`)
  clock.advance(2)
  t.equal(registry.sweep().expired, 3)
  clock.advance(TTL * 1000)
  for (let i = 6; i < 10; i++) registry.heartbeat('orders', `i-${i}`)
  t.equal(registry.sweep().expired, 3, 'another 3 in a later sweep: expired, the first 3 are not counted')
})

t.test('expiries older than the window stop counting', async (t) => {
  const fx = await openCore()
  const { registry, clock } = fx
  await fleet(fx, 10)
  clock.advance(TTL * 1000 - 2)
  for (let i = 4; i < 10; i++) registry.heartbeat('orders', `i-${i}`)
  clock.advance(2)
  t.equal(registry.sweep().expired, 4)
  clock.advance(31_000)
  for (let i = 8; i < 10; i++) registry.heartbeat('orders', `i-${i}`)
  t.equal(registry.sweep().expired, 4, '31 s later the first 4 are out of the window: 4 more expire')
})
