import { createServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import type { Test } from 'tap'
import { NoInstanceAvailableError, RegistryApiError, RegistryClient } from '../client-sdk/index.js'
import type { ServiceChange } from '../client-sdk/index.js'
import type { Instance } from '../client-sdk/protocol.js'
import { ManualClock } from '../server/registry/clock.js'
import { instanceBody, startTestServer } from './helpers/server.js'
import type { TestServer } from './helpers/server.js'
import { TcpProxy, eventually } from './helpers/tcp-proxy.js'

const portOf = (url: string) => Number(new URL(url).port)

function client(t: Test, url: string | string[], extra: Partial<ConstructorParameters<typeof RegistryClient>[0]> = {}) {
  const c = new RegistryClient({ url, ...extra })
  t.teardown(() => c.close())
  return c
}

/** A real upstream on 127.0.0.1 whose answer the test sets, counting the requests it gets. */
async function upstream(t: Test, status = 200): Promise<{ server: Server; port: number; hits: number; status: number }> {
  const u = { server: undefined as unknown as Server, port: 0, hits: 0, status }
  u.server = createServer((req: IncomingMessage, res: ServerResponse) => {
    u.hits++
    req.resume()
    res.statusCode = u.status
    res.end(`from ${u.port}`)
  })
  await new Promise<void>((r) => u.server.listen(0, '127.0.0.1', r))
  u.port = (u.server.address() as AddressInfo).port
  t.teardown(() => new Promise<void>((r) => u.server.close(() => r())))
  return u
}

async function viewOf(s: TestServer, service: string): Promise<string[]> {
  const body = (await (await s.request('GET', `/v1/services/${service}/instances`)).json()) as { instances: Instance[] }
  return body.instances.map((i) => `${i.id}:${i.weight}:${i.status}`).sort()
}

const cached = (list: Instance[]) => list.map((i) => `${i.id}:${i.weight}:${i.status}`).sort()

t.test('register heartbeats every ttl/3 and close() deregisters', async (t) => {
  const s = await startTestServer(t)
  const c = client(t, s.url)
  const me = await c.register({ service: 'orders', host: '127.0.0.1', port: 9000, ttlSeconds: 1 })
  const record = s.registry.get('orders', me.id)
  t.ok(record, 'registered')
  const first = record!.lastHeartbeatAt
  let beats = 0
  let last = first
  await eventually(() => {
    const now = s.registry.get('orders', me.id)!.lastHeartbeatAt
    if (now !== last) (beats++, (last = now))
    return beats >= 3
  }, 'three heartbeats')
  t.equal(s.registry.get('orders', me.id)!.health, 'passing', 'the lease never lapsed')
  await c.close()
  t.equal(s.registry.get('orders', me.id), undefined, 'close() deregistered it')
})

t.test('a bad registration rejects at once with the field named', async (t) => {
  const s = await startTestServer(t)
  const c = client(t, s.url)
  const err = await c.register({ service: 'orders', host: '127.0.0.1', port: 70000 }).catch((e: unknown) => e)
  t.ok(err instanceof RegistryApiError, 'a typed error')
  t.equal((err as RegistryApiError).code, 'VALIDATION_FAILED')
  t.match((err as RegistryApiError).message, /port/)
  await t.rejects(c.register({ service: 'bad name!', host: '127.0.0.1', port: 80 }), { code: 'VALIDATION_FAILED' })
})

t.test('a registration survives a server restart on an empty store: it registers again on 404', async (t) => {
  const s1 = await startTestServer(t)
  const port = portOf(s1.url)
  const c = client(t, s1.url)
  let registered = 0
  const me = await c.register(
    { service: 'orders', id: 'o-1', host: '127.0.0.1', port: 9000, ttlSeconds: 1, tags: ['x'] },
    { registered: () => registered++ },
  )
  t.equal(registered, 1)
  await s1.close()
  const s2 = await startTestServer(t, { port })
  await eventually(() => registered === 2, 'the re-registration')
  t.ok(s2.registry.get('orders', 'o-1'), 'the new server has it')
  t.same(s2.registry.get('orders', 'o-1')!.tags, ['x'], 'with the same body')
  t.equal(me.id, 'o-1')
})

t.test('setStatus and update change the instance; a re-registration carries them', async (t) => {
  const s = await startTestServer(t)
  const c = client(t, s.url)
  const me = await c.register({ service: 'orders', host: '127.0.0.1', port: 9000 })
  await me.setStatus('draining')
  t.equal(s.registry.get('orders', me.id)!.status, 'draining')
  await me.update({ weight: 7, metadata: { v: '2' } })
  t.equal(s.registry.get('orders', me.id)!.weight, 7)
  await s.request('DELETE', `/v1/services/orders/instances/${me.id}`)
  const again = await me.update({ tags: ['t'] })
  t.equal(again.weight, 7, 'registered again with what it had')
  t.equal(again.status, 'draining')
  t.same(again.tags, ['t'])
  await me.deregister()
  t.equal(s.registry.get('orders', me.id), undefined)
})

t.test('the cache converges after the server goes away and comes back', async (t) => {
  const s1 = await startTestServer(t)
  const port = portOf(s1.url)
  await s1.request('PUT', '/v1/services/orders/instances/a', instanceBody({ port: 9001 }))
  await s1.request('PUT', '/v1/services/orders/instances/b', instanceBody({ port: 9002 }))
  const c = client(t, s1.url)
  const orders = c.service('orders')
  await orders.ready()
  t.same(cached(orders.all()), ['a:100:up', 'b:100:up'])
  await s1.close()
  await eventually(() => !c.watchState.connected, 'the socket to drop')
  t.ok(['a', 'b'].includes(orders.pick().id), 'the last known state still serves picks')
  const s2 = await startTestServer(t, { port, db: s1.dbPath })
  await s2.request('PUT', '/v1/services/orders/instances/c', instanceBody({ port: 9003 }))
  await s2.request('DELETE', '/v1/services/orders/instances/a')
  const expected = await viewOf(s2, 'orders')
  await eventually(() => cached(orders.all()).join() === expected.join(), 'the cache to converge')
  t.same(cached(orders.all()), ['b:100:up', 'c:100:up'])
})

t.test('connections cut mid-stream: the SDK resumes with since and misses no revision', async (t) => {
  const s = await startTestServer(t)
  const proxy = await TcpProxy.start(portOf(s.url))
  t.teardown(() => proxy.close())
  for (let i = 0; i < 5; i++) await s.request('PUT', `/v1/services/orders/instances/i-${i}`, instanceBody())
  const c = client(t, proxy.url)
  const orders = c.service('orders')
  const seen: ServiceChange[] = []
  orders.onChange((ch) => seen.push(ch))
  await orders.ready()
  for (let round = 0; round < 5; round++) {
    // Half the writes while connected, half while the SDK cannot reach the server.
    for (let i = 0; i < 10; i++) {
      await s.request('PUT', `/v1/services/orders/instances/i-${i % 8}`, instanceBody({ weight: round * 20 + i }))
    }
    const before = proxy.accepted
    proxy.refuse = true
    proxy.drop()
    for (let i = 10; i < 20; i++) {
      await s.request('PUT', `/v1/services/orders/instances/i-${i % 8}`, instanceBody({ weight: round * 20 + i }))
    }
    await s.request('DELETE', `/v1/services/orders/instances/i-${round}`)
    await eventually(() => proxy.accepted > before, 'a reconnect attempt')
    proxy.refuse = false
    await eventually(() => proxy.open > 0, 'the reconnect')
  }
  await s.registry.settled()
  const final = s.registry.serviceRevision('orders')
  await eventually(() => orders.revision === final, 'the last revision')
  const revisions = seen.filter((c) => c.kind !== 'snapshot').map((c) => c.revision)
  t.equal(seen.filter((c) => c.kind === 'snapshot').length, 1, 'one snapshot, then resumes only')
  t.ok(revisions.every((r, i) => i === 0 || r === (revisions[i - 1] as number) + 1), 'contiguous revisions: none missed')
  t.same(cached(orders.all()), await viewOf(s, 'orders'), 'the cache equals the server')
  t.ok(proxy.accepted >= 10, 'it was refused and reconnected after each drop')
})

t.test('a pushed critical stops picks at once; passing again gets a probe first', async (t) => {
  const clock = new ManualClock(Date.now())
  const s = await startTestServer(t, {}, { clock, sweepIntervalMs: 0 })
  await s.request('PUT', '/v1/services/orders/instances/short', instanceBody({ ttlSeconds: 5 }))
  await s.request('PUT', '/v1/services/orders/instances/long', instanceBody({ ttlSeconds: 600 }))
  const c = client(t, s.url)
  const orders = c.service('orders')
  await orders.ready()
  const picked = new Set<string>()
  for (let i = 0; i < 10; i++) picked.add(orders.pick().id)
  t.same([...picked].sort(), ['long', 'short'])
  const critical = new Promise<void>((resolve) =>
    orders.onChange((ch) => ch.instance?.id === 'short' && ch.instance.health === 'critical' && resolve()),
  )
  clock.advance(6000)
  s.registry.sweep()
  await critical
  let short = 0
  for (let i = 0; i < 200; i++) if (orders.pick().id === 'short') short++
  t.equal(short, 0, 'never the critical one, at once')
  t.same(orders.instances().map((i) => i.id), ['long'])
  const revived = new Promise<void>((resolve) =>
    orders.onChange((ch) => ch.instance?.id === 'short' && ch.instance.health === 'passing' && resolve()),
  )
  await s.request('PUT', '/v1/services/orders/instances/short/heartbeat')
  await revived
  t.equal(orders.pick().id, 'short', 'the revived instance gets its probe first')
  t.equal(orders.pick().id, 'long', 'and no more until the probe answers')
})

t.test('pick throws a typed NoInstanceAvailableError when nothing is routable', async (t) => {
  const s = await startTestServer(t)
  await s.request('PUT', '/v1/services/orders/instances/a', instanceBody({ status: 'out_of_service' }))
  const c = client(t, s.url)
  const orders = c.service('orders')
  await orders.ready()
  t.throws(() => orders.pick(), NoInstanceAvailableError)
  const empty = c.service('nothing-here')
  await empty.ready()
  t.throws(() => empty.pick(), { code: 'NO_INSTANCE_AVAILABLE' })
})

t.test('fetch retries idempotent requests on another instance', async (t) => {
  const s = await startTestServer(t)
  const good = [await upstream(t), await upstream(t)]
  const bad = await upstream(t, 503)
  for (const [i, u] of [...good, bad].entries()) {
    await s.request('PUT', `/v1/services/api/instances/u-${i}`, instanceBody({ port: u.port }))
  }
  const c = client(t, s.url)
  const api = c.service('api', { balancer: 'round-robin', breakers: { consecutiveFailures: 1000 } })
  await api.ready()
  for (let i = 0; i < 30; i++) {
    const res = await api.fetch('/x')
    t.equal(res.status, 200, 'every GET lands on a good instance in the end')
  }
  t.ok(bad.hits >= 5, 'the bad instance was tried')
  t.equal(good[0]!.hits + good[1]!.hits, 30, 'each request succeeded exactly once')
  const before = bad.hits + good[0]!.hits + good[1]!.hits
  good[0]!.status = 503
  good[1]!.status = 503
  const post = await api.fetch('/x', { method: 'POST', body: 'x' })
  t.equal(post.status, 503, 'a POST that got an answer is not retried')
  t.equal(bad.hits + good[0]!.hits + good[1]!.hits, before + 1, 'one attempt')
})

t.test('retries respect the budget when every instance fails', async (t) => {
  const s = await startTestServer(t)
  const ups = [await upstream(t, 503), await upstream(t, 503), await upstream(t, 503)]
  for (const [i, u] of ups.entries()) await s.request('PUT', `/v1/services/api/instances/u-${i}`, instanceBody({ port: u.port }))
  const c = client(t, s.url)
  const api = c.service('api', {
    maxAttempts: 3,
    retryBudget: { ratio: 0.2, minPerSecond: 0 },
    breakers: { consecutiveFailures: 1000, failureRateThreshold: 1 },
  })
  await api.ready()
  for (let i = 0; i < 100; i++) t.equal((await api.fetch('/x')).status, 503)
  const attempts = ups.reduce((n, u) => n + u.hits, 0)
  t.ok(attempts <= 100 * 1.2 + 1, `attempts ${attempts} stay within 20% of requests`)
  t.ok(attempts > 100, 'some retries were made')
})

t.test('a request that never reached an instance is retried whatever its method', async (t) => {
  const s = await startTestServer(t)
  const good = await upstream(t)
  const closed = await upstream(t)
  await new Promise<void>((r) => closed.server.close(() => r()))
  await s.request('PUT', '/v1/services/api/instances/dead', instanceBody({ port: closed.port }))
  await s.request('PUT', '/v1/services/api/instances/good', instanceBody({ port: good.port }))
  const c = client(t, s.url)
  const api = c.service('api', { breakers: { consecutiveFailures: 1000 } })
  await api.ready()
  for (let i = 0; i < 6; i++) t.equal((await api.fetch('/x', { method: 'POST', body: 'hi' })).status, 200)
  t.equal(good.hits, 6)
})

t.test('without a usable WebSocket the SDK falls back to blocking queries', async (t) => {
  const s = await startTestServer(t)
  const target = portOf(s.url)
  // A proxy that passes plain HTTP and refuses upgrades, as some do.
  const proxy = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (d: Buffer) => chunks.push(d))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      fetch(`http://127.0.0.1:${target}${req.url}`, {
        method: req.method,
        headers: req.headers as Record<string, string>,
        ...(body.length > 0 && { body }),
      }).then(
        async (r) => {
          res.writeHead(r.status, Object.fromEntries(r.headers))
          res.end(Buffer.from(await r.arrayBuffer()))
        },
        () => res.writeHead(502).end(),
      )
    })
  })
  proxy.on('upgrade', (_req, socket) => socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n'))
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r))
  t.teardown(() => {
    proxy.closeAllConnections()
    return new Promise<void>((r) => proxy.close(() => r()))
  })
  await s.request('PUT', '/v1/services/orders/instances/a', instanceBody())
  const c = client(t, `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`, { watch: { pollWaitSeconds: 5 } })
  const orders = c.service('orders')
  await orders.ready()
  t.equal(c.watchState.mode, 'polling')
  t.same(orders.all().map((i) => i.id), ['a'])
  await s.request('PUT', '/v1/services/orders/instances/b', instanceBody())
  await eventually(() => orders.all().length === 2, 'the blocking query to bring b')
  t.same(orders.all().map((i) => i.id).sort(), ['a', 'b'])
})

t.test('drainOnSignal: draining, then deregistered, then the host is told', async (t) => {
  const s = await startTestServer(t)
  const c = client(t, s.url)
  const me = await c.register({ service: 'orders', host: '127.0.0.1', port: 9000 })
  const statuses: string[] = []
  s.registry.onChange((ch) => statuses.push(`${ch.op}:${ch.instance.status}`))
  const drained = new Promise<string>((resolve) => {
    const remove = c.drainOnSignal({ drainMs: 10, onDrained: (signal) => resolve(signal) })
    t.teardown(remove)
  })
  process.emit('SIGTERM', 'SIGTERM')
  t.equal(await drained, 'SIGTERM')
  t.same(statuses, ['upsert:draining', 'delete:draining'])
  t.equal(s.registry.get('orders', me.id), undefined)
})

t.test('several server URLs: requests fail over to the next', async (t) => {
  const s = await startTestServer(t)
  const dead = await upstream(t)
  await new Promise<void>((r) => dead.server.close(() => r()))
  const c = client(t, [`http://127.0.0.1:${dead.port}`, s.url])
  const me = await c.register({ service: 'orders', host: '127.0.0.1', port: 9000 })
  t.ok(s.registry.get('orders', me.id), 'registered through the live node')
  const orders = c.service('orders')
  await orders.ready()
  t.equal(orders.pick().id, me.id)
})
