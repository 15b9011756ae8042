import t from 'tap'
import { startNodes } from './helpers/cluster-nodes.js'
import { startEtcdCluster, uniquePrefix } from './helpers/etcd-cluster.js'
import { instanceBody } from './helpers/server.js'
import { WatchClient } from './helpers/watch-client.js'

// A 3-member etcd cluster keeps a quorum with one member dead: the rollcall nodes carry on,
// their clients moving to the live members (requests fail over at once; watch streams
// re-attach from the revision each node applied, so none misses a change).

t.test('kill -9 one etcd member: registrations, watches, heartbeats and expiry carry on', async (t) => {
  const etcd = await startEtcdCluster(t)
  const nodes = await startNodes(t, etcd.endpoints, uniquePrefix(), 3)
  const watchers = await Promise.all(nodes.map((n) => WatchClient.open(n.url)))
  t.teardown(() => watchers.forEach((w) => w.close()))
  for (const w of watchers) {
    w.subscribe(['*'])
    await w.next()
  }
  const before = await nodes[0]!.request('PUT', '/v1/services/api/instances/before', instanceBody({ ttlSeconds: 600 }))
  t.equal(before.status, 201)

  await etcd.kill(0)

  for (let i = 0; i < 3; i++) {
    const res = await nodes[i]!.request('PUT', `/v1/services/api/instances/after-${i}`, instanceBody({ port: 9100 + i, ttlSeconds: 600 }))
    t.equal(res.status, 201, `a registration through node ${i} after the member died`)
    const seen = await nodes[(i + 1) % 3]!.request('GET', `/v1/services/api/instances/after-${i}`)
    t.equal(seen.status, 200, 'and visible through the next node at once')
  }
  for (const n of nodes) {
    const hb = await n.request('PUT', '/v1/services/api/instances/before/heartbeat')
    t.equal(hb.status, 200, 'heartbeats reach the lease through the live members')
  }
  const expiring = await nodes[1]!.request('PUT', '/v1/services/api/instances/short', instanceBody({ ttlSeconds: 2, deregisterAfterSeconds: 600 }))
  t.equal(expiring.status, 201)

  for (const [i, w] of watchers.entries()) {
    await w.until(() => w.view.get('api')?.get('short')?.health === 'critical')
    const ids = [...(w.view.get('api')?.keys() ?? [])].sort()
    t.same(ids, ['after-0', 'after-1', 'after-2', 'before', 'short'], `node ${i}'s watcher saw every change`)
    const revs = w.messages.slice(1).map((m) => (m as { revision: number }).revision)
    t.ok(revs.every((r, k) => k === 0 || r > revs[k - 1]!), `node ${i}'s watcher: strictly increasing revisions`)
  }
})
