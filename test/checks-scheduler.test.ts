import t from 'tap'
import type { CheckSpec, RegisterInput } from '../client-sdk/protocol.js'
import { RegisterBody } from '../client-sdk/protocol.js'
import type { Probe, ProbeTarget } from '../server/health/probe.js'
import type { CheckTimers, HealthCheckerOptions } from '../server/health/scheduler.js'
import { HealthChecker } from '../server/health/scheduler.js'
import { ManualClock } from '../server/registry/clock.js'
import type { ProbeOutcome } from '../server/registry/registry.js'
import { Registry } from '../server/registry/registry.js'
import { SqliteStore } from '../server/store/sqlite.js'
import { deadPort, healthOf, nextChange, startHttpTarget, startTcpTarget } from './helpers/check-targets.js'

// The scheduler of active checks: first with hand-driven timers and a hand-answered probe
// (what is scheduled when, the queue, the bound), then with real probes against real
// listeners and timers sped up 50 times (probe timeouts stay real).

type Teardown = { teardown(fn: () => unknown): void }

async function openRegistry(t: Teardown) {
  const store = SqliteStore.open(':memory:')
  const registry = await Registry.open({ store })
  t.teardown(async () => {
    await registry.flush().catch(() => undefined)
    await store.close()
  })
  return registry
}

const bodyWith = (port: number, check: Record<string, unknown> | undefined, over: Partial<RegisterInput> = {}) =>
  RegisterBody.parse({ host: '127.0.0.1', port, ...(check !== undefined && { check }), ...over })

/** Registers and waits until the change is durable and published (the checker saw it). */
async function register(registry: Registry, service: string, id: string, port: number, check?: Record<string, unknown>, over: Partial<RegisterInput> = {}) {
  const { record, committed } = registry.register(service, id, bodyWith(port, check, over))
  await committed
  return record
}

// ---------------------------------------------------------------------------------------
// Hand-driven time and a hand-answered probe.

interface ManualTimer {
  fn: () => void
  ms: number
  cleared: boolean
  fired: boolean
}

function manualTimers() {
  const all: ManualTimer[] = []
  const timers: CheckTimers = {
    setTimeout(fn, ms) {
      const h: ManualTimer = { fn, ms, cleared: false, fired: false }
      all.push(h)
      return h
    },
    clearTimeout(handle) {
      ;(handle as ManualTimer).cleared = true
    },
  }
  const pending = () => all.filter((h) => !h.cleared && !h.fired)
  /** Fires every pending timer, in the order they were set. */
  const fireAll = () => {
    for (const h of pending()) {
      h.fired = true
      h.fn()
    }
  }
  return { timers, all, pending, fireAll }
}

interface ProbeCall {
  target: ProbeTarget
  check: CheckSpec
  signal: AbortSignal
  answer(outcome: ProbeOutcome): void
}

/** A probe that waits for the test to answer it; an abort answers it with `aborted`. */
function manualProbe() {
  const calls: ProbeCall[] = []
  const probe: Probe = (target, check, signal) =>
    new Promise((resolve) => {
      signal.addEventListener('abort', () => resolve({ ok: false, error: 'aborted', durationMs: 0 }), { once: true })
      calls.push({ target, check, signal, answer: resolve })
    })
  return { probe, calls }
}

/** Lets promise callbacks run (a probe's answer reaches the registry a few ticks later). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve))

const TEN_S = { type: 'http', path: '/health', intervalSeconds: 10, timeoutSeconds: 2 }

t.test('scheduling: first probe within 1 s, then every interval +-10 %, from the end of the last probe', async (t) => {
  const registry = await openRegistry(t)
  await register(registry, 'web', 'before', 8001, TEN_S)
  await register(registry, 'web', 'plain', 8002)
  const time = manualTimers()
  const { probe, calls } = manualProbe()
  let nextRandom = 0.5
  const checker = HealthChecker.start({ registry, timers: time.timers, probe, random: () => nextRandom })
  t.teardown(() => checker.close())

  t.same(time.pending().map((h) => h.ms), [500], 'an instance already there: its first probe within 1 s (random 0.5)')
  nextRandom = 0.999
  await register(registry, 'web', 'after', 8003, { ...TEN_S, path: '/after' })
  t.same(time.pending().map((h) => h.ms), [500, 999], 'a new registration too, and no timer for an instance without a check')
  t.same(checker.stats(), { instances: 2, timers: 2, queued: 0, running: 0 })

  time.fireAll()
  t.equal(calls.length, 2)
  t.same(calls.map((c) => c.target), [
    { host: '127.0.0.1', port: 8001, scheme: 'http' },
    { host: '127.0.0.1', port: 8003, scheme: 'http' },
  ])
  t.equal(calls[0]!.check, registry.get('web', 'before')!.check, 'the probe gets the instance\'s own check object')
  t.same(checker.stats(), { instances: 2, timers: 0, queued: 0, running: 2 }, 'no timer while a probe is in flight')

  nextRandom = 0
  calls[0]!.answer({ ok: true, statusCode: 200, durationMs: 1 })
  await settle()
  t.equal(registry.get('web', 'before')!.health, 'passing', 'the result reached the registry')
  nextRandom = 0.999999
  calls[1]!.answer({ ok: false, error: 'ECONNREFUSED', durationMs: 1 })
  await settle()
  const next = time.pending().map((h) => h.ms)
  t.equal(next.length, 2)
  t.equal(next[0], 9000, 'interval - 10 %')
  t.ok(next[1]! > 10_999 && next[1]! <= 11_000, 'interval + 10 %')
})

t.test('the queue: at most `concurrency` probes in flight, FIFO, and a probe that never answers holds one slot only', async (t) => {
  const registry = await openRegistry(t)
  for (let i = 1; i <= 5; i++) await register(registry, 'web', `w-${i}`, 8000 + i, TEN_S)
  const time = manualTimers()
  const { probe, calls } = manualProbe()
  const checker = HealthChecker.start({ registry, timers: time.timers, probe, concurrency: 2, random: () => 0.5 })
  t.teardown(() => checker.close())

  time.fireAll()
  t.equal(calls.length, 2, 'two slots')
  t.same(checker.stats(), { instances: 5, timers: 0, queued: 3, running: 2 })
  // w-1 hangs. Answering w-2 lets w-3 in, then w-4, then w-5, while w-1 still holds its slot.
  for (const next of [3, 4, 5]) {
    calls.at(-1)!.answer({ ok: true, durationMs: 1 })
    await settle()
    t.equal(calls.length, next, `w-${next} starts when a slot frees`)
    t.equal(calls.at(-1)!.target.port, 8000 + next, 'in the order they became due')
  }
  t.equal(calls[0]!.signal.aborted, false, 'the hung probe is still running')
  t.equal(checker.stats().running, 2)
})

t.test('removal and a new check stop an instance\'s probing at once', async (t) => {
  const registry = await openRegistry(t)
  const time = manualTimers()
  const { probe, calls } = manualProbe()
  const checker = HealthChecker.start({ registry, timers: time.timers, probe, random: () => 0.5 })
  t.teardown(() => checker.close())

  // Removed while waiting: its timer is cleared.
  await register(registry, 'web', 'a', 8001, TEN_S)
  const timerA = time.pending()[0]!
  await registry.deregister('web', 'a')
  t.equal(timerA.cleared, true)
  t.same(checker.stats(), { instances: 0, timers: 0, queued: 0, running: 0 })

  // Removed while its probe is in flight: the probe is aborted and its result dropped.
  await register(registry, 'web', 'b', 8002, TEN_S)
  time.fireAll()
  t.equal(calls.length, 1)
  await registry.deregister('web', 'b')
  t.equal(calls[0]!.signal.aborted, true, 'the probe in flight is aborted')
  await settle()
  t.same(checker.stats(), { instances: 0, timers: 0, queued: 0, running: 0 })
  t.equal(time.pending().length, 0, 'and not rescheduled')

  // Removed in memory but its change not yet published (the store is slow): the timer
  // fires, and the checker looks at the registry before probing.
  await register(registry, 'web', 'c', 8003, TEN_S)
  const removal = registry.deregister('web', 'c')
  time.fireAll()
  t.equal(calls.length, 1, 'no probe for an instance already gone')
  await removal

  // A new check while a probe of the old one is in flight: aborted, and the new check
  // starts over with its own first probe.
  await register(registry, 'web', 'd', 8004, TEN_S)
  time.fireAll()
  t.equal(calls.length, 2)
  const oldProbe = calls[1]!
  await register(registry, 'web', 'd', 8004, { ...TEN_S, path: '/v2' })
  t.equal(oldProbe.signal.aborted, true)
  await settle()
  t.equal(registry.get('web', 'd')!.health, 'unknown', 'the old check\'s (aborted) result was dropped')
  t.equal(time.pending().length, 1, 'one timer: the new check\'s first probe')
  time.fireAll()
  t.equal(calls.length, 3)
  t.equal((calls[2]!.check as { path: string }).path, '/v2')

  // Dropping the check altogether.
  await register(registry, 'web', 'd', 8004)
  t.equal(calls[2]!.signal.aborted, true)
  await settle()
  t.same(checker.stats(), { instances: 0, timers: 0, queued: 0, running: 0 })
})

t.test('close() clears every timer, aborts and awaits the probes in flight, and stops listening', async (t) => {
  const registry = await openRegistry(t)
  for (let i = 1; i <= 4; i++) await register(registry, 'web', `w-${i}`, 8000 + i, TEN_S)
  const time = manualTimers()
  const { probe, calls } = manualProbe()
  const checker = HealthChecker.start({ registry, timers: time.timers, probe, concurrency: 1, random: () => 0.5 })
  time.all[3]!.fn() // w-4 becomes due
  time.all[3]!.fired = true
  time.all[2]!.fn()
  time.all[2]!.fired = true
  t.same(checker.stats(), { instances: 4, timers: 2, queued: 1, running: 1 })
  await checker.close()
  t.equal(calls[0]!.signal.aborted, true)
  t.same(checker.stats(), { instances: 0, timers: 0, queued: 0, running: 0 })
  t.equal(time.pending().length, 0, 'every timer cleared')
  t.equal(registry.get('web', 'w-4')!.lastCheck, undefined, 'an aborted probe reports nothing')
  await register(registry, 'web', 'w-5', 8005, TEN_S)
  t.equal(time.pending().length, 0, 'a closed checker ignores new registrations')
  await checker.close()
})

t.test('concurrency must be at least 1', async (t) => {
  const registry = await openRegistry(t)
  t.throws(() => HealthChecker.start({ registry, concurrency: 0 }), RangeError)
})

// ---------------------------------------------------------------------------------------
// Real probes, real listeners, sped-up timers.

/** Node timers with every delay divided by `factor`, counting the ones still pending. */
function fastTimers(factor = 50) {
  const live = new Set<NodeJS.Timeout>()
  const timers: CheckTimers = {
    setTimeout(fn, ms) {
      const h: NodeJS.Timeout = setTimeout(() => {
        live.delete(h)
        fn()
      }, ms / factor)
      live.add(h)
      return h
    },
    clearTimeout(handle) {
      live.delete(handle as NodeJS.Timeout)
      clearTimeout(handle as NodeJS.Timeout)
    },
  }
  return { timers, live }
}

function startChecker(t: Teardown, options: HealthCheckerOptions) {
  const checker = HealthChecker.start(options)
  t.teardown(() => checker.close())
  return checker
}

t.test('thresholds against a real target: unhealthyThreshold failures flip to critical (not one fewer), healthyThreshold successes flip back', async (t) => {
  const registry = await openRegistry(t)
  const target = await startHttpTarget(t, 'hold')
  const { timers } = fastTimers()
  startChecker(t, { registry, timers })
  const flips: Array<{ revision: number; health: string }> = []
  registry.onChange((c) => {
    if (c.instance.id === 'w-1') flips.push({ revision: c.revision, health: c.instance.health })
  })
  // Timeouts of 5 s (real): the test answers each parked probe itself, well within that.
  const check = { type: 'http', path: '/health', intervalSeconds: 5, timeoutSeconds: 5, healthyThreshold: 2, unhealthyThreshold: 3 }
  const r = await register(registry, 'web', 'w-1', target.port, check)
  const health = () => registry.get('web', 'w-1')!.health

  const p1 = await target.request(1)
  t.equal(health(), 'unknown', 'unknown until the first probe answers')
  const passing = nextChange(registry, healthOf('web', 'w-1', 'passing'))
  p1.answer(200)
  const c1 = await passing
  t.match(c1.instance.lastCheck, { ok: true, statusCode: 200 })

  ;(await target.request(2)).answer(500)
  const p3 = await target.request(3)
  t.equal(health(), 'passing', 'one failure of three')
  t.equal(r.lastCheck?.statusCode, 500, 'the failure is the last result')
  p3.answer(500)
  const p4 = await target.request(4)
  t.equal(health(), 'passing', 'two failures of three: not one fewer')
  const critical = nextChange(registry, healthOf('web', 'w-1', 'critical'))
  p4.answer(503)
  const c2 = await critical
  t.match(c2.instance.lastCheck, { ok: false, statusCode: 503, error: 'status 503' })

  ;(await target.request(5)).answer(200)
  const p6 = await target.request(6)
  t.equal(health(), 'critical', 'one success of two')
  const back = nextChange(registry, healthOf('web', 'w-1', 'passing'))
  p6.answer(204)
  const c3 = await back

  t.same(
    flips.map((f) => f.health),
    ['unknown', 'passing', 'critical', 'passing'],
    'the registration, then one change per flip and none for results that changed nothing',
  )
  t.ok(c1.revision < c2.revision && c2.revision < c3.revision, 'each flip has a new revision')
  t.same(flips.slice(1).map((f) => f.revision), [c1.revision, c2.revision, c3.revision])
})

t.test('a hanging target does not delay probes of a healthy one', async (t) => {
  const registry = await openRegistry(t)
  const hanging = await startHttpTarget(t, 'hold')
  const healthy = await startHttpTarget(t, 200)
  const { timers } = fastTimers()
  startChecker(t, { registry, timers, concurrency: 2 })
  // The hanging target's probe may wait 30 s (real) for an answer that never comes.
  await register(registry, 'web', 'hung', hanging.port, { type: 'http', intervalSeconds: 30, timeoutSeconds: 30 })
  const hung = await hanging.request(1)
  const base = healthy.count()
  await register(registry, 'web', 'fine', healthy.port, { type: 'http', intervalSeconds: 1, timeoutSeconds: 1 })
  await healthy.request(base + 5)
  t.equal(hung.parked, true, 'the hanging probe is still waiting')
  t.equal(hung.closed, false)
  t.ok(healthy.count() >= base + 5, 'while the healthy target was probed again and again')
  t.equal(registry.get('web', 'fine')!.health, 'passing')
  t.equal(registry.get('web', 'hung')!.health, 'unknown')
})

t.test('a timeout frees the slot: with one slot, the next probe starts once the hung one times out', async (t) => {
  const registry = await openRegistry(t)
  const hanging = await startHttpTarget(t, 'hold')
  const healthy = await startHttpTarget(t, 200)
  const { timers } = fastTimers()
  startChecker(t, { registry, timers, concurrency: 1 })
  await register(registry, 'web', 'hung', hanging.port, { type: 'http', intervalSeconds: 1, timeoutSeconds: 1, unhealthyThreshold: 1 })
  await hanging.request(1)
  const critical = nextChange(registry, healthOf('web', 'hung', 'critical'))
  await register(registry, 'web', 'fine', healthy.port, { type: 'http', intervalSeconds: 1, timeoutSeconds: 1 })
  t.equal(registry.get('web', 'hung')!.lastCheck, undefined, 'the hung probe holds the only slot')
  await healthy.request(1)
  // The hung probe's result is recorded before its slot is handed on.
  t.match(registry.get('web', 'hung')!.lastCheck, { ok: false, error: 'timeout' }, 'the healthy target was probed only once the hung probe timed out')
  const c = await critical
  t.match(c.instance.lastCheck, { ok: false, error: 'timeout' }, 'and the timeout counted as a failure')
})

t.test('removal and a new check stop probing of a real target', async (t) => {
  const registry = await openRegistry(t)
  const target = await startHttpTarget(t, 200)
  const witness = await startHttpTarget(t, 200)
  const { timers } = fastTimers()
  startChecker(t, { registry, timers })
  const check = { type: 'http', path: '/a', intervalSeconds: 1, timeoutSeconds: 1 }
  await register(registry, 'web', 'witness', witness.port, check)
  await register(registry, 'web', 'w-1', target.port, check)
  await target.request(3)

  // A new check: /a is not probed again, /b is. (A probe of /a already on the wire may
  // still land: the count is taken once /b was probed.)
  await register(registry, 'web', 'w-1', target.port, { ...check, path: '/b' })
  await target.nextOn('/b')
  const onA = target.count('/a')
  for (let i = 0; i < 3; i++) await target.nextOn('/b')
  t.equal(target.count('/a'), onA, 'the old check is no longer probed')

  await registry.deregister('web', 'w-1')
  await witness.request(witness.count() + 2)
  const after = target.count()
  await witness.request(witness.count() + 5)
  t.equal(target.count(), after, 'a removed instance is no longer probed (while the witness was probed 5 more times)')
})

t.test('TCP checks and a port with nothing on it, through the scheduler', async (t) => {
  const registry = await openRegistry(t)
  const listener = await startTcpTarget(t)
  const nothing = await deadPort()
  const { timers } = fastTimers()
  startChecker(t, { registry, timers })
  const tcp = { type: 'tcp', intervalSeconds: 1, timeoutSeconds: 1, healthyThreshold: 1, unhealthyThreshold: 1 }

  const refused = nextChange(registry, healthOf('db', 'dead', 'critical'))
  await register(registry, 'db', 'dead', nothing, tcp, { scheme: 'tcp' })
  t.match((await refused).instance.lastCheck, { ok: false, error: 'ECONNREFUSED' })

  const up = nextChange(registry, healthOf('db', 'd-1', 'passing'))
  await register(registry, 'db', 'd-1', listener.port, tcp, { scheme: 'tcp' })
  t.match((await up).instance.lastCheck, { ok: true })
  const down = nextChange(registry, healthOf('db', 'd-1', 'critical'))
  await listener.stop()
  t.match((await down).instance.lastCheck, { ok: false, error: 'ECONNREFUSED' })
  const again = nextChange(registry, healthOf('db', 'd-1', 'passing'))
  await listener.reopen()
  await again
  t.ok(listener.accepted >= 2)
})

t.test('no leaks: checked instances registered and removed many times leave no socket, timer or entry', async (t) => {
  const registry = await openRegistry(t)
  const hold = await startHttpTarget(t, 'hold')
  const ok = await startHttpTarget(t, 200)
  const tcp = await startTcpTarget(t)
  const nothing = await deadPort()
  const sockets = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'TLSWrap').length
  const { timers, live } = fastTimers()
  const checker = startChecker(t, { registry, timers, concurrency: 8 })
  const check = { type: 'http', intervalSeconds: 1, timeoutSeconds: 1 }

  for (let round = 0; round < 5; round++) {
    const ids: string[] = []
    const holdSeen = hold.count()
    const okSeen = ok.count()
    for (let i = 0; i < 40; i++) {
      const id = `r${round}-${i}`
      ids.push(id)
      const kind = i % 4
      const port = kind === 0 ? hold.port : kind === 1 ? ok.port : kind === 2 ? tcp.port : nothing
      registry.register('web', id, bodyWith(port, kind === 2 ? { type: 'tcp', intervalSeconds: 1, timeoutSeconds: 1 } : check))
    }
    // Some are gone before their change is even published: never probed.
    await registry.deregister('web', `r${round}-0`)
    await registry.deregister('web', `r${round}-1`)
    // The rest are removed while probes are parked on the hanging target and the others are answering.
    await hold.request(holdSeen + 4)
    await ok.request(okSeen + 8)
    await Promise.all(ids.slice(2).map((id) => registry.deregister('web', id)))
    const s = checker.stats()
    t.same({ instances: s.instances, timers: s.timers, queued: s.queued }, { instances: 0, timers: 0, queued: 0 }, `round ${round}: nothing scheduled`)
  }

  await checker.close()
  t.same(checker.stats(), { instances: 0, timers: 0, queued: 0, running: 0 })
  t.equal(live.size, 0, 'no timer left pending')
  await hold.idle()
  await ok.idle()
  t.equal(await hold.connections(), 0, 'the hanging target has no open connection left')
  t.equal(await ok.connections(), 0)
  t.ok(hold.received.every((r) => r.closed), 'every parked probe was aborted and its socket closed')
  await tcp.idle()
  t.equal(tcp.accepted > 0, true)
  await tcp.stop()
  t.equal(sockets(), 0, 'no socket handle left in this process')
})
