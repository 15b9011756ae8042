/**
 * Keeps openapi.yaml true: the server's routes and the spec's paths agree both ways, real
 * answers of a running server match the documented statuses, headers and schemas, the
 * request schemas accept and refuse what the protocol's zod schemas do, and the server
 * serves the file as it is.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Ajv2020 } from 'ajv/dist/2020.js'
import type { ValidateFunction } from 'ajv/dist/2020.js'
import formats from 'ajv-formats'
import t from 'tap'
import type { Test } from 'tap'
import WebSocket from 'ws'
import { parse } from 'yaml'
import { BatchHeartbeatBody, ERROR_CODES, PatchBody, RegisterBody } from '../client-sdk/protocol.js'
import type { ErrorCode } from '../client-sdk/protocol.js'
import type { TestServer } from './helpers/server.js'
import { instanceBody, startTestServer } from './helpers/server.js'

type Json = Record<string, unknown>

interface Header {
  required?: boolean
  schema?: Json
}
interface ResponseObject {
  description: string
  headers?: Record<string, Header | { $ref: string }>
  content?: Record<string, { schema: Json }>
}
interface Operation {
  operationId: string
  parameters?: Json[]
  responses: Record<string, ResponseObject | { $ref: string }>
}
type PathItem = Partial<Record<Method, Operation>> & { parameters?: Json[] }
interface OpenApi {
  openapi: string
  info: { description?: string }
  paths: Record<string, PathItem>
  components: { schemas: Record<string, Json> } & Json
}

const METHODS = ['get', 'put', 'post', 'patch', 'delete', 'head', 'options', 'trace'] as const
type Method = (typeof METHODS)[number]

const SPEC_FILE = join(import.meta.dirname, '..', 'openapi.yaml')
const specText = readFileSync(SPEC_FILE, 'utf8')
const spec = parse(specText) as OpenApi

// ---------------------------------------------------------------------------------------
// The spec as data: JSON pointers, $refs, and ajv holding the whole document so that every
// `#/components/...` reference resolves as it does for any OpenAPI tool.

const SPEC_ID = 'urn:rollcall:openapi'

const escapePointer = (segment: string) => segment.replace(/~/g, '~0').replace(/\//g, '~1')
const unescapePointer = (segment: string) => segment.replace(/~1/g, '/').replace(/~0/g, '~')

/** The node at a local reference such as `#/components/schemas/Instance`, or undefined. */
function at(ref: string): unknown {
  if (!ref.startsWith('#/')) return undefined
  let node: unknown = spec
  for (const part of ref.slice(2).split('/').map(unescapePointer)) {
    if (typeof node !== 'object' || node === null) return undefined
    node = (node as Json)[part]
  }
  return node
}

/** Follows `$ref`s; returns the node and the JSON pointer where it lives. */
function deref<T>(node: T | { $ref: string }, pointer: string): { node: T; pointer: string } {
  let n: unknown = node
  let p = pointer
  while (typeof n === 'object' && n !== null && typeof (n as { $ref?: unknown }).$ref === 'string') {
    const ref = (n as { $ref: string }).$ref
    n = at(ref)
    if (n === undefined) throw new Error(`${p}: $ref ${ref} does not resolve`)
    p = ref.slice(1)
  }
  return { node: n as T, pointer: p }
}

const ajv = new Ajv2020({ strict: true, allErrors: true })
formats.default(ajv)
// OpenAPI's own keywords: annotations to ajv. `discriminator` only names what oneOf already
// decides; `components` and `paths` hold the schemas that references point into.
for (const keyword of ['discriminator', 'components', 'paths']) ajv.addKeyword(keyword)
ajv.addSchema({ $id: SPEC_ID, components: spec.components, paths: spec.paths })

/** The validator of the schema at `pointer` in the spec (ajv compiles it once). */
function validatorAt(pointer: string): ValidateFunction {
  const v = ajv.getSchema(`${SPEC_ID}#${pointer}`)
  if (v === undefined) throw new Error(`no schema at ${pointer}`)
  return v
}

const schemaValidator = (name: string) => validatorAt(`/components/schemas/${name}`)

const describeErrors = (v: ValidateFunction) =>
  (v.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`).join('; ')

/** The operation for `method` and a spec path template. */
function operation(method: string, template: string): { op: Operation; pointer: string } | undefined {
  const m = method.toLowerCase() as Method
  const op = spec.paths[template]?.[m]
  if (op === undefined) return undefined
  return { op, pointer: `/paths/${escapePointer(template)}/${m}` }
}

/** `:service` in a Fastify route is `{service}` in the spec. */
const toTemplate = (fastifyPath: string) => fastifyPath.replace(/:([A-Za-z0-9_]+)/g, '{$1}')

/**
 * Every `METHOD /path` the server routes, from Fastify's route tree. Fails on a line it
 * cannot read rather than dropping a route without a word. HEAD routes are the ones Fastify
 * adds for every GET; they are left out.
 */
function parseRouteTree(tree: string): { routes: Set<string>; unread: string[] } {
  const routes = new Set<string>()
  const unread: string[] = []
  const stack: string[] = []
  for (const line of tree.split('\n')) {
    if (line.trim() === '') continue
    const m = /^((?:│ {3}| {4})*)[├└]── (\S+)(?: \(([A-Z, ]+)\))?$/.exec(line)
    if (m === null) {
      unread.push(line)
      continue
    }
    const depth = (m[1] as string).length / 4
    stack.length = depth
    stack.push(m[2] as string)
    const path = toTemplate(stack.join(''))
    for (const method of (m[3] ?? '').split(',').map((s) => s.trim())) {
      if (method !== '' && method !== 'HEAD') routes.add(`${method} ${path}`)
    }
  }
  return { routes, unread }
}

function specRoutes(): Set<string> {
  const routes = new Set<string>()
  for (const [template, item] of Object.entries(spec.paths)) {
    for (const m of METHODS) if (item[m] !== undefined) routes.add(`${m.toUpperCase()} ${template}`)
  }
  return routes
}

// ---------------------------------------------------------------------------------------

t.test('the spec is well formed', async (t) => {
  t.match(spec.openapi, /^3\.1\.\d+$/, 'OpenAPI 3.1')
  t.ok(spec.info.description, 'info.description')

  // Every $ref anywhere in the document resolves.
  const refs: string[] = []
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) for (const n of node) walk(n)
    else if (typeof node === 'object' && node !== null) {
      for (const [k, v] of Object.entries(node)) {
        if (k === '$ref' && typeof v === 'string') refs.push(v)
        else walk(v)
      }
    }
  }
  walk(spec)
  t.ok(refs.length > 0)
  for (const ref of refs) t.not(at(ref), undefined, `${ref} resolves`)

  // Every named schema compiles in ajv's strict mode, which refuses unknown keywords
  // (a typo such as `maxlength` would otherwise validate nothing).
  const named = [
    'Instance',
    'RegisterBody',
    'PatchBody',
    'CheckSpec',
    'CheckResult',
    'HeartbeatResult',
    'BatchHeartbeatBody',
    'BatchHeartbeatResponse',
    'ServicesResponse',
    'ServiceSummary',
    'InstancesResponse',
    'ErrorBody',
    'CreateTokenBody',
    'CreatedToken',
    'TokenInfo',
    'TokensResponse',
  ]
  for (const name of named) t.ok(spec.components.schemas[name], `components.schemas.${name}`)
  for (const name of Object.keys(spec.components.schemas)) {
    t.doesNotThrow(() => schemaValidator(name), `${name} compiles`)
  }

  // Operation ids are unique; every {param} of a path is declared as a path parameter,
  // and every declared path parameter is in the path.
  const ids = new Set<string>()
  for (const [template, item] of Object.entries(spec.paths)) {
    const inPath = [...template.matchAll(/\{([^}]+)\}/g)].map((m) => m[1] as string).sort()
    for (const m of METHODS) {
      const op = item[m]
      if (op === undefined) continue
      t.notOk(ids.has(op.operationId), `operationId ${op.operationId} is unique`)
      ids.add(op.operationId)
      const params = [...(item.parameters ?? []), ...(op.parameters ?? [])].map(
        (p) => deref(p as { name: string; in: string }, '').node,
      )
      const declared = params.filter((p) => p.in === 'path').map((p) => p.name).sort()
      t.same(declared, inPath, `${m.toUpperCase()} ${template}: path parameters`)
      t.ok(Object.keys(op.responses).length > 0, `${m.toUpperCase()} ${template}: responses`)
    }
  }
})

t.test('the error code enum is the closed list of ERROR_CODES', async (t) => {
  const inSpec = (spec.components.schemas.ErrorCode as { enum: string[] }).enum
  for (const code of Object.keys(ERROR_CODES)) t.ok(inSpec.includes(code), `${code} is in the spec`)
  for (const code of inSpec) t.ok(Object.hasOwn(ERROR_CODES, code), `${code} is in ERROR_CODES`)
  // ErrorBody's code is that enum.
  const v = schemaValidator('ErrorBody')
  t.ok(v({ error: { code: 'INSTANCE_NOT_FOUND', message: 'x' } }))
  t.notOk(v({ error: { code: 'TEAPOT', message: 'x' } }))
})

t.test('the server routes exactly the paths and methods of the spec', async (t) => {
  const s = await startTestServer(t)
  const tree = s.app.printRoutes({ commonPrefix: false })
  const { routes, unread } = parseRouteTree(tree)
  t.same(unread, [], 'every line of the route tree is understood')
  t.ok(routes.has('GET /v1/services'), 'the parser finds routes')

  const documented = specRoutes()
  for (const route of routes) t.ok(documented.has(route), `${route} is in openapi.yaml`)
  for (const route of documented) t.ok(routes.has(route), `${route} of openapi.yaml is a route of the server`)
  // The other direction through Fastify itself, independent of the tree parser.
  for (const route of documented) {
    const [method, template] = route.split(' ') as [string, string]
    const url = template.replace(/\{([^}]+)\}/g, ':$1')
    t.ok(s.app.hasRoute({ method: method as 'GET', url }), `hasRoute ${route}`)
  }
})

t.test('the server serves openapi.yaml as it is', async (t) => {
  const s = await startTestServer(t)
  const res = await s.request('GET', '/openapi.yaml')
  t.equal(res.status, 200)
  t.match(res.headers.get('content-type') ?? '', /^application\/yaml/)
  t.equal(await res.text(), specText)
})

// ---------------------------------------------------------------------------------------
// Real answers against the spec.

/** Which `METHOD template status` answers were checked, to prove every one was driven. */
type Seen = Set<string>

/**
 * Checks one real answer against the spec: its status is documented for the operation,
 * its documented headers are there and well formed, its content type is documented and its
 * body matches that content's schema. An error body's code must map to the status.
 * Returns the parsed JSON body (or the text, or undefined when there is none).
 */
async function conforms(t: Test, seen: Seen, method: string, template: string, res: Response): Promise<unknown> {
  const name = `${method} ${template} -> ${res.status}`
  const found = operation(method, template)
  if (found === undefined) {
    t.fail(`${method} ${template} is not in the spec`)
    return undefined
  }
  const status = String(res.status)
  const documented = found.op.responses[status]
  const text = await res.text()
  if (documented === undefined) {
    t.fail(`${name}: status not documented (body ${text.slice(0, 200)})`)
    return undefined
  }
  seen.add(`${method} ${template} ${status}`)
  const { node: response, pointer } = deref<ResponseObject>(documented, `${found.pointer}/responses/${status}`)

  for (const [header, h] of Object.entries(response.headers ?? {})) {
    const { node: documentedHeader, pointer: hp } = deref<Header>(h, `${pointer}/headers/${escapePointer(header)}`)
    const value = res.headers.get(header)
    if (documentedHeader.required === true) t.ok(value !== null, `${name}: header ${header}`)
    if (value !== null && documentedHeader.schema !== undefined) {
      const v = validatorAt(`${hp}/schema`)
      t.ok(v(value), `${name}: header ${header}: ${value} ${describeErrors(v)}`)
    }
  }

  if (response.content === undefined) {
    t.equal(text, '', `${name}: no body`)
    return undefined
  }
  const type = (res.headers.get('content-type') ?? '').split(';')[0]?.trim() ?? ''
  if (!Object.hasOwn(response.content, type)) {
    t.fail(`${name}: content type ${type} not documented`)
    return undefined
  }
  const body: unknown = type === 'application/json' ? JSON.parse(text) : text
  const v = validatorAt(`${pointer}/content/${escapePointer(type)}/schema`)
  t.ok(v(body), `${name}: body matches the schema ${describeErrors(v)}`)
  const code = (body as { error?: { code?: string } } | undefined)?.error?.code
  if (res.status >= 400 && code !== undefined) {
    t.equal(ERROR_CODES[code as ErrorCode], res.status, `${name}: ${code} is a ${res.status}`)
  }
  return body
}

/** A body larger than the 64 KiB limit. */
const oversize = JSON.stringify({ host: 'h', port: 1, metadata: { big: 'x'.repeat(70_000) } })

t.test('real answers match the spec', async (t) => {
  // Checks off: a probe's first result is a change, which would move the revision between
  // taking an ETag and asking with If-None-Match. The next test covers a real check result.
  const s: TestServer = await startTestServer(t, { checks: false })
  const seen: Seen = new Set()
  const call = async (method: string, template: string, path: string, json?: unknown, headers?: Record<string, string>) =>
    conforms(t, seen, method, template, await s.request(method, path, json, headers))

  const ONE = '/v1/services/{service}/instances/{id}'
  const LIST = '/v1/services/{service}/instances'
  const BEAT = '/v1/services/{service}/instances/{id}/heartbeat'
  const full = instanceBody({
    scheme: 'https',
    zone: 'eu-1a',
    version: '1.2.0',
    tags: ['blue', 'api'],
    metadata: { build: '42' },
    ttlSeconds: 60,
    check: { type: 'http', path: '/health' },
  })

  // Register, replace, register with a server-made id.
  const created = (await call('PUT', ONE, '/v1/services/orders/instances/o-1', full)) as { check?: unknown }
  t.same(created.check, { type: 'http', path: '/health', intervalSeconds: 10, timeoutSeconds: 2, healthyThreshold: 2, unhealthyThreshold: 3 })
  await call('PUT', ONE, '/v1/services/orders/instances/o-1', full)
  await call('PUT', ONE, '/v1/services/orders/instances/o-2', instanceBody({ check: { type: 'tcp' }, status: 'starting' }))
  const post = await s.request('POST', '/v1/services/orders/instances', instanceBody({ weight: 0 }))
  const location = post.headers.get('location')
  await conforms(t, seen, 'POST', LIST, post)
  t.ok(location)
  await call('GET', ONE, location ?? '/missing')

  // Bad registrations: a field out of range, an unknown field, malformed JSON, a bad
  // name, an oversize body.
  await call('PUT', ONE, '/v1/services/orders/instances/o-1', instanceBody({ port: 65536 }))
  await call('POST', LIST, '/v1/services/orders/instances', instanceBody({ colour: 'red' }))
  await call('PUT', ONE, '/v1/services/orders/instances/o-9', '{"host":')
  await call('POST', LIST, '/v1/services/-orders/instances', instanceBody())
  await call('PUT', ONE, '/v1/services/orders/instances/o-9', oversize)
  await call('POST', LIST, '/v1/services/orders/instances', oversize)

  // Heartbeats, one and many.
  await call('PUT', BEAT, '/v1/services/orders/instances/o-1/heartbeat')
  await call('PUT', BEAT, '/v1/services/orders/instances/nope/heartbeat')
  await call('PUT', BEAT, '/v1/services/orders/instances/bad!/heartbeat')
  await call('PUT', BEAT, '/v1/services/orders/instances/o-1/heartbeat', oversize)
  const batch = (await call('POST', '/v1/heartbeats', '/v1/heartbeats', {
    instances: [
      { service: 'orders', id: 'o-1' },
      { service: 'orders', id: 'nope' },
    ],
  })) as { results: Array<{ ok: boolean }> }
  t.same(
    batch.results.map((r) => r.ok),
    [true, false],
  )
  await call('POST', '/v1/heartbeats', '/v1/heartbeats', { instances: [] })
  await call('POST', '/v1/heartbeats', '/v1/heartbeats', oversize)

  // Patch.
  await call('PATCH', ONE, '/v1/services/orders/instances/o-1', { status: 'draining', weight: 5, tags: ['blue'] })
  await call('PATCH', ONE, '/v1/services/orders/instances/nope', { weight: 1 })
  await call('PATCH', ONE, '/v1/services/orders/instances/o-1', {})
  await call('PATCH', ONE, '/v1/services/orders/instances/o-1', oversize)

  // One instance.
  await call('GET', ONE, '/v1/services/orders/instances/o-1')
  await call('GET', ONE, '/v1/services/orders/instances/nope')
  await call('GET', ONE, '/v1/services/orders/instances/.dot')

  // One service's instances: filters, blocking, ETag and 304.
  const list = await s.request('GET', '/v1/services/orders/instances')
  const etag = list.headers.get('etag') ?? ''
  const listed = (await conforms(t, seen, 'GET', LIST, list)) as { revision: number; instances: unknown[] }
  t.equal(listed.instances.length, 3)
  await call('GET', LIST, '/v1/services/orders/instances?healthy=true&tag=blue&tag=api&zone=eu-1a&meta.build=42')
  await call('GET', LIST, '/v1/services/never-seen/instances')
  await call('GET', LIST, `/v1/services/orders/instances?index=${listed.revision - 1}&wait=5s`)
  await call('GET', LIST, `/v1/services/orders/instances?index=${listed.revision}&wait=1ms`)
  await call('GET', LIST, '/v1/services/orders/instances', undefined, { 'if-none-match': etag })
  await call('GET', LIST, '/v1/services/orders/instances?healthy=yes')
  await call('GET', LIST, '/v1/services/orders/instances?colour=red')

  // Every service.
  const services = await s.request('GET', '/v1/services')
  const servicesEtag = services.headers.get('etag') ?? ''
  await conforms(t, seen, 'GET', '/v1/services', services)
  await call('GET', '/v1/services', '/v1/services', undefined, { 'if-none-match': servicesEtag })
  await call('GET', '/v1/services', '/v1/services?wait=forever')

  // Deregister.
  await call('DELETE', ONE, '/v1/services/orders/instances/o-2')
  await call('DELETE', ONE, '/v1/services/orders/instances/o-2')
  await call('DELETE', ONE, `/v1/services/${'x'.repeat(129)}/instances/o-2`)
  await call('DELETE', ONE, '/v1/services/orders/instances/o-1', oversize)

  // Operations.
  await call('GET', '/healthz', '/healthz')
  await call('GET', '/readyz', '/readyz')
  await call('GET', '/metrics', '/metrics')
  await call('GET', '/openapi.yaml', '/openapi.yaml')

  // The dashboard: the page, a file, a file not modified, a file that is not there.
  await call('GET', '/ui', '/ui')
  await call('GET', '/ui', '/ui', undefined, { 'if-none-match': (await s.request('GET', '/ui')).headers.get('etag') ?? '' })
  const script = await s.request('GET', '/ui/app.js')
  const scriptEtag = script.headers.get('etag') ?? ''
  await conforms(t, seen, 'GET', '/ui/{file}', script)
  await call('GET', '/ui/{file}', '/ui/app.js', undefined, { 'if-none-match': scriptEtag })
  await call('GET', '/ui/{file}', '/ui/nope.js')

  // Tokens, with auth off (anyone may); test/auth-openapi.test.ts drives 401, 403 and 429.
  const token = (await call('POST', '/v1/tokens', '/v1/tokens', { scopes: ['read', 'register:team-a.*'], description: 'spec', ttlSeconds: 60 })) as { id: string }
  await call('POST', '/v1/tokens', '/v1/tokens', { scopes: ['write'] })
  await call('POST', '/v1/tokens', '/v1/tokens', oversize)
  await call('GET', '/v1/tokens', '/v1/tokens?all=1')
  await call('DELETE', '/v1/tokens/{id}', `/v1/tokens/${token.id}`)
  await call('DELETE', '/v1/tokens/{id}', '/v1/tokens/tok_0000000000000000')
  await call('DELETE', '/v1/tokens/{id}', `/v1/tokens/${token.id}?force=1`)
  const tokens = (await call('GET', '/v1/tokens', '/v1/tokens')) as { tokens: Array<{ revokedAt?: string }> }
  t.ok(tokens.tokens[0]?.revokedAt, 'a revoked token is listed with revokedAt')

  // The watch: a plain GET, then a real WebSocket upgrade.
  await call('GET', '/v1/watch', '/v1/watch')
  const upgrade = await new Promise<number | Error>((resolve) => {
    const ws = new WebSocket(`${s.url.replace(/^http/, 'ws')}/v1/watch`)
    ws.once('upgrade', (res) => {
      resolve(res.statusCode ?? 0)
      ws.close()
    })
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0)
      res.resume()
      ws.terminate()
    })
    ws.once('error', (err) => resolve(err))
  })
  if (upgrade instanceof Error) t.fail(`GET /v1/watch: ${upgrade.message}`)
  else {
    const documented = operation('GET', '/v1/watch')?.op.responses[String(upgrade)]
    t.ok(documented, `GET /v1/watch -> ${upgrade}: status documented`)
    if (documented !== undefined) seen.add(`GET /v1/watch ${upgrade}`)
  }

  // Every documented answer was driven for real, but for the ones a healthy server cannot
  // be made to give from outside: 500 (a bug) and 503 (shutting down, or a failed store).
  for (const route of specRoutes()) {
    const [method, template] = route.split(' ') as [string, string]
    const op = operation(method, template)?.op
    for (const status of Object.keys(op?.responses ?? {})) {
      if (status === '500' || status === '503') continue
      // Answers of auth and limits, which this server (auth off) cannot give: test/auth-openapi.test.ts.
      if (status === '401' || status === '403' || status === '429') continue
      t.ok(seen.has(`${route} ${status}`), `${route} -> ${status} was checked against a real answer`)
    }
  }
})

t.test('an instance with a real check result matches the spec', async (t) => {
  const s = await startTestServer(t, { checks: true })
  const port = Number(new URL(s.url).port)
  // The server probes its own /healthz: the first result decides the health, a change.
  const passing = new Promise<void>((resolve) => {
    const sub = s.registry.onChange((change) => {
      if (change.instance.id === 'self' && change.instance.health === 'passing') {
        sub.dispose()
        resolve()
      }
    })
  })
  const body = instanceBody({ port, check: { type: 'http', path: '/healthz', intervalSeconds: 1, timeoutSeconds: 1 } })
  const put = await s.request('PUT', '/v1/services/rollcall/instances/self', body)
  t.equal(put.status, 201)
  await passing
  const res = await s.request('GET', '/v1/services/rollcall/instances/self')
  const instance = (await conforms(t, new Set(), 'GET', '/v1/services/{service}/instances/{id}', res)) as Json
  t.match(instance, { health: 'passing', lastCheck: { ok: true, statusCode: 200 } })
})

// ---------------------------------------------------------------------------------------
// Request schemas against the protocol's zod schemas: both accept and refuse the same.

/** Checks that ajv (the spec) and zod (the server) agree on every body. */
function agree(
  t: Test,
  schemaName: string,
  zod: { safeParse(v: unknown): { success: boolean } },
  cases: Array<[string, unknown]>,
): void {
  const v = schemaValidator(schemaName)
  for (const [label, body] of cases) {
    const byZod = zod.safeParse(body).success
    const bySpec = v(body)
    t.equal(bySpec, byZod, `${schemaName} ${label}: spec ${bySpec ? 'accepts' : 'refuses'}, zod ${byZod ? 'accepts' : 'refuses'} ${describeErrors(v)}`)
  }
}

const keys = (n: number, value = 'v') => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, value]))

t.test('RegisterBody in the spec agrees with the zod schema', async (t) => {
  const b = (o: Record<string, unknown>) => instanceBody(o)
  const without = (key: string) => {
    const body = instanceBody()
    delete body[key]
    return body
  }
  agree(t, 'RegisterBody', RegisterBody, [
    ['minimal', b({})],
    ['every field', b({ scheme: 'grpc', status: 'starting', weight: 7, zone: 'z', version: 'v', tags: ['a'], metadata: { a: 'b' }, ttlSeconds: 5, deregisterAfterSeconds: 0, check: { type: 'tcp', intervalSeconds: 5, timeoutSeconds: 5 } })],
    ['no host', without('host')],
    ['no port', without('port')],
    ['unknown field', b({ colour: 'red' })],
    ['port 0', b({ port: 0 })],
    ['port 1', b({ port: 1 })],
    ['port 65535', b({ port: 65535 })],
    ['port 65536', b({ port: 65536 })],
    ['port 80.5', b({ port: 80.5 })],
    ['port "80"', b({ port: '80' })],
    ['host empty', b({ host: '' })],
    ['host 253', b({ host: 'h'.repeat(253) })],
    ['host 254', b({ host: 'h'.repeat(254) })],
    ['host IPv6', b({ host: '[fe80::1%eth0]' })],
    ['host URL', b({ host: 'http://x/y' })],
    ['host space', b({ host: 'a b' })],
    ['scheme ftp', b({ scheme: 'ftp' })],
    ['status down', b({ status: 'down' })],
    ['weight -1', b({ weight: -1 })],
    ['weight 0', b({ weight: 0 })],
    ['weight 1000', b({ weight: 1000 })],
    ['weight 1001', b({ weight: 1001 })],
    ['zone 64', b({ zone: 'z'.repeat(64) })],
    ['zone 65', b({ zone: 'z'.repeat(65) })],
    ['zone empty', b({ zone: '' })],
    ['version 65', b({ version: 'v'.repeat(65) })],
    ['tags 32', b({ tags: Array.from({ length: 32 }, (_, i) => `t${i}`) })],
    ['tags 33', b({ tags: Array.from({ length: 33 }, (_, i) => `t${i}`) })],
    ['tag 64', b({ tags: ['t'.repeat(64)] })],
    ['tag 65', b({ tags: ['t'.repeat(65)] })],
    ['tag empty', b({ tags: [''] })],
    ['tags not an array', b({ tags: 'a' })],
    ['metadata 64 keys', b({ metadata: keys(64) })],
    ['metadata 65 keys', b({ metadata: keys(65) })],
    ['metadata empty key', b({ metadata: { '': 'v' } })],
    ['metadata key 129', b({ metadata: { ['k'.repeat(129)]: 'v' } })],
    ['metadata number value', b({ metadata: { a: 1 } })],
    ['ttlSeconds 0', b({ ttlSeconds: 0 })],
    ['ttlSeconds 1', b({ ttlSeconds: 1 })],
    ['ttlSeconds 3600', b({ ttlSeconds: 3600 })],
    ['ttlSeconds 3601', b({ ttlSeconds: 3601 })],
    ['deregisterAfterSeconds -1', b({ deregisterAfterSeconds: -1 })],
    ['deregisterAfterSeconds 86400', b({ deregisterAfterSeconds: 86400 })],
    ['deregisterAfterSeconds 86401', b({ deregisterAfterSeconds: 86401 })],
    ['check http defaults', b({ check: { type: 'http' } })],
    ['check tcp defaults', b({ check: { type: 'tcp' } })],
    ['check udp', b({ check: { type: 'udp' } })],
    ['check no type', b({ check: { path: '/' } })],
    ['check tcp with path', b({ check: { type: 'tcp', path: '/' } })],
    ['check unknown field', b({ check: { type: 'http', method: 'POST' } })],
    ['check path relative', b({ check: { type: 'http', path: 'health' } })],
    ['check path with space', b({ check: { type: 'http', path: '/a b' } })],
    ['check path 1024', b({ check: { type: 'http', path: '/' + 'p'.repeat(1023) } })],
    ['check path 1025', b({ check: { type: 'http', path: '/' + 'p'.repeat(1024) } })],
    ['check interval 0', b({ check: { type: 'http', intervalSeconds: 0 } })],
    ['check interval 3601', b({ check: { type: 'tcp', intervalSeconds: 3601 } })],
    ['check timeout 301', b({ check: { type: 'tcp', timeoutSeconds: 301, intervalSeconds: 3600 } })],
    ['check healthyThreshold 100', b({ check: { type: 'tcp', healthyThreshold: 100 } })],
    ['check unhealthyThreshold 101', b({ check: { type: 'tcp', unhealthyThreshold: 101 } })],
    ['null', null],
    ['array', [b({})]],
  ])
  // Two refinements JSON Schema cannot state, written in the spec's descriptions instead:
  // the server refuses these, the schema lets them through. If the spec ever learns to say
  // them, this test says so.
  const v = schemaValidator('RegisterBody')
  const timeoutOverInterval = b({ check: { type: 'tcp', intervalSeconds: 2, timeoutSeconds: 3 } })
  const metadataOver8k = b({ metadata: { a: 'x'.repeat(5000), b: 'x'.repeat(5000) } })
  t.notOk(RegisterBody.safeParse(timeoutOverInterval).success, 'zod: timeoutSeconds <= intervalSeconds')
  t.notOk(RegisterBody.safeParse(metadataOver8k).success, 'zod: metadata <= 8192 characters')
  t.ok(v(timeoutOverInterval) && v(metadataOver8k), 'the spec leaves both to its descriptions')
})

t.test('PatchBody and BatchHeartbeatBody in the spec agree with the zod schemas', async (t) => {
  agree(t, 'PatchBody', PatchBody, [
    ['empty', {}],
    ['status', { status: 'draining' }],
    ['status bad', { status: 'gone' }],
    ['weight 1000', { weight: 1000 }],
    ['weight 1001', { weight: 1001 }],
    ['tags 33', { tags: Array.from({ length: 33 }, (_, i) => `t${i}`) }],
    ['metadata 65 keys', { metadata: keys(65) }],
    ['all four', { status: 'up', weight: 0, tags: [], metadata: {} }],
    ['host is not patchable', { host: 'x' }],
    ['unknown field with a known one', { weight: 1, colour: 'red' }],
  ])
  const one = { service: 'orders', id: 'o-1' }
  agree(t, 'BatchHeartbeatBody', BatchHeartbeatBody, [
    ['one', { instances: [one] }],
    ['none', { instances: [] }],
    ['1000', { instances: Array.from({ length: 1000 }, () => one) }],
    ['1001', { instances: Array.from({ length: 1001 }, () => one) }],
    ['bad service name', { instances: [{ service: '-x', id: 'a' }] }],
    ['id 128', { instances: [{ service: 'a', id: 'i'.repeat(128) }] }],
    ['id 129', { instances: [{ service: 'a', id: 'i'.repeat(129) }] }],
    ['unknown field in an item', { instances: [{ ...one, zone: 'z' }] }],
    ['unknown field', { instances: [one], all: true }],
    ['no instances', {}],
  ])
})
