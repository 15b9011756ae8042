import t from 'tap'
import WebSocket from 'ws'
import { CLOSE_UNAUTHORIZED, ErrorBody } from '../client-sdk/protocol.js'
import type { AuthServer } from './helpers/auth.js'
import { ADMIN, startAuthServer } from './helpers/auth.js'
import { instanceBody } from './helpers/server.js'
import { eventually } from './helpers/tcp-proxy.js'
import { WatchClient } from './helpers/watch-client.js'

/**
 * The watch with auth on: a token at the upgrade or in the first frame, refusals before
 * and after the upgrade, revocation and expiry closing open sockets with 4001, and the
 * limit of sockets per token.
 */

const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } })

/** An upgrade the server refuses: its status and error body. */
function refusedUpgrade(url: string, options: WebSocket.ClientOptions = {}): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/watch`, options)
    ws.once('open', () => {
      ws.terminate()
      reject(new Error('the upgrade was accepted'))
    })
    ws.once('unexpected-response', (_req, res) => {
      let text = ''
      res.on('data', (d: Buffer) => (text += d.toString()))
      res.on('end', () => {
        ws.terminate()
        resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as unknown })
      })
    })
    ws.once('error', () => undefined)
  })
}

async function snapshotOf(c: WatchClient): Promise<number> {
  c.subscribe(['*'])
  const m = await c.next()
  if (m.type !== 'snapshot') throw new Error(`expected a snapshot, got ${JSON.stringify(m)}`)
  return m.revision
}

async function seed(s: AuthServer): Promise<void> {
  await s.as(ADMIN, 'PUT', '/v1/services/orders/instances/o-1', instanceBody())
}

t.test('a token at the upgrade', async (t) => {
  const s = await startAuthServer(t)
  await seed(s)
  const reader = await s.token(['read'])
  const c = await WatchClient.open(s.url, bearer(reader.token))
  t.teardown(() => c.close())
  t.ok((await snapshotOf(c)) > 0, 'a read token watches')
  c.send({ type: 'auth', token: 'whatever' })
  await s.as(ADMIN, 'PUT', '/v1/services/orders/instances/o-2', instanceBody())
  const change = await c.next()
  t.equal(change.type, 'change', 'a later auth frame is ignored: the socket stays and serves')

  const admin = await WatchClient.open(s.url, bearer(ADMIN))
  t.teardown(() => admin.close())
  t.ok((await snapshotOf(admin)) > 0, 'the admin token watches')
})

t.test('refused at the upgrade: no token, a wrong one, one without read', async (t) => {
  const s = await startAuthServer(t)
  const orders = await s.token(['register:orders'])
  for (const [what, options, status, code] of [
    ['a wrong token', bearer('rct_nope'), 401, 'UNAUTHENTICATED'],
    ['a malformed header', { headers: { authorization: 'Basic eDp5' } }, 401, 'UNAUTHENTICATED'],
    ['a token without read', bearer(orders.token), 403, 'FORBIDDEN'],
  ] as const) {
    const res = await refusedUpgrade(s.url, options)
    t.equal(res.status, status, `${what}: ${status}`)
    t.ok(ErrorBody.safeParse(res.body).success, `${what}: the error shape`)
    t.equal((res.body as { error: { code: string } }).error.code, code, `${what}: ${code}`)
  }
})

t.test('no token at the upgrade: an auth frame first, or the socket closes with 4001', async (t) => {
  const s = await startAuthServer(t, {}, { watch: { authTimeoutMs: 300, pingIntervalMs: 0 } })
  await seed(s)
  const reader = await s.token(['read'])
  const orders = await s.token(['register:orders'])

  const good = await WatchClient.open(s.url)
  t.teardown(() => good.close())
  good.send({ type: 'auth', token: reader.token })
  t.ok((await snapshotOf(good)) > 0, 'auth frame, then subscribe: a snapshot')

  const early = await WatchClient.open(s.url)
  early.subscribe(['*'])
  const refusal = await early.next()
  t.match(refusal, { type: 'error', error: { code: 'UNAUTHENTICATED' } }, 'subscribe before auth: an error message')
  t.equal(await early.closed, CLOSE_UNAUTHORIZED, 'then 4001')

  for (const [what, token, code] of [
    ['a wrong token', 'rct_nope', 'UNAUTHENTICATED'],
    ['a token without read', orders.token, 'FORBIDDEN'],
  ] as const) {
    const c = await WatchClient.open(s.url)
    c.send({ type: 'auth', token })
    t.match(await c.next(), { type: 'error', error: { code } }, `${what}: ${code}`)
    t.equal(await c.closed, CLOSE_UNAUTHORIZED, `${what}: 4001`)
  }

  const silent = await WatchClient.open(s.url)
  t.equal(await silent.closed, CLOSE_UNAUTHORIZED, 'no frame at all: 4001 once the time is up')
  t.match(silent.messages[0], { type: 'error', error: { code: 'UNAUTHENTICATED' } })

  const garbage = await WatchClient.open(s.url)
  garbage.send('{not json')
  t.match(await garbage.next(), { type: 'error', error: { code: 'VALIDATION_FAILED' } }, 'a bad frame is answered')
  t.equal(await garbage.closed, CLOSE_UNAUTHORIZED, 'and does not count as authenticating')
  t.equal(s.app.watchHub.size, 1, 'only the authenticated socket is left')
})

t.test('anonymous read: no auth frame needed, and none that opens more', async (t) => {
  const s = await startAuthServer(t, { anonymousScopes: ['read'] })
  await seed(s)
  const c = await WatchClient.open(s.url)
  t.teardown(() => c.close())
  t.ok((await snapshotOf(c)) > 0, 'anonymous read watches without a token')
})

t.test('revoking a token closes its sockets with 4001; others stay', async (t) => {
  const s = await startAuthServer(t, {}, { watch: { pingIntervalMs: 0 } })
  await seed(s)
  const doomed = await s.token(['read'])
  const kept = await s.token(['read'])
  const byHeader = await WatchClient.open(s.url, bearer(doomed.token))
  const byFrame = await WatchClient.open(s.url)
  byFrame.send({ type: 'auth', token: doomed.token })
  const other = await WatchClient.open(s.url, bearer(kept.token))
  t.teardown(() => other.close())
  for (const c of [byHeader, byFrame, other]) await snapshotOf(c)
  t.equal(s.app.watchHub.countLabel(doomed.id), 2, 'both sockets count for the token')

  t.equal((await s.as(ADMIN, 'DELETE', `/v1/tokens/${doomed.id}`)).status, 204)
  t.equal(await byHeader.closed, CLOSE_UNAUTHORIZED, 'the socket opened with the header: 4001')
  t.equal(await byFrame.closed, CLOSE_UNAUTHORIZED, 'the socket authenticated by frame: 4001')
  await s.as(ADMIN, 'PUT', '/v1/services/orders/instances/o-9', instanceBody())
  t.match(await other.next(), { type: 'change' }, "another token's socket still gets changes")
  t.equal((await refusedUpgrade(s.url, bearer(doomed.token))).status, 401, 'and the token cannot open a new one')
})

t.test('a token that expires loses its sockets at the next sweep', async (t) => {
  const s = await startAuthServer(t, {}, { watch: { pingIntervalMs: 0 } })
  const brief = await s.token(['read'], { ttlSeconds: 60 })
  const lasting = await s.token(['read'])
  const c = await WatchClient.open(s.url, bearer(brief.token))
  const other = await WatchClient.open(s.url, bearer(lasting.token))
  t.teardown(() => other.close())
  await snapshotOf(c)
  await snapshotOf(other)
  s.registry.sweep()
  t.equal(c.closeCode, undefined, 'still open before it expires')
  s.clock.advance(60_000)
  s.registry.sweep()
  t.equal(await c.closed, CLOSE_UNAUTHORIZED, 'closed with 4001 once expired')
  t.equal(s.app.watchHub.countLabel(lasting.id), 1, 'the other token keeps its socket')
})

t.test('watch connections per token: past the limit, 429 at the upgrade, 1008 after an auth frame', async (t) => {
  const s = await startAuthServer(t, { maxWatchPerToken: 2 }, { watch: { pingIntervalMs: 0 } })
  const a = await s.token(['read'])
  const b = await s.token(['read'])
  const first = await WatchClient.open(s.url, bearer(a.token))
  const second = await WatchClient.open(s.url, bearer(a.token))
  t.teardown(() => second.close())
  const third = await refusedUpgrade(s.url, bearer(a.token))
  t.equal(third.status, 429, 'the third is refused')
  t.match(third.body, { error: { code: 'RATE_LIMITED', message: /at most 2/ } })

  const byFrame = await WatchClient.open(s.url)
  byFrame.send({ type: 'auth', token: a.token })
  t.match(await byFrame.next(), { type: 'error', error: { code: 'RATE_LIMITED' } }, 'by frame: an error message')
  t.equal(await byFrame.closed, 1008, 'then 1008')

  const other = await WatchClient.open(s.url, bearer(b.token))
  t.teardown(() => other.close())
  t.ok((await snapshotOf(other)) >= 0, 'another token is not held back')

  first.ws.close()
  await first.closed
  // The server counts the socket out at its own close event, which may come a moment later.
  await eventually(() => s.app.watchHub.countLabel(a.id) < 2, 'the server to see the close')
  const again = await WatchClient.open(s.url, bearer(a.token))
  t.teardown(() => again.close())
  t.ok((await snapshotOf(again)) >= 0, 'once one closes, the token may open another')
})
