import { join } from 'node:path'
import t from 'tap'
import type { RegisterInput } from '../client-sdk/protocol.js'
import { RegisterBody } from '../client-sdk/protocol.js'
import type { RegisterBody as Body } from '../client-sdk/protocol.js'
import { EtcdRegistry } from '../server/cluster/etcd-registry.js'
import type { Change } from '../server/registry/change.js'
import type { RegistryApi } from '../server/registry/registry-api.js'
import { Registry } from '../server/registry/registry.js'
import { SqliteStore } from '../server/store/sqlite.js'
import { startEtcdCluster, uniquePrefix } from './helpers/etcd-cluster.js'
import { tempDir } from './helpers/server.js'

// One suite, two stores, at the level of the registry itself (what routes, the watch and
// the checker use): Registry over a real SQLite file, and EtcdRegistry over a real etcd
// cluster. Each store is opened twice on the same state, as a restart (SQLite) or as a
// second node (etcd) would see it.

type Teardown = Parameters<Parameters<typeof t.test>[1]>[0]

interface Opened {
  registry: RegistryApi
  changes: Change[]
}

type Store = {
  name: string
  /** A fresh, empty state; `open()` opens a registry on it (again). */
  fresh(t: Teardown): { open(): Promise<Opened> }
}

const etcd = await startEtcdCluster(t)

const watch = (registry: RegistryApi): Opened => {
  const changes: Change[] = []
  registry.onChange((c) => changes.push(c))
  return { registry, changes }
}

const stores: Store[] = [
  {
    name: 'sqlite',
    fresh(t) {
      const path = join(tempDir(t), 'rollcall.db')
      return {
        async open() {
          const store = SqliteStore.open(path)
          const registry = await Registry.open({ store })
          t.teardown(async () => {
            await registry.flush().catch(() => undefined)
            await store.close()
          })
          return watch(registry)
        },
      }
    },
  },
  {
    name: 'etcd',
    fresh(t) {
      const prefix = uniquePrefix()
      return {
        async open() {
          const registry = await EtcdRegistry.open({ endpoints: etcd.endpoints, prefix, sessionTtlSeconds: 2 })
          t.teardown(() => registry.close())
          return watch(registry)
        },
      }
    },
  },
]

const body = (input: Partial<RegisterInput> = {}) => RegisterBody.parse({ host: '10.0.0.1', port: 8080, ...input })
/** Registers and waits until the change is durable (a promise or not, by store). */
const registered = async (registry: RegistryApi, service: string, id: string, b: Body) =>
  (await registry.register(service, id, b)).committed
const ops = (changes: Change[]) => changes.map((c) => `${c.op}:${c.service}/${c.instance.id}`)

for (const store of stores) {
  t.test(`${store.name}: writes are changes in increasing revision order, published once durable`, async (t) => {
    const { registry, changes } = await store.fresh(t).open()
    const a = await registry.register('orders', 'o-1', body())
    await a.committed
    t.equal(a.created, true)
    t.equal(a.record.revision, registry.revision)
    t.equal(changes.length, 1)
    t.equal(changes[0]!.revision, a.record.revision, 'published with the revision the caller got')

    const again = await registry.register('orders', 'o-1', body())
    await again.committed
    t.equal(again.created, false)
    t.equal(changes.length, 1, 'the same registration again is no change')

    const p = await registry.patch('orders', 'o-1', { weight: 7 })
    await p.committed
    t.equal(p.record.weight, 7)
    const noop = await registry.patch('orders', 'o-1', { weight: 7 })
    await noop.committed
    await registered(registry, 'billing', 'b-1', body())
    await registry.deregister('orders', 'o-1')
    t.same(ops(changes), ['upsert:orders/o-1', 'upsert:orders/o-1', 'upsert:billing/b-1', 'delete:orders/o-1'])
    const revs = changes.map((c) => c.revision)
    t.ok(revs.every((r, i) => i === 0 || r > revs[i - 1]!), 'strictly increasing')
    t.equal(registry.revision, revs.at(-1))
    t.equal(registry.serviceRevision('orders'), revs[3], "a service's revision is its last change")
    t.equal(registry.serviceRevision('billing'), revs[2])
    t.same(registry.serviceNames(), ['billing'])
    t.equal(registry.instanceCount, 1)

    t.same(registry.changesSince(revs[0]!)?.map((c) => c.revision), revs.slice(1), 'the history after a revision')
    t.same(registry.changesSince(registry.revision), [])
    t.equal(await registry.heartbeat('orders', 'o-1'), undefined, 'a heartbeat of an unknown instance')
    await t.rejects(Promise.resolve().then(() => registry.deregister('orders', 'o-1')), { code: 'INSTANCE_NOT_FOUND' })
  })

  t.test(`${store.name}: a heartbeat renews the lease without a change`, async (t) => {
    const { registry, changes } = await store.fresh(t).open()
    await registered(registry, 'orders', 'o-1', body({ ttlSeconds: 30 }))
    const before = registry.revision
    const r = await registry.heartbeat('orders', 'o-1')
    t.equal(r?.health, 'passing')
    t.ok(r!.expiresAt >= Date.now() + 29_000)
    t.equal(registry.revision, before)
    t.equal(changes.length, 1)
  })

  t.test(`${store.name}: check results flip health past the thresholds, one change each way`, async (t) => {
    const { registry, changes } = await store.fresh(t).open()
    const check = { type: 'tcp' as const, intervalSeconds: 10, timeoutSeconds: 2, healthyThreshold: 2, unhealthyThreshold: 2 }
    await registered(registry, 'db', 'd-1', body({ check }))
    t.equal(registry.get('db', 'd-1')?.health, 'unknown')
    const settleOn = async (health: string) => {
      while (registry.get('db', 'd-1')?.health !== health) {
        await new Promise<void>((resolve) => {
          const sub = registry.onChange(() => {
            sub.dispose()
            resolve()
          })
        })
      }
    }
    const probed = registry.get('db', 'd-1')!.check as object
    registry.recordCheck('db', 'd-1', probed, { ok: true, durationMs: 1 })
    await settleOn('passing')
    registry.recordCheck('db', 'd-1', registry.get('db', 'd-1')!.check as object, { ok: false, durationMs: 1 })
    t.equal(registry.get('db', 'd-1')?.health, 'passing', 'one failure is under the threshold')
    registry.recordCheck('db', 'd-1', registry.get('db', 'd-1')!.check as object, { ok: false, durationMs: 1 })
    await settleOn('critical')
    await registry.flush()
    t.same(
      changes.map((c) => c.instance.health),
      ['unknown', 'passing', 'critical'],
    )
    t.equal(registry.get('db', 'd-1')?.check, probed, 'the check object is kept while the check is the same')
  })

  t.test(`${store.name}: what was written is there when the store is opened again`, async (t) => {
    const state = store.fresh(t)
    const first = await state.open()
    await registered(first.registry, 'orders', 'o-1', body({ tags: ['a'] }))
    await registered(first.registry, 'orders', 'o-2', body())
    await first.registry.deregister('orders', 'o-2')
    const revision = first.registry.revision
    await first.registry.flush()
    // SQLite: the same file opened again, as after a restart; etcd: a second node.
    const second = await state.open()
    t.same(second.registry.serviceNames(), ['orders'])
    t.same(second.registry.get('orders', 'o-1')?.tags, ['a'])
    t.equal(second.registry.get('orders', 'o-2'), undefined)
    t.ok(second.registry.revision >= revision, 'the revision never goes back')
  })
}
