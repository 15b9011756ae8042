import t from 'tap'
import type { Test } from 'tap'
import { assertError, read } from './helpers/http.js'
import type { AuthServer } from './helpers/auth.js'
import { ADMIN, startAuthServer } from './helpers/auth.js'
import { instanceBody } from './helpers/server.js'

/**
 * Every route, with credentials that must not do what the route does: none, a wrong
 * token, malformed headers, an expired token, a revoked token, and a token scoped to
 * another service. Each gets 401 or 403 in the error shape, and the state read back with
 * the admin token is exactly what it was. Then the same routes with the right token,
 * so that the refusals above are refusals and not a broken route.
 */

const P1 = '/v1/services/payments/instances/p-1'
const body = instanceBody({ ttlSeconds: 3600 })

interface Route {
  method: string
  path: string
  json?: unknown
  /** The scope the route needs, as the 403's message names it. */
  scope: string
}

function routes(victimTokenId: string): Route[] {
  return [
    { method: 'GET', path: '/v1/services', scope: 'read' },
    { method: 'GET', path: '/v1/services/payments/instances', scope: 'read' },
    { method: 'GET', path: P1, scope: 'read' },
    { method: 'PUT', path: P1, json: instanceBody({ host: '10.6.6.6', ttlSeconds: 3600 }), scope: 'register:payments' },
    { method: 'PUT', path: '/v1/services/payments/instances/p-evil', json: body, scope: 'register:payments' },
    { method: 'POST', path: '/v1/services/payments/instances', json: body, scope: 'register:payments' },
    { method: 'PATCH', path: P1, json: { weight: 0, status: 'out_of_service' }, scope: 'register:payments' },
    { method: 'DELETE', path: P1, scope: 'register:payments' },
    { method: 'PUT', path: `${P1}/heartbeat`, scope: 'register:payments' },
    { method: 'POST', path: '/v1/heartbeats', json: { instances: [{ service: 'payments', id: 'p-1' }] }, scope: 'register:' },
    { method: 'GET', path: '/metrics', scope: 'read' },
    { method: 'GET', path: '/v1/watch', scope: 'read' },
    { method: 'POST', path: '/v1/tokens', json: { scopes: ['admin'] }, scope: 'admin' },
    { method: 'GET', path: '/v1/tokens', scope: 'admin' },
    { method: 'DELETE', path: `/v1/tokens/${victimTokenId}`, scope: 'admin' },
  ]
}

async function seed(s: AuthServer): Promise<{ victim: string }> {
  for (const path of [P1, '/v1/services/orders/instances/o-1']) {
    const res = await s.as(ADMIN, 'PUT', path, body)
    if (res.status !== 201) throw new Error(`seed ${path}: ${res.status}`)
  }
  // A token that DELETE /v1/tokens/{id} would revoke if it were let through.
  const victim = await s.token(['read'], { description: 'victim' })
  return { victim: victim.id }
}

async function refuse(t: Test, s: AuthServer, token: string | undefined, headers: Record<string, string>, status: number, code: string, what: string, victim: string): Promise<void> {
  const before = await s.state()
  const revision = s.registry.revision
  for (const r of routes(victim)) {
    // Time moves between requests, so a heartbeat let through would show in lastHeartbeatAt.
    s.clock.advance(10)
    const res = await read(await s.as(token, r.method, r.path, r.json, headers))
    const error = assertError(t, res, status, code, undefined, `${what}: ${r.method} ${r.path}`)
    if (status === 401) t.match(res.headers.get('www-authenticate') ?? '', /^Bearer /, `${what}: ${r.method} ${r.path}: WWW-Authenticate`)
    if (status === 403) t.match(error?.message ?? '', r.scope, `${what}: ${r.method} ${r.path}: the message names ${r.scope}`)
  }
  t.equal(s.registry.revision, revision, `${what}: the revision did not move`)
  t.equal(await s.state(), before, `${what}: the state read back is unchanged`)
}

t.test('no token, wrong tokens, malformed headers: 401 on every route, nothing changed', async (t) => {
  const s = await startAuthServer(t)
  const { victim } = await seed(s)
  await refuse(t, s, undefined, {}, 401, 'UNAUTHENTICATED', 'no token', victim)
  await refuse(t, s, 'rct_' + 'A'.repeat(43), {}, 401, 'UNAUTHENTICATED', 'a made-up token', victim)
  await refuse(t, s, ADMIN.slice(0, -1), {}, 401, 'UNAUTHENTICATED', 'the admin token less a character', victim)
  await refuse(t, s, `${ADMIN}x`, {}, 401, 'UNAUTHENTICATED', 'the admin token and a character', victim)
  await refuse(t, s, 'x'.repeat(600), {}, 401, 'UNAUTHENTICATED', 'a 600-character token', victim)
  for (const header of ['Basic YWRtaW46YWRtaW4=', 'Bearer', 'Bearer ', `Bearer ${ADMIN} extra`, ADMIN, `Token ${ADMIN}`]) {
    await refuse(t, s, undefined, { authorization: header }, 401, 'UNAUTHENTICATED', `Authorization: ${header.slice(0, 30)}`, victim)
  }
})

t.test('an expired token and a revoked token: 401 on every route, nothing changed', async (t) => {
  const s = await startAuthServer(t)
  const { victim } = await seed(s)
  const expiring = await s.token(['admin'], { ttlSeconds: 60 })
  t.equal((await s.as(expiring.token, 'GET', '/v1/tokens')).status, 200, 'valid before it expires')
  s.clock.advance(60_000)
  await refuse(t, s, expiring.token, {}, 401, 'UNAUTHENTICATED', 'expired', victim)
  const expired = assertError(t, await read(await s.as(expiring.token, 'GET', '/v1/services')), 401, 'UNAUTHENTICATED')
  t.match(expired?.message, /expired/, 'the message says it expired')

  const revoked = await s.token(['admin'])
  t.equal((await s.as(revoked.token, 'GET', '/v1/tokens')).status, 200, 'valid before it is revoked')
  t.equal((await s.as(ADMIN, 'DELETE', `/v1/tokens/${revoked.id}`)).status, 204)
  await refuse(t, s, revoked.token, {}, 401, 'UNAUTHENTICATED', 'revoked', victim)
})

t.test('a token for orders: 403 on every route of payments, on reads and on tokens', async (t) => {
  const s = await startAuthServer(t)
  const { victim } = await seed(s)
  const orders = await s.token(['register:orders'])
  await refuse(t, s, orders.token, {}, 403, 'FORBIDDEN', 'register:orders', victim)
  // What it is for still works: its own service, every write.
  s.clock.advance(10)
  t.equal((await s.as(orders.token, 'PUT', '/v1/services/orders/instances/o-2', body)).status, 201, 'registers orders')
  t.equal((await s.as(orders.token, 'PUT', '/v1/services/orders/instances/o-2/heartbeat')).status, 200, 'renews orders')
  t.equal((await s.as(orders.token, 'PATCH', '/v1/services/orders/instances/o-2', { weight: 5 })).status, 200, 'patches orders')
  const beats = await s.as(orders.token, 'POST', '/v1/heartbeats', { instances: [{ service: 'orders', id: 'o-1' }, { service: 'orders', id: 'o-2' }] })
  t.equal(beats.status, 200, 'batch-renews orders')
  t.equal((await s.as(orders.token, 'DELETE', '/v1/services/orders/instances/o-2')).status, 204, 'deregisters orders')
})

t.test('a batch heartbeat with one entry of another service is refused whole', async (t) => {
  const s = await startAuthServer(t)
  await seed(s)
  const orders = await s.token(['register:orders'])
  s.clock.advance(1000)
  const before = await s.state()
  const res = await read(
    await s.as(orders.token, 'POST', '/v1/heartbeats', {
      instances: [
        { service: 'orders', id: 'o-1' },
        { service: 'payments', id: 'p-1' },
      ],
    }),
  )
  const error = assertError(t, res, 403, 'FORBIDDEN')
  t.match(error?.message, 'register:payments')
  t.equal(await s.state(), before, 'not even the orders entry was renewed')
})

t.test('read, register patterns and anonymous scopes', async (t) => {
  const s = await startAuthServer(t, { anonymousScopes: ['read'] })
  await seed(s)
  t.equal((await s.as(undefined, 'GET', '/v1/services')).status, 200, 'anonymous may read')
  t.equal((await s.as(undefined, 'GET', P1)).status, 200, 'anonymous may read one instance')
  assertError(t, await read(await s.as(undefined, 'PUT', P1, body)), 401, 'UNAUTHENTICATED', undefined, 'anonymous may not write')
  assertError(t, await read(await s.as(undefined, 'GET', '/v1/tokens')), 401, 'UNAUTHENTICATED', undefined, 'nor list tokens')
  assertError(t, await read(await s.as('rct_wrong', 'GET', '/v1/services')), 401, 'UNAUTHENTICATED', undefined, 'a wrong token is not anonymous')

  const reader = await s.token(['read'])
  assertError(t, await read(await s.as(reader.token, 'DELETE', P1)), 403, 'FORBIDDEN', undefined, 'read cannot delete')

  const team = await s.token(['register:team-a.*'])
  t.equal((await s.as(team.token, 'PUT', '/v1/services/team-a.orders/instances/x', body)).status, 201, 'team-a.* covers team-a.orders')
  t.equal((await s.as(team.token, 'PUT', '/v1/services/team-a.billing.v2/instances/x', body)).status, 201, 'and deeper names')
  assertError(t, await read(await s.as(team.token, 'PUT', '/v1/services/team-a/instances/x', body)), 403, 'FORBIDDEN', undefined, 'not team-a itself')
  assertError(t, await read(await s.as(team.token, 'PUT', '/v1/services/team-b.orders/instances/x', body)), 403, 'FORBIDDEN', undefined, 'not team-b')
  assertError(t, await read(await s.as(team.token, 'PUT', '/v1/services/xteam-a.orders/instances/x', body)), 403, 'FORBIDDEN', undefined, 'anchored at the start')

  const all = await s.token(['register:*', 'read'])
  t.equal((await s.as(all.token, 'DELETE', P1)).status, 204, 'register:* covers payments')
  assertError(t, await read(await s.as(all.token, 'GET', '/v1/tokens')), 403, 'FORBIDDEN', undefined, 'register:* is not admin')

  t.equal((await s.as(undefined, 'GET', '/healthz')).status, 200, '/healthz needs nothing')
  t.equal((await s.as(undefined, 'GET', '/readyz')).status, 200, '/readyz needs nothing')
  t.equal((await s.as(undefined, 'GET', '/openapi.yaml')).status, 200, '/openapi.yaml needs nothing')
})

t.test('the right token passes every route (the refusals above are not broken routes)', async (t) => {
  const s = await startAuthServer(t)
  const { victim } = await seed(s)
  const payments = await s.token(['register:payments', 'read'])
  const expected: Record<string, number> = {
    'GET /v1/services': 200,
    'GET /v1/services/payments/instances': 200,
    [`GET ${P1}`]: 200,
    [`PUT ${P1}`]: 200,
    'PUT /v1/services/payments/instances/p-evil': 201,
    'POST /v1/services/payments/instances': 201,
    [`PATCH ${P1}`]: 200,
    [`DELETE ${P1}`]: 204,
    [`PUT ${P1}/heartbeat`]: 404,
    'POST /v1/heartbeats': 200,
    'GET /metrics': 200,
    'GET /v1/watch': 400,
    'POST /v1/tokens': 201,
    'GET /v1/tokens': 200,
    [`DELETE /v1/tokens/${victim}`]: 204,
  }
  for (const r of routes(victim)) {
    const token = r.path.startsWith('/v1/tokens') ? ADMIN : payments.token
    const res = await s.as(token, r.method, r.path, r.json)
    t.equal(res.status, expected[`${r.method} ${r.path}`], `${r.method} ${r.path}`)
  }
})

t.test('a principal with no scope at all', async (t) => {
  const s = await startAuthServer(t)
  await seed(s)
  // The heartbeat route's first gate: no register scope of any kind.
  const reader = await s.token(['read'])
  const res = await read(await s.as(reader.token, 'POST', '/v1/heartbeats', { instances: [{ service: 'orders', id: 'o-1' }] }))
  assertError(t, res, 403, 'FORBIDDEN', undefined, 'read cannot renew')
  // An unknown route stays a 404 for anyone: it touches nothing.
  assertError(t, await read(await s.as(undefined, 'GET', '/v2/nothing')), 404, 'NOT_FOUND')
})
