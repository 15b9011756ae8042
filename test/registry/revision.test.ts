import t from 'tap'
import { openCore, registerNow } from '../helpers/registry.js'

t.test('the revision goes up by exactly one per change, and never for a no-op', async (t) => {
  const { registry, clock, changes } = await openCore()
  const seen: number[] = []
  const step = (what: string, expected: number) => {
    t.equal(registry.revision, expected, what)
    seen.push(registry.revision)
  }
  step('a new registry starts at 0', 0)
  await registerNow(registry, 'orders', 'o-1', { ttlSeconds: 10, deregisterAfterSeconds: 5 })
  step('register', 1)
  await registerNow(registry, 'billing', 'b-1', { ttlSeconds: 100 })
  step('register in another service', 2)
  registry.heartbeat('orders', 'o-1')
  step('a heartbeat that only moves expiresAt: no change', 2)
  await registerNow(registry, 'orders', 'o-1', { ttlSeconds: 10, deregisterAfterSeconds: 5 })
  step('a re-registration with the same spec: no change', 2)
  await registry.patch('orders', 'o-1', { weight: 100, tags: [], metadata: {}, status: 'up' }).committed
  step('a patch to the values it already has: no change', 2)
  await registry.patch('orders', 'o-1', { weight: 5 }).committed
  step('a patch that changes weight', 3)
  await registry.patch('orders', 'o-1', { tags: ['x'] }).committed
  step('a patch that changes tags', 4)
  await registry.patch('orders', 'o-1', { metadata: { k: 'v' } }).committed
  step('a patch that changes metadata', 5)
  await registry.patch('orders', 'o-1', { metadata: { k: 'v' }, tags: ['x'], weight: 5 }).committed
  step('the same patch again: no change', 5)
  await registerNow(registry, 'orders', 'o-1', { ttlSeconds: 10, deregisterAfterSeconds: 5, port: 9000 })
  step('a re-registration with another spec replaces it', 6)
  clock.advance(10_000)
  registry.sweep()
  step('lease runs out', 7)
  registry.heartbeat('orders', 'o-1')
  step('heartbeat revives', 8)
  clock.advance(10_000)
  registry.sweep()
  step('lease runs out again', 9)
  clock.advance(5_000)
  registry.sweep()
  step('removal after deregisterAfterSeconds', 10)
  await registry.deregister('billing', 'b-1')
  step('deregister', 11)

  await registry.flush()
  t.same(
    changes.map((c) => c.revision),
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
    'every change published once, in order, none skipped',
  )
  t.equal(registry.committedRevision, 11)
  for (let i = 1; i < seen.length; i++) t.ok(seen[i]! >= seen[i - 1]!, 'never goes back')
})

t.test('every instance carries the revision of its own last change', async (t) => {
  const { registry } = await openCore()
  await registerNow(registry, 'orders', 'o-1')
  await registerNow(registry, 'orders', 'o-2')
  await registry.patch('orders', 'o-1', { status: 'draining' }).committed
  t.equal(registry.get('orders', 'o-1')!.revision, 3)
  t.equal(registry.get('orders', 'o-2')!.revision, 2)
})

t.test("a service's revision is its last change; it stays after the last instance is gone", async (t) => {
  const { registry, changes } = await openCore()
  t.equal(registry.serviceRevision('orders'), 0, 'a service never seen is at 0')
  await registerNow(registry, 'orders', 'o-1')
  await registerNow(registry, 'billing', 'b-1')
  t.equal(registry.serviceRevision('orders'), 1)
  t.equal(registry.serviceRevision('billing'), 2)
  await registerNow(registry, 'billing', 'b-2')
  t.equal(registry.serviceRevision('orders'), 1, 'changes elsewhere do not move it')
  await registry.deregister('orders', 'o-1')
  t.equal(registry.serviceRevision('orders'), 4, 'the removal is its last change')
  t.equal(registry.service('orders')?.instances.size, 0)
  t.same(registry.serviceNames(), ['billing'], 'an empty service is not listed')
  t.same(
    registry.summaries().map((s) => [s.name, s.instances, s.revision]),
    [['billing', 2, 3]],
  )
  await registerNow(registry, 'orders', 'o-9')
  t.equal(registry.serviceRevision('orders'), 5, 'and goes on from the global revision when it comes back')
  await registry.flush()
  t.same(
    changes.filter((c) => c.service === 'orders').map((c) => [c.revision, c.op]),
    [
      [1, 'upsert'],
      [4, 'delete'],
      [5, 'upsert'],
    ],
  )
})

t.test('summaries count routable instances and list zones', async (t) => {
  const { registry } = await openCore()
  await registerNow(registry, 'orders', 'o-1', { zone: 'eu-1b' })
  await registerNow(registry, 'orders', 'o-2', { zone: 'eu-1a', status: 'draining' })
  await registerNow(registry, 'orders', 'o-3', { zone: 'eu-1a' })
  await registerNow(registry, 'orders', 'o-4')
  t.same(registry.summaries(), [{ name: 'orders', instances: 4, routable: 3, zones: ['eu-1a', 'eu-1b'], revision: 4 }])
  t.same(registry.healthCounts(), { passing: 4, critical: 0, unknown: 0 })
})
