import t from 'tap'
import { body, openCore, registerNow } from '../helpers/registry.js'

const SECOND = 1000

t.test('a lease turns critical on the first sweep at or after expiresAt, and not before', async (t) => {
  const { registry, clock, changes } = await openCore()
  await registerNow(registry, 'orders', 'o-1', { ttlSeconds: 10 })
  const registered = registry.revision
  const expiresAt = registry.get('orders', 'o-1')!.expiresAt
  t.equal(expiresAt, clock.now() + 10 * SECOND, 'the lease runs for ttlSeconds')

  clock.advance(10 * SECOND - 1)
  t.same(registry.sweep(), { expired: 0, removed: 0, held: 0, selfPreservation: false }, '1 ms before: nothing')
  t.equal(registry.get('orders', 'o-1')!.health, 'passing')
  t.equal(registry.revision, registered, 'no change before expiry')

  clock.advance(1)
  t.equal(clock.now(), expiresAt)
  t.equal(registry.sweep().expired, 1, 'at expiresAt the lease has run out')
  const r = registry.get('orders', 'o-1')!
  t.equal(r.health, 'critical')
  t.equal(r.revision, registered + 1, 'turning critical is a change')
  t.equal(registry.revision, registered + 1)
  await registry.flush()
  const last = changes.at(-1)!
  t.equal(last.revision, registered + 1)
  t.equal(last.op, 'upsert')
  t.equal(last.instance.health, 'critical')

  t.equal(registry.sweep().expired, 0, 'a second sweep does not expire it again')
  t.equal(registry.revision, registered + 1, 'and makes no change')
})

t.test('a late sweep still expires the lease', async (t) => {
  const { registry, clock } = await openCore()
  await registerNow(registry, 'orders', 'o-1', { ttlSeconds: 5 })
  clock.advance(7 * SECOND)
  t.equal(registry.sweep().expired, 1)
  t.equal(registry.get('orders', 'o-1')!.health, 'critical')
})

t.test('a heartbeat renews the lease without a change while passing', async (t) => {
  const { registry, clock, changes } = await openCore()
  await registerNow(registry, 'orders', 'o-1', { ttlSeconds: 10 })
  const before = registry.revision
  clock.advance(8 * SECOND)
  const r = registry.heartbeat('orders', 'o-1')!
  t.equal(r.expiresAt, clock.now() + 10 * SECOND, 'fresh lease from now')
  t.equal(r.lastHeartbeatAt, clock.now())
  t.equal(registry.revision, before, 'a heartbeat that changes nothing but expiresAt is no change')
  clock.advance(8 * SECOND)
  registry.sweep()
  t.equal(registry.get('orders', 'o-1')!.health, 'passing', 'the renewed lease has not run out')
  await registry.flush()
  t.equal(changes.length, 1, 'only the registration was published')
  t.equal(registry.heartbeat('orders', 'nope'), undefined, 'unknown instance: undefined')
  t.equal(registry.heartbeat('nope', 'o-1'), undefined, 'unknown service: undefined')
})

t.test('a heartbeat revives a critical instance, as a change with a new revision', async (t) => {
  const { registry, clock, changes } = await openCore()
  await registerNow(registry, 'orders', 'o-1', { ttlSeconds: 10 })
  clock.advance(10 * SECOND)
  registry.sweep()
  const critical = registry.revision
  clock.advance(3 * SECOND)
  const r = registry.heartbeat('orders', 'o-1')!
  t.equal(r.health, 'passing')
  t.equal(r.criticalSince, 0)
  t.equal(r.expiresAt, clock.now() + 10 * SECOND)
  t.equal(r.revision, critical + 1)
  t.equal(registry.revision, critical + 1)
  await registry.flush()
  t.same(
    changes.map((c) => [c.revision, c.op, c.instance.health]),
    [
      [1, 'upsert', 'passing'],
      [2, 'upsert', 'critical'],
      [3, 'upsert', 'passing'],
    ],
  )
  registry.heartbeat('orders', 'o-1')
  t.equal(registry.revision, critical + 1, 'a second heartbeat is no change')
})

t.test('a re-registration with the same spec renews the lease and revives, but is otherwise no change', async (t) => {
  const { registry, clock } = await openCore()
  await registerNow(registry, 'orders', 'o-1', { ttlSeconds: 10, tags: ['a'] })
  const rev = registry.revision
  clock.advance(5 * SECOND)
  const again = registry.register('orders', 'o-1', body({ ttlSeconds: 10, tags: ['a'] }))
  await again.committed
  t.equal(again.created, false)
  t.equal(registry.revision, rev, 'same spec: no change')
  t.equal(again.record.expiresAt, clock.now() + 10 * SECOND, 'but the lease is renewed')

  clock.advance(10 * SECOND)
  registry.sweep()
  t.equal(registry.get('orders', 'o-1')!.health, 'critical')
  const critical = registry.revision
  await registry.register('orders', 'o-1', body({ ttlSeconds: 10, tags: ['a'] })).committed
  t.equal(registry.get('orders', 'o-1')!.health, 'passing', 're-registering revives')
  t.equal(registry.revision, critical + 1, 'reviving is one change')
})

t.test('a critical instance is removed after deregisterAfterSeconds, not before', async (t) => {
  const { registry, clock, changes } = await openCore()
  await registerNow(registry, 'orders', 'o-1', { ttlSeconds: 10, deregisterAfterSeconds: 30 })
  clock.advance(10 * SECOND)
  registry.sweep()
  const critical = registry.revision
  clock.advance(30 * SECOND - 1)
  t.equal(registry.sweep().removed, 0, '1 ms before the end of deregisterAfterSeconds: still there')
  t.ok(registry.get('orders', 'o-1'))
  t.equal(registry.revision, critical)
  clock.advance(1)
  t.equal(registry.sweep().removed, 1)
  t.equal(registry.get('orders', 'o-1'), undefined, 'removed')
  t.equal(registry.instanceCount, 0)
  t.equal(registry.revision, critical + 1, 'removal is one change')
  await registry.flush()
  const last = changes.at(-1)!
  t.equal(last.op, 'delete')
  t.equal(last.revision, critical + 1)
  t.equal(last.instance.id, 'o-1')
  t.same(registry.serviceNames(), [], 'a service without instances is not listed')
})

t.test('a heartbeat in time stops the removal', async (t) => {
  const { registry, clock } = await openCore()
  await registerNow(registry, 'orders', 'o-1', { ttlSeconds: 10, deregisterAfterSeconds: 30 })
  clock.advance(10 * SECOND)
  registry.sweep()
  clock.advance(29 * SECOND)
  registry.heartbeat('orders', 'o-1')
  clock.advance(5 * SECOND)
  registry.sweep()
  t.equal(registry.get('orders', 'o-1')?.health, 'passing')
})

t.test('deregisterAfterSeconds 0: removed by the sweep that finds the lease run out', async (t) => {
  const { registry, clock, changes } = await openCore()
  await registerNow(registry, 'orders', 'o-1', { ttlSeconds: 10, deregisterAfterSeconds: 0 })
  await registerNow(registry, 'orders', 'o-2', { ttlSeconds: 60, deregisterAfterSeconds: 0 })
  clock.advance(10 * SECOND)
  const report = registry.sweep()
  t.equal(report.expired, 1)
  t.equal(report.removed, 1)
  t.equal(registry.get('orders', 'o-1'), undefined, 'gone without waiting for another sweep')
  t.ok(registry.get('orders', 'o-2'), 'the other instance is untouched')
  await registry.flush()
  t.same(
    changes.slice(2).map((c) => [c.revision, c.op, c.instance.health]),
    [
      [3, 'upsert', 'critical'],
      [4, 'delete', 'critical'],
    ],
    'watchers see it turn critical, then go',
  )
})

t.test('DELETE removes at once; status changes by patch are changes', async (t) => {
  const { registry } = await openCore()
  await registerNow(registry, 'orders', 'o-1')
  await registry.patch('orders', 'o-1', { status: 'draining' }).committed
  t.equal(registry.get('orders', 'o-1')!.status, 'draining')
  t.equal(registry.revision, 2)
  await registry.deregister('orders', 'o-1')
  t.equal(registry.get('orders', 'o-1'), undefined)
  t.equal(registry.revision, 3)
  t.throws(() => registry.deregister('orders', 'o-1'), { code: 'INSTANCE_NOT_FOUND' })
  t.throws(() => registry.patch('orders', 'o-1', { weight: 1 }), { code: 'INSTANCE_NOT_FOUND' })
})

t.test('an instance with an active check starts unknown, and the lease still decides critical', async (t) => {
  const { registry, clock } = await openCore()
  const { record } = registry.register('web', 'w-1', body({ ttlSeconds: 10, check: { type: 'tcp' } }))
  t.equal(record.health, 'unknown')
  const check = record.check!
  registry.recordCheck('web', 'w-1', check, { ok: true, durationMs: 1 })
  t.equal(record.health, 'passing', 'the first answer decides')
  t.equal(record.lastCheck?.ok, true)
  clock.advance(10 * SECOND)
  registry.sweep()
  t.equal(record.health, 'critical', 'a lapsed lease is critical whatever the check says')
  registry.heartbeat('web', 'w-1')
  t.equal(record.health, 'passing')
  const rev = registry.revision
  registry.recordCheck('web', 'w-1', { ...check }, { ok: false, durationMs: 1 })
  t.equal(registry.revision, rev, 'a result for another check object is dropped')
  await registry.flush()
})
