import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Etcd3 } from 'etcd3'
import t from 'tap'
import { ownerOf } from '../server/cluster/rendezvous.js'
import { spawnNode } from './helpers/cluster-nodes.js'
import { startEtcdCluster, uniquePrefix } from './helpers/etcd-cluster.js'
import type { ServerProcess } from './helpers/server.js'
import { instanceBody } from './helpers/server.js'
import { WatchClient } from './helpers/watch-client.js'

// Failure tests against the built server (npm run build): nodes are child processes, so a
// test can kill -9 one. Bounds, with --etcd-session-ttl 2 as here: a dead node leaves the
// election and the check rota within 2 s (+ etcd's lease check, 0.5 s); expiry then goes
// on within one sweep (250 ms) of the new holder's election.

const etcd = await startEtcdCluster(t)

const json = async (url: string, method = 'GET', body?: unknown): Promise<{ status: number; body: any }> => {
  const res = await fetch(url, {
    method,
    ...(body !== undefined && { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  })
  const text = await res.text()
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) }
}

/** Resolves once a node logged a line that `match` accepts (already logged counts). */
function logged(sp: ServerProcess, match: (entry: Record<string, unknown>) => boolean): Promise<void> {
  const test = (line: string) => {
    try {
      return match(JSON.parse(line) as Record<string, unknown>)
    } catch {
      return false
    }
  }
  if (sp.lines.some(test)) return Promise.resolve()
  return new Promise((resolve) => {
    const onData = () => {
      if (sp.lines.some(test)) {
        sp.child.stdout?.off('data', onData)
        resolve()
      }
    }
    // `lines` is filled by the helper's own reader; look again whenever output arrives.
    sp.child.stdout?.on('data', () => setImmediate(onData))
  })
}

const elected = (sp: ServerProcess) => logged(sp, (e) => e.msg === 'elected')

async function killed(sp: ServerProcess): Promise<void> {
  sp.child.kill('SIGKILL')
  await sp.exited
}

t.test('kill -9 the node a client registered through: no acknowledged registration is lost', async (t) => {
  const prefix = uniquePrefix()
  const nodes = [await spawnNode(t, etcd, prefix), await spawnNode(t, etcd, prefix), await spawnNode(t, etcd, prefix)]
  const [a, b, c] = nodes as [ServerProcess, ServerProcess, ServerProcess]
  const watcher = await WatchClient.open(b.url)
  t.teardown(() => watcher.close())
  watcher.subscribe(['orders'])
  await watcher.next()

  const acked: string[] = []
  const register = (i: number) =>
    json(`${a.url}/v1/services/orders/instances/o-${i}`, 'PUT', instanceBody({ port: 10_000 + i, ttlSeconds: 600 })).then(
      (r) => {
        if (r.status === 201) acked.push(`o-${i}`)
      },
      () => undefined, // cut off by the kill: not acknowledged, so nothing is promised
    )
  for (let i = 0; i < 20; i++) await register(i)
  // Then a burst in flight while the node dies: the ones answered 201 must all survive.
  const burst: Array<Promise<void>> = []
  for (let i = 20; i < 60; i++) burst.push(register(i))
  await Promise.race(burst)
  await killed(a)
  await Promise.all(burst)
  t.ok(acked.length >= 21, `${acked.length} registrations acknowledged before the kill`)

  for (const node of [b, c]) {
    const list = await json(`${node.url}/v1/services/orders/instances`)
    const ids = new Set((list.body.instances as Array<{ id: string }>).map((i) => i.id))
    t.same(acked.filter((id) => !ids.has(id)), [], 'every acknowledged registration is there')
  }
  await watcher.until(() => acked.every((id) => watcher.view.get('orders')?.has(id) === true))
  const revisions = watcher.messages.slice(1).map((m) => (m as { revision: number }).revision)
  t.ok(revisions.every((r, i) => i === 0 || r > revisions[i - 1]!), "B's watcher saw every change in order")
})

t.test('kill -9 the election holder: expiry goes on on another node', async (t) => {
  const prefix = uniquePrefix()
  const nodes = [await spawnNode(t, etcd, prefix), await spawnNode(t, etcd, prefix), await spawnNode(t, etcd, prefix)]
  const leader = await Promise.race(nodes.map((n) => elected(n).then(() => n)))
  const others = nodes.filter((n) => n !== leader)
  const watcher = await WatchClient.open(others[0]!.url)
  t.teardown(() => watcher.close())
  watcher.subscribe(['jobs'])
  await watcher.next()

  const reg = await json(`${others[1]!.url}/v1/services/jobs/instances/j-1`, 'PUT', instanceBody({ ttlSeconds: 2, deregisterAfterSeconds: 1 }))
  t.equal(reg.status, 201)
  await killed(leader)
  const killedAt = Date.now()

  // One of the others takes over the election, then turns the lapsed lease critical.
  await Promise.race(others.map((n) => elected(n)))
  t.pass('another node was elected')
  await watcher.until(() => watcher.view.get('jobs')?.get('j-1')?.health === 'critical')
  await watcher.until(() => watcher.view.get('jobs')?.has('j-1') === false)
  t.comment(`critical and removed ${Date.now() - killedAt} ms after the holder died`)
  const changes = watcher.messages.slice(1) as Array<{ revision: number; op: string; instance: { health: string } }>
  t.same(
    changes.map((m) => `${m.op}:${m.instance.health}`),
    ['upsert:passing', 'upsert:critical', 'delete:critical'],
    'registered, expired, removed: once each',
  )
})

t.test('active checks move to a live node when the node running them dies', async (t) => {
  let healthy = true
  const target = createServer((_req, res) => {
    res.statusCode = healthy ? 200 : 500
    res.end()
  })
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => target.close(() => r())))
  const port = (target.address() as AddressInfo).port

  const prefix = uniquePrefix()
  const nodes = [await spawnNode(t, etcd, prefix), await spawnNode(t, etcd, prefix), await spawnNode(t, etcd, prefix)]
  const watcher = await WatchClient.open(nodes[0]!.url)
  t.teardown(() => watcher.close())
  watcher.subscribe(['web'])
  await watcher.next()
  const check = { type: 'http', path: '/health', intervalSeconds: 1, timeoutSeconds: 1, healthyThreshold: 1, unhealthyThreshold: 1 }
  const reg = await json(`${nodes[1]!.url}/v1/services/web/instances/w-1`, 'PUT', instanceBody({ port, ttlSeconds: 600, check }))
  t.equal(reg.status, 201)
  await watcher.until(() => watcher.view.get('web')?.get('w-1')?.health === 'passing')

  // Which node runs the check: rendezvous hashing over the announced nodes, as they do.
  const client = new Etcd3({ hosts: etcd.endpoints })
  t.teardown(() => client.close())
  const announced = await client.namespace(`${prefix}/nodes/`).getAll().strings()
  const byUrl = new Map(Object.entries(announced).map(([id, url]) => [url, id]))
  t.equal(byUrl.size, 3, 'three nodes announced')
  const ownerId = ownerOf([...byUrl.values()], 'web/w-1')
  const owner = nodes.find((n) => byUrl.get(n.url) === ownerId)!
  t.ok(owner, 'the owner is one of the nodes')

  await killed(owner)
  healthy = false
  // Only a live node can see the target fail: the check moved.
  const survivor = nodes.find((n) => n !== owner)!
  const w2 = owner === nodes[0] ? await WatchClient.open(survivor.url) : watcher
  if (w2 !== watcher) {
    t.teardown(() => w2.close())
    w2.subscribe(['web'])
    await w2.next()
  }
  await w2.until(() => w2.view.get('web')?.get('w-1')?.health === 'critical')
  const inst = (await json(`${survivor.url}/v1/services/web/instances/w-1`)).body
  t.match(inst, { health: 'critical', lastCheck: { ok: false, statusCode: 500 } })
})
