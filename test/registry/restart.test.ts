import t from 'tap'
import { body, openCore, registerNow } from '../helpers/registry.js'

const HOUR = 3_600_000

t.test('a restart restores instances, revisions and service revisions, with fresh leases', async (t) => {
  const first = await openCore()
  await registerNow(first.registry, 'orders', 'o-1', { ttlSeconds: 10, tags: ['a'], metadata: { k: 'v' }, zone: 'z' })
  await registerNow(first.registry, 'orders', 'o-2', { ttlSeconds: 20 })
  await registerNow(first.registry, 'billing', 'b-1')
  await first.registry.deregister('billing', 'b-1')
  await registerNow(first.registry, 'orders', 'o-3')
  const before = first.registry.get('orders', 'o-1')!
  const revision = first.registry.revision
  t.equal(revision, 5)

  // The registry is down for an hour: every lease would have lapsed long ago.
  first.clock.advance(HOUR)
  const second = await openCore({ store: first.store, clock: first.clock })
  const { registry, clock } = second
  t.equal(registry.revision, revision, 'the global revision is restored')
  t.equal(registry.committedRevision, revision)
  t.equal(registry.instanceCount, 3)
  t.equal(registry.serviceRevision('orders'), 5)
  t.equal(registry.serviceRevision('billing'), 4, 'kept for a service whose last instance is gone')
  t.same(registry.serviceNames(), ['orders'])

  const o1 = registry.get('orders', 'o-1')!
  t.equal(o1.expiresAt, clock.now() + 10_000, 'a fresh lease from the restart')
  t.equal(registry.get('orders', 'o-2')!.expiresAt, clock.now() + 20_000)
  t.equal(o1.health, 'passing')
  t.equal(o1.revision, before.revision, 'its revision is unchanged: a restart is no change')
  t.same(o1.tags, ['a'])
  t.same(o1.metadata, { k: 'v' })
  t.equal(o1.zone, 'z')
  t.equal(o1.registeredAt, before.registeredAt)

  t.equal(registry.sweep().expired, 0, 'nothing expires on the first sweep after the restart')
  clock.advance(10_000)
  t.equal(registry.sweep().expired, 1, 'the fresh lease runs out after its ttl if not renewed')
  t.equal(registry.revision, revision + 1, 'and the revision goes on from where it was')
})

t.test('an instance whose lease had lapsed before the restart is revived, as a change', async (t) => {
  const first = await openCore()
  await registerNow(first.registry, 'orders', 'o-1', { ttlSeconds: 5 })
  await registerNow(first.registry, 'orders', 'o-2', { ttlSeconds: 60 })
  first.clock.advance(5000)
  first.registry.sweep()
  await first.registry.flush()
  t.equal(first.store.instances.get('orders/o-1')!.health, 'critical', 'stored as critical')
  const revision = first.registry.revision

  first.clock.advance(60_000)
  const { registry, store, clock } = await openCore({ store: first.store, clock: first.clock })
  const r = registry.get('orders', 'o-1')!
  t.equal(r.health, 'passing', 'the registry being down is not the instance’s fault')
  t.equal(r.expiresAt, clock.now() + 5000)
  t.equal(r.revision, revision + 1, 'reviving it is a change')
  t.equal(registry.revision, revision + 1, 'exactly one change')
  t.equal(registry.committedRevision, revision + 1, 'made durable before open resolves')
  t.equal(store.revision, revision + 1)
  t.equal(store.instances.get('orders/o-1')!.health, 'passing')
  t.same(
    registry.changesSince(revision)?.map((c) => [c.revision, c.instance.id, c.instance.health]),
    [[revision + 1, 'o-1', 'passing']],
    'the revival is in the change feed',
  )
})

t.test('an instance critical by its check stays critical, and its removal clock restarts', async (t) => {
  const first = await openCore()
  const spec = body({ ttlSeconds: 60, deregisterAfterSeconds: 30, check: { type: 'tcp' } })
  const { record } = first.registry.register('web', 'w-1', spec)
  first.registry.recordCheck('web', 'w-1', record.check!, { ok: false, durationMs: 1, error: 'ECONNREFUSED' })
  t.equal(record.health, 'critical')
  await first.registry.flush()
  const revision = first.registry.revision

  first.clock.advance(HOUR)
  const { registry, clock } = await openCore({ store: first.store, clock: first.clock })
  const r = registry.get('web', 'w-1')!
  t.equal(r.health, 'critical')
  t.equal(r.lastCheck?.error, 'ECONNREFUSED', 'the last check result is kept')
  t.equal(registry.revision, revision, 'no change')
  t.equal(registry.sweep().removed, 0, 'not removed at once though it was critical for an hour')
  clock.advance(30_000)
  t.equal(registry.sweep().removed, 1, 'removed deregisterAfterSeconds after the restart')
})

t.test('the change feed survives a restart', async (t) => {
  const first = await openCore()
  for (let i = 0; i < 5; i++) await registerNow(first.registry, 'orders', `o-${i}`)
  const { registry } = await openCore({ store: first.store, clock: first.clock })
  t.same(registry.changesSince(2)?.map((c) => c.revision), [3, 4, 5])
  await registerNow(registry, 'orders', 'o-9')
  t.same(registry.changesSince(4)?.map((c) => c.revision), [5, 6])
})
