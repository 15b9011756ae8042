import t from 'tap'
import type { Test } from 'tap'
import { assertError, rawRequest } from './helpers/http.js'
import type { TestServer } from './helpers/server.js'
import { instanceBody, startTestServer } from './helpers/server.js'

/**
 * Bad input, one kind at a time: each must be a 4xx in the one error shape, with a message
 * that names the field, and must leave the registry exactly as it was.
 */

interface Case {
  what: string
  method: string
  path: string
  /** An object is sent as JSON; a string or Buffer as is. */
  body?: unknown
  headers?: Record<string, string>
  status?: number
  code?: string
  field: string | RegExp
}

const O1 = '/v1/services/orders/instances/o-1'
const NEW = '/v1/services/orders/instances/o-new'
const LIST = '/v1/services/orders/instances'
const JSON_TYPE = { 'content-type': 'application/json' }
const valid = instanceBody({ port: 9999 })
const reg = (extra: Record<string, unknown>) => instanceBody({ port: 9999, ...extra })

async function seed(s: TestServer): Promise<void> {
  for (const [path, body] of [
    [O1, instanceBody({ tags: ['a'], metadata: { team: 'core' }, zone: 'eu-1a' })],
    ['/v1/services/billing/instances/b-1', instanceBody()],
  ] as const) {
    const res = await s.request('PUT', path, body)
    if (res.status !== 201) throw new Error(`seed: ${res.status}`)
  }
}

/** Everything the API shows, as text: compared before and after each bad request. */
async function snapshot(s: TestServer): Promise<string> {
  const parts = await Promise.all(
    ['/v1/services', LIST, '/v1/services/billing/instances', O1].map(async (p) => (await s.request('GET', p)).text()),
  )
  return parts.join('\n')
}

async function runCases(t: Test, cases: Case[]): Promise<void> {
  const s = await startTestServer(t)
  await seed(s)
  const before = await snapshot(s)
  const revision = s.registry.revision
  for (const c of cases) {
    const isRaw = typeof c.body === 'string' || Buffer.isBuffer(c.body)
    const body = c.body === undefined ? undefined : isRaw ? (c.body as string | Buffer) : JSON.stringify(c.body)
    const headers = { ...(c.body !== undefined && !isRaw && JSON_TYPE), ...c.headers }
    const res = await rawRequest(s.url, c.method, c.path, body, headers)
    assertError(t, res, c.status ?? 400, c.code ?? 'VALIDATION_FAILED', c.field, c.what)
    t.equal(await snapshot(s), before, `${c.what}: the state is unchanged`)
  }
  t.equal(s.registry.revision, revision, 'no change was made by any of them')
}

t.test('malformed JSON', (t) =>
  runCases(t, [
    { what: 'truncated', method: 'PUT', path: O1, body: '{"host":', headers: JSON_TYPE, field: 'body' },
    { what: 'trailing comma', method: 'PUT', path: O1, body: '{"host":"h","port":1,}', headers: JSON_TYPE, field: 'body' },
    { what: 'single quotes', method: 'PUT', path: O1, body: "{'host':'h'}", headers: JSON_TYPE, field: 'body' },
    { what: 'two documents', method: 'PUT', path: O1, body: '{}{}', headers: JSON_TYPE, field: 'body' },
    { what: 'NaN', method: 'PUT', path: O1, body: '{"host":"h","port":NaN}', headers: JSON_TYPE, field: 'body' },
    { what: 'not UTF-8', method: 'PUT', path: O1, body: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), headers: JSON_TYPE, field: 'body' },
    { what: 'empty body on PUT', method: 'PUT', path: O1, body: '', headers: JSON_TYPE, field: 'body' },
    { what: 'no body on POST', method: 'POST', path: LIST, field: 'body' },
    { what: 'null', method: 'PUT', path: O1, body: 'null', headers: JSON_TYPE, field: 'body' },
    { what: 'an array', method: 'PUT', path: O1, body: '[]', headers: JSON_TYPE, field: 'body' },
    { what: 'a string', method: 'PATCH', path: O1, body: '"up"', headers: JSON_TYPE, field: 'body' },
    { what: 'a number', method: 'POST', path: '/v1/heartbeats', body: '42', headers: JSON_TYPE, field: 'body' },
  ]),
)

t.test('wrong types', (t) =>
  runCases(t, [
    { what: 'port as a string', method: 'PUT', path: O1, body: reg({ port: '8080' }), field: 'port' },
    { what: 'host as a number', method: 'PUT', path: NEW, body: reg({ host: 42 }), field: 'host' },
    { what: 'host null', method: 'PUT', path: NEW, body: reg({ host: null }), field: 'host' },
    { what: 'no port', method: 'POST', path: LIST, body: { host: 'h' }, field: 'port' },
    { what: 'tags as a string', method: 'PUT', path: O1, body: reg({ tags: 'a' }), field: 'tags' },
    { what: 'a tag as a number', method: 'PUT', path: O1, body: reg({ tags: ['a', 1] }), field: 'tags.1' },
    { what: 'metadata value as a number', method: 'PUT', path: O1, body: reg({ metadata: { k: 1 } }), field: 'metadata.k' },
    { what: 'metadata as an array', method: 'PUT', path: O1, body: reg({ metadata: ['a'] }), field: 'metadata' },
    { what: 'weight as a boolean', method: 'PUT', path: O1, body: reg({ weight: true }), field: 'weight' },
    { what: 'status not in the enum', method: 'PUT', path: O1, body: reg({ status: 'dead' }), field: 'status' },
    { what: 'scheme not in the enum', method: 'PUT', path: O1, body: reg({ scheme: 'ftp' }), field: 'scheme' },
    { what: 'ttlSeconds as a string', method: 'PUT', path: O1, body: reg({ ttlSeconds: '30' }), field: 'ttlSeconds' },
    { what: 'zone as a number', method: 'PUT', path: O1, body: reg({ zone: 5 }), field: 'zone' },
    { what: 'check of an unknown type', method: 'PUT', path: O1, body: reg({ check: { type: 'udp' } }), field: /check/ },
    { what: 'check path without /', method: 'PUT', path: O1, body: reg({ check: { type: 'http', path: 'health' } }), field: 'check.path' },
    { what: 'patch status as a number', method: 'PATCH', path: O1, body: { status: 1 }, field: 'status' },
    { what: 'patch tags as an object', method: 'PATCH', path: O1, body: { tags: { a: 1 } }, field: 'tags' },
    { what: 'batch instances as an object', method: 'POST', path: '/v1/heartbeats', body: { instances: {} }, field: 'instances' },
    { what: 'batch id as a number', method: 'POST', path: '/v1/heartbeats', body: { instances: [{ service: 'orders', id: 1 }] }, field: 'instances.0.id' },
  ]),
)

t.test('numbers out of range', (t) =>
  runCases(t, [
    { what: 'port 0', method: 'PUT', path: O1, body: reg({ port: 0 }), field: 'port' },
    { what: 'port 65536', method: 'PUT', path: O1, body: reg({ port: 65536 }), field: 'port' },
    { what: 'port negative', method: 'PUT', path: O1, body: reg({ port: -1 }), field: 'port' },
    { what: 'port fractional', method: 'PUT', path: O1, body: reg({ port: 80.5 }), field: 'port' },
    { what: 'port 1e400 (Infinity)', method: 'PUT', path: O1, body: '{"host":"h","port":1e400}', headers: JSON_TYPE, field: 'port' },
    { what: 'port beyond 2^53', method: 'PUT', path: O1, body: '{"host":"h","port":9007199254740993}', headers: JSON_TYPE, field: 'port' },
    { what: 'port -0.0000001', method: 'PUT', path: O1, body: '{"host":"h","port":-1e-7}', headers: JSON_TYPE, field: 'port' },
    { what: 'weight 1001', method: 'PUT', path: O1, body: reg({ weight: 1001 }), field: 'weight' },
    { what: 'weight -1', method: 'PATCH', path: O1, body: { weight: -1 }, field: 'weight' },
    { what: 'ttlSeconds 0', method: 'PUT', path: O1, body: reg({ ttlSeconds: 0 }), field: 'ttlSeconds' },
    { what: 'ttlSeconds 3601', method: 'PUT', path: O1, body: reg({ ttlSeconds: 3601 }), field: 'ttlSeconds' },
    { what: 'deregisterAfterSeconds -1', method: 'PUT', path: O1, body: reg({ deregisterAfterSeconds: -1 }), field: 'deregisterAfterSeconds' },
    { what: 'deregisterAfterSeconds 86401', method: 'PUT', path: O1, body: reg({ deregisterAfterSeconds: 86401 }), field: 'deregisterAfterSeconds' },
    { what: 'check interval 0', method: 'PUT', path: O1, body: reg({ check: { type: 'tcp', intervalSeconds: 0 } }), field: 'check.intervalSeconds' },
    { what: 'check timeout over interval', method: 'PUT', path: O1, body: reg({ check: { type: 'tcp', intervalSeconds: 2, timeoutSeconds: 5 } }), field: 'check.timeoutSeconds' },
    { what: 'host empty', method: 'PUT', path: O1, body: reg({ host: '' }), field: 'host' },
    { what: 'host of 254 characters', method: 'PUT', path: O1, body: reg({ host: 'a'.repeat(254) }), field: 'host' },
    { what: 'host with a space', method: 'PUT', path: O1, body: reg({ host: 'a b' }), field: 'host' },
    { what: 'host as a URL', method: 'PUT', path: O1, body: reg({ host: 'http://x/' }), field: 'host' },
    { what: 'zone of 65 characters', method: 'PUT', path: O1, body: reg({ zone: 'z'.repeat(65) }), field: 'zone' },
    { what: 'version of 65 characters', method: 'PUT', path: O1, body: reg({ version: 'v'.repeat(65) }), field: 'version' },
    { what: '33 tags', method: 'PUT', path: O1, body: reg({ tags: Array.from({ length: 33 }, (_, i) => `t${i}`) }), field: 'tags' },
    { what: 'a tag of 65 characters', method: 'PUT', path: O1, body: reg({ tags: ['t'.repeat(65)] }), field: 'tags.0' },
    { what: 'an empty tag', method: 'PATCH', path: O1, body: { tags: [''] }, field: 'tags.0' },
    { what: '65 metadata keys', method: 'PUT', path: O1, body: reg({ metadata: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])) }), field: 'metadata' },
    { what: 'a metadata value over 8 KiB', method: 'PUT', path: O1, body: reg({ metadata: { k: 'v'.repeat(8193) } }), field: 'metadata.k' },
    { what: 'metadata over 8 KiB in all', method: 'PATCH', path: O1, body: { metadata: { a: 'v'.repeat(5000), b: 'v'.repeat(5000) } }, field: 'metadata' },
    { what: 'an empty metadata key', method: 'PUT', path: O1, body: reg({ metadata: { '': 'v' } }), field: 'metadata' },
    { what: '1001 heartbeats in a batch', method: 'POST', path: '/v1/heartbeats', body: { instances: Array.from({ length: 1001 }, () => ({ service: 'orders', id: 'o-1' })) }, field: 'instances' },
    { what: 'no heartbeat in a batch', method: 'POST', path: '/v1/heartbeats', body: { instances: [] }, field: 'instances' },
  ]),
)

t.test('unknown fields', (t) =>
  runCases(t, [
    { what: 'an unknown field', method: 'PUT', path: O1, body: reg({ foo: 1 }), field: 'foo' },
    { what: 'health is set by the server only', method: 'PUT', path: O1, body: reg({ health: 'passing' }), field: 'health' },
    { what: 'revision is set by the server only', method: 'POST', path: LIST, body: reg({ revision: 5 }), field: 'revision' },
    { what: 'a path on a tcp check', method: 'PUT', path: O1, body: reg({ check: { type: 'tcp', path: '/x' } }), field: 'path' },
    { what: 'patch of a field patch cannot change', method: 'PATCH', path: O1, body: { host: '10.0.0.9' }, field: 'host' },
    { what: 'an empty patch', method: 'PATCH', path: O1, body: {}, field: 'body' },
    { what: 'an unknown field in a batch entry', method: 'POST', path: '/v1/heartbeats', body: { instances: [{ service: 'orders', id: 'o-1', x: 1 }] }, field: 'x' },
    { what: 'an unknown field in a batch', method: 'POST', path: '/v1/heartbeats', body: { instances: [{ service: 'orders', id: 'o-1' }], extra: true }, field: 'extra' },
    { what: 'a bad name in a batch', method: 'POST', path: '/v1/heartbeats', body: { instances: [{ service: '../x', id: 'o-1' }] }, field: 'instances.0.service' },
  ]),
)

t.test('a body over 64 KiB: 413 PAYLOAD_TOO_LARGE', (t) => {
  const big = JSON.stringify(reg({ metadata: { k: 'v'.repeat(70 * 1024) } }))
  return runCases(t, [
    { what: 'with content-length', method: 'PUT', path: O1, body: big, headers: JSON_TYPE, status: 413, code: 'PAYLOAD_TOO_LARGE', field: 'body' },
    { what: 'chunked', method: 'PUT', path: O1, body: big, headers: { ...JSON_TYPE, 'transfer-encoding': 'chunked' }, status: 413, code: 'PAYLOAD_TOO_LARGE', field: 'body' },
    { what: 'POST', method: 'POST', path: LIST, body: big, headers: JSON_TYPE, status: 413, code: 'PAYLOAD_TOO_LARGE', field: 'body' },
    { what: 'batch heartbeats', method: 'POST', path: '/v1/heartbeats', body: `{"instances":[${'{"service":"a","id":"b"},'.repeat(3000)}]}`, headers: JSON_TYPE, status: 413, code: 'PAYLOAD_TOO_LARGE', field: 'body' },
    { what: 'not JSON either', method: 'PATCH', path: O1, body: Buffer.alloc(65 * 1024 + 1, 0x41), headers: JSON_TYPE, status: 413, code: 'PAYLOAD_TOO_LARGE', field: 'body' },
  ])
})

t.test('bad names in paths', (t) => {
  const long = 'a'.repeat(129)
  const cases: Case[] = []
  const routes = (service: string, id: string): Array<[string, string, unknown]> => [
    ['PUT', `/v1/services/${service}/instances/${id}`, valid],
    ['GET', `/v1/services/${service}/instances/${id}`, undefined],
    ['PATCH', `/v1/services/${service}/instances/${id}`, { weight: 1 }],
    ['DELETE', `/v1/services/${service}/instances/${id}`, undefined],
    ['PUT', `/v1/services/${service}/instances/${id}/heartbeat`, undefined],
  ]
  for (const [bad, what] of [
    [long, '129 characters'],
    ['..', "'..'"],
    ['%2e%2e', "'..' encoded"],
    ['.hidden', 'a leading dot'],
    ['-x', 'a leading dash'],
    ['caf%C3%A9', 'unicode (encoded)'],
    ['%F0%9F%98%80', 'an emoji (encoded)'],
    ['a%2Fb', 'an encoded slash'],
    ['a%00b', 'a NUL'],
    ['a%20b', 'a space'],
    ['a%0Ab', 'a newline'],
  ] as const) {
    for (const [method, path, body] of routes(bad, 'o-1')) cases.push({ what: `service ${what}: ${method} ${path.slice(0, 40)}`, method, path, body, field: 'service' })
    for (const [method, path, body] of routes('orders', bad)) cases.push({ what: `id ${what}: ${method}`, method, path, body, field: 'id' })
    cases.push({ what: `service ${what}: POST`, method: 'POST', path: `/v1/services/${bad}/instances`, body: valid, field: 'service' })
    cases.push({ what: `service ${what}: GET list`, method: 'GET', path: `/v1/services/${bad}/instances`, field: 'service' })
  }
  cases.push({ what: "'..' before /heartbeat", method: 'PUT', path: '/v1/services/orders/instances/../heartbeat', field: 'id' })
  cases.push({ what: 'id of 129 characters is refused before any lookup', method: 'DELETE', path: `/v1/services/orders/instances/${long}`, field: 'id' })
  cases.push({ what: 'an empty service', method: 'GET', path: '/v1/services//instances', field: 'service' })
  return runCases(t, cases)
})

t.test('paths the router or the HTTP parser refuses are answered in the same shape', (t) =>
  runCases(t, [
    { what: 'a bad percent-encoding', method: 'GET', path: '/v1/services/%E0%A4%A/instances', field: 'path' },
    { what: 'a lone %', method: 'PUT', path: '/v1/services/orders/instances/%', body: valid, field: 'path' },
    { what: 'a name far over the limit', method: 'GET', path: `/v1/services/${'a'.repeat(2000)}/instances`, field: 'path' },
    { what: 'raw unicode in the path', method: 'GET', path: '/v1/services/café/instances', field: 'path' },
    { what: 'an unknown route', method: 'GET', path: '/v2/services', status: 404, code: 'NOT_FOUND', field: '/v2/services' },
    { what: 'a method a route does not have', method: 'POST', path: O1, body: valid, status: 404, code: 'NOT_FOUND', field: /POST/ },
  ]),
)

t.test('bad query values', (t) => {
  const cases: Case[] = []
  const bad: Array<[string, string | RegExp]> = [
    ['healthy=yes', 'healthy'],
    ['healthy=1', 'healthy'],
    ['healthy=', 'healthy'],
    ['healthy=true&healthy=false', 'healthy'],
    ['index=-1', 'index'],
    ['index=abc', 'index'],
    ['index=1.5', 'index'],
    ['index=1e3', 'index'],
    ['index=', 'index'],
    ['index=99999999999999999999', 'index'],
    ['index=1&index=2', 'index'],
    ['index=1&wait=forever', 'wait'],
    ['index=1&wait=301s', 'wait'],
    ['index=1&wait=6m', 'wait'],
    ['index=1&wait=-1s', 'wait'],
    ['index=1&wait=1h', 'wait'],
    ['index=1&wait=', 'wait'],
    ['wait=1s&wait=2s', 'wait'],
    ['tag=', 'tag'],
    [`tag=${'t'.repeat(65)}`, 'tag'],
    [`zone=${'z'.repeat(65)}`, 'zone'],
    ['zone=a&zone=b', 'zone'],
    ['meta.=x', 'meta.'],
    [`meta.${'k'.repeat(129)}=x`, /^meta\.k{129}:/],
  ]
  for (const [q, field] of bad) cases.push({ what: `?${q.slice(0, 40)}`, method: 'GET', path: `${LIST}?${q}`, field })
  for (const [q, field] of [
    ['index=x', 'index'],
    ['index=1&wait=1y', 'wait'],
  ] as const) {
    cases.push({ what: `services ?${q}`, method: 'GET', path: `/v1/services?${q}`, field })
  }
  return runCases(t, cases)
})

t.test('unknown query parameters', (t) =>
  runCases(t, [
    { what: 'on a list', method: 'GET', path: `${LIST}?foo=1`, field: 'foo' },
    { what: 'names are case-sensitive', method: 'GET', path: `${LIST}?Healthy=true`, field: 'Healthy' },
    { what: '__proto__', method: 'GET', path: `${LIST}?__proto__=1`, field: '__proto__' },
    { what: 'a filter on the service list', method: 'GET', path: '/v1/services?healthy=true', field: 'healthy' },
    { what: 'tag on the service list', method: 'GET', path: '/v1/services?tag=x', field: 'tag' },
    { what: 'on GET one', method: 'GET', path: `${O1}?x=1`, field: 'x' },
    { what: 'on a valid PUT: not registered', method: 'PUT', path: `${NEW}?x=1`, body: valid, field: 'x' },
    { what: 'on a valid replace: not replaced', method: 'PUT', path: `${O1}?dryRun=false`, body: valid, field: 'dryRun' },
    { what: 'on POST', method: 'POST', path: `${LIST}?id=o-2`, body: valid, field: 'id' },
    { what: 'on PATCH', method: 'PATCH', path: `${O1}?x=1`, body: { weight: 1 }, field: 'x' },
    { what: 'on DELETE: not removed', method: 'DELETE', path: `${O1}?force=true`, field: 'force' },
    { what: 'on a heartbeat', method: 'PUT', path: `${O1}/heartbeat?x=1`, field: 'x' },
    { what: 'on batch heartbeats', method: 'POST', path: '/v1/heartbeats?x=1', body: { instances: [{ service: 'orders', id: 'o-1' }] }, field: 'x' },
  ]),
)

t.test('wrong content types', (t) => {
  const text = JSON.stringify(valid)
  return runCases(t, [
    { what: 'text/plain', method: 'PUT', path: O1, body: text, headers: { 'content-type': 'text/plain' }, field: 'content-type' },
    { what: 'text/plain on POST', method: 'POST', path: LIST, body: text, headers: { 'content-type': 'text/plain; charset=utf-8' }, field: 'content-type' },
    { what: 'a form', method: 'PUT', path: O1, body: 'host=h&port=1', headers: { 'content-type': 'application/x-www-form-urlencoded' }, field: 'content-type' },
    { what: 'XML', method: 'PATCH', path: O1, body: '<weight>1</weight>', headers: { 'content-type': 'application/xml' }, field: 'content-type' },
    { what: 'multipart', method: 'PUT', path: O1, body: text, headers: { 'content-type': 'multipart/form-data; boundary=x' }, field: 'content-type' },
    { what: 'no content type', method: 'PUT', path: O1, body: text, field: 'content-type' },
    { what: 'a garbage content type', method: 'POST', path: '/v1/heartbeats', body: text, headers: { 'content-type': '%%%' }, field: 'content-type' },
  ])
})

t.test('__proto__ and constructor.prototype anywhere in a body', async (t) => {
  await runCases(t, [
    { what: '__proto__ in metadata', method: 'PUT', path: O1, body: '{"host":"h","port":1,"metadata":{"__proto__":{"polluted":"yes"}}}', headers: JSON_TYPE, field: '__proto__' },
    { what: '__proto__ at the top', method: 'POST', path: LIST, body: '{"__proto__":{"polluted":"yes"},"host":"h","port":1}', headers: JSON_TYPE, field: '__proto__' },
    { what: '__proto__ behind a \\u escape', method: 'PUT', path: NEW, body: '{"host":"h","port":1,"metadata":{"\\u005f_proto__":{"polluted":"yes"}}}', headers: JSON_TYPE, field: '__proto__' },
    { what: '__proto__ in a patch', method: 'PATCH', path: O1, body: '{"metadata":{"__proto__":"x"}}', headers: JSON_TYPE, field: '__proto__' },
    { what: 'constructor.prototype', method: 'PUT', path: O1, body: '{"host":"h","port":1,"metadata":{"constructor":{"prototype":{"polluted":"yes"}}}}', headers: JSON_TYPE, field: 'constructor' },
    { what: '__proto__ in a batch', method: 'POST', path: '/v1/heartbeats', body: '{"instances":[{"service":"orders","id":"o-1","__proto__":{"x":1}}]}', headers: JSON_TYPE, field: '__proto__' },
  ])
  t.equal(({} as Record<string, unknown>).polluted, undefined, "the server's Object.prototype is untouched")
})

t.test('a metadata key that merely looks dangerous is just a key', async (t) => {
  const s = await startTestServer(t)
  const res = await s.request('PUT', O1, instanceBody({ metadata: { constructor: 'x', toString: 'y', hasOwnProperty: 'z' } }))
  t.equal(res.status, 201)
  const got = (await (await s.request('GET', `${LIST}?meta.constructor=x&meta.toString=y`)).json()) as { instances: unknown[] }
  t.equal(got.instances.length, 1)
})
