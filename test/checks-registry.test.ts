import { join } from 'node:path'
import t from 'tap'
import type { RegisterInput } from '../client-sdk/protocol.js'
import { RegisterBody } from '../client-sdk/protocol.js'
import { ManualClock } from '../server/registry/clock.js'
import { Registry } from '../server/registry/registry.js'
import { SqliteStore } from '../server/store/sqlite.js'
import { tempDir } from './helpers/server.js'

// What the registry does with checks: which check object a result must name, what a
// re-registration keeps, checks switched off, and check health across a restart.

const CHECK = { type: 'http', path: '/health', intervalSeconds: 1, timeoutSeconds: 1, healthyThreshold: 1, unhealthyThreshold: 1 } as const
const body = (over: Partial<RegisterInput> = {}) => RegisterBody.parse({ host: '127.0.0.1', port: 9000, check: CHECK, ...over })
const ok = { ok: true, statusCode: 200, durationMs: 1 }
const failed = { ok: false, statusCode: 500, error: 'status 500', durationMs: 1 }

async function open(t: { teardown(fn: () => unknown): void }, options: { db?: string; checksEnabled?: boolean } = {}) {
  const store = SqliteStore.open(options.db ?? ':memory:')
  const clock = new ManualClock()
  const registry = await Registry.open({ store, clock, ...(options.checksEnabled !== undefined && { checksEnabled: options.checksEnabled }) })
  let closed = false
  const close = async () => {
    if (closed) return
    closed = true
    await registry.flush().catch(() => undefined)
    await store.close()
  }
  t.teardown(close)
  return { registry, clock, close }
}

t.test('a re-registration with an equal check on the same address keeps the check, its health and its object', async (t) => {
  const { registry } = await open(t)
  const first = registry.register('web', 'w-1', body())
  await first.committed
  const probed = first.record.check!
  registry.recordCheck('web', 'w-1', probed, ok)
  t.equal(first.record.health, 'passing')

  // A new weight is a change of the registration, not of what is probed.
  const again = registry.register('web', 'w-1', body({ weight: 50 }))
  await again.committed
  t.equal(again.record.check, probed, 'the same object: a probe in flight still counts')
  t.equal(again.record.health, 'passing')
  t.equal(again.record.lastCheck?.ok, true)
  registry.recordCheck('web', 'w-1', probed, failed)
  t.equal(again.record.health, 'critical', 'the result of the kept check applies')
})

t.test('a new check, or a new address to probe, replaces the check object and starts over at unknown', async (t) => {
  const { registry } = await open(t)
  const { record, committed } = registry.register('web', 'w-1', body())
  await committed
  const old = record.check!
  registry.recordCheck('web', 'w-1', old, ok)
  t.equal(record.health, 'passing')

  registry.register('web', 'w-1', body({ check: { ...CHECK, path: '/ready' } }))
  t.not(record.check, old)
  t.equal(record.health, 'unknown', 'a new check has not answered yet')
  t.equal(record.lastCheck, undefined, 'the old check result is gone')
  const revision = registry.revision
  registry.recordCheck('web', 'w-1', old, failed)
  t.equal(record.health, 'unknown', 'a late result of the old check is dropped')
  t.equal(record.lastCheck, undefined)
  t.equal(registry.revision, revision, 'and is no change')

  registry.recordCheck('web', 'w-1', record.check!, ok)
  t.equal(record.health, 'passing')
  const before = record.check!
  registry.register('web', 'w-1', body({ check: { ...CHECK, path: '/ready' }, port: 9001 }))
  t.not(record.check, before, 'a new port is a new target')
  t.equal(record.health, 'unknown')
  registry.recordCheck('web', 'w-1', before, ok)
  t.equal(record.health, 'unknown', 'a result from the old port is dropped')

  const https = record.check!
  registry.register('web', 'w-1', body({ check: { ...CHECK, path: '/ready' }, port: 9001, scheme: 'https' }))
  t.not(record.check, https, 'a new scheme is a new target')

  registry.register('web', 'w-1', body({ check: undefined, port: 9001, scheme: 'https' }))
  t.equal(record.check, undefined)
  t.equal(record.health, 'passing', 'no check: the lease alone decides')
  await registry.flush()
})

t.test('instances() lists every instance of every service', async (t) => {
  const { registry } = await open(t)
  registry.register('a', 'a-1', body())
  registry.register('a', 'a-2', body({ check: undefined }))
  registry.register('b', 'b-1', body())
  await registry.flush()
  t.same([...registry.instances()].map((r) => `${r.service}/${r.id}`).sort(), ['a/a-1', 'a/a-2', 'b/b-1'])
})

t.test('checks off: a check is accepted and kept, but ignored; health follows the lease', async (t) => {
  const { registry, clock } = await open(t, { checksEnabled: false })
  const { record, committed } = registry.register('web', 'w-1', body())
  await committed
  t.same(record.check, { ...CHECK }, 'the check is kept as registered')
  t.equal(record.health, 'passing', 'not unknown: no probe will ever answer')
  t.equal(record.checkHealth, null)
  const revision = registry.revision
  registry.recordCheck('web', 'w-1', record.check!, failed)
  t.equal(record.health, 'passing', 'a result is ignored')
  t.equal(record.lastCheck, undefined)
  t.equal(registry.revision, revision)

  clock.advance(31_000)
  registry.sweep()
  t.equal(record.health, 'critical', 'the lease still counts')
  registry.heartbeat('web', 'w-1')
  t.equal(record.health, 'passing')
  await registry.flush()
})

t.test('check health across restarts, with checks switched on and off', async (t) => {
  const db = join(tempDir(t), 'rollcall.db')
  {
    const { registry, close } = await open(t, { db })
    const { record, committed } = registry.register('web', 'w-1', body())
    await committed
    registry.recordCheck('web', 'w-1', record.check!, failed)
    t.equal(record.health, 'critical')
    await close()
  }
  {
    const { registry, close } = await open(t, { db })
    const r = registry.get('web', 'w-1')!
    t.equal(r.health, 'critical', 'checks on: the last check health is kept across a restart')
    t.equal(r.lastCheck?.error, 'status 500')
    await close()
  }
  {
    const { registry, close } = await open(t, { db, checksEnabled: false })
    const r = registry.get('web', 'w-1')!
    t.equal(r.health, 'passing', 'checks off: the check is ignored, the fresh lease decides')
    t.equal(r.checkHealth, null)
    t.equal(r.revision, registry.revision, 'the change of health is a change')
    await close()
  }
  {
    const { registry, close } = await open(t, { db })
    const r = registry.get('web', 'w-1')!
    t.equal(r.health, 'unknown', 'checks on again: unknown until the first probe answers')
    registry.recordCheck('web', 'w-1', r.check!, ok)
    t.equal(r.health, 'passing')
    await close()
  }
})
