import t from 'tap'
import type { Instance, InstancesResponse, ServicesResponse } from '../client-sdk/protocol.js'
import { Instance as InstanceSchema } from '../client-sdk/protocol.js'
import { startNodes } from './helpers/cluster-nodes.js'
import { startEtcdCluster, uniquePrefix } from './helpers/etcd-cluster.js'
import { instanceBody, startTestServer } from './helpers/server.js'
import { WatchClient } from './helpers/watch-client.js'

// One suite, two stores: the black-box API behaviours that must not depend on where state
// lives, run against one SQLite node and against a cluster of three nodes over etcd. In the
// cluster, consecutive requests go to different nodes, so each assertion also checks that
// what one node acknowledged, the next one answers. Revisions are compared with each other,
// never with numbers: etcd's revisions start elsewhere and have gaps.

/** What the suite talks to: one or more nodes of the same registry. */
interface Target {
  /** The URL of node `i` (modulo the number of nodes). */
  url(i: number): string
  /** A request to the next node, round robin. */
  request(method: string, path: string, json?: unknown, headers?: Record<string, string>): Promise<Response>
}

type Teardown = Parameters<Parameters<typeof t.test>[1]>[0]
type Start = (t: Teardown) => Promise<Target>

function target(urls: string[]): Target {
  let next = 0
  return {
    url: (i) => urls[i % urls.length] as string,
    request: (method, path, json, headers = {}) =>
      fetch(urls[next++ % urls.length] + path, {
        method,
        headers: json === undefined ? headers : { 'content-type': 'application/json', ...headers },
        ...(json !== undefined && { body: JSON.stringify(json) }),
      }),
  }
}

const etcd = await startEtcdCluster(t)

const stores: Array<[string, Start]> = [
  ['sqlite', async (t) => target([(await startTestServer(t)).url])],
  ['etcd, 3 nodes', async (t) => target((await startNodes(t, etcd.endpoints, uniquePrefix(), 3)).map((n) => n.url))],
]

const json = async <T>(res: Response): Promise<T> => (await res.json()) as T

async function put(s: Target, service: string, id: string, overrides: Record<string, unknown> = {}): Promise<Instance> {
  const res = await s.request('PUT', `/v1/services/${service}/instances/${id}`, instanceBody(overrides))
  if (res.status !== 201 && res.status !== 200) throw new Error(`PUT ${service}/${id}: ${res.status} ${await res.text()}`)
  return json<Instance>(res)
}

for (const [store, start] of stores) {
  t.test(`${store}: PUT registers (201), the same again is no change (200), a new spec replaces`, async (t) => {
    const s = await start(t)
    const res = await s.request('PUT', '/v1/services/orders/instances/o-1', instanceBody({ zone: 'eu-1a' }))
    t.equal(res.status, 201)
    const created = await json<Instance>(res)
    t.ok(InstanceSchema.strict().safeParse(created).success, 'the answer is an Instance')
    t.match(created, { service: 'orders', id: 'o-1', status: 'up', health: 'passing', weight: 100, ttlSeconds: 30, zone: 'eu-1a' })
    t.ok(created.revision > 0)

    const same = await s.request('PUT', '/v1/services/orders/instances/o-1', instanceBody({ zone: 'eu-1a' }))
    t.equal(same.status, 200)
    t.equal((await json<Instance>(same)).revision, created.revision, 'no change, no new revision')

    const replaced = await s.request('PUT', '/v1/services/orders/instances/o-1', instanceBody({ port: 9090, tags: ['a'] }))
    t.equal(replaced.status, 200)
    const r = await json<Instance>(replaced)
    t.match(r, { port: 9090, tags: ['a'] })
    t.notOk('zone' in r, 'replaced whole')
    t.ok(r.revision > created.revision)
  })

  t.test(`${store}: POST registers with a server-made id and a Location`, async (t) => {
    const s = await start(t)
    const res = await s.request('POST', '/v1/services/orders/instances', instanceBody())
    t.equal(res.status, 201)
    const body = await json<Instance>(res)
    t.equal(res.headers.get('location'), `/v1/services/orders/instances/${body.id}`)
    t.equal((await s.request('GET', `/v1/services/orders/instances/${body.id}`)).status, 200)
  })

  t.test(`${store}: heartbeats (one and batch) renew; unknown is 404 INSTANCE_NOT_FOUND`, async (t) => {
    const s = await start(t)
    await put(s, 'orders', 'o-1', { ttlSeconds: 20, status: 'draining' })
    const hb = await s.request('PUT', '/v1/services/orders/instances/o-1/heartbeat')
    t.equal(hb.status, 200)
    const body = await json<{ expiresAt: string; status: string; health: string }>(hb)
    t.match(body, { status: 'draining', health: 'passing' })
    t.ok(Date.parse(body.expiresAt) > Date.now() + 15_000, 'a lease of ttlSeconds from now')
    const missing = await s.request('PUT', '/v1/services/orders/instances/nope/heartbeat')
    t.equal(missing.status, 404)
    t.equal((await json<{ error: { code: string } }>(missing)).error.code, 'INSTANCE_NOT_FOUND')

    const batch = await s.request('POST', '/v1/heartbeats', {
      instances: [
        { service: 'orders', id: 'o-1' },
        { service: 'orders', id: 'nope' },
      ],
    })
    t.equal(batch.status, 200)
    const results = (await json<{ results: Array<{ ok: boolean; error?: { code: string } }> }>(batch)).results
    t.match(results, [{ ok: true }, { ok: false, error: { code: 'INSTANCE_NOT_FOUND' } }])
  })

  t.test(`${store}: PATCH changes status, weight, tags, metadata; a no-op patch is no change`, async (t) => {
    const s = await start(t)
    const created = await put(s, 'orders', 'o-1', { tags: ['a', 'b'], metadata: { k: 'v' } })
    const res = await s.request('PATCH', '/v1/services/orders/instances/o-1', {
      status: 'draining',
      weight: 5,
      tags: ['c'],
      metadata: { x: 'y' },
    })
    t.equal(res.status, 200)
    const patched = await json<Instance>(res)
    t.match(patched, { status: 'draining', weight: 5, tags: ['c'], metadata: { x: 'y' } })
    t.ok(patched.revision > created.revision)
    const noop = await json<Instance>(await s.request('PATCH', '/v1/services/orders/instances/o-1', { weight: 5 }))
    t.equal(noop.revision, patched.revision)
    const missing = await s.request('PATCH', '/v1/services/orders/instances/nope', { weight: 1 })
    t.equal(missing.status, 404)
    const bad = await s.request('PATCH', '/v1/services/orders/instances/o-1', { weight: 5000 })
    t.equal(bad.status, 400)
    t.equal((await json<{ error: { code: string } }>(bad)).error.code, 'VALIDATION_FAILED')
  })

  t.test(`${store}: DELETE is 204, then 404 everywhere`, async (t) => {
    const s = await start(t)
    await put(s, 'orders', 'o-1')
    t.equal((await s.request('DELETE', '/v1/services/orders/instances/o-1')).status, 204)
    t.equal((await s.request('DELETE', '/v1/services/orders/instances/o-1')).status, 404)
    t.equal((await s.request('GET', '/v1/services/orders/instances/o-1')).status, 404)
    t.equal((await s.request('GET', '/v1/services/orders/instances/o-1')).status, 404)
  })

  t.test(`${store}: lists with filters; the service list; ETag and 304`, async (t) => {
    const s = await start(t)
    await put(s, 'orders', 'o-1', { zone: 'eu-1a', tags: ['v2', 'canary'], metadata: { team: 'pay' } })
    await put(s, 'orders', 'o-2', { zone: 'eu-1b', tags: ['v2'] })
    await put(s, 'orders', 'o-3', { zone: 'eu-1a', status: 'draining' })
    await put(s, 'billing', 'b-1')
    const get = async (q: string) => json<InstancesResponse>(await s.request('GET', `/v1/services/orders/instances${q}`))
    const ids = (r: InstancesResponse) => r.instances.map((i) => i.id)
    t.same(ids(await get('')), ['o-1', 'o-2', 'o-3'], 'sorted by id')
    t.same(ids(await get('?healthy=true')), ['o-1', 'o-2'])
    t.same(ids(await get('?tag=v2&tag=canary')), ['o-1'])
    t.same(ids(await get('?zone=eu-1a')), ['o-1', 'o-3'])
    t.same(ids(await get('?meta.team=pay')), ['o-1'])
    t.same(ids(await json<InstancesResponse>(await s.request('GET', '/v1/services/unknown/instances'))), [])

    const services = await json<ServicesResponse>(await s.request('GET', '/v1/services'))
    t.same(
      services.services.map((x) => [x.name, x.instances, x.routable]),
      [
        ['billing', 1, 1],
        ['orders', 3, 2],
      ],
    )
    const listed = await s.request('GET', '/v1/services/orders/instances')
    const etag = listed.headers.get('etag') as string
    t.equal(etag, `"${(await json<InstancesResponse>(listed)).revision}"`)
    t.equal((await s.request('GET', '/v1/services/orders/instances', undefined, { 'if-none-match': etag })).status, 304)
  })

  t.test(`${store}: a blocking query wakes on its own service's change, not another's`, async (t) => {
    const s = await start(t)
    await put(s, 'orders', 'o-1')
    const first = await json<InstancesResponse>(await s.request('GET', '/v1/services/orders/instances'))
    let answered = false
    const blocked = s.request('GET', `/v1/services/orders/instances?index=${first.revision}&wait=60s`).then(async (res) => {
      answered = true
      return json<InstancesResponse>(res)
    })
    await put(s, 'billing', 'b-1')
    // A change to another service is answered (and applied everywhere) before ours is made.
    await s.request('GET', '/v1/services/billing/instances')
    t.notOk(answered, 'still waiting after a change to another service')
    const changed = await put(s, 'orders', 'o-2')
    const woke = await blocked
    t.equal(woke.revision, changed.revision)
    t.same(woke.instances.map((i) => i.id), ['o-1', 'o-2'])
  })

  t.test(`${store}: watch: a snapshot, then every change in order; resume with since replays`, async (t) => {
    const s = await start(t)
    await put(s, 'orders', 'o-1')
    const w = await WatchClient.open(s.url(0))
    t.teardown(() => w.close())
    w.subscribe(['orders'])
    const snap = await w.next()
    t.match(snap, { type: 'snapshot', services: { orders: [{ id: 'o-1' }] } })
    const a = await put(s, 'orders', 'o-2')
    await s.request('PATCH', '/v1/services/orders/instances/o-1', { weight: 1 })
    await s.request('DELETE', '/v1/services/orders/instances/o-2')
    await put(s, 'billing', 'b-1')
    const changes = [await w.next(), await w.next(), await w.next()] as Array<{ type: string; op: string; revision: number; instance: { id: string } }>
    t.same(changes.map((c) => `${c.op}:${c.instance.id}`), ['upsert:o-2', 'upsert:o-1', 'delete:o-2'])
    t.equal(changes[0]!.revision, a.revision)
    t.ok(changes[1]!.revision > changes[0]!.revision && changes[2]!.revision > changes[1]!.revision)
    w.close()

    const resumed = await WatchClient.open(s.url(1))
    t.teardown(() => resumed.close())
    resumed.subscribe(['orders'], changes[0]!.revision)
    const replay = [await resumed.next(), await resumed.next()] as Array<{ type: string; revision: number }>
    t.same(replay.map((m) => [m.type, m.revision]), [
      ['change', changes[1]!.revision],
      ['change', changes[2]!.revision],
    ])
  })
}
