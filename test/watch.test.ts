import { once } from 'node:events'
import t from 'tap'
import WebSocket from 'ws'
import type { ChangeMessage, Instance, ServerMessage } from '../client-sdk/protocol.js'
import { CLOSE_SLOW_CONSUMER, RegisterBody } from '../client-sdk/protocol.js'
import { instanceBody, startTestServer } from './helpers/server.js'
import type { TestServer } from './helpers/server.js'
import { WatchClient } from './helpers/watch-client.js'

const put = (s: TestServer, service: string, id: string, extra: Record<string, unknown> = {}) =>
  s.request('PUT', `/v1/services/${service}/instances/${id}`, instanceBody(extra))

/** The server's state as `service -> id -> instance`, read over REST. */
async function serverView(s: TestServer): Promise<Map<string, Map<string, Instance>>> {
  const view = new Map<string, Map<string, Instance>>()
  const { services } = (await (await s.request('GET', '/v1/services')).json()) as { services: Array<{ name: string }> }
  for (const { name } of services) {
    const body = (await (await s.request('GET', `/v1/services/${name}/instances`)).json()) as { instances: Instance[] }
    view.set(name, new Map(body.instances.map((i) => [i.id, i])))
  }
  return view
}

/** A view without empty services and without the fields that heartbeats move silently. */
function comparable(view: Map<string, Map<string, Instance>>): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {}
  for (const [service, list] of [...view].sort(([a], [b]) => a.localeCompare(b))) {
    if (list.size === 0) continue
    out[service] = {}
    for (const [id, i] of [...list].sort(([a], [b]) => a.localeCompare(b))) {
      const { lastHeartbeatAt: _h, expiresAt: _e, ...rest } = i
      out[service][id] = rest
    }
  }
  return out
}

t.test('snapshot at R, then every change above R in order, none skipped or repeated', async (t) => {
  const s = await startTestServer(t)
  await put(s, 'orders', 'o-1')
  await put(s, 'billing', 'b-1')
  const all = await WatchClient.open(s.url)
  const orders = await WatchClient.open(s.url)
  t.teardown(() => (all.close(), orders.close()))
  all.subscribe(['*'])
  orders.subscribe(['orders'])
  const snapAll = await all.next()
  const snapOrders = await orders.next()
  t.equal(snapAll.type, 'snapshot')
  t.equal(snapOrders.type, 'snapshot')
  if (snapAll.type !== 'snapshot' || snapOrders.type !== 'snapshot') return
  t.same(Object.keys(snapAll.services).sort(), ['billing', 'orders'])
  t.same(Object.keys(snapOrders.services), ['orders'])
  t.equal(snapAll.revision, 2)

  // A burst of concurrent writes over both services.
  const writes: Array<Promise<Response>> = []
  for (let i = 0; i < 60; i++) writes.push(put(s, i % 2 === 0 ? 'orders' : 'billing', `x-${i}`))
  await Promise.all(writes)
  await s.request('PATCH', '/v1/services/orders/instances/x-0', { status: 'draining' })
  await s.request('DELETE', '/v1/services/billing/instances/x-1')
  const final = s.registry.revision
  await all.until(() => all.revision === final)
  await orders.until(() => orders.revision === s.registry.serviceRevision('orders'))

  const changes = all.messages.slice(1) as ChangeMessage[]
  t.ok(changes.every((m) => m.type === 'change'))
  t.same(
    changes.map((m) => m.revision),
    Array.from({ length: final - 2 }, (_, i) => i + 3),
    'every revision above the snapshot, once, in order',
  )
  const orderChanges = orders.messages.slice(1) as ChangeMessage[]
  t.ok(orderChanges.every((m) => m.service === 'orders'), 'a named subscription gets only its service')
  t.ok(orderChanges.every((m, i) => i === 0 || m.revision > (orderChanges[i - 1] as ChangeMessage).revision))
  t.equal(orderChanges.length, 31, '30 registrations and one patch of orders')
  t.same(comparable(all.view), comparable(await serverView(s)), 'the rebuilt view equals the server')
})

t.test('unsubscribe stops a service; a later subscribe gets a snapshot of it', async (t) => {
  const s = await startTestServer(t)
  await put(s, 'orders', 'o-1')
  const c = await WatchClient.open(s.url)
  t.teardown(() => c.close())
  c.subscribe(['orders', 'billing'])
  const snap = await c.next()
  t.same(snap.type === 'snapshot' && Object.keys(snap.services).sort(), ['billing', 'orders'])
  c.send({ type: 'unsubscribe', services: ['orders'] })
  await put(s, 'orders', 'o-2')
  await put(s, 'billing', 'b-1')
  const m = await c.next()
  t.equal(m.type === 'change' && m.service, 'billing', 'the orders change was not sent')
  c.subscribe(['orders'])
  const again = await c.next()
  t.equal(again.type, 'snapshot')
  if (again.type === 'snapshot') {
    t.same(Object.keys(again.services), ['orders'])
    t.same(again.services.orders?.map((i) => i.id).sort(), ['o-1', 'o-2'])
    t.ok(again.revision >= (m as ChangeMessage).revision)
  }
})

t.test('resume: a connection killed mid-stream resumes with since and misses nothing', async (t) => {
  const s = await startTestServer(t)
  for (let i = 0; i < 5; i++) await put(s, 'orders', `seed-${i}`)
  const first = await WatchClient.open(s.url)
  first.subscribe(['*'])
  await first.next()

  // Writes keep coming while the connection is cut.
  let stop = false
  let n = 0
  const churn = (async () => {
    while (!stop) {
      const i = n++
      await put(s, i % 3 === 0 ? 'billing' : 'orders', `c-${i % 25}`, { weight: i % 1000 })
      if (i % 7 === 0) await s.request('DELETE', `/v1/services/orders/instances/c-${(i + 1) % 25}`)
    }
  })()
  await first.until(() => first.messages.length > 20)
  first.close()
  await first.closed
  const since = first.revision
  t.ok(since > 5, 'the first connection saw part of the stream')

  const second = await WatchClient.open(s.url)
  t.teardown(() => second.close())
  // The rebuilt view starts from what the first connection had.
  for (const [svc, list] of first.view) second.view.set(svc, new Map(list))
  second.revision = since
  second.subscribe(['*'], since)
  await second.until(() => second.messages.length > 10)
  stop = true
  await churn
  await s.registry.settled()
  const final = s.registry.revision
  await second.until(() => second.revision === final)
  t.notOk(second.messages.some((m) => m.type === 'snapshot'), 'resumed from history, no snapshot')
  const revisions = second.messages.map((m) => (m as ChangeMessage).revision)
  t.equal(revisions[0], since + 1, 'the first change after since')
  t.ok(revisions.every((r, i) => i === 0 || r === (revisions[i - 1] as number) + 1), 'no gap, no repeat')
  t.same(comparable(second.view), comparable(await serverView(s)), 'the rebuilt view equals the server')
})

t.test('since older than the retained history, or newer than the server: a snapshot', async (t) => {
  const s = await startTestServer(t)
  const body = RegisterBody.parse(instanceBody())
  // 10,050 changes through the core, more than the 10,000 retained.
  for (let i = 0; i < 10_050; i++) s.registry.register('orders', `o-${i % 50}`, { ...body, weight: i % 1000 })
  await s.registry.settled()
  const old = await WatchClient.open(s.url)
  const ahead = await WatchClient.open(s.url)
  const recent = await WatchClient.open(s.url)
  t.teardown(() => (old.close(), ahead.close(), recent.close()))
  old.subscribe(['orders'], 10)
  ahead.subscribe(['orders'], s.registry.revision + 100)
  recent.subscribe(['orders'], s.registry.revision - 3)
  const a = await old.next()
  t.equal(a.type, 'snapshot')
  t.equal(a.type === 'snapshot' && a.services.orders?.length, 50)
  t.equal((await ahead.next()).type, 'snapshot')
  const r = await recent.next()
  t.equal(r.type, 'change', 'recent since: replay')
  t.equal((r as ChangeMessage).revision, s.registry.revision - 2)
})

t.test('heartbeats that change nothing are not pushed; a revival is', async (t) => {
  const s = await startTestServer(t)
  await put(s, 'orders', 'o-1')
  const c = await WatchClient.open(s.url)
  t.teardown(() => c.close())
  c.subscribe(['orders'])
  await c.next()
  for (let i = 0; i < 5; i++) await s.request('PUT', '/v1/services/orders/instances/o-1/heartbeat')
  await s.request('POST', '/v1/heartbeats', { instances: [{ service: 'orders', id: 'o-1' }] })
  await put(s, 'orders', 'o-2')
  const m = await c.next()
  t.equal(m.type === 'change' && m.instance.id, 'o-2', 'the next message is the registration')
})

t.test('bad frames get an error message and the connection stays', async (t) => {
  const s = await startTestServer(t)
  const c = await WatchClient.open(s.url)
  t.teardown(() => c.close())
  const bad: Array<[string | Buffer, string]> = [
    ['not json', 'not valid JSON'],
    [JSON.stringify({ type: 'explode' }), 'type'],
    [JSON.stringify({ type: 'subscribe', services: ['../etc'] }), 'services.0'],
    [JSON.stringify({ type: 'subscribe', services: [] }), 'services'],
    [JSON.stringify({ type: 'subscribe', services: ['a'], since: -1 }), 'since'],
    [JSON.stringify({ type: 'subscribe', services: ['a'], extra: 1 }), 'extra'],
    [JSON.stringify([1, 2]), 'frame'],
    [JSON.stringify({ type: 'subscribe', services: ['x'.repeat(70_000)] }), 'larger than the limit'],
  ]
  for (const [frame, mentions] of bad) {
    c.send(frame)
    const m = await c.next()
    t.equal(m.type, 'error', `error for ${String(frame).slice(0, 40)}`)
    if (m.type === 'error') t.match(m.error.message, mentions)
  }
  c.ws.send(Buffer.from('{"type":"subscribe","services":["*"]}'), { binary: true })
  const binary = await c.next()
  t.match(binary.type === 'error' && binary.error.message, 'text frame')
  c.subscribe(['orders'])
  t.equal((await c.next()).type, 'snapshot', 'the connection still works')
})

t.test('a frame over the hard cap closes the socket with 1009', async (t) => {
  const s = await startTestServer(t)
  const c = await WatchClient.open(s.url)
  c.send('x'.repeat(2 * 1024 * 1024))
  t.equal(await c.closed, 1009)
})

t.test('a consumer that does not read is closed with 4008 once its buffer passes the bound', async (t) => {
  const s = await startTestServer(t)
  const c = await WatchClient.open(s.url)
  const reader = await WatchClient.open(s.url)
  t.teardown(() => (c.close(), reader.close()))
  c.subscribe(['*'])
  reader.subscribe(['*'])
  await c.next()
  await reader.next()
  // Stop reading: the kernel buffers fill, then the server's send buffer grows.
  const socket = (c.ws as unknown as { _socket: import('node:net').Socket })._socket
  socket.pause()
  const metadata: Record<string, string> = {}
  for (let k = 0; k < 60; k++) metadata[`k${k}`] = 'v'.repeat(120)
  const body = RegisterBody.parse(instanceBody({ metadata }))
  let i = 0
  while (s.app.watchHub.size === 2) {
    // About 8 KiB a change, 20 a round (160 KiB: well under the 1 MiB bound), and the next
    // round only once the reading subscriber has everything: its buffer never grows, while
    // the one that does not read piles up past the kernel's buffers and the bound.
    for (let j = 0; j < 20; j++) s.registry.register('orders', `o-${i++ % 500}`, { ...body, weight: i % 1000 })
    await s.registry.settled()
    const target = s.registry.revision
    await reader.until(() => reader.revision === target)
    if (i > 200_000) break
  }
  t.equal(s.app.watchHub.size, 1, 'the slow consumer was dropped from the hub')
  socket.resume()
  t.equal(await c.closed, CLOSE_SLOW_CONSUMER)
  // The reader that kept up saw every change.
  await reader.until(() => reader.revision === s.registry.revision)
  t.pass('the reading subscriber kept receiving')
})

t.test('dead peers are found with protocol pings and dropped', async (t) => {
  const s = await startTestServer(t, {}, { watch: { pingIntervalMs: 0 } })
  const deaf = await WatchClient.open(s.url, { autoPong: false })
  const alive = await WatchClient.open(s.url)
  t.teardown(() => (deaf.close(), alive.close()))
  alive.subscribe(['orders'])
  await alive.next()
  const pinged = [once(deaf.ws, 'ping'), once(alive.ws, 'ping')]
  s.app.watchHub.ping()
  await Promise.all(pinged)
  // A round trip on the live socket: its pong went out before this subscribe.
  alive.subscribe(['billing'])
  await alive.next()
  s.app.watchHub.ping()
  t.equal(await deaf.closed, 1006, 'no pong: terminated')
  t.equal(alive.closeCode, undefined, 'the answering peer stays')
  t.equal(s.app.watchHub.size, 1)
})

t.test('graceful shutdown closes watch sockets with 1001', async (t) => {
  const s = await startTestServer(t)
  const c = await WatchClient.open(s.url)
  c.subscribe(['*'])
  await c.next()
  await s.close()
  t.equal(await c.closed, 1001)
})

t.test('a plain GET /v1/watch is a 400 in the error shape', async (t) => {
  const s = await startTestServer(t)
  const res = await s.request('GET', '/v1/watch')
  t.equal(res.status, 400)
  const body = (await res.json()) as { error: { code: string } }
  t.equal(body.error.code, 'VALIDATION_FAILED')
})

t.test('1,000 subscribers to "*" each receive every change while instances churn', async (t) => {
  const s = await startTestServer(t)
  const clients: WebSocket[] = []
  const counts = new Uint32Array(1000)
  const last = new Int32Array(1000)
  let ordered = true
  let target = Infinity
  let complete = 0
  let allReached: () => void = () => undefined
  const reached = new Promise<void>((resolve) => (allReached = resolve))
  for (let i = 0; i < 1000; i++) {
    const ws = new WebSocket(s.url.replace('http', 'ws') + '/v1/watch')
    const k = i
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString()) as ServerMessage
      if (m.type !== 'change') return
      if (m.revision <= (last[k] as number)) ordered = false
      last[k] = m.revision
      if (++counts[k]! === target && ++complete === 1000) allReached()
    })
    clients.push(ws)
  }
  t.teardown(() => clients.forEach((c) => c.terminate()))
  await Promise.all(clients.map((c) => once(c, 'open')))
  const snapshots = clients.map((c) => once(c, 'message'))
  for (const c of clients) c.send(JSON.stringify({ type: 'subscribe', services: ['*'] }))
  await Promise.all(snapshots)
  for (let i = 0; i < 50; i++) {
    await put(s, `svc-${i % 5}`, `i-${i % 10}`, { weight: i })
    if (i % 10 === 9) await s.request('DELETE', `/v1/services/svc-${i % 5}/instances/i-${i % 10}`)
  }
  await s.registry.settled()
  const total = s.registry.revision
  target = total
  complete = counts.filter((n) => n === total).length
  if (complete === 1000) allReached()
  await reached
  t.ok(ordered, 'in order everywhere')
  t.equal(counts.reduce((a, b) => a + b, 0), 1000 * total, 'every change reached every subscriber')
})

t.test('the retained history survives a restart: resume across it replays, no snapshot', async (t) => {
  const first = await startTestServer(t)
  for (let i = 0; i < 20; i++) await put(first, 'orders', `o-${i % 5}`, { weight: i })
  await first.close()
  const second = await startTestServer(t, { db: first.dbPath })
  t.equal(second.registry.revision, 20, 'the revision did not go back')
  const c = await WatchClient.open(second.url)
  t.teardown(() => c.close())
  c.subscribe(['orders'], 12)
  await c.until(() => c.revision === 20)
  t.same(
    c.messages.map((m) => m.type === 'change' && m.revision),
    [13, 14, 15, 16, 17, 18, 19, 20],
  )
  const m = c.messages[7] as ChangeMessage
  t.equal(m.instance.weight, 19, 'the replayed change is the one made before the restart')
})
