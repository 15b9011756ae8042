import t from 'tap'
import type { Instance, InstancesResponse } from '../client-sdk/protocol.js'
import { loadConfig } from '../server/config.js'
import { ManualClock } from '../server/registry/clock.js'
import { deadPort, healthOf, nextChange, startHttpTarget, startTcpTarget } from './helpers/check-targets.js'
import { instanceBody, spawnServer, startTestServer } from './helpers/server.js'

// Active health checks through the real server: registrations over HTTP, real probes of
// real listeners on 127.0.0.1, health read back over HTTP. Intervals and timeouts are 1 s
// (the minimum); tests wait for events (a change, the n-th request on a target), never
// for time.

const FAST = { intervalSeconds: 1, timeoutSeconds: 1, healthyThreshold: 1, unhealthyThreshold: 1 }

t.test('an HTTP check: unknown and not routable until the first probe, then passing, with the last result shown', async (t) => {
  const s = await startTestServer(t)
  const target = await startHttpTarget(t, 'hold')
  const put = await s.request('PUT', '/v1/services/web/instances/w-1', instanceBody({
    port: target.port,
    check: { type: 'http', path: '/health', intervalSeconds: 1, timeoutSeconds: 1 },
  }))
  t.equal(put.status, 201)
  const registered = (await put.json()) as Instance
  t.equal(registered.health, 'unknown')
  t.equal(registered.lastCheck, undefined)
  t.same(registered.check, { type: 'http', path: '/health', intervalSeconds: 1, timeoutSeconds: 1, healthyThreshold: 2, unhealthyThreshold: 3 }, 'defaults filled in')

  // A blocking query parked on the registration's revision wakes with the probe's result.
  const blocked = s.request('GET', `/v1/services/web/instances?index=${registered.revision}&wait=60s`)
  const probe = await target.request(1)
  t.equal(probe.path, '/health')
  const routable = (await (await s.request('GET', '/v1/services/web/instances?healthy=true')).json()) as InstancesResponse
  t.same(routable.instances, [], 'not routable while unknown')
  probe.answer(200)

  const woke = await blocked
  const page = (await woke.json()) as InstancesResponse
  t.ok(page.revision > registered.revision, 'the change of health is a change with a new revision')
  t.equal(woke.headers.get('x-rollcall-revision'), String(page.revision))
  const inst = page.instances[0]!
  t.equal(inst.health, 'passing')
  t.equal(inst.revision, page.revision)
  t.match(inst.lastCheck, { ok: true, statusCode: 200 })
  t.type(inst.lastCheck?.durationMs, 'number')
  t.ok(Date.parse(inst.lastCheck!.at) >= Date.parse(registered.registeredAt), 'the time of the result')

  const one = (await (await s.request('GET', '/v1/services/web/instances/w-1')).json()) as Instance
  t.same(one.lastCheck, inst.lastCheck, 'the one-instance GET shows it too')
  const healthy = (await (await s.request('GET', '/v1/services/web/instances?healthy=true')).json()) as InstancesResponse
  t.equal(healthy.instances.length, 1, 'routable now')
})

t.test('HTTP: 500 and a hung target (timeout) turn an instance critical, 2xx and 3xx passing; redirects are not followed', async (t) => {
  const s = await startTestServer(t)
  const target = await startHttpTarget(t, 200)
  const id = (health: string) => healthOf('web', 'w-1', health)
  let passing = nextChange(s.registry, id('passing'))
  await s.request('PUT', '/v1/services/web/instances/w-1', instanceBody({ port: target.port, check: { type: 'http', path: '/h', ...FAST } }))
  const first = await passing

  let critical = nextChange(s.registry, id('critical'))
  target.mode = 500
  const c500 = await critical
  t.match(c500.instance.lastCheck, { ok: false, statusCode: 500, error: 'status 500' })
  t.ok(c500.revision > first.revision)
  const shown = (await (await s.request('GET', '/v1/services/web/instances/w-1')).json()) as Instance
  t.equal(shown.health, 'critical')
  t.match(shown.lastCheck, { ok: false, statusCode: 500, error: 'status 500' })

  passing = nextChange(s.registry, id('passing'))
  target.mode = 200
  t.match((await passing).instance.lastCheck, { ok: true, statusCode: 200 })

  critical = nextChange(s.registry, id('critical'))
  target.mode = 'hold'
  const timedOut = await critical
  t.match(timedOut.instance.lastCheck, { ok: false, error: 'timeout' }, 'a timeout counts as a failure')
  t.equal(timedOut.instance.lastCheck?.statusCode, undefined)

  // 3xx passes; its Location (another path on the same target) is never requested.
  passing = nextChange(s.registry, id('passing'))
  target.mode = 302
  const redirected = await passing
  t.match(redirected.instance.lastCheck, { ok: true, statusCode: 302 })
  t.equal(target.count('/elsewhere'), 0)
  t.ok(target.received.every((r) => r.path === '/h'), 'only the check path was requested')
})

t.test('TCP: a listener closed and reopened, and a port with nothing on it', async (t) => {
  const s = await startTestServer(t)
  const listener = await startTcpTarget(t)
  const nothing = await deadPort()

  const dead = nextChange(s.registry, healthOf('db', 'gone', 'critical'))
  await s.request('PUT', '/v1/services/db/instances/gone', instanceBody({ port: nothing, scheme: 'tcp', check: { type: 'tcp', ...FAST } }))
  t.match((await dead).instance.lastCheck, { ok: false, error: 'ECONNREFUSED' })

  const up = nextChange(s.registry, healthOf('db', 'd-1', 'passing'))
  const put = await s.request('PUT', '/v1/services/db/instances/d-1', instanceBody({ port: listener.port, scheme: 'tcp', check: { type: 'tcp', ...FAST } }))
  t.equal(((await put.json()) as Instance).health, 'unknown')
  await up
  const down = nextChange(s.registry, healthOf('db', 'd-1', 'critical'))
  await listener.stop()
  t.match((await down).instance.lastCheck, { ok: false, error: 'ECONNREFUSED' })
  const again = nextChange(s.registry, healthOf('db', 'd-1', 'passing'))
  await listener.reopen()
  await again
  const shown = (await (await s.request('GET', '/v1/services/db/instances/d-1')).json()) as Instance
  t.equal(shown.health, 'passing')
  t.match(shown.lastCheck, { ok: true })
})

t.test('lease and check combine: either failing is critical, passing only when both are fine', async (t) => {
  // The lease runs on a manual clock; probes run on real time.
  const clock = new ManualClock(Date.now())
  const s = await startTestServer(t, {}, { clock, sweepIntervalMs: 50 })
  const target = await startHttpTarget(t, 200)
  const change = (health: string) => nextChange(s.registry, healthOf('web', 'w-1', health))

  let passing = change('passing')
  await s.request('PUT', '/v1/services/web/instances/w-1', instanceBody({ port: target.port, ttlSeconds: 10, check: { type: 'http', ...FAST } }))
  await passing

  // Check passing, lease lapsed: critical.
  let critical = change('critical')
  clock.advance(11_000)
  const lapsed = await critical
  t.match(lapsed.instance.lastCheck, { ok: true }, 'the check still passes')
  // When the second probe from now arrives, the first one's (passing) result is recorded.
  await target.request(target.count() + 2)
  t.equal(s.registry.get('web', 'w-1')!.lastCheck?.ok, true)
  t.equal(s.registry.get('web', 'w-1')!.health, 'critical', 'a passing probe does not revive a lapsed lease')

  // Both fine again: passing.
  passing = change('passing')
  const beat = await s.request('PUT', '/v1/services/web/instances/w-1/heartbeat')
  t.equal(((await beat.json()) as { health: string }).health, 'passing')
  await passing

  // Lease fine, check failing: critical, and a heartbeat does not revive it.
  critical = change('critical')
  target.mode = 500
  await critical
  const beat2 = await s.request('PUT', '/v1/services/web/instances/w-1/heartbeat')
  t.equal(((await beat2.json()) as { health: string }).health, 'critical', 'the heartbeat renews the lease, the check still fails')

  // Both failing, then the check recovers first: still critical until the lease is renewed.
  clock.advance(11_000)
  s.registry.sweep() // the lease lapses now, not at the sweeper's next turn
  t.equal(s.registry.get('web', 'w-1')!.leaseOk, false)
  passing = change('passing')
  const afterLapse = s.registry.revision
  target.mode = 200
  await target.request(target.count() + 2)
  const r = s.registry.get('web', 'w-1')!
  t.equal(r.health, 'critical', 'the check passes again but the lease has lapsed')
  t.equal(r.lastCheck?.ok, true)
  await s.request('PUT', '/v1/services/web/instances/w-1/heartbeat')
  const back = await passing
  t.ok(back.revision > afterLapse)
})

t.test('--checks=off: a check is accepted but never probed; health follows the lease', async (t) => {
  t.equal(loadConfig([], {}).checks, true, 'checks are on by default')
  t.equal(loadConfig(['--checks=off'], {}).checks, false)
  t.equal(loadConfig([], { ROLLCALL_CHECKS: 'off' }).checks, false)
  t.equal(loadConfig(['--checks', 'on'], { ROLLCALL_CHECKS: 'off' }).checks, true, 'the flag wins')
  t.throws(() => loadConfig(['--checks=no'], {}), /--checks/)
  t.equal(loadConfig([], {}).checkConcurrency, 64)
  t.equal(loadConfig(['--check-concurrency=10000'], {}).checkConcurrency, 10000)
  t.throws(() => loadConfig(['--check-concurrency=0'], {}), /--check-concurrency/)
  t.throws(() => loadConfig([], { ROLLCALL_CHECK_CONCURRENCY: '10001' }), /--check-concurrency/)

  const unprobed = await startHttpTarget(t, 200)
  const off = await spawnServer(['--checks=off', '--db', ':memory:'])
  t.teardown(async () => {
    off.child.kill('SIGTERM')
    await off.exited
  })
  const put = await fetch(`${off.url}/v1/services/web/instances/w-1`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(instanceBody({ port: unprobed.port, check: { type: 'http', path: '/health', ...FAST } })),
  })
  t.equal(put.status, 201)
  const registered = (await put.json()) as Instance
  t.equal(registered.health, 'passing', 'not unknown: nothing will probe it')
  t.equal(registered.check?.path, '/health', 'the check is kept as registered')

  // A witness: a server with checks on probes its own target three times meanwhile.
  const on = await startTestServer(t)
  const witness = await startHttpTarget(t, 200)
  await on.request('PUT', '/v1/services/web/instances/w-1', instanceBody({ port: witness.port, check: { type: 'http', ...FAST } }))
  await witness.request(3)
  t.equal(unprobed.count(), 0, 'the server with --checks=off sent no probe')
  const shown = (await (await fetch(`${off.url}/v1/services/web/instances/w-1`)).json()) as Instance
  t.equal(shown.health, 'passing')
  t.equal(shown.lastCheck, undefined)
})

t.test('with --checks=off in process, there is no checker at all', async (t) => {
  const s = await startTestServer(t, { checks: false })
  t.equal(s.checker, undefined)
  const withChecks = await startTestServer(t)
  t.ok(withChecks.checker !== undefined)
  const put = await s.request('PUT', '/v1/services/web/instances/w-1', instanceBody({ check: { type: 'tcp' } }))
  t.equal(((await put.json()) as Instance).health, 'passing')
})

t.test('closing the server stops every probe and leaves no connection on the targets', async (t) => {
  const s = await startTestServer(t)
  const hanging = await startHttpTarget(t, 'hold')
  for (let i = 0; i < 5; i++) {
    await s.request('PUT', `/v1/services/web/instances/w-${i}`, instanceBody({ port: hanging.port, check: { type: 'http', intervalSeconds: 30, timeoutSeconds: 30 } }))
  }
  await hanging.request(5)
  t.same(s.checker!.stats(), { instances: 5, timers: 0, queued: 0, running: 5 })
  await s.close()
  t.same(s.checker!.stats(), { instances: 0, timers: 0, queued: 0, running: 0 })
  await hanging.idle()
  t.equal(await hanging.connections(), 0)
  t.ok(hanging.received.every((r) => r.closed))
})
