import fc from 'fast-check'
import t from 'tap'
import { ERROR_CODES, ErrorBody } from '../client-sdk/protocol.js'
import { rawRequest } from './helpers/http.js'
import type { TestServer } from './helpers/server.js'
import { startTestServer } from './helpers/server.js'

/**
 * Property-based: random bodies, paths and query strings thrown at a running server. The
 * server must never answer 5xx, and every 4xx must be the one error shape with a code whose
 * status is the one answered. Runs are bounded so the file stays well under a minute.
 */

const RUNS = Number(process.env.ROLLCALL_FUZZ_RUNS ?? 250)

/** Throws (so fast-check shrinks and reports) unless the answer is acceptable. */
function check(status: number, text: string, what: string, method = 'GET'): void {
  if (status >= 500) throw new Error(`${status} for ${what}: ${text.slice(0, 300)}`)
  if (status < 400 || method === 'HEAD') return
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw new Error(`${status} with a body that is not JSON for ${what}: ${text.slice(0, 300)}`)
  }
  const shape = ErrorBody.strict().safeParse(parsed)
  if (!shape.success) throw new Error(`${status} not in the error shape for ${what}: ${text.slice(0, 300)}`)
  const expected = ERROR_CODES[shape.data.error.code]
  if (expected !== status) throw new Error(`${status} with code ${shape.data.error.code} (${expected}) for ${what}`)
}

async function send(s: TestServer, method: string, path: string, body?: string, contentType?: string): Promise<void> {
  const headers: Record<string, string> = contentType === undefined ? {} : { 'content-type': contentType }
  let res: Response
  try {
    res = await fetch(s.url + path, { method, headers, ...(body !== undefined && { body }) })
  } catch (err) {
    // fetch itself refuses some inputs (a header value it cannot send): nothing reached the server.
    if (err instanceof TypeError && !/fetch failed/.test(err.message)) return
    throw err
  }
  check(res.status, await res.text(), `${method} ${JSON.stringify(path)} ${JSON.stringify(body?.slice(0, 200))}`, method)
}

/** Anything JSON can hold, and then some: the values a registration field might get. */
const anyJson = fc.jsonValue({ maxDepth: 3 })
const hugeNumber = fc.constantFrom('1e400', '-1e400', '9'.repeat(400), `0.${'0'.repeat(400)}1`, '-0', '1e-400', '123456789012345678901234567890')
const plausible = {
  host: fc.oneof(fc.constantFrom('10.0.0.1', 'host.example', '::1', '[::1]'), fc.string({ unit: 'binary', maxLength: 300 }), anyJson),
  port: fc.oneof(fc.integer({ min: -70000, max: 70000 }), fc.double(), fc.constant(1e308), anyJson),
  scheme: fc.oneof(fc.constantFrom('http', 'https', 'grpc', 'tcp'), fc.string()),
  status: fc.oneof(fc.constantFrom('starting', 'up', 'draining', 'out_of_service'), fc.string(), anyJson),
  weight: fc.oneof(fc.integer({ min: -2000, max: 2000 }), anyJson),
  zone: fc.oneof(fc.string({ maxLength: 80 }), anyJson),
  tags: fc.oneof(fc.array(fc.string({ unit: 'grapheme', maxLength: 70 }), { maxLength: 40 }), anyJson),
  metadata: fc.oneof(fc.dictionary(fc.string({ unit: 'binary', maxLength: 140 }), fc.string({ maxLength: 300 }), { maxKeys: 70 }), anyJson),
  ttlSeconds: fc.oneof(fc.integer({ min: -10, max: 4000 }), anyJson),
  deregisterAfterSeconds: fc.oneof(fc.integer({ min: -10, max: 90000 }), anyJson),
  check: fc.oneof(
    fc.record(
      {
        type: fc.constantFrom('http', 'tcp', 'udp'),
        path: fc.string({ unit: 'binary', maxLength: 40 }),
        intervalSeconds: fc.integer({ min: -1, max: 4000 }),
        timeoutSeconds: fc.integer({ min: -1, max: 400 }),
      },
      { requiredKeys: [] },
    ),
    anyJson,
  ),
  [fc.string({ maxLength: 12 }) as unknown as string]: anyJson,
}

const deep = fc
  .tuple(fc.integer({ min: 1, max: 30_000 }), fc.constantFrom('[', '{"a":', '{"__proto__":'))
  .map(([n, open]) => open.repeat(n) + (open === '[' ? '' : '1') + (open === '[' ? ']' : '}').repeat(n))

const bodies = fc.oneof(
  fc.json({ maxDepth: 6 }),
  fc.string({ unit: 'binary', maxLength: 400 }),
  fc.string({ unit: 'grapheme', maxLength: 400 }),
  fc.record(plausible, { requiredKeys: [] }).map((o) => JSON.stringify(o)),
  fc.record({ instances: fc.oneof(fc.array(fc.record({ service: fc.string(), id: fc.string() }, { requiredKeys: [] }), { maxLength: 20 }), anyJson) }, { requiredKeys: [] }).map((o) => JSON.stringify(o)),
  hugeNumber.map((n) => `{"host":"h","port":${n},"weight":${n}}`),
  deep,
)

const contentTypes = fc.oneof(
  { weight: 6, arbitrary: fc.constant('application/json') },
  fc.constantFrom('application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', undefined),
  fc.stringMatching(/^[\x21-\x7e]{0,40}$/),
)

t.test('random bodies at every route that takes one', async (t) => {
  const s = await startTestServer(t, { checks: false })
  const routes = [
    ['PUT', '/v1/services/orders/instances/o-1'],
    ['POST', '/v1/services/orders/instances'],
    ['PATCH', '/v1/services/orders/instances/o-1'],
    ['POST', '/v1/heartbeats'],
    ['PUT', '/v1/services/orders/instances/o-1/heartbeat'],
  ] as const
  await s.request('PUT', '/v1/services/orders/instances/o-1', { host: '10.0.0.1', port: 80 })
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...routes), bodies, contentTypes, async ([method, path], body, type) => {
      await send(s, method, path, body, type)
    }),
    { numRuns: RUNS * 2 },
  )
  t.pass(`${RUNS * 2} random bodies, none a 5xx, every 4xx in the error shape`)
  t.equal(({} as Record<string, unknown>).a, undefined, 'no prototype was polluted')
  t.equal((await s.request('GET', '/healthz')).status, 200, 'the server is still up')
})

/** Path segments: valid names, unicode, controls, dots, stray % signs, encoded or not. */
const segment = fc.oneof(
  fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,20}$/),
  fc.constantFrom('..', '.', '%', '%zz', '%E0%A4%A', '%2e%2e', '%2F', '%00', '', 'a'.repeat(129), 'a'.repeat(1100)),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }).map(encodeURIComponent),
  fc.string({ unit: 'binary', maxLength: 40 }).map((x) => encodeURIComponent(x).replace(/%2F/g, '/')),
)

const paths = fc.oneof(
  fc
    .tuple(segment, fc.option(segment), fc.boolean())
    .map(([service, id, hb]) => `/v1/services/${service}/instances${id === null ? '' : `/${id}`}${hb ? '/heartbeat' : ''}`),
  fc.webPath(),
  fc.string({ unit: 'binary', maxLength: 80 }).map((p) => `/${p}`),
  fc.tuple(fc.constantFrom('/v1', '/v1/services', '/healthz', '/readyz', '/metrics', '/openapi.yaml', '/v1/heartbeats'), segment).map(([a, b]) => `${a}/${b}`),
)

t.test('random paths and methods', async (t) => {
  const s = await startTestServer(t, { checks: false })
  const methods = fc.constantFrom('GET', 'PUT', 'POST', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS')
  const validBody = JSON.stringify({ host: '10.0.0.1', port: 80 })
  await fc.assert(
    fc.asyncProperty(methods, paths, async (method, path) => {
      const hasBody = method === 'PUT' || method === 'POST' || method === 'PATCH'
      await send(s, method, path, hasBody ? validBody : undefined, hasBody ? 'application/json' : undefined)
    }),
    { numRuns: RUNS * 2 },
  )
  t.equal((await s.request('GET', '/healthz')).status, 200, 'the server is still up')
})

t.test('random query strings on the query routes', async (t) => {
  const s = await startTestServer(t, { checks: false })
  await s.request('PUT', '/v1/services/orders/instances/o-1', { host: '10.0.0.1', port: 80, tags: ['a'], metadata: { k: 'v' } })
  const key = fc.oneof(
    fc.constantFrom('healthy', 'tag', 'zone', 'index', 'wait', 'meta.k', 'meta.', 'meta.__proto__', '__proto__', 'constructor'),
    fc.string({ unit: 'binary', maxLength: 20 }),
  )
  const value = fc.oneof(
    fc.constantFrom('true', 'false', '0', '1', '-1', '1.5', '1e3', '99999999999999999999', '0s', '1ms', '2ms', '301s', '5m', '6m', ''),
    fc.string({ unit: 'binary', maxLength: 40 }),
  )
  const query = fc.oneof(
    fc.array(fc.tuple(key, value), { maxLength: 6 }).map((pairs) => pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&')),
    fc.webQueryParameters(),
    fc.string({ unit: 'binary', maxLength: 60 }),
  )
  const route = fc.constantFrom('/v1/services/orders/instances', '/v1/services', '/v1/services/orders/instances/o-1')
  await fc.assert(
    fc.asyncProperty(route, query, async (path, q) => {
      // A blocking query may only wait briefly here: any index at or above the revision
      // waits, so the wait is capped (a bad wait value still gets through to be refused).
      const capped = /(^|&)wait=/.test(q) ? q : `${q}&wait=1ms`
      await send(s, 'GET', `${path}?${capped}`)
    }),
    { numRuns: RUNS },
  )
  t.equal((await s.request('GET', '/healthz')).status, 200)
})

t.test('raw bytes in the request target, as no HTTP client library would send them', async (t) => {
  const s = await startTestServer(t, { checks: false })
  // Node's client sends \x21-\xff as single bytes: non-ASCII and stray % reach the parser raw.
  const raw = fc.string({ unit: fc.integer({ min: 0x21, max: 0xff }).map((c) => String.fromCharCode(c)), maxLength: 60 })
  await fc.assert(
    fc.asyncProperty(raw, async (p) => {
      const path = `/v1/services/${p}/instances`
      const res = await rawRequest(s.url, 'GET', path)
      check(res.status, res.text, `raw GET ${JSON.stringify(path)}`)
    }),
    { numRuns: RUNS },
  )
  t.equal((await s.request('GET', '/healthz')).status, 200)
})
