import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import WebSocket from 'ws'
import { serverLogger } from '../server/auth/redact.js'
import { ADMIN, startAuthServer } from './helpers/auth.js'
import { assertError, rawRequest, read } from './helpers/http.js'
import { instanceBody, startTestServer } from './helpers/server.js'

/**
 * Limits (requests per token and per IP, header size, body size) and what the log must
 * never hold: tokens, Authorization headers, check targets' answers.
 */

t.test('a flood from one token is limited while another token is served', async (t) => {
  const s = await startAuthServer(t, { rateLimit: 20 })
  const flooder = await s.token(['register:orders', 'read'])
  const other = await s.token(['read'])
  const statuses: number[] = []
  let limited: Response | undefined
  for (let i = 0; i < 30; i++) {
    const res = await s.as(flooder.token, 'PUT', `/v1/services/orders/instances/o-${i}`, instanceBody())
    statuses.push(res.status)
    if (res.status === 429 && limited === undefined) limited = res
    else await res.arrayBuffer()
  }
  t.same(statuses, [...Array(20).fill(201), ...Array(10).fill(429)], 'the first 20 pass, the rest get 429')
  const answer = await read(limited as Response)
  assertError(t, answer, 429, 'RATE_LIMITED', /rate limit of 20 requests per minute/)
  t.match(answer.headers.get('retry-after') ?? '', /^[1-9]\d*$/, 'Retry-After in seconds')
  t.equal(answer.headers.get('x-ratelimit-limit'), '20')

  const list = (await (await s.as(ADMIN, 'GET', '/v1/services/orders/instances')).json()) as { instances: unknown[] }
  t.equal(list.instances.length, 20, 'the refused registrations changed nothing')
  t.equal((await s.as(other.token, 'GET', '/v1/services')).status, 200, 'another token is still served')
  t.equal((await s.as(ADMIN, 'GET', '/v1/services')).status, 200, 'and so is the admin token')
})

t.test('without a token the limit is per IP, bad tokens included; probes are never limited', async (t) => {
  const s = await startAuthServer(t, { rateLimit: 10, anonymousScopes: ['read'] })
  const reader = await s.token(['read'])
  const statuses: number[] = []
  for (let i = 0; i < 12; i++) statuses.push((await s.as(undefined, 'GET', '/v1/services')).status)
  t.same(statuses, [...Array(10).fill(200), 429, 429], 'anonymous requests share their IP’s budget')
  const bad = await read(await s.as('rct_guess', 'GET', '/v1/services'))
  assertError(t, bad, 429, 'RATE_LIMITED', undefined, 'guessing tokens from that IP is limited too')
  t.equal((await s.as(reader.token, 'GET', '/v1/services')).status, 200, 'a token from the same IP has its own budget')
  t.equal((await s.as(undefined, 'GET', '/healthz')).status, 200, '/healthz is never limited')
  t.equal((await s.as(undefined, 'GET', '/readyz')).status, 200, '/readyz is never limited')
})

t.test('auth off: no rate limit unless one is set', async (t) => {
  const s = await startTestServer(t, { checks: false })
  for (let i = 0; i < 50; i++) await (await s.request('GET', '/v1/services')).arrayBuffer()
  t.equal((await s.request('GET', '/v1/services')).status, 200, 'the local quick start is not limited')
  const limited = await startTestServer(t, { checks: false, rateLimit: 3 })
  const statuses: number[] = []
  for (let i = 0; i < 4; i++) statuses.push((await limited.request('GET', '/v1/services')).status)
  t.same(statuses, [200, 200, 200, 429], '--rate-limit applies with auth off too')
})

t.test('header and body size', async (t) => {
  const s = await startAuthServer(t)
  const auth = { authorization: `Bearer ${ADMIN}` }
  const ok = await rawRequest(s.url, 'GET', '/v1/services', undefined, { ...auth, 'x-pad': 'a'.repeat(8 * 1024) })
  t.equal(ok.status, 200, '8 KiB of headers pass')
  const big = await rawRequest(s.url, 'GET', '/v1/services', undefined, { ...auth, 'x-pad': 'a'.repeat(20 * 1024) })
  assertError(t, big, 413, 'PAYLOAD_TOO_LARGE', 'headers', '20 KiB of headers')
  const body = JSON.stringify(instanceBody({ metadata: { k: 'v'.repeat(70 * 1024) } }))
  const json = { 'content-type': 'application/json' }
  const anonymous = await rawRequest(s.url, 'PUT', '/v1/services/a/instances/b', body, json)
  assertError(t, anonymous, 401, 'UNAUTHENTICATED', undefined, 'an oversize body without a token: refused before it is read')
  const authed = await rawRequest(s.url, 'PUT', '/v1/services/a/instances/b', body, { ...json, ...auth })
  assertError(t, authed, 413, 'PAYLOAD_TOO_LARGE', 'body', 'an oversize body with a token')
})

t.test('the log never holds tokens, Authorization headers or check targets’ answers', async (t) => {
  const lines: string[] = []
  const logger = serverLogger('trace', { write: (line: string) => void lines.push(line) })
  // A check target whose answer carries secrets, and fails, so that its result is logged if anything is.
  const target = createServer((_req, res) => {
    res.writeHead(500, { 'x-secret': 'CHECK-HEADER-SECRET' })
    res.end('CHECK-BODY-SECRET')
  })
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => target.close(() => r())))
  const targetPort = (target.address() as AddressInfo).port

  const s = await startTestServer(t, { auth: true, adminToken: ADMIN, checks: true, logLevel: 'trace' }, { logger })
  const as = (token: string, method: string, path: string, json?: unknown) =>
    s.request(method, path, json, { authorization: `Bearer ${token}` })
  const created = (await (await as(ADMIN, 'POST', '/v1/tokens', { scopes: ['register:*', 'read'] })).json()) as { token: string; id: string }
  const critical = new Promise<void>((resolve) => {
    const sub = s.registry.onChange((c) => {
      if (c.instance.id === 'checked' && c.instance.health === 'critical') {
        sub.dispose()
        resolve()
      }
    })
  })
  const check = { type: 'http', path: '/health', intervalSeconds: 1, timeoutSeconds: 1, unhealthyThreshold: 1 }
  t.equal((await as(created.token, 'PUT', '/v1/services/svc/instances/checked', instanceBody({ port: targetPort, check }))).status, 201)
  await critical
  await as('rct_WRONG-TOKEN-SECRET', 'GET', '/v1/services')
  await s.request('GET', '/v1/services', undefined, { authorization: 'Basic QkFTSUMtU0VDUkVU' })
  await s.request('GET', `/v1/services?token=${created.token}&access_token=URL-SECRET`)
  await new Promise<void>((resolve) => {
    const ws = new WebSocket(`${s.url.replace(/^http/, 'ws')}/v1/watch`)
    ws.once('open', () => ws.send(JSON.stringify({ type: 'auth', token: created.token })))
    ws.once('message', () => ws.close())
    ws.once('close', () => resolve())
    ws.once('open', () => ws.send(JSON.stringify({ type: 'subscribe', services: ['*'] })))
  })
  await as(ADMIN, 'DELETE', `/v1/tokens/${created.id}`)
  await as(created.token, 'GET', '/v1/services')
  // The net under future log lines: redaction of objects that would carry credentials.
  logger.info({ req: { headers: { authorization: `Bearer ${ADMIN}` } }, token: created.token }, 'a careless line')
  await s.close()

  const log = lines.join('')
  t.ok(lines.length > 10, `the log was captured (${lines.length} lines)`)
  t.match(log, /"msg":"request"/, 'request lines are there')
  t.match(log, /token created/, 'token creation is logged')
  t.match(log, new RegExp(created.id), 'by its id')
  t.match(log, /token=\[redacted\]/, 'a token put in a URL is redacted from the access line')
  for (const secret of [ADMIN, created.token, created.token.slice(4), 'WRONG-TOKEN-SECRET', 'QkFTSUMtU0VDUkVU', 'URL-SECRET', 'CHECK-BODY-SECRET', 'CHECK-HEADER-SECRET', 'Bearer ']) {
    t.notOk(log.includes(secret), `the log does not hold ${secret.slice(0, 12)}…`)
  }
})
