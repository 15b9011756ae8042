import t from 'tap'
import type { HeartbeatResult, Instance, InstancesResponse } from '../client-sdk/protocol.js'
import { Instance as InstanceSchema, NAME_PATTERN } from '../client-sdk/protocol.js'
import { ManualClock } from '../server/registry/clock.js'
import { assertError, read } from './helpers/http.js'
import type { TestServer } from './helpers/server.js'
import { instanceBody, startTestServer } from './helpers/server.js'

const BASE = '/v1/services/orders/instances'

async function json<T>(res: Response): Promise<T> {
  return (await res.json()) as T
}

async function put(s: TestServer, id: string, overrides: Record<string, unknown> = {}, service = 'orders'): Promise<Instance> {
  const res = await s.request('PUT', `/v1/services/${service}/instances/${id}`, instanceBody(overrides))
  if (res.status !== 201 && res.status !== 200) throw new Error(`PUT ${service}/${id}: ${res.status} ${await res.text()}`)
  return json<Instance>(res)
}

async function list(s: TestServer, query = '', service = 'orders'): Promise<InstancesResponse> {
  const res = await s.request('GET', `/v1/services/${service}/instances${query}`)
  if (res.status !== 200) throw new Error(`GET ${query}: ${res.status} ${await res.text()}`)
  return json<InstancesResponse>(res)
}

const ids = (r: InstancesResponse) => r.instances.map((i) => i.id)

t.test('PUT registers (201) with the defaults, then replaces (200)', async (t) => {
  const s = await startTestServer(t)
  const res = await s.request('PUT', `${BASE}/o-1`, instanceBody())
  t.equal(res.status, 201)
  t.match(res.headers.get('content-type'), /^application\/json/)
  const created = await json<Instance>(res)
  t.ok(InstanceSchema.strict().safeParse(created).success, 'the answer is an Instance')
  t.match(created, {
    service: 'orders',
    id: 'o-1',
    host: '127.0.0.1',
    port: 8080,
    scheme: 'http',
    status: 'up',
    health: 'passing',
    weight: 100,
    tags: [],
    metadata: {},
    ttlSeconds: 30,
    deregisterAfterSeconds: 60,
    revision: 1,
  })
  for (const k of ['zone', 'version', 'check', 'lastCheck']) t.notOk(k in created, `${k} is left out, not null`)
  t.equal(Date.parse(created.expiresAt) - Date.parse(created.lastHeartbeatAt), 30_000, 'a lease of ttlSeconds')
  t.equal(new Date(created.registeredAt).toISOString(), created.registeredAt, 'RFC 3339 timestamps')

  const same = await s.request('PUT', `${BASE}/o-1`, instanceBody())
  t.equal(same.status, 200, 'the same registration again: 200')
  t.equal((await json<Instance>(same)).revision, 1, 'and no change')

  const replaced = await s.request(
    'PUT',
    `${BASE}/o-1`,
    instanceBody({ port: 9090, scheme: 'https', weight: 7, zone: 'eu-1a', version: '1.2.3', tags: ['b', 'a'], metadata: { k: 'v' }, ttlSeconds: 12, deregisterAfterSeconds: 0, status: 'starting' }),
  )
  t.equal(replaced.status, 200)
  const r = await json<Instance>(replaced)
  t.match(r, { port: 9090, scheme: 'https', weight: 7, zone: 'eu-1a', version: '1.2.3', tags: ['b', 'a'], metadata: { k: 'v' }, ttlSeconds: 12, deregisterAfterSeconds: 0, status: 'starting', revision: 2 })
  t.equal(r.registeredAt, created.registeredAt, 'registeredAt stays')

  const back = await json<Instance>(await s.request('GET', `${BASE}/o-1`))
  t.same(back, r, 'GET one answers what PUT answered')
})

t.test('POST registers with a server-made id: 201 and Location', async (t) => {
  const s = await startTestServer(t)
  const res = await s.request('POST', BASE, instanceBody({ port: 81 }))
  t.equal(res.status, 201)
  const created = await json<Instance>(res)
  t.match(created.id, NAME_PATTERN, 'the id is a valid name')
  t.equal(res.headers.get('location'), `${BASE}/${created.id}`)
  const got = await s.request('GET', res.headers.get('location')!)
  t.equal(got.status, 200)
  t.same(await json<Instance>(got), created)
  const second = await json<Instance>(await s.request('POST', BASE, instanceBody({ port: 81 })))
  t.not(second.id, created.id, 'every POST makes a new instance')
  t.same(ids(await list(s)).sort(), [created.id, second.id].sort())
})

t.test('heartbeat: 200 with expiresAt, status and health; 404 INSTANCE_NOT_FOUND when unknown', async (t) => {
  const s = await startTestServer(t)
  const created = await put(s, 'o-1', { status: 'draining', ttlSeconds: 60 })
  const res = await s.request('PUT', `${BASE}/o-1/heartbeat`)
  t.equal(res.status, 200)
  const hb = await json<HeartbeatResult>(res)
  t.same(Object.keys(hb).sort(), ['expiresAt', 'health', 'status'])
  t.equal(hb.status, 'draining')
  t.equal(hb.health, 'passing')
  t.ok(Date.parse(hb.expiresAt) >= Date.parse(created.expiresAt), 'the lease is renewed')
  const after = await json<Instance>(await s.request('GET', `${BASE}/o-1`))
  t.equal(after.revision, created.revision, 'a heartbeat is no change')
  t.equal(after.expiresAt, hb.expiresAt)

  const empty = await s.request('PUT', `${BASE}/o-1/heartbeat`, '')
  t.equal(empty.status, 200, 'an empty body with a JSON content type is fine')

  assertError(t, await read(await s.request('PUT', `${BASE}/o-2/heartbeat`)), 404, 'INSTANCE_NOT_FOUND', 'orders/o-2')
  assertError(t, await read(await s.request('PUT', '/v1/services/nope/instances/o-1/heartbeat')), 404, 'INSTANCE_NOT_FOUND')
})

t.test('PATCH changes status, weight, tags and metadata, replacing tags and metadata whole', async (t) => {
  const s = await startTestServer(t)
  await put(s, 'o-1', { tags: ['a', 'b'], metadata: { x: '1', y: '2' } })
  const res = await s.request('PATCH', `${BASE}/o-1`, { status: 'out_of_service', weight: 0, tags: ['c'], metadata: { z: '3' } })
  t.equal(res.status, 200)
  const r = await json<Instance>(res)
  t.match(r, { status: 'out_of_service', weight: 0, tags: ['c'], metadata: { z: '3' }, revision: 2, port: 8080 })
  t.same(r.metadata, { z: '3' }, 'metadata replaced, not merged')
  t.ok(Date.parse(r.updatedAt) >= Date.parse(r.registeredAt))

  const noop = await json<Instance>(await s.request('PATCH', `${BASE}/o-1`, { weight: 0 }))
  t.equal(noop.revision, 2, 'a patch that changes nothing is no change')
  const one = await json<Instance>(await s.request('PATCH', `${BASE}/o-1`, { status: 'up' }))
  t.match(one, { status: 'up', weight: 0, tags: ['c'], revision: 3 }, 'fields left out stay')

  assertError(t, await read(await s.request('PATCH', `${BASE}/o-2`, { weight: 1 })), 404, 'INSTANCE_NOT_FOUND')
})

t.test('DELETE: 204, then 404', async (t) => {
  const s = await startTestServer(t)
  await put(s, 'o-1')
  await put(s, 'o-2')
  const res = await s.request('DELETE', `${BASE}/o-1`)
  t.equal(res.status, 204)
  t.equal(await res.text(), '', 'no body')
  assertError(t, await read(await s.request('GET', `${BASE}/o-1`)), 404, 'INSTANCE_NOT_FOUND', 'orders/o-1')
  assertError(t, await read(await s.request('DELETE', `${BASE}/o-1`)), 404, 'INSTANCE_NOT_FOUND')
  assertError(t, await read(await s.request('DELETE', '/v1/services/nope/instances/x')), 404, 'INSTANCE_NOT_FOUND')
  t.same(ids(await list(s)), ['o-2'])
  t.equal((await list(s)).revision, 3, "the service's revision is that of the removal")
})

t.test('GET one instance: 200 or 404', async (t) => {
  const s = await startTestServer(t)
  const created = await put(s, 'o-1')
  t.same(await json<Instance>(await s.request('GET', `${BASE}/o-1`)), created)
  assertError(t, await read(await s.request('GET', `${BASE}/o-9`)), 404, 'INSTANCE_NOT_FOUND')
  assertError(t, await read(await s.request('GET', '/v1/services/nope/instances/o-1')), 404, 'INSTANCE_NOT_FOUND')
})

t.test('GET a service: its instances sorted by id; an unknown service is 200 with []', async (t) => {
  const s = await startTestServer(t)
  const unknown = await s.request('GET', '/v1/services/ghost/instances')
  t.equal(unknown.status, 200)
  t.same(await json<InstancesResponse>(unknown), { service: 'ghost', revision: 0, instances: [] })
  await put(s, 'o-b')
  await put(s, 'o-a')
  await put(s, 'x-1', {}, 'billing')
  const r = await list(s)
  t.equal(r.service, 'orders')
  t.same(ids(r), ['o-a', 'o-b'])
  t.equal(r.revision, 2, "the service's own revision, not the global one")
})

t.test('filters: healthy, tag (repeatable, all must match), zone, meta.KEY=VALUE', async (t) => {
  const clock = new ManualClock()
  const s = await startTestServer(t, {}, { clock, sweepIntervalMs: 0 })
  await put(s, 'a', { tags: ['blue', 'canary'], zone: 'eu-1a', metadata: { team: 'core', tier: '1' } })
  await put(s, 'b', { tags: ['blue'], zone: 'eu-1b', metadata: { team: 'core', tier: '2' } })
  await put(s, 'c', { tags: ['green'], zone: 'eu-1a', status: 'draining', metadata: { team: 'edge' } })
  await put(s, 'd', { tags: ['blue', 'canary'], zone: 'eu-1a', ttlSeconds: 5 })
  await put(s, 'e', { tags: [], metadata: { 'tier.x': 'a=b' } })
  // d's lease runs out: critical, so not routable.
  clock.advance(5000)
  for (const id of ['a', 'b', 'c', 'e']) await s.request('PUT', `${BASE}/${id}/heartbeat`)
  s.registry.sweep()
  await s.registry.flush()

  t.same(ids(await list(s)), ['a', 'b', 'c', 'd', 'e'], 'no filter: all')
  t.same(ids(await list(s, '?healthy=true')), ['a', 'b', 'e'], 'healthy: status up and health passing')
  t.same(ids(await list(s, '?healthy=false')), ['a', 'b', 'c', 'd', 'e'], 'healthy=false does not filter')
  t.same(ids(await list(s, '?tag=blue')), ['a', 'b', 'd'])
  t.same(ids(await list(s, '?tag=blue&tag=canary')), ['a', 'd'], 'every tag must match')
  t.same(ids(await list(s, '?tag=canary&tag=green')), [], 'no instance has both')
  t.same(ids(await list(s, '?zone=eu-1a')), ['a', 'c', 'd'])
  t.same(ids(await list(s, '?zone=nowhere')), [])
  t.same(ids(await list(s, '?meta.team=core')), ['a', 'b'])
  t.same(ids(await list(s, '?meta.team=core&meta.tier=2')), ['b'], 'every meta pair must match')
  t.same(ids(await list(s, '?meta.team=core&meta.team=edge')), [], 'a key given twice must match both')
  t.same(ids(await list(s, '?meta.tier.x=a%3Db')), ['e'], 'keys with dots and values with = work')
  t.same(ids(await list(s, '?meta.toString=x')), [], 'inherited properties are not metadata')
  t.same(ids(await list(s, '?healthy=true&tag=blue&zone=eu-1a&meta.team=core')), ['a'], 'all filters together')
  const filtered = await list(s, '?tag=green')
  t.equal(filtered.revision, (await list(s)).revision, 'the revision is the service’s, filters or not')
})

t.test('lifecycle over HTTP with a manual clock: critical, revived, removed', async (t) => {
  const clock = new ManualClock()
  const s = await startTestServer(t, {}, { clock, sweepIntervalMs: 0 })
  const created = await put(s, 'o-1', { ttlSeconds: 10, deregisterAfterSeconds: 20 })
  t.equal(Date.parse(created.expiresAt), clock.now() + 10_000, 'the lease runs on the injected clock')

  clock.advance(9_999)
  s.registry.sweep()
  t.equal((await json<Instance>(await s.request('GET', `${BASE}/o-1`))).health, 'passing', 'not before expiresAt')
  clock.advance(1)
  s.registry.sweep()
  await s.registry.flush()
  const critical = await json<Instance>(await s.request('GET', `${BASE}/o-1`))
  t.equal(critical.health, 'critical')
  t.equal(critical.revision, created.revision + 1)
  t.same(ids(await list(s, '?healthy=true')), [])

  const hb = await json<HeartbeatResult>(await s.request('PUT', `${BASE}/o-1/heartbeat`))
  t.equal(hb.health, 'passing', 'the heartbeat answer shows the revival')
  await s.registry.flush()
  const revived = await json<Instance>(await s.request('GET', `${BASE}/o-1`))
  t.equal(revived.health, 'passing')
  t.equal(revived.revision, critical.revision + 1, 'reviving is a change')

  clock.advance(10_000)
  s.registry.sweep()
  clock.advance(19_999)
  s.registry.sweep()
  t.equal((await s.request('GET', `${BASE}/o-1`)).status, 200, 'still there before deregisterAfterSeconds')
  clock.advance(1)
  s.registry.sweep()
  await s.registry.flush()
  assertError(t, await read(await s.request('GET', `${BASE}/o-1`)), 404, 'INSTANCE_NOT_FOUND')
  assertError(t, await read(await s.request('PUT', `${BASE}/o-1/heartbeat`)), 404, 'INSTANCE_NOT_FOUND', undefined, 'the SDK then re-registers')
  const l = await list(s)
  t.same(l.instances, [])
  t.equal(l.revision, revived.revision + 2, 'critical, then removed: two changes')
})
