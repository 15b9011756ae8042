import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import BetterSqlite3 from 'better-sqlite3'
import t from 'tap'
import type { Test } from 'tap'
import type { Instance, InstancesResponse, ServicesResponse } from '../client-sdk/protocol.js'
import { packageRoot } from '../server/paths.js'
import { runToExit } from './helpers/process.js'
import type { ServerProcess } from './helpers/server.js'
import { instanceBody, spawnServer, tempDir } from './helpers/server.js'

/**
 * Durability across restarts of the real, built server (`npm run build` first): a clean
 * stop (SIGTERM), a crash (SIGKILL), the revision, and the migrations.
 */

async function start(t: Test, db: string): Promise<ServerProcess> {
  const sp = await spawnServer(['--db', db, '--checks', 'off'])
  t.teardown(() => {
    if (sp.child.exitCode === null && sp.child.signalCode === null) sp.child.kill('SIGKILL')
  })
  return sp
}

async function stop(t: Test, sp: ServerProcess): Promise<void> {
  sp.child.kill('SIGTERM')
  const { code } = await sp.exited
  t.equal(code, 0, 'SIGTERM: exit 0')
}

async function get<T>(sp: ServerProcess, path: string): Promise<T> {
  const res = await fetch(sp.url + path)
  if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`)
  return (await res.json()) as T
}

async function call(sp: ServerProcess, method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(sp.url + path, {
    method,
    ...(body !== undefined && { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  })
}

/** Instances as the API shows them, without the fields a restart renews. */
const durable = (i: Instance) => {
  const { expiresAt: _e, ...rest } = i
  return rest
}

t.test('a restart brings back instances, revisions and service revisions, with fresh leases', async (t) => {
  const db = join(tempDir(t), 'nested', 'folder', 'rollcall.db')
  const first = await start(t, db)
  t.equal((await call(first, 'PUT', '/v1/services/orders/instances/o-1', instanceBody({ ttlSeconds: 600, tags: ['a'], metadata: { k: 'v' }, zone: 'eu-1a' }))).status, 201)
  t.equal((await call(first, 'PUT', '/v1/services/orders/instances/o-2', instanceBody({ ttlSeconds: 5 }))).status, 201)
  t.equal((await call(first, 'POST', '/v1/services/billing/instances', instanceBody())).status, 201)
  t.equal((await call(first, 'PUT', '/v1/services/gone/instances/g-1', instanceBody())).status, 201)
  t.equal((await call(first, 'DELETE', '/v1/services/gone/instances/g-1')).status, 204)
  t.equal((await call(first, 'PATCH', '/v1/services/orders/instances/o-2', { status: 'draining', weight: 3 })).status, 200)
  const services = await get<ServicesResponse>(first, '/v1/services')
  const orders = await get<InstancesResponse>(first, '/v1/services/orders/instances')
  const billing = await get<InstancesResponse>(first, '/v1/services/billing/instances')
  const gone = await get<InstancesResponse>(first, '/v1/services/gone/instances')
  t.equal(services.revision, 6)
  t.equal(gone.revision, 5)
  await stop(t, first)

  const restartedAt = Date.now()
  const second = await start(t, db)
  const services2 = await get<ServicesResponse>(second, '/v1/services')
  t.same(services2, services, 'the same services, counts and revisions; the same global revision')
  const orders2 = await get<InstancesResponse>(second, '/v1/services/orders/instances')
  t.equal(orders2.revision, orders.revision, "a service's revision survives")
  t.same(orders2.instances.map(durable), orders.instances.map(durable), 'the instances, field for field')
  t.same((await get<InstancesResponse>(second, '/v1/services/billing/instances')).instances.map(durable), billing.instances.map(durable))
  const gone2 = await get<InstancesResponse>(second, '/v1/services/gone/instances')
  t.same(gone2, { service: 'gone', revision: 5, instances: [] }, "an emptied service's revision survives too")
  for (const i of orders2.instances) {
    t.ok(Date.parse(i.expiresAt) >= restartedAt + i.ttlSeconds * 1000, `${i.id}: a fresh lease from the restart`)
    t.equal(i.health, 'passing', `${i.id}: passing`)
  }
  t.equal((await call(second, 'PUT', '/v1/services/orders/instances/o-1/heartbeat')).status, 200, 'heartbeats find the restored instance')
  await stop(t, second)
})

t.test('kill -9 in the middle of a burst: every acknowledged registration is there after the restart', async (t) => {
  const db = join(tempDir(t), 'rollcall.db')
  const first = await start(t, db)
  // Workers register without pause until the server dies under them, so the kill always
  // lands with requests in flight, whatever the machine's speed.
  const WORKERS = 40
  const KILL_AFTER = 150
  const acked = new Set<string>()
  let next = 0
  let started = 0
  let settled = 0
  let inFlightAtKill = -1
  const worker = async () => {
    for (;;) {
      const i = next++
      const id = `i-${i}`
      started++
      let res: Response
      try {
        res = await call(first, 'PUT', `/v1/services/burst/instances/${id}`, instanceBody({ port: 1000 + (i % 60000) }))
      } catch {
        settled++
        return // cut by the kill: not acknowledged, so it may or may not be there
      }
      settled++
      if (res.status !== 201) {
        t.fail(`unexpected ${res.status} before the kill`)
        return
      }
      acked.add(id)
      if (acked.size === KILL_AFTER) {
        inFlightAtKill = started - settled
        first.child.kill('SIGKILL')
      }
    }
  }
  await Promise.all(Array.from({ length: WORKERS }, worker))
  const { signal } = await first.exited
  t.equal(signal, 'SIGKILL', 'the server was killed, not stopped')
  t.ok(acked.size >= KILL_AFTER, `${acked.size} acknowledged before the kill`)
  t.ok(inFlightAtKill > 0, `${inFlightAtKill} registrations were in flight when it was killed`)

  const second = await start(t, db)
  const after = await get<InstancesResponse>(second, '/v1/services/burst/instances')
  const present = new Set(after.instances.map((i) => i.id))
  const missing = [...acked].filter((id) => !present.has(id))
  t.same(missing, [], `none of the ${acked.size} acknowledged registrations is lost`)
  t.ok(after.revision >= acked.size, 'the revision counts at least every acknowledged change')
  const torn = after.instances.filter((i) => i.port !== 1000 + (Number(i.id.slice(2)) % 60000) || i.health !== 'passing')
  t.same(torn, [], 'every instance there is whole')
  await stop(t, second)
})

t.test('the revision never goes back across restarts, clean or not', async (t) => {
  const db = join(tempDir(t), 'rollcall.db')
  const seen: number[] = []
  const revision = async (sp: ServerProcess) => {
    const r = (await get<ServicesResponse>(sp, '/v1/services')).revision
    seen.push(r)
    return r
  }

  const a = await start(t, db)
  for (let i = 0; i < 3; i++) await call(a, 'PUT', `/v1/services/s/instances/x-${i}`, instanceBody())
  for (let i = 0; i < 3; i++) await call(a, 'DELETE', `/v1/services/s/instances/x-${i}`)
  t.equal(await revision(a), 6)
  await stop(t, a)

  const b = await start(t, db)
  t.equal(await revision(b), 6, 'after a clean stop, with nothing registered: the same revision')
  const created = (await (await call(b, 'PUT', '/v1/services/s/instances/y', instanceBody())).json()) as Instance
  t.equal(created.revision, 7, 'the next change goes on from there')
  b.child.kill('SIGKILL')
  await b.exited

  const c = await start(t, db)
  t.equal(await revision(c), 7, 'after a crash: the same revision')
  const next = (await (await call(c, 'PATCH', '/v1/services/s/instances/y', { weight: 1 })).json()) as Instance
  t.equal(next.revision, 8)
  await stop(t, c)
  for (let i = 1; i < seen.length; i++) t.ok(seen[i]! >= seen[i - 1]!, 'monotonic')
})

t.test('migrations: applied once each, recorded one row per file', async (t) => {
  const db = join(tempDir(t), 'rollcall.db')
  const files = readdirSync(join(packageRoot(), 'migrations')).filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f)).sort()
  t.ok(files.length >= 1)
  await stop(t, await start(t, db))
  await stop(t, await start(t, db))
  const sqlite = new BetterSqlite3(db, { readonly: true })
  t.teardown(() => sqlite.close())
  const rows = sqlite.prepare('SELECT version, name FROM schema_migrations ORDER BY version').all() as Array<{ version: number; name: string }>
  t.same(
    rows.map((r) => `${String(r.version).padStart(3, '0')}_${r.name}.sql`),
    files,
    'one row per migration file, after two starts',
  )
})

t.test('a database newer than the code: exit non-zero with one clear line on stderr', async (t) => {
  const db = join(tempDir(t), 'rollcall.db')
  await stop(t, await start(t, db))
  const known = readdirSync(join(packageRoot(), 'migrations')).filter((f) => f.endsWith('.sql')).length
  const sqlite = new BetterSqlite3(db)
  sqlite.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(known + 1, 'from_the_future', new Date().toISOString())
  sqlite.close()

  const run = await runToExit(['--db', db, '--port', '0'])
  t.not(run.code, 0, 'exits non-zero')
  t.equal(run.signal, null)
  const lines = run.stderr.split('\n').filter((l) => l !== '')
  t.equal(lines.length, 1, 'one line on stderr')
  t.match(lines[0], /schema version/)
  t.match(lines[0], String(known + 1), 'it says which version it found')
  t.match(lines[0], db, 'and which database')
  t.notMatch(run.stderr, /\n\s+at /, 'no stack trace')
  t.notMatch(run.stdout, /rollcall listening/, 'it never listened')

  const sqlite2 = new BetterSqlite3(db, { readonly: true })
  t.teardown(() => sqlite2.close())
  const max = sqlite2.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number }
  t.equal(max.v, known + 1, 'the database is left as it was')
})
