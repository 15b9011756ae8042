/**
 * GET /metrics from a real server: the text is Prometheus', and every series the issue
 * names moves as the registry changes (registrations, heartbeats, expiries, removals,
 * checks, the watch, SQLite commits, requests), with the service label bounded.
 */
import { createServer } from 'node:net'
import type { AddressInfo, Server, Socket } from 'node:net'
import t from 'tap'
import { CLOSE_SLOW_CONSUMER, RegisterBody } from '../client-sdk/protocol.js'
import { ManualClock } from '../server/registry/clock.js'
import { OTHER_SERVICES, ServiceLabels } from '../server/http/metrics.js'
import { instanceBody, startTestServer } from './helpers/server.js'
import type { TestServer } from './helpers/server.js'
import { WatchClient } from './helpers/watch-client.js'

/** Series name with its labels as written (`name{a="1",b="2"}`) -> value. */
type Scrape = Map<string, number>

async function scrape(s: TestServer): Promise<{ series: Scrape; text: string; type: string }> {
  const res = await s.request('GET', '/metrics')
  const text = await res.text()
  const series: Scrape = new Map()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?) (\S+)$/.exec(line)
    if (m === null) throw new Error(`not a Prometheus sample line: ${line}`)
    series.set(m[1] as string, Number(m[2]))
  }
  return { series, text, type: res.headers.get('content-type') ?? '' }
}

/** A series' value; throws when the series is missing, so a renamed metric fails loudly. */
function value(series: Scrape, key: string): number {
  const v = series.get(key)
  if (v === undefined) throw new Error(`no series ${key}`)
  return v
}

const put = (s: TestServer, service: string, id: string, extra: Record<string, unknown> = {}) =>
  s.request('PUT', `/v1/services/${service}/instances/${id}`, instanceBody(extra))

/** A TCP listener that accepts and closes: a passing TCP check target. */
async function tcpTarget(t: { teardown(fn: () => unknown): void }): Promise<number> {
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const socket of sockets) socket.destroy()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return (server.address() as AddressInfo).port
}

/** A port with nothing listening: taken, then released. */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

t.test('/metrics is Prometheus text with every series, at zero on an empty registry', async (t) => {
  const s = await startTestServer(t, { checks: false }, { clock: new ManualClock(Date.now()), sweepIntervalMs: 0 })
  const { series, text, type } = await scrape(s)
  t.match(type, /^text\/plain; version=0\.0\.4/)
  for (const name of [
    'rollcall_revision',
    'rollcall_services',
    'rollcall_instances',
    'rollcall_instances_routable',
    'rollcall_registrations_total',
    'rollcall_deregistrations_total',
    'rollcall_lease_expiries_total',
    'rollcall_removals_total',
    'rollcall_heartbeats_total',
    'rollcall_check_duration_seconds',
    'rollcall_watch_connections',
    'rollcall_watch_messages_sent_total',
    'rollcall_watch_slow_consumer_closes_total',
    'rollcall_self_preservation',
    'rollcall_self_preservation_held_leases',
    'rollcall_http_request_duration_seconds',
    'rollcall_sqlite_commit_duration_seconds',
    'rollcall_sqlite_committed_changes_total',
    'rollcall_changes_total',
    'rollcall_process_cpu_seconds_total',
  ]) {
    t.match(text, new RegExp(`^# HELP ${name} \\S`, 'm'), `${name} is documented`)
  }
  t.equal(value(series, 'rollcall_revision'), 0)
  t.equal(value(series, `rollcall_instances{service="${OTHER_SERVICES}",health="critical"}`), 0)
  t.equal(value(series, 'rollcall_heartbeats_total{result="ok"}'), 0)
  t.equal(value(series, 'rollcall_lease_expiries_total'), 0)
  t.equal(value(series, 'rollcall_watch_connections'), 0)
})

t.test('registrations, heartbeats, expiries, deregistrations and removals move their series', async (t) => {
  const clock = new ManualClock(Date.now())
  const s = await startTestServer(t, { checks: false }, { clock, sweepIntervalMs: 0 })

  t.equal((await put(s, 'orders', 'o-1', { ttlSeconds: 10, deregisterAfterSeconds: 30 })).status, 201)
  t.equal((await put(s, 'orders', 'o-1', { ttlSeconds: 10, deregisterAfterSeconds: 30 })).status, 200, 'same again')
  t.equal((await put(s, 'orders', 'o-2', { ttlSeconds: 10, deregisterAfterSeconds: 30, status: 'draining' })).status, 201)
  t.equal((await s.request('POST', '/v1/services/billing/instances', instanceBody({ ttlSeconds: 60 }))).status, 201)

  let { series } = await scrape(s)
  t.equal(value(series, 'rollcall_registrations_total{result="created"}'), 3)
  t.equal(value(series, 'rollcall_registrations_total{result="replaced"}'), 1)
  t.equal(value(series, 'rollcall_instances{service="orders",health="passing"}'), 2)
  t.equal(value(series, 'rollcall_instances{service="orders",health="critical"}'), 0)
  t.equal(value(series, 'rollcall_instances_routable{service="orders"}'), 1, 'a draining instance is not routable')
  t.equal(value(series, 'rollcall_instances{service="billing",health="passing"}'), 1)
  t.equal(value(series, 'rollcall_services'), 2)
  t.equal(value(series, 'rollcall_revision'), s.registry.revision)
  t.equal(value(series, 'rollcall_changes_total{op="upsert"}'), 3, 'the same registration twice is one change')
  t.ok(
    value(series, 'rollcall_http_request_duration_seconds_count{method="PUT",route="/v1/services/:service/instances/:id",status="201"}') === 2,
    'request durations by route template and status',
  )

  // Heartbeats: single and batched, found and not.
  t.equal((await s.request('PUT', '/v1/services/orders/instances/o-1/heartbeat')).status, 200)
  t.equal((await s.request('PUT', '/v1/services/orders/instances/nope/heartbeat')).status, 404)
  const batch = await s.request('POST', '/v1/heartbeats', {
    instances: [
      { service: 'orders', id: 'o-1' },
      { service: 'orders', id: 'o-2' },
      { service: 'orders', id: 'gone' },
    ],
  })
  t.equal(batch.status, 200)
  ;({ series } = await scrape(s))
  t.equal(value(series, 'rollcall_heartbeats_total{result="ok"}'), 3)
  t.equal(value(series, 'rollcall_heartbeats_total{result="not_found"}'), 2)

  // The orders leases run out; billing's (60 s) does not.
  clock.advance(11_000)
  s.registry.sweep()
  await s.registry.settled()
  ;({ series } = await scrape(s))
  t.equal(value(series, 'rollcall_lease_expiries_total'), 2)
  t.equal(value(series, 'rollcall_instances{service="orders",health="critical"}'), 2)
  t.equal(value(series, 'rollcall_instances{service="orders",health="passing"}'), 0)
  t.equal(value(series, 'rollcall_instances_routable{service="orders"}'), 0)
  t.equal(value(series, 'rollcall_removals_total'), 0)

  // One is deregistered by hand, the other removed by the sweeper after 30 s in critical.
  t.equal((await s.request('DELETE', '/v1/services/orders/instances/o-1')).status, 204)
  t.equal((await s.request('DELETE', '/v1/services/orders/instances/o-1')).status, 404, 'a 404 is no deregistration')
  clock.advance(31_000)
  s.registry.sweep()
  await s.registry.settled()
  ;({ series } = await scrape(s))
  t.equal(value(series, 'rollcall_deregistrations_total'), 1)
  t.equal(value(series, 'rollcall_removals_total'), 1)
  t.equal(value(series, 'rollcall_changes_total{op="delete"}'), 2)
  t.notOk(series.has('rollcall_instances{service="orders",health="critical"}'), 'a service gone has no series left')
  t.equal(value(series, 'rollcall_services'), 1)
  t.equal(value(series, 'rollcall_revision'), s.registry.revision)
})

t.test('service names are labels only up to --metrics-max-services; the rest are _other', async (t) => {
  const s = await startTestServer(t, { checks: false, metricsMaxServices: 2 }, { clock: new ManualClock(Date.now()), sweepIntervalMs: 0 })
  for (const service of ['alpha', 'bravo', 'charlie', 'delta']) t.equal((await put(s, service, 'i-1')).status, 201)
  t.equal((await put(s, 'delta', 'i-2')).status, 201)
  let { series } = await scrape(s)
  const services = new Set([...series.keys()].filter((k) => k.startsWith('rollcall_instances{')).map((k) => /service="([^"]*)"/.exec(k)?.[1]))
  t.same([...services].sort(), ['_other', 'alpha', 'bravo'], 'two named services and _other')
  t.equal(value(series, `rollcall_instances{service="${OTHER_SERVICES}",health="passing"}`), 3, 'charlie and delta add up')

  // A labelled service that goes away frees its slot for the next one.
  t.equal((await s.request('DELETE', '/v1/services/alpha/instances/i-1')).status, 204)
  ;({ series } = await scrape(s))
  t.equal(value(series, 'rollcall_instances{service="bravo",health="passing"}'), 1, 'bravo keeps its label')
  t.equal(value(series, 'rollcall_instances{service="charlie",health="passing"}'), 1, 'charlie takes the free slot')
  t.equal(value(series, `rollcall_instances{service="${OTHER_SERVICES}",health="passing"}`), 2)
  t.notOk(series.has('rollcall_instances{service="alpha",health="passing"}'))
})

t.test('ServiceLabels keeps at most max names, first come first served', async (t) => {
  const labels = new ServiceLabels(2)
  let label = labels.assign(['b', 'c'])
  t.same(['a', 'b', 'c'].map(label), ['_other', 'b', 'c'])
  label = labels.assign(['a', 'b', 'c'])
  t.same(['a', 'b', 'c'].map(label), ['_other', 'b', 'c'], 'a newcomer does not take a slot in use')
  label = labels.assign(['a', 'c'])
  t.same(['a', 'c'].map(label), ['a', 'c'])
  t.equal(new ServiceLabels(0).assign(['a'])('a'), '_other', '0: every service is _other')
})

t.test('self-preservation shows as a gauge with the leases it holds back', async (t) => {
  const clock = new ManualClock(Date.now())
  const s = await startTestServer(t, { checks: false, selfPreservationMin: 2 }, { clock, sweepIntervalMs: 0 })
  for (const id of ['a', 'b', 'c']) t.equal((await put(s, 'orders', id, { ttlSeconds: 5 })).status, 201)
  clock.advance(6_000)
  t.equal(s.registry.sweep().selfPreservation, true)
  let { series } = await scrape(s)
  t.equal(value(series, 'rollcall_self_preservation'), 1)
  t.equal(value(series, 'rollcall_self_preservation_held_leases'), 3)
  t.equal(value(series, 'rollcall_lease_expiries_total'), 0, 'held back, not expired')
  for (const id of ['a', 'b', 'c']) await s.request('PUT', `/v1/services/orders/instances/${id}/heartbeat`)
  s.registry.sweep()
  ;({ series } = await scrape(s))
  t.equal(value(series, 'rollcall_self_preservation'), 0)
  t.equal(value(series, 'rollcall_self_preservation_held_leases'), 0)
})

t.test('check results are counted by type and outcome with their durations', async (t) => {
  const s = await startTestServer(t, { checks: true }, { sweepIntervalMs: 0 })
  const up = await tcpTarget(t)
  const down = await closedPort()
  const healthOf = (id: string) => s.registry.get('web', id)?.health
  const settled = new Promise<void>((resolve) => {
    const sub = s.registry.onChange(() => {
      if (healthOf('up') === 'passing' && healthOf('down') === 'critical') {
        sub.dispose()
        resolve()
      }
    })
  })
  // The first result decides an unknown health: one probe each turns them passing and critical.
  const check = { type: 'tcp', intervalSeconds: 60, timeoutSeconds: 5 }
  t.equal((await put(s, 'web', 'up', { port: up, check })).status, 201)
  t.equal((await put(s, 'web', 'down', { port: down, check })).status, 201)
  await settled
  const { series } = await scrape(s)
  t.equal(value(series, 'rollcall_check_duration_seconds_count{type="tcp",outcome="pass"}'), 1)
  t.equal(value(series, 'rollcall_check_duration_seconds_count{type="tcp",outcome="fail"}'), 1)
  t.ok(value(series, 'rollcall_check_duration_seconds_bucket{le="+Inf",type="tcp",outcome="pass"}') === 1, 'a histogram')
  t.equal(value(series, 'rollcall_instances{service="web",health="critical"}'), 1)
})

t.test('watch connections, messages sent and slow-consumer closes', async (t) => {
  const s = await startTestServer(t, { checks: false }, { sweepIntervalMs: 0, watch: { maxBufferedBytes: 64 * 1024 } })
  const reader = await WatchClient.open(s.url)
  const slow = await WatchClient.open(s.url)
  t.teardown(() => (reader.close(), slow.close()))
  reader.subscribe(['*'])
  slow.subscribe(['orders'])
  await reader.next()
  await slow.next()
  let { series } = await scrape(s)
  t.equal(value(series, 'rollcall_watch_connections'), 2)
  const before = value(series, 'rollcall_watch_messages_sent_total')

  t.equal((await put(s, 'orders', 'o-1')).status, 201)
  t.equal((await put(s, 'billing', 'b-1')).status, 201)
  await reader.until(() => reader.revision === s.registry.revision)
  ;({ series } = await scrape(s))
  t.equal(value(series, 'rollcall_watch_messages_sent_total') - before, 3, 'orders to both, billing to one')

  // Stop reading on one socket until the server gives up on it.
  const socket = (slow.ws as unknown as { _socket: import('node:net').Socket })._socket
  socket.pause()
  const metadata: Record<string, string> = {}
  for (let k = 0; k < 60; k++) metadata[`k${k}`] = 'v'.repeat(120)
  const body = RegisterBody.parse(instanceBody({ metadata }))
  let i = 0
  while (s.app.watchHub.size === 2 && i < 200_000) {
    for (let j = 0; j < 100; j++) s.registry.register('orders', `o-${i++ % 200}`, { ...body, weight: i % 1000 })
    await s.registry.settled()
    await new Promise((r) => setImmediate(r))
  }
  socket.resume()
  t.equal(await slow.closed, CLOSE_SLOW_CONSUMER)
  ;({ series } = await scrape(s))
  t.equal(value(series, 'rollcall_watch_slow_consumer_closes_total'), 1)
  t.equal(value(series, 'rollcall_watch_connections'), 1)
})

t.test('SQLite commits are timed, and every durable change is counted', async (t) => {
  const s = await startTestServer(t, { checks: false }, { sweepIntervalMs: 0 })
  let { series } = await scrape(s)
  const batches = value(series, 'rollcall_sqlite_commit_duration_seconds_count')
  const written = value(series, 'rollcall_sqlite_committed_changes_total')
  // Registered in one turn of the event loop: one group commit of 5 changes.
  const committed = Array.from({ length: 5 }, (_, i) => s.registry.register('bulk', `b-${i}`, RegisterBody.parse(instanceBody())).committed)
  await Promise.all(committed)
  t.equal((await put(s, 'bulk', 'b-9')).status, 201)
  ;({ series } = await scrape(s))
  t.equal(value(series, 'rollcall_sqlite_committed_changes_total') - written, 6)
  t.equal(value(series, 'rollcall_sqlite_commit_duration_seconds_count') - batches, 2, 'one commit per batch')
  t.ok(value(series, 'rollcall_sqlite_commit_duration_seconds_sum') > 0, 'with a duration')
})
