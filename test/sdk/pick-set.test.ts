import t from 'tap'
import type { Balancer } from '../../client-sdk/balancers/index.js'
import { createBalancer } from '../../client-sdk/balancers/index.js'
import { BreakerState } from '../../client-sdk/breaker.js'
import type { Endpoint, EndpointInit } from '../../client-sdk/endpoint.js'
import { NoInstanceAvailableError } from '../../client-sdk/errors.js'
import { PickSet } from '../../client-sdk/pick-set.js'
import type { PickSetOptions } from '../../client-sdk/pick-set.js'
import type { Instance } from '../../client-sdk/protocol.js'
import { TestClock, countPicks, seededRandom } from './helpers.js'

function inst(id: string, extra: Partial<EndpointInit> = {}): EndpointInit {
  return { id, host: '127.0.0.1', port: 9000, ...extra }
}

function setup(options: Partial<PickSetOptions> = {}) {
  const clock = new TestClock()
  const set = new PickSet({
    service: 'orders',
    balancer: 'round-robin',
    balancerOptions: { random: seededRandom(1) },
    now: clock.now,
    ...options,
  })
  const ids = (picks = 200, key?: string) => [...countPicks(() => set.pick(key), picks).keys()].sort()
  return { clock, set, ids }
}

/** Fails `id` 5 times in a row: its breaker ejects it (within max-ejection-percent). */
function eject(set: PickSet, id: string): void {
  const e = set.get(id)!
  for (let i = 0; i < 5; i++) set.recordFailure(e)
}

t.test('only routable instances (up and passing) are candidates', async (t) => {
  const { set, ids } = setup({ panicThreshold: 0 })
  set.replaceAll([
    inst('a'),
    inst('b'),
    inst('starting', { status: 'starting' }),
    inst('draining', { status: 'draining' }),
    inst('oos', { status: 'out_of_service' }),
    inst('critical', { health: 'critical' }),
    inst('unknown', { health: 'unknown' }),
    inst('zero', { weight: 0 }),
  ])
  t.same(ids(), ['a', 'b'])
  t.same(set.routable().map((e) => e.id).sort(), ['a', 'b', 'zero'])
  t.same(set.stats(), { known: 8, eligible: 4, healthy: 2, candidates: 2, probes: 0, panic: false, zoneLocal: false })
})

t.test('a pushed critical, draining or removal leaves the pick set at the next pick', async (t) => {
  const { set, ids } = setup({ panicThreshold: 0 })
  set.replaceAll([inst('a'), inst('b'), inst('c'), inst('d')])
  t.same(ids(), ['a', 'b', 'c', 'd'])
  set.upsert(inst('a', { health: 'critical' }))
  t.same(ids(), ['b', 'c', 'd'])
  set.upsert(inst('b', { status: 'draining' }))
  t.same(ids(), ['c', 'd'])
  set.remove('c')
  t.same(ids(), ['d'])
  set.upsert(inst('d', { weight: 0 }))
  t.equal(set.pick(), undefined)
})

t.test('endpoints keep their identity and in-flight count across updates', async (t) => {
  const { set } = setup()
  const a = set.upsert(inst('a', { port: 1 }))
  a.inFlight = 3
  t.equal(set.upsert(inst('a', { port: 2 })), a)
  t.equal(a.port, 2)
  t.equal(a.inFlight, 3)
  t.equal(a.service, 'orders', 'service name from the set when the init has none')
  set.replaceAll([inst('a', { port: 3 }), inst('b')])
  t.equal(set.get('a'), a)
  set.replaceAll([inst('b')])
  t.equal(set.get('a'), undefined)
  t.equal(set.size, 1)
  t.notOk(set.remove('a'))
})

t.test('recomputes once per change burst, not per pick', async (t) => {
  let updates = 0
  const inner = createBalancer('round-robin')
  const counting: Balancer = {
    name: 'round-robin',
    update(e) {
      updates++
      inner.update(e)
    },
    pick: (k) => inner.pick(k),
  }
  const { set } = setup({ balancer: counting })
  for (let i = 0; i < 1000; i++) set.upsert(inst(`i${i}`))
  for (let i = 0; i < 10_000; i++) set.pick()
  t.equal(updates, 1, '1000 upserts, 10000 picks: one recompute')
  set.upsert(inst('i5', { health: 'critical' }))
  set.remove('i6')
  set.pick()
  set.pick()
  t.equal(updates, 2)
  set.invalidate()
  set.pick()
  t.equal(updates, 3)
})

t.test('ejected instances leave the set; the end of the ejection brings one probe, then full traffic', async (t) => {
  const { set, ids, clock } = setup()
  set.replaceAll([inst('a'), inst('b'), inst('c'), inst('d')])
  eject(set, 'a')
  t.same(ids(), ['b', 'c', 'd'])
  t.equal(set.breakerOf('a')!.state, BreakerState.Open)
  clock.advance(30_000)
  // The first pick after the ejection ends is a's probe; then a is held back until it reports.
  const probe = set.pick()!
  t.equal(probe.id, 'a')
  t.same(ids(), ['b', 'c', 'd'], 'no second request while the probe is out')
  set.recordSuccess(probe, clock.t)
  t.same(ids(), ['a', 'b', 'c', 'd'])
})

t.test('a failed probe keeps the instance out for twice as long', async (t) => {
  const { set, ids, clock } = setup()
  set.replaceAll([inst('a'), inst('b'), inst('c'), inst('d')])
  eject(set, 'a')
  clock.advance(30_000)
  const probe = set.pick()!
  t.equal(probe.id, 'a')
  set.recordFailure(probe)
  clock.advance(59_999)
  t.same(ids(), ['b', 'c', 'd'])
  clock.advance(1)
  t.equal(set.pick()!.id, 'a', 'the next probe after 60 s')
})

t.test('a probe that never reports returns the instance after the probe timeout', async (t) => {
  const { set, ids, clock } = setup({ breakers: { probeTimeoutMs: 10_000 } })
  set.replaceAll([inst('a'), inst('b'), inst('c')])
  eject(set, 'a')
  clock.advance(30_000)
  t.equal(set.pick()!.id, 'a', 'the probe, which its caller never reports')
  clock.advance(9_999)
  t.same(ids(), ['b', 'c'])
  clock.advance(1)
  t.same(ids(), ['a', 'b', 'c'])
})

t.test('no more than max-ejection-percent of the instances are ejected', async (t) => {
  const { set, ids } = setup()
  set.replaceAll([inst('a'), inst('b'), inst('c'), inst('d')])
  for (const id of ['a', 'b', 'c', 'd']) eject(set, id)
  t.equal(set.breakers.ejectedCount, 2)
  t.same(ids(), ['c', 'd'])
  t.notOk(set.stats().panic, '2 of 4 healthy is not below 50%')
})

t.test('an instance the server reports passing again is probed, not flooded', async (t) => {
  const { set, ids } = setup()
  set.replaceAll([inst('a'), inst('b'), inst('c'), inst('d')])
  set.upsert(inst('a', { health: 'critical' }))
  t.same(ids(), ['b', 'c', 'd'])
  set.upsert(inst('a', { health: 'passing' }))
  const probe = set.pick()!
  t.equal(probe.id, 'a')
  t.same(ids(), ['b', 'c', 'd'])
  set.recordSuccess(probe)
  t.same(ids(), ['a', 'b', 'c', 'd'])
  // A new instance, or one moving from draining back to up, takes traffic at once.
  set.upsert(inst('e'))
  set.upsert(inst('b', { status: 'draining' }))
  set.upsert(inst('b', { status: 'up' }))
  t.same(ids(), ['a', 'b', 'c', 'd', 'e'])
})

t.test('outcomes of an endpoint no longer known are ignored', async (t) => {
  const { set } = setup()
  const old = set.upsert(inst('a'))
  set.upsert(inst('b'))
  set.upsert(inst('c'))
  set.remove('a')
  const fresh = set.upsert(inst('a'))
  t.not(fresh, old)
  for (let i = 0; i < 10; i++) set.recordFailure(old)
  t.equal(set.breakerOf('a')!.state, BreakerState.Closed)
})

t.test('zone preference: the caller zone while it has enough routable instances, else spill over', async (t) => {
  const { set, ids } = setup({ zone: 'z1', panicThreshold: 0 })
  set.replaceAll([
    inst('z1-a', { zone: 'z1' }),
    inst('z1-b', { zone: 'z1' }),
    inst('z1-c', { zone: 'z1' }),
    inst('z1-d', { zone: 'z1' }),
    inst('z2-a', { zone: 'z2' }),
    inst('z2-b', { zone: 'z2' }),
    inst('none'),
  ])
  t.same(ids(), ['z1-a', 'z1-b', 'z1-c', 'z1-d'])
  t.ok(set.stats().zoneLocal)
  set.upsert(inst('z1-a', { zone: 'z1', health: 'critical' }))
  set.upsert(inst('z1-b', { zone: 'z1', status: 'out_of_service' }))
  t.same(ids(), ['z1-c', 'z1-d'], '2 of 3 eligible in zone (out_of_service is not eligible): stays local')
  set.upsert(inst('z1-c', { zone: 'z1', health: 'critical' }))
  t.same(ids(), ['none', 'z1-d', 'z2-a', 'z2-b'], '1 of 3 is under half: spill over to all routable')
  t.notOk(set.stats().zoneLocal)
  set.upsert(inst('z1-d', { zone: 'z1', health: 'critical' }))
  t.same(ids(), ['none', 'z2-a', 'z2-b'], 'nothing left in the zone')
})

t.test('zone preference: a minimum number of instances', async (t) => {
  const { set, ids } = setup({ zone: 'z1', zoneMinInstances: 2, zoneMinHealthyShare: 0, panicThreshold: 0 })
  set.replaceAll([inst('z1-a', { zone: 'z1' }), inst('z1-b', { zone: 'z1' }), inst('z2-a', { zone: 'z2' })])
  t.same(ids(), ['z1-a', 'z1-b'])
  set.upsert(inst('z1-b', { zone: 'z1', health: 'critical' }))
  t.same(ids(), ['z1-a', 'z2-a'], 'one is fewer than 2: spill over')
})

t.test('zone preference counts ejected instances as unhealthy', async (t) => {
  const { set, ids } = setup({ zone: 'z1' })
  set.replaceAll([
    inst('z1-a', { zone: 'z1' }),
    inst('z1-b', { zone: 'z1' }),
    inst('z2-a', { zone: 'z2' }),
    inst('z2-b', { zone: 'z2' }),
  ])
  eject(set, 'z1-a')
  t.same(ids(), ['z1-b'], '1 of 2: still half')
})

t.test('panic mode: below the threshold, balance over every eligible instance', async (t) => {
  const { set, ids } = setup({ zone: 'z1' })
  const all = Array.from({ length: 10 }, (_, i) => inst(`i${i}`, { zone: i < 5 ? 'z1' : 'z2' }))
  set.replaceAll(all)
  for (let i = 0; i < 5; i++) set.upsert(inst(`i${i}`, { zone: 'z1', health: 'critical' }))
  t.same(ids(), ['i5', 'i6', 'i7', 'i8', 'i9'], '5 of 10 healthy: not below 50%, no panic')
  t.notOk(set.stats().panic)
  set.upsert(inst('i5', { zone: 'z2', health: 'critical' }))
  t.ok(set.stats().panic, '4 of 10 healthy: panic')
  t.same(
    ids(1000),
    all.map((i) => i.id).sort(),
    'critical ones too, and zone preference is off',
  )
  // Operator decisions still hold in panic.
  set.upsert(inst('i0', { zone: 'z1', health: 'critical', status: 'draining' }))
  set.upsert(inst('i1', { zone: 'z1', health: 'critical', weight: 0 }))
  t.notOk(ids(1000).includes('i0'))
  t.notOk(ids(1000).includes('i1'))
  // Recovery ends panic.
  for (let i = 2; i < 6; i++) set.upsert(inst(`i${i}`, { zone: i < 5 ? 'z1' : 'z2' }))
  t.notOk(set.stats().panic)
})

t.test('panic mode includes ejected instances; panicThreshold 0 disables it', async (t) => {
  const { set, ids } = setup({ breakers: { maxEjectionPercent: 100 } })
  set.replaceAll([inst('a'), inst('b'), inst('c')])
  eject(set, 'a')
  t.same(ids(), ['b', 'c'])
  eject(set, 'b')
  t.ok(set.stats().panic, '1 of 3 healthy')
  t.same(ids(), ['a', 'b', 'c'])

  const off = setup({ panicThreshold: 0 })
  off.set.replaceAll([inst('a', { health: 'critical' }), inst('b', { health: 'critical' })])
  t.equal(off.set.pick(), undefined)
  t.notOk(off.set.stats().panic)
})

t.test('pickOrThrow says why there is nothing to pick', async (t) => {
  const { set } = setup({ panicThreshold: 0 })
  t.throws(() => set.pickOrThrow(), { name: 'NoInstanceAvailableError', code: 'NO_INSTANCE_AVAILABLE', retryable: false, message: 'no instance of orders is available: no instance is registered' })
  set.upsert(inst('a', { status: 'draining' }))
  t.throws(() => set.pickOrThrow(), /none of 1 instances is up with a weight above 0/)
  set.upsert(inst('a', { health: 'critical' }))
  try {
    set.pickOrThrow()
    t.fail('should throw')
  } catch (err) {
    t.ok(err instanceof NoInstanceAvailableError)
    t.match((err as Error).message, /none of 1 eligible instances is routable and not ejected/)
  }
  set.upsert(inst('a'))
  t.equal(set.pickOrThrow().id, 'a')
})

t.test('ring-hash through the pick set keeps key affinity and skips the unroutable', async (t) => {
  const { set } = setup({ balancer: 'ring-hash' })
  set.replaceAll(Array.from({ length: 5 }, (_, i) => inst(`i${i}`)))
  const owner = set.pick('user-42')!.id
  for (let i = 0; i < 10; i++) t.equal(set.pick('user-42')!.id, owner)
  set.upsert(inst(owner, { health: 'critical' }))
  const next = set.pick('user-42')!.id
  t.not(next, owner)
  t.equal(set.pick('user-42')!.id, next)
})

t.test('a whole Instance from the server is accepted as is', async (t) => {
  const { set } = setup()
  const i: Instance = {
    service: 'orders',
    id: 'o-1',
    host: '::1',
    port: 8443,
    scheme: 'https',
    status: 'up',
    health: 'passing',
    weight: 100,
    zone: 'eu-1a',
    tags: ['v2'],
    metadata: {},
    ttlSeconds: 30,
    deregisterAfterSeconds: 60,
    registeredAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:00.000Z',
    lastHeartbeatAt: '2026-01-01T00:00:00.000Z',
    expiresAt: '2026-01-01T00:00:30.000Z',
    revision: 7,
  }
  const e: Endpoint = set.upsert(i)
  t.equal(e.origin, 'https://[::1]:8443')
  t.equal(e.instance, i)
  t.equal(e.zone, 'eu-1a')
  t.equal(set.pick(), e)
})

t.test('options are checked', async (t) => {
  const now = () => 0
  t.throws(() => new PickSet({ now, panicThreshold: 1.5 }), /panicThreshold must be within 0..1/)
  t.throws(() => new PickSet({ now, zoneMinHealthyShare: -1 }), /zoneMinHealthyShare/)
  t.throws(() => new PickSet({ now, breakers: { maxEjectionPercent: 200 } }), /maxEjectionPercent/)
})
