import { Etcd3 } from 'etcd3'
import t from 'tap'
import { startEtcdCluster, uniquePrefix } from './helpers/etcd-cluster.js'
import { startNodes } from './helpers/cluster-nodes.js'
import { instanceBody } from './helpers/server.js'
import { WatchClient } from './helpers/watch-client.js'

const etcd = await startEtcdCluster(t)

t.test('a registration through A is visible through B at once and pushed to B\'s watchers', async (t) => {
  const [a, b, c] = await startNodes(t, etcd.endpoints, uniquePrefix(), 3)
  const watcher = await WatchClient.open(b!.url)
  t.teardown(() => watcher.close())
  watcher.subscribe(['orders'])
  const snap = await watcher.next()
  t.equal(snap.type, 'snapshot')

  const res = await a!.request('PUT', '/v1/services/orders/instances/o-1', instanceBody({ port: 9001 }))
  t.equal(res.status, 201)
  const created = (await res.json()) as { revision: number }
  const seen = await b!.request('GET', '/v1/services/orders/instances/o-1')
  t.equal(seen.status, 200, 'B answers what A acknowledged, at once')
  t.equal(((await seen.json()) as { revision: number }).revision, created.revision)
  const list = (await (await c!.request('GET', '/v1/services/orders/instances')).json()) as { revision: number; instances: unknown[] }
  t.equal(list.instances.length, 1)
  t.equal(list.revision, created.revision, 'the service revision is the same on every node')

  const change = await watcher.next()
  t.match(change, { type: 'change', op: 'upsert', service: 'orders', revision: created.revision, instance: { id: 'o-1', port: 9001 } })
})

t.test('revisions only go forward, and a watcher resuming on another node with since misses nothing', async (t) => {
  const [a, b, c] = await startNodes(t, etcd.endpoints, uniquePrefix(), 3)
  const first = await WatchClient.open(a!.url)
  first.subscribe(['*'])
  t.equal((await first.next()).type, 'snapshot')
  const revisions: number[] = []
  for (let i = 0; i < 5; i++) {
    const res = await a!.request('PUT', `/v1/services/pay/instances/p-${i}`, instanceBody({ port: 9000 + i }))
    revisions.push(((await res.json()) as { revision: number }).revision)
  }
  await first.until(() => first.revision === revisions[4])
  const since = first.revision
  first.close()

  // While no one watches, changes go through the third node.
  const later: number[] = []
  for (let i = 0; i < 3; i++) {
    const res = await c!.request('PATCH', `/v1/services/pay/instances/p-${i}`, { weight: 10 + i })
    later.push(((await res.json()) as { revision: number }).revision)
  }
  const del = await c!.request('DELETE', '/v1/services/pay/instances/p-4')
  t.equal(del.status, 204)
  const all = [...revisions, ...later]
  for (let i = 1; i < all.length; i++) t.ok(all[i]! > all[i - 1]!, `revision ${all[i]} > ${all[i - 1]}`)

  const resumed = await WatchClient.open(b!.url)
  t.teardown(() => resumed.close())
  resumed.subscribe(['*'], since)
  const got = []
  for (let i = 0; i < 4; i++) got.push(await resumed.next())
  t.same(
    got.map((m) => m.type),
    ['change', 'change', 'change', 'change'],
    'a replay of what came after since, no snapshot',
  )
  t.same(got.slice(0, 3).map((m) => (m as { revision: number }).revision), later)
  t.match(got[3], { op: 'delete', instance: { id: 'p-4' } })
  t.ok((got[3] as { revision: number }).revision > later[2]!)
  t.same([...(resumed.view.get('pay')?.keys() ?? [])].sort(), ['p-0', 'p-1', 'p-2'])
})

t.test('a heartbeat through any node keeps the lease; expiry makes it critical and removal follows', async (t) => {
  const nodes = await startNodes(t, etcd.endpoints, uniquePrefix(), 3)
  const watcher = await WatchClient.open(nodes[2]!.url)
  t.teardown(() => watcher.close())
  watcher.subscribe(['beat'])
  await watcher.next()
  const res = await nodes[0]!.request('PUT', '/v1/services/beat/instances/b-1', instanceBody({ ttlSeconds: 4, deregisterAfterSeconds: 1 }))
  t.equal(res.status, 201)
  await watcher.until(() => watcher.view.get('beat')?.has('b-1') === true)
  const registered = watcher.revision

  // Heartbeats every second (a 3 s margin on a loaded machine), each through another
  // node, for two TTLs.
  for (let i = 0; i < 8; i++) {
    const hb = await nodes[i % 3]!.request('PUT', '/v1/services/beat/instances/b-1/heartbeat')
    t.equal(hb.status, 200, `heartbeat ${i} through node ${i % 3}`)
    t.equal(((await hb.json()) as { health: string }).health, 'passing')
    await new Promise((r) => setTimeout(r, 1000))
  }
  t.equal(watcher.revision, registered, 'no change while heartbeats arrive: the lease held')
  t.equal(watcher.view.get('beat')?.get('b-1')?.health, 'passing')

  // No more heartbeats: etcd expires the lease, the elected node turns it critical, then removes it.
  await watcher.until(() => watcher.view.get('beat')?.get('b-1')?.health === 'critical')
  const critical = watcher.messages.at(-1) as { revision: number }
  t.ok(critical.revision > registered)
  for (const n of nodes) {
    const got = (await (await n.request('GET', '/v1/services/beat/instances/b-1')).json()) as { health: string }
    t.equal(got.health, 'critical', 'every node agrees')
  }
  await watcher.until(() => watcher.view.get('beat')?.has('b-1') === false)
  t.equal((await nodes[1]!.request('GET', '/v1/services/beat/instances/b-1')).status, 404)

  // A heartbeat now finds nothing: the SDK re-registers.
  t.equal((await nodes[1]!.request('PUT', '/v1/services/beat/instances/b-1/heartbeat')).status, 404)
})

t.test('a heartbeat revives a critical instance with a new lease', async (t) => {
  const nodes = await startNodes(t, etcd.endpoints, uniquePrefix(), 2)
  const watcher = await WatchClient.open(nodes[0]!.url)
  t.teardown(() => watcher.close())
  watcher.subscribe(['rev'])
  await watcher.next()
  await nodes[0]!.request('PUT', '/v1/services/rev/instances/r-1', instanceBody({ ttlSeconds: 2, deregisterAfterSeconds: 600 }))
  await watcher.until(() => watcher.view.get('rev')?.get('r-1')?.health === 'critical')
  const hb = await nodes[1]!.request('PUT', '/v1/services/rev/instances/r-1/heartbeat')
  t.equal(hb.status, 200)
  t.equal(((await hb.json()) as { health: string }).health, 'passing', 'revived by the heartbeat, through the other node')
  await watcher.until(() => watcher.view.get('rev')?.get('r-1')?.health === 'passing')
  t.pass('the revival is pushed')
})

t.test('a node started later replays etcd history to a watcher resuming with an older since', async (t) => {
  const prefix = uniquePrefix()
  const [a] = await startNodes(t, etcd.endpoints, prefix, 1)
  const revisions: number[] = []
  for (let i = 0; i < 4; i++) {
    const res = await a!.request('PUT', `/v1/services/hist/instances/h-${i}`, instanceBody({ port: 9200 + i }))
    revisions.push(((await res.json()) as { revision: number }).revision)
  }
  t.equal((await a!.request('DELETE', '/v1/services/hist/instances/h-3')).status, 204)

  // This node starts after all of it: its log comes from etcd's history.
  const [late] = await startNodes(t, etcd.endpoints, prefix, 1)
  const w = await WatchClient.open(late!.url)
  t.teardown(() => w.close())
  w.subscribe(['hist'], revisions[0])
  const got = [await w.next(), await w.next(), await w.next(), await w.next()] as Array<{
    type: string
    op: string
    revision: number
    instance: { id: string; port: number }
  }>
  t.same(got.map((m) => m.type), ['change', 'change', 'change', 'change'], 'a replay, not a snapshot')
  t.same(got.map((m) => `${m.op}:${m.instance.id}`), ['upsert:h-1', 'upsert:h-2', 'upsert:h-3', 'delete:h-3'])
  t.same(got.slice(0, 3).map((m) => m.revision), revisions.slice(1))
  t.ok(got[3]!.revision > got[2]!.revision)
  t.equal(got[3]!.instance.port, 9203, 'a removal carries the instance as it was')

  // And a since from before anything etcd still holds for this prefix is answered too,
  // while one older than the node's history reaches gets a snapshot (tested in the core).
  const live = await a!.request('PUT', '/v1/services/hist/instances/h-9', instanceBody())
  const rev = ((await live.json()) as { revision: number }).revision
  await w.until(() => w.revision === rev)
  t.pass('live changes follow the replay')
})

t.test('when etcd compacted past since, a resuming watcher gets a snapshot', async (t) => {
  const prefix = uniquePrefix()
  const [a] = await startNodes(t, etcd.endpoints, prefix, 1)
  const first = ((await (await a!.request('PUT', '/v1/services/cmp/instances/c-1', instanceBody())).json()) as { revision: number }).revision
  const second = ((await (await a!.request('PUT', '/v1/services/cmp/instances/c-2', instanceBody())).json()) as { revision: number }).revision
  const client = new Etcd3({ hosts: etcd.endpoints })
  t.teardown(() => client.close())
  await client.kv.compact({ revision: String(second), physical: true })

  // A node started now cannot read history before the compaction.
  const [late] = await startNodes(t, etcd.endpoints, prefix, 1)
  const w = await WatchClient.open(late!.url)
  t.teardown(() => w.close())
  w.subscribe(['cmp'], first - 1)
  const m = await w.next()
  t.match(m, { type: 'snapshot' }, 'a snapshot, not a partial replay')
  t.ok((m as { revision: number }).revision >= second, 'as of a revision no older than what was acknowledged')
  t.same([...(w.view.get('cmp')?.keys() ?? [])].sort(), ['c-1', 'c-2'])
})
