import t from 'tap'
import type { Health } from '../../client-sdk/protocol.js'
import { CheckSpec } from '../../client-sdk/protocol.js'
import { combineHealth, initialCheckHealth, nextCheckHealth } from '../../server/registry/lifecycle.js'
import { body, openCore } from '../helpers/registry.js'

const check = CheckSpec.parse({ type: 'http', healthyThreshold: 2, unhealthyThreshold: 3 })

/** Health after each result of `outcomes`, starting from `start`. */
function run(start: Health, outcomes: boolean[]): Health[] {
  let state = { health: start, streak: 0 }
  return outcomes.map((ok) => {
    state = nextCheckHealth(state.health, state.streak, ok, check)
    return state.health
  })
}

t.test('the first answer decides an unknown health', async (t) => {
  t.equal(initialCheckHealth(undefined), null, 'no check: the check side has no say')
  t.equal(initialCheckHealth(check), 'unknown')
  t.same(run('unknown', [true]), ['passing'])
  t.same(run('unknown', [false]), ['critical'])
})

t.test('unhealthyThreshold failures in a row turn passing critical', async (t) => {
  t.same(run('passing', [false, false, false]), ['passing', 'passing', 'critical'])
  t.same(run('passing', [false, false, true, false, false]), ['passing', 'passing', 'passing', 'passing', 'passing'], 'a success breaks the streak')
  t.same(run('passing', [true, true, false, false, false]).at(-1), 'critical')
})

t.test('healthyThreshold successes in a row turn critical passing', async (t) => {
  t.same(run('critical', [true, true]), ['critical', 'passing'])
  t.same(run('critical', [true, false, true]), ['critical', 'critical', 'critical'], 'a failure breaks the streak')
  t.same(run('critical', [false, false, true, true]).at(-1), 'passing')
})

t.test('the success that decided an unknown health does not count towards failures', async (t) => {
  // unknown -> passing on one success; then it takes unhealthyThreshold (3) failures.
  t.same(run('unknown', [true, false, false, false]), ['passing', 'passing', 'passing', 'critical'])
  t.same(run('unknown', [false, true, true]), ['critical', 'critical', 'passing'])
})

t.test('a threshold of 1 flips on every disagreeing result', async (t) => {
  const one = CheckSpec.parse({ type: 'tcp', healthyThreshold: 1, unhealthyThreshold: 1 })
  let state = { health: 'passing' as Health, streak: 0 }
  const seen: Health[] = []
  for (const ok of [false, true, false]) {
    state = nextCheckHealth(state.health, state.streak, ok, one)
    seen.push(state.health)
  }
  t.same(seen, ['critical', 'passing', 'critical'])
})

t.test('combined health: either a lapsed lease or a failing check is critical', async (t) => {
  t.equal(combineHealth(true, null), 'passing')
  t.equal(combineHealth(false, null), 'critical')
  t.equal(combineHealth(true, 'unknown'), 'unknown')
  t.equal(combineHealth(true, 'critical'), 'critical')
  t.equal(combineHealth(false, 'passing'), 'critical')
})

t.test('the registry applies check results: only a change of health is a change', async (t) => {
  const { registry } = await openCore()
  const { record } = registry.register('web', 'w-1', body({ check: { type: 'http', path: '/health', healthyThreshold: 2, unhealthyThreshold: 2 } }))
  await registry.flush()
  const probe = (ok: boolean) => registry.recordCheck('web', 'w-1', record.check!, { ok, durationMs: 3, ...(ok ? { statusCode: 200 } : { error: 'timeout' }) })
  t.equal(registry.revision, 1)
  probe(true)
  t.equal(record.health, 'passing')
  t.equal(registry.revision, 2, 'unknown -> passing is a change')
  probe(true)
  t.equal(registry.revision, 2, 'same health: no change')
  t.same(record.lastCheck && { ok: record.lastCheck.ok, statusCode: record.lastCheck.statusCode }, { ok: true, statusCode: 200 })
  probe(false)
  t.equal(record.health, 'passing', 'one failure of two')
  t.equal(record.lastCheck?.error, 'timeout', 'the last result is kept anyway')
  probe(false)
  t.equal(record.health, 'critical')
  t.equal(registry.revision, 3)
  registry.recordCheck('web', 'nope', record.check!, { ok: true, durationMs: 1 })
  await registry.flush()
})
