import t from 'tap'
import { RegistryClient } from '../client-sdk/registry-client.js'
import type { ServiceChange } from '../client-sdk/service.js'
import { spawnNode } from './helpers/cluster-nodes.js'
import { startEtcdCluster, uniquePrefix } from './helpers/etcd-cluster.js'
import { instanceBody } from './helpers/server.js'

// The SDK over a cluster: given every node's URL, it moves to another node when its node
// dies, keeping its cache and its registration; its watch resumes there with `since`.

t.test('kill -9 the node an SDK uses: it moves on without losing its cache, its registration or a change', async (t) => {
  const etcd = await startEtcdCluster(t)
  const prefix = uniquePrefix()
  const [a, b, c] = [await spawnNode(t, etcd, prefix), await spawnNode(t, etcd, prefix), await spawnNode(t, etcd, prefix)]
  const registered: string[] = []
  const sdk = new RegistryClient({ url: [a.url, b.url, c.url], requestTimeoutMs: 3000 })
  t.teardown(() => sdk.close())
  const me = await sdk.register(
    { service: 'orders', host: '127.0.0.1', port: 9000, ttlSeconds: 6 },
    { registered: (i) => registered.push(i.id) },
  )
  const pay = sdk.service('pay')
  await pay.ready()
  const seen: ServiceChange[] = []
  pay.onChange((ch) => seen.push(ch))

  const put = async (id: string, port: number) => {
    const res = await fetch(`${c.url}/v1/services/pay/instances/${id}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(instanceBody({ port, ttlSeconds: 600 })),
    })
    t.equal(res.status, 201)
    return ((await res.json()) as { revision: number }).revision
  }
  const before = await put('p-1', 9101)
  await new Promise<void>((resolve) => {
    const stop = pay.onChange(() => {
      if (pay.all().some((i) => i.id === 'p-1')) {
        stop()
        resolve()
      }
    })
    if (pay.all().some((i) => i.id === 'p-1')) resolve()
  })

  a.child.kill('SIGKILL')
  await a.exited
  // Changes made while the SDK's node is dead and it reconnects elsewhere.
  const during = [await put('p-2', 9102), await put('p-3', 9103)]
  await new Promise<void>((resolve) => {
    const done = () => ['p-1', 'p-2', 'p-3'].every((id) => pay.all().some((i) => i.id === id))
    if (done()) return resolve()
    const stop = pay.onChange(() => {
      if (done()) {
        stop()
        resolve()
      }
    })
  })
  const upserts = seen.filter((ch) => ch.kind === 'upsert').map((ch) => ch.revision)
  t.ok(upserts.includes(before), 'the change before the kill')
  for (const r of during) t.ok(upserts.includes(r) || seen.some((ch) => ch.kind === 'snapshot' && ch.revision >= r), `change ${r} reached the cache`)
  t.ok(seen.every((ch, i) => i === 0 || ch.revision > seen[i - 1]!.revision), 'the cache moved forward only')

  // The registration kept its lease through the other nodes: still passing after more
  // than one TTL, and never registered again.
  await new Promise<void>((resolve) => {
    // Past one TTL (6 s) since the kill: the lease was kept alive through the others.
    let beats = 0
    const timer = setInterval(async () => {
      const res = await fetch(`${b.url}/v1/services/orders/instances/${me.id}`)
      const inst = (await res.json()) as { health: string }
      t.equal(inst.health, 'passing')
      if (++beats === 7) {
        clearInterval(timer)
        resolve()
      }
    }, 1000)
  })
  t.same(registered, [me.id], 'registered once, kept alive through the other nodes')
})
