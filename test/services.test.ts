import t from 'tap'
import type { BatchHeartbeatResponse, InstancesResponse, ServicesResponse } from '../client-sdk/protocol.js'
import { BatchHeartbeatResponse as BatchSchema, ServicesResponse as ServicesSchema } from '../client-sdk/protocol.js'
import { ManualClock } from '../server/registry/clock.js'
import { assertError, read } from './helpers/http.js'
import type { TestServer } from './helpers/server.js'
import { instanceBody, startTestServer } from './helpers/server.js'

async function json<T>(res: Response): Promise<T> {
  return (await res.json()) as T
}

async function put(s: TestServer, service: string, id: string, overrides: Record<string, unknown> = {}): Promise<number> {
  const res = await s.request('PUT', `/v1/services/${service}/instances/${id}`, instanceBody(overrides))
  if (res.status >= 300) throw new Error(`PUT: ${res.status} ${await res.text()}`)
  return ((await res.json()) as { revision: number }).revision
}

/** A request whose settling is observable without waiting for it. */
function track<T>(p: Promise<T>): { promise: Promise<T>; settled: () => boolean } {
  let done = false
  const promise = p.finally(() => {
    done = true
  })
  return { promise, settled: () => done }
}

t.test('GET /v1/services: every service with instances, with the global revision', async (t) => {
  const s = await startTestServer(t)
  const empty = await s.request('GET', '/v1/services')
  t.equal(empty.status, 200)
  t.same(await json<ServicesResponse>(empty), { revision: 0, services: [] })

  await put(s, 'orders', 'o-1', { zone: 'eu-1b' })
  await put(s, 'orders', 'o-2', { zone: 'eu-1a', status: 'draining' })
  await put(s, 'billing', 'b-1')
  await put(s, 'gone', 'g-1')
  await s.request('DELETE', '/v1/services/gone/instances/g-1')

  const res = await s.request('GET', '/v1/services')
  const body = await json<ServicesResponse>(res)
  t.ok(ServicesSchema.strict().safeParse(body).success)
  t.equal(body.revision, 5, 'the global revision')
  t.same(body.services, [
    { name: 'billing', instances: 1, routable: 1, zones: [], revision: 3 },
    { name: 'orders', instances: 2, routable: 1, zones: ['eu-1a', 'eu-1b'], revision: 2 },
  ], 'sorted by name; a service with no instance left is not listed')
  t.equal(res.headers.get('etag'), '"5"')
  t.equal(res.headers.get('x-rollcall-revision'), '5')
})

t.test('POST /v1/heartbeats renews many, with one result each, in order', async (t) => {
  const clock = new ManualClock()
  const s = await startTestServer(t, {}, { clock, sweepIntervalMs: 0 })
  await put(s, 'orders', 'o-1', { ttlSeconds: 10 })
  await put(s, 'billing', 'b-1', { ttlSeconds: 10, status: 'draining' })
  clock.advance(10_000)
  s.registry.sweep()
  await s.registry.flush()

  const res = await s.request('POST', '/v1/heartbeats', {
    instances: [
      { service: 'orders', id: 'o-1' },
      { service: 'orders', id: 'nope' },
      { service: 'billing', id: 'b-1' },
    ],
  })
  t.equal(res.status, 200)
  const body = await json<BatchHeartbeatResponse>(res)
  t.ok(BatchSchema.strict().safeParse(body).success, 'the answer has the protocol shape')
  t.same(body.results.map((r) => [r.service, r.id, r.ok]), [
    ['orders', 'o-1', true],
    ['orders', 'nope', false],
    ['billing', 'b-1', true],
  ])
  const [o1, nope, b1] = body.results
  t.match(o1, { ok: true, status: 'up', health: 'passing', expiresAt: new Date(clock.now() + 10_000).toISOString() }, 'revived, lease renewed')
  t.match(nope, { ok: false, error: { code: 'INSTANCE_NOT_FOUND' } })
  t.match(b1, { ok: true, status: 'draining', health: 'passing' })
  await s.registry.flush()
  const inst = await json<{ health: string }>(await s.request('GET', '/v1/services/orders/instances/o-1'))
  t.equal(inst.health, 'passing')

  const tooMany = { instances: Array.from({ length: 1001 }, (_, i) => ({ service: 'orders', id: `o-${i}` })) }
  assertError(t, await read(await s.request('POST', '/v1/heartbeats', tooMany)), 400, 'VALIDATION_FAILED', 'instances')
  assertError(t, await read(await s.request('POST', '/v1/heartbeats', { instances: [{ service: 'orders' }] })), 400, 'VALIDATION_FAILED', 'instances.0.id')
})

t.test('ETag, X-Rollcall-Revision and If-None-Match on a service', async (t) => {
  const s = await startTestServer(t)
  await put(s, 'orders', 'o-1')
  await put(s, 'billing', 'b-1')
  const res = await s.request('GET', '/v1/services/orders/instances')
  t.equal(res.headers.get('etag'), '"1"', "the service's revision, not the global one")
  t.equal(res.headers.get('x-rollcall-revision'), '1')

  for (const inm of ['"1"', 'W/"1"', '"7", "1"', '*']) {
    const nm = await s.request('GET', '/v1/services/orders/instances', undefined, { 'if-none-match': inm })
    t.equal(nm.status, 304, `If-None-Match: ${inm} -> 304`)
    t.equal(await nm.text(), '', 'no body')
    t.equal(nm.headers.get('etag'), '"1"')
  }
  const stale = await s.request('GET', '/v1/services/orders/instances', undefined, { 'if-none-match': '"0"' })
  t.equal(stale.status, 200, 'an older ETag gets the answer')
  await put(s, 'orders', 'o-2')
  const moved = await s.request('GET', '/v1/services/orders/instances', undefined, { 'if-none-match': '"1"' })
  t.equal(moved.status, 200, 'after a change the old ETag no longer matches')
  t.equal(moved.headers.get('etag'), '"3"')

  const svc = await s.request('GET', '/v1/services', undefined, { 'if-none-match': '"3"' })
  t.equal(svc.status, 304, 'GET /v1/services too, on the global revision')
})

t.test('a blocking query returns when its own service changes, not when another one does', async (t) => {
  const s = await startTestServer(t)
  await put(s, 'orders', 'o-1')
  await put(s, 'billing', 'b-1')
  const index = (await json<InstancesResponse>(await s.request('GET', '/v1/services/orders/instances'))).revision
  t.equal(index, 1)

  const query = track(s.request('GET', `/v1/services/orders/instances?index=${index}&wait=300s`))
  // Churn elsewhere: durable (the PUT answered), published, and the query must stay parked.
  await put(s, 'billing', 'b-2')
  await put(s, 'billing', 'b-1', { port: 1 })
  await s.request('GET', '/healthz')
  t.notOk(query.settled(), 'changes to another service do not answer it')

  const revision = await put(s, 'orders', 'o-2')
  const res = await query.promise
  t.equal(res.status, 200)
  const body = await json<InstancesResponse>(res)
  t.equal(body.revision, revision, 'it answers with the change to its own service')
  t.ok(body.revision > index)
  t.same(body.instances.map((i) => i.id), ['o-1', 'o-2'])
  t.equal(res.headers.get('x-rollcall-revision'), String(revision))
})

t.test('a blocking query on a service not yet seen wakes on its first registration', async (t) => {
  const s = await startTestServer(t)
  const query = track(s.request('GET', '/v1/services/later/instances?index=0&wait=5m'))
  await put(s, 'other', 'x')
  t.notOk(query.settled())
  await put(s, 'later', 'l-1')
  const body = await json<InstancesResponse>(await query.promise)
  t.equal(body.revision, 2)
  t.same(body.instances.map((i) => i.id), ['l-1'])
})

t.test('a blocking query returns at the end of its wait with what it has', async (t) => {
  const s = await startTestServer(t)
  await put(s, 'orders', 'o-1')
  const res = await s.request('GET', '/v1/services/orders/instances?index=1&wait=200ms')
  t.equal(res.status, 200)
  const body = await json<InstancesResponse>(res)
  t.equal(body.revision, 1, 'nothing changed: the same revision')
  t.equal(res.headers.get('etag'), '"1"')
  const services = await s.request('GET', '/v1/services?index=1&wait=1')
  t.equal(services.status, 200)
  t.equal((await json<ServicesResponse>(services)).revision, 1)
})

t.test('an index already passed answers at once; so does a query with no index', async (t) => {
  const s = await startTestServer(t)
  await put(s, 'orders', 'o-1')
  await put(s, 'orders', 'o-2')
  const res = await s.request('GET', '/v1/services/orders/instances?index=1&wait=300s')
  t.equal((await json<InstancesResponse>(res)).revision, 2)
  const noIndex = await s.request('GET', '/v1/services/orders/instances?wait=300s')
  t.equal(noIndex.status, 200)
})

t.test('a blocking GET /v1/services wakes on a change to any service', async (t) => {
  const s = await startTestServer(t)
  await put(s, 'orders', 'o-1')
  const query = track(s.request('GET', '/v1/services?index=1&wait=300s'))
  await s.request('GET', '/healthz')
  t.notOk(query.settled())
  await put(s, 'billing', 'b-1')
  const body = await json<ServicesResponse>(await query.promise)
  t.equal(body.revision, 2)
  t.same(body.services.map((x) => x.name), ['billing', 'orders'])
})

t.test('a blocking query with If-None-Match gives 304 when the wait ends with nothing new', async (t) => {
  const s = await startTestServer(t)
  await put(s, 'orders', 'o-1')
  const res = await s.request('GET', '/v1/services/orders/instances?index=1&wait=100ms', undefined, { 'if-none-match': '"1"' })
  t.equal(res.status, 304)
})

t.test('/healthz and /readyz', async (t) => {
  const clock = new ManualClock()
  const s = await startTestServer(t, {}, { clock, sweepIntervalMs: 0 })
  const health = await s.request('GET', '/healthz')
  t.equal(health.status, 200)
  t.same(await health.json(), { status: 'ok' })
  const ready = await s.request('GET', '/readyz')
  t.equal(ready.status, 200)
  t.same(await ready.json(), { status: 'ready', revision: 0, instances: 0, selfPreservation: false })

  for (let i = 0; i < 10; i++) await put(s, 'orders', `o-${i}`, { ttlSeconds: 10 })
  clock.advance(10_000)
  s.registry.sweep()
  const held = await s.request('GET', '/readyz')
  t.equal(held.status, 200, 'self-preservation does not make the server unready')
  t.same(await held.json(), { status: 'ready', revision: 10, instances: 10, selfPreservation: true }, 'but /readyz shows it')
  t.equal((await json<InstancesResponse>(await s.request('GET', '/v1/services/orders/instances?healthy=true'))).instances.length, 10, 'no instance expired')
})
