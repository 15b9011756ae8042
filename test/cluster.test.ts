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
