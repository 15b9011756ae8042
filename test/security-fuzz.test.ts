import fc from 'fast-check'
import t from 'tap'
import type { Test } from 'tap'
import WebSocket from 'ws'
import { CLOSE_UNAUTHORIZED, ERROR_CODES, ErrorBody } from '../client-sdk/protocol.js'
import type { ServerMessage } from '../client-sdk/protocol.js'
import { toWire } from '../server/registry/record.js'
import type { AuthServer } from './helpers/auth.js'
import { ADMIN, startAuthServer } from './helpers/auth.js'
import { instanceBody } from './helpers/server.js'
import { WatchClient } from './helpers/watch-client.js'

/**
 * Property-based, with auth on: random credentials, paths and bodies at every route, and
 * random frames at the watch. Never a 5xx, every 4xx in the error shape, and a refused
 * request changes nothing at all: the revision, every instance (heartbeat times
 * included: the clock moves before each request) and the tokens are as they were.
 */

const RUNS = Number(process.env.ROLLCALL_FUZZ_RUNS ?? 250)

interface Tokens {
  admin: string
  orders: string
  reader: string
  revoked: string
  expired: string
}

async function setUp(t: Test): Promise<{ s: AuthServer; tokens: Tokens }> {
  const s = await startAuthServer(t, { rateLimit: 0 }, { watch: { pingIntervalMs: 0, authTimeoutMs: 60_000 } })
  for (const path of ['/v1/services/orders/instances/o-1', '/v1/services/payments/instances/p-1']) {
    await s.as(ADMIN, 'PUT', path, instanceBody({ ttlSeconds: 3600, metadata: { team: 'core' } }))
  }
  const orders = await s.token(['register:orders'])
  const reader = await s.token(['read'])
  const revoked = await s.token(['admin'])
  await s.as(ADMIN, 'DELETE', `/v1/tokens/${revoked.id}`)
  const expired = await s.token(['admin'], { ttlSeconds: 1 })
  s.clock.advance(1000)
  return { s, tokens: { admin: ADMIN, orders: orders.token, reader: reader.token, revoked: revoked.token, expired: expired.token } }
}

/** Everything a refused request must leave alone. */
function fingerprint(s: AuthServer): string {
  const instances = [...s.registry.instances()].map((r) => JSON.stringify(toWire(r))).sort()
  const tokens = s.tokens.list().map((k) => `${k.id}:${k.revokedAt ?? ''}`)
  return `${s.registry.revision}\n${instances.join('\n')}\n${tokens.join(',')}`
}

function checkAnswer(status: number, text: string, what: string): void {
  if (status >= 500) throw new Error(`${status} for ${what}: ${text.slice(0, 300)}`)
  if (status < 400) return
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw new Error(`${status} with a body that is not JSON for ${what}: ${text.slice(0, 200)}`)
  }
  const shape = ErrorBody.strict().safeParse(parsed)
  if (!shape.success) throw new Error(`${status} not in the error shape for ${what}: ${text.slice(0, 200)}`)
  if (ERROR_CODES[shape.data.error.code] !== status) throw new Error(`${status} with code ${shape.data.error.code} for ${what}`)
}

// ---------------------------------------------------------------------------------------
// Arbitraries

const hugeNumber = fc.constantFrom('1e400', '-1e400', '9'.repeat(400), '-0', '1e-400', '123456789012345678901234567890')
const deep = fc
  .tuple(fc.integer({ min: 1, max: 20_000 }), fc.constantFrom('[', '{"a":', '{"__proto__":', '{"metadata":'))
  .map(([n, open]) => open.repeat(n) + (open === '[' ? '' : '1') + (open === '[' ? ']' : '}').repeat(n))
const pollutingKey = fc.constantFrom('__proto__', 'constructor', 'prototype', '\\u005f_proto__', 'toString', 'hasOwnProperty')
const metadata = fc.oneof(
  fc.dictionary(fc.oneof(pollutingKey, fc.string({ unit: 'grapheme', maxLength: 140 })), fc.string({ maxLength: 300 }), { maxKeys: 70 }).map((m) => JSON.stringify(m)),
  fc.tuple(pollutingKey, fc.jsonValue({ maxDepth: 2 })).map(([k, v]) => `{"${k}":${JSON.stringify(v)}}`),
  fc.constant('{"constructor":{"prototype":{"polluted":"yes"}}}'),
)
const bodies = fc.oneof(
  fc.json({ maxDepth: 5 }),
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.string({ unit: 'grapheme', maxLength: 20_000 }).map((x) => JSON.stringify({ host: x, port: 80 })),
  metadata.map((m) => `{"host":"10.0.0.9","port":80,"metadata":${m}}`),
  metadata.map((m) => `{"metadata":${m}}`),
  hugeNumber.map((n) => `{"host":"h","port":${n},"weight":${n},"ttlSeconds":${n}}`),
  fc.record({ instances: fc.array(fc.record({ service: fc.constantFrom('orders', 'payments', '..', '*', 'orders/../payments'), id: fc.constantFrom('o-1', 'p-1', '..') }), { maxLength: 5 }) }).map((o) => JSON.stringify(o)),
  fc.record({ scopes: fc.array(fc.oneof(fc.constantFrom('admin', 'read', 'register:*', 'register:', 'register:../x', '*'), fc.string()), { maxLength: 4 }), ttlSeconds: fc.oneof(fc.integer(), fc.double()) }, { requiredKeys: [] }).map((o) => JSON.stringify(o)),
  deep,
)

/** Names as they would be put in a path: fine ones, traversal, unicode, encoded slashes. */
const name = fc.oneof(
  fc.constantFrom('orders', 'payments', 'o-1', 'p-1', 'o-new'),
  fc.constantFrom('..', '.', '%2e%2e', '..%2fpayments', '%2E%2E%2F%2E%2E%2Fetc%2Fpasswd', 'orders%00', '%2F', 'a'.repeat(129), '*', '%2A'),
  fc.string({ unit: 'grapheme', maxLength: 30 }).map(encodeURIComponent),
)

const paths = fc.oneof(
  fc.tuple(name, name).map(([s, i]) => `/v1/services/${s}/instances/${i}`),
  fc.tuple(name, name).map(([s, i]) => `/v1/services/${s}/instances/${i}/heartbeat`),
  name.map((s) => `/v1/services/${s}/instances`),
  fc.constantFrom('/v1/services', '/v1/heartbeats', '/v1/tokens', '/metrics', '/v1/watch', '/healthz', '/v1/services/payments/instances/p-1'),
  name.map((i) => `/v1/tokens/${i}`),
  fc.constantFrom('/v1/services/orders/instances/../../payments/instances/p-1', '/v1/services/orders/../payments/instances/p-1'),
)

function credentials(tokens: Tokens) {
  const known = fc.constantFrom(...Object.values(tokens))
  return fc.oneof(
    { weight: 3, arbitrary: known.map((k) => `Bearer ${k}`) },
    known.map((k) => `Bearer ${k.slice(0, -1)}`),
    known.map((k) => `bearer  ${k}  `),
    known.map((k) => `Basic ${k}`),
    fc.string({ unit: 'binary-ascii', maxLength: 80 }).map((x) => `Bearer ${x}`),
    fc.string({ maxLength: 700 }),
    fc.constant(undefined),
  )
}

// ---------------------------------------------------------------------------------------

t.test('random credentials, paths and bodies: no 5xx, and a refusal changes nothing', async (t) => {
  const { s, tokens } = await setUp(t)
  let refused = 0
  let accepted = 0
  await fc.assert(
    fc.asyncProperty(fc.constantFrom('GET', 'PUT', 'POST', 'PATCH', 'DELETE'), paths, fc.option(bodies), credentials(tokens), async (method, path, body, auth) => {
      s.clock.advance(1)
      const before = fingerprint(s)
      const headers: Record<string, string> = {}
      if (auth !== undefined) headers.authorization = auth
      if (body !== null) headers['content-type'] = 'application/json'
      let res: Response
      try {
        res = await fetch(s.url + path, { method, headers, ...(body !== null && method !== 'GET' && { body }) })
      } catch (err) {
        // fetch refuses some header values itself: nothing reached the server.
        if (err instanceof TypeError && !/fetch failed/.test(err.message)) return
        if ((err as { cause?: { code?: string } }).cause?.code === 'UND_ERR_INVALID_ARG') return
        throw err
      }
      const text = await res.text()
      const what = `${method} ${path} auth=${JSON.stringify(auth?.slice(0, 60))} body=${JSON.stringify(body?.slice(0, 120))}`
      checkAnswer(res.status, text, what)
      if (res.status >= 400) {
        refused++
        const after = fingerprint(s)
        if (after !== before) throw new Error(`a refused request (${res.status}) changed the state: ${what}`)
      } else accepted++
    }),
    { numRuns: RUNS * 4 },
  )
  t.ok(refused > 0 && accepted > 0, `${refused} refused, ${accepted} accepted: both kinds were tried`)
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype was polluted')
  t.equal((await s.as(undefined, 'GET', '/healthz')).status, 200, 'the server is still up')
})

/** Frames a client might send: JSON of every kind, broken JSON, near-valid messages. */
function frames(tokens: Tokens) {
  const selector = fc.oneof(fc.constantFrom('*', 'orders', '..', '../payments', '__proto__', '', 'a'.repeat(200)), fc.string({ unit: 'grapheme', maxLength: 20 }))
  return fc.oneof(
    fc.json({ maxDepth: 6 }),
    fc.string({ unit: 'binary', maxLength: 300 }),
    fc.string({ unit: 'grapheme', maxLength: 30_000 }),
    deep,
    hugeNumber.map((n) => `{"type":"subscribe","services":["*"],"since":${n}}`),
    fc.record({ type: fc.constantFrom('subscribe', 'unsubscribe', 'auth', 'ping', '__proto__'), services: fc.array(selector, { maxLength: 5 }), since: fc.oneof(fc.integer(), fc.double()) }, { requiredKeys: [] }).map((m) => JSON.stringify(m)),
    fc.oneof(fc.constantFrom(...Object.values(tokens)), fc.string({ maxLength: 600 })).map((token) => JSON.stringify({ type: 'auth', token })),
    fc.constantFrom('{"type":"subscribe","services":["*"],"__proto__":{"polluted":true}}', '{"type":"subscribe","services":["*"],"constructor":{"prototype":{"polluted":true}}}'),
  )
}

t.test('random frames on an authenticated socket: answered, never closed, nothing changed', async (t) => {
  const { s, tokens } = await setUp(t)
  const c = await WatchClient.open(s.url, { headers: { authorization: `Bearer ${tokens.reader}` } })
  t.teardown(() => c.close())
  const before = fingerprint(s)
  let marker = 0
  await fc.assert(
    fc.asyncProperty(frames(tokens), async (frame) => {
      c.send(frame)
      // Frames are handled in order: the marker's snapshot comes after the frame's answers.
      const name = `marker-${marker++}`
      c.subscribe([name])
      for (;;) {
        const m: ServerMessage = await c.next()
        if (m.type === 'error' && m.error.code !== 'VALIDATION_FAILED' && m.error.code !== 'PAYLOAD_TOO_LARGE') {
          throw new Error(`${m.error.code} for the frame ${JSON.stringify(frame.slice(0, 200))}`)
        }
        if (m.type === 'snapshot' && Object.hasOwn(m.services, name)) break
      }
    }),
    { numRuns: RUNS },
  )
  t.equal(c.closeCode, undefined, 'the socket is still open')
  t.equal(fingerprint(s), before, 'frames changed nothing')
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype was polluted')
})

t.test('random first frames on a socket without a token: it authenticates only with a token that may watch', async (t) => {
  const { s, tokens } = await setUp(t)
  const readers = new Set([tokens.reader, tokens.admin])
  await fc.assert(
    fc.asyncProperty(frames(tokens), async (frame) => {
      const c = await WatchClient.open(s.url)
      try {
        c.send(frame)
        c.subscribe(['*'])
        // Either the frame authenticated it (the subscribe gets a snapshot), or the socket
        // is closed with 4001 (after error messages for frames that were not even messages).
        for (;;) {
          let m: ServerMessage
          try {
            m = await c.next()
          } catch {
            break
          }
          if (m.type === 'snapshot') {
            const token = (JSON.parse(frame) as { token?: string }).token
            if (token === undefined || !readers.has(token)) throw new Error(`a snapshot after ${frame.slice(0, 200)}`)
            return
          }
        }
        const code = await c.closed
        if (code !== CLOSE_UNAUTHORIZED) throw new Error(`closed with ${code} after ${JSON.stringify(frame.slice(0, 200))}`)
      } finally {
        c.close()
      }
    }),
    { numRuns: Math.ceil(RUNS / 2) },
  )
  t.equal((await s.as(undefined, 'GET', '/healthz')).status, 200, 'the server is still up')
})

t.test('huge frames and binary frames are refused without a crash', async (t) => {
  const { s, tokens } = await setUp(t)
  const c = await WatchClient.open(s.url, { headers: { authorization: `Bearer ${tokens.reader}` } })
  t.teardown(() => c.close())
  c.send('x'.repeat(200 * 1024))
  t.match(await c.next(), { type: 'error', error: { code: 'PAYLOAD_TOO_LARGE' } }, '200 KiB: an error, the socket stays')
  c.ws.send(Buffer.from([0, 1, 2, 3]), { binary: true })
  t.match(await c.next(), { type: 'error', error: { code: 'VALIDATION_FAILED' } }, 'binary: an error')
  c.ws.send('y'.repeat(2 * 1024 * 1024))
  t.equal(await c.closed, 1009, 'over 1 MiB: closed with 1009 (message too big)')
  const again = await WatchClient.open(s.url, { headers: { authorization: `Bearer ${tokens.reader}` } })
  t.teardown(() => again.close())
  again.subscribe(['*'])
  t.match(await again.next(), { type: 'snapshot' }, 'the server still serves')
})
