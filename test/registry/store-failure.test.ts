import t from 'tap'
import { RegistryError } from '../../server/registry/errors.js'
import { body, openCore, registerNow } from '../helpers/registry.js'

t.test('a store failure: onFatal fires once and the registry refuses writes with UNAVAILABLE', async (t) => {
  const { registry, store, clock, changes } = await openCore()
  await registerNow(registry, 'orders', 'o-1', { ttlSeconds: 10 })
  const fatal: Error[] = []
  registry.onFatal((err) => fatal.push(err))
  const diskFull = new Error('disk full')
  store.failWith(diskFull)

  const failed = registry.register('orders', 'o-2', body())
  await t.rejects(failed.committed, { code: 'UNAVAILABLE' }, 'the write that failed is answered UNAVAILABLE')
  t.same(fatal, [diskFull], 'onFatal gets the store error')
  t.equal(registry.failure, diskFull)
  t.same(changes.map((c) => c.revision), [1], 'a change that is not durable is never published')
  t.equal(registry.committedRevision, 1)

  const unavailable = { code: 'UNAVAILABLE', constructor: RegistryError }
  t.throws(() => registry.register('orders', 'o-3', body()), unavailable)
  t.throws(() => registry.register('orders', 'o-1', body({ ttlSeconds: 10 })), unavailable)
  t.throws(() => registry.patch('orders', 'o-1', { weight: 1 }), unavailable)
  t.throws(() => registry.deregister('orders', 'o-1'), unavailable)

  // Reads and leases go on in memory; nothing more is handed to the store.
  t.ok(registry.get('orders', 'o-1'))
  const appended = store.appended.length
  t.ok(registry.heartbeat('orders', 'o-1'), 'heartbeats still answer')
  clock.advance(60_000)
  t.same(registry.sweep(), { expired: 0, removed: 0, held: 0, selfPreservation: false }, 'sweeps make no changes')
  t.equal(store.appended.length, appended, 'no write is attempted after the failure')

  store.failWith(new Error('again'))
  await registry.flush().catch(() => undefined)
  t.equal(fatal.length, 1, 'onFatal fires once')
})

t.test('a failure in a write nobody awaits (a sweep) is no unhandled rejection', async (t) => {
  const { registry, store, clock } = await openCore()
  await registerNow(registry, 'orders', 'o-1', { ttlSeconds: 1 })
  const fatal: Error[] = []
  registry.onFatal((err) => fatal.push(err))
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown) => unhandled.push(reason)
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => process.off('unhandledRejection', onUnhandled))

  store.failWith()
  clock.advance(1000)
  registry.sweep()
  await registry.flush().catch(() => undefined)
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(fatal.length, 1)
  t.same(unhandled, [])
})
