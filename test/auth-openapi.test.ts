/**
 * openapi.yaml against a server with auth on: every operation that documents 401, 403 or
 * 429 is driven to give it for real, every such answer is documented for its operation
 * and matches the spec (the error shape, WWW-Authenticate, Retry-After), and the spec's
 * token schemas accept and refuse what the protocol's zod schemas do. test/openapi.test.ts
 * does the rest with auth off.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Ajv2020 } from 'ajv/dist/2020.js'
import formats from 'ajv-formats'
import t from 'tap'
import WebSocket from 'ws'
import { parse } from 'yaml'
import { CreateTokenBody, ERROR_CODES } from '../client-sdk/protocol.js'
import type { ErrorCode } from '../client-sdk/protocol.js'
import { accessOf } from '../server/auth/policy.js'
import { ADMIN, startAuthServer } from './helpers/auth.js'
import type { AuthServer } from './helpers/auth.js'
import { instanceBody } from './helpers/server.js'

type Json = Record<string, unknown>
interface Operation {
  responses: Record<string, Json>
}
const spec = parse(readFileSync(join(import.meta.dirname, '..', 'openapi.yaml'), 'utf8')) as {
  paths: Record<string, Record<string, Operation>>
  components: Json & { schemas: Json; responses: Record<string, Json> }
}
const METHODS = ['get', 'put', 'post', 'patch', 'delete'] as const

const ajv = new Ajv2020({ strict: true, allErrors: true })
formats.default(ajv)
for (const keyword of ['discriminator', 'components', 'paths']) ajv.addKeyword(keyword)
ajv.addSchema({ $id: 'urn:rollcall:openapi', components: spec.components })
const validator = (name: string) => {
  const v = ajv.getSchema(`urn:rollcall:openapi#/components/schemas/${name}`)
  if (v === undefined) throw new Error(`no schema ${name}`)
  return v
}
const errorBody = validator('ErrorBody')

/** The response object of `status` on an operation, $ref followed. */
function documented(op: Operation, status: string): Json | undefined {
  const r = op.responses[status]
  if (r === undefined) return undefined
  const ref = r.$ref
  if (typeof ref !== 'string') return r
  return spec.components.responses[ref.split('/').pop() as string]
}

/** A concrete path and a body for a spec operation. */
function sample(template: string, method: string): { path: string; json?: unknown } {
  const path = template
    .replace('{service}', 'payments')
    .replace('{file}', 'app.js')
    .replace('/v1/tokens/{id}', '/v1/tokens/tok_0000000000000000')
    .replace('{id}', 'p-1')
  const json =
    method === 'put' && !path.endsWith('/heartbeat')
      ? instanceBody()
      : method === 'post' && path === '/v1/heartbeats'
        ? { instances: [{ service: 'payments', id: 'p-1' }] }
        : method === 'post' && path === '/v1/tokens'
          ? { scopes: ['read'] }
          : method === 'post'
            ? instanceBody()
            : method === 'patch'
              ? { weight: 1 }
              : undefined
  return { path, ...(json !== undefined && { json }) }
}

/** One answer, as the spec would have it: documented, in the error shape, with its headers. */
async function answer(s: AuthServer, token: string | undefined, template: string, method: string): Promise<{ status: number; body: unknown; headers: Headers }> {
  const { path, json } = sample(template, method)
  if (template === '/v1/watch') return upgrade(s, token)
  const res = await s.as(token, method.toUpperCase(), path, json)
  const text = await res.text()
  return { status: res.status, body: text === '' ? undefined : (JSON.parse(text) as unknown), headers: res.headers }
}

function upgrade(s: AuthServer, token: string | undefined): Promise<{ status: number; body: unknown; headers: Headers }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${s.url.replace(/^http/, 'ws')}/v1/watch`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } })
    ws.once('upgrade', () => {
      ws.terminate()
      resolve({ status: 101, body: undefined, headers: new Headers() })
    })
    ws.once('unexpected-response', (_req, res) => {
      let text = ''
      res.on('data', (d: Buffer) => (text += d.toString()))
      res.on('end', () => {
        ws.terminate()
        const headers = new Headers()
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers.set(k, v)
        resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as unknown, headers })
      })
    })
    ws.once('error', reject)
  })
}

t.test('401, 403 and 429 on every operation, as documented', async (t) => {
  const LIMIT = 40
  const s = await startAuthServer(t, { rateLimit: LIMIT })
  await s.as(ADMIN, 'PUT', '/v1/services/payments/instances/p-1', instanceBody())
  // No read, no payments, no admin: forbidden everywhere a scope is needed.
  const stranger = await s.token(['register:orders'])
  const flooder = await s.token(['admin'])
  for (let i = 0; i < LIMIT; i++) await (await s.as(flooder.token, 'GET', '/openapi.yaml')).arrayBuffer()

  const driven = new Set<string>()
  for (const [template, item] of Object.entries(spec.paths)) {
    for (const method of METHODS) {
      const op = item[method]
      if (op === undefined) continue
      const name = `${method.toUpperCase()} ${template}`
      const url = template.replace(/\{([^}]+)\}/g, ':$1')
      const access = accessOf(method.toUpperCase(), url)
      // Probes are never rate limited (server/auth/http-auth.ts).
      const limited = template !== '/healthz' && template !== '/readyz'
      const cases: Array<[string | undefined, number]> = limited ? [[flooder.token, 429]] : []
      // Without a token the watch opens and waits for an auth frame: a wrong token gets its 401.
      if (access !== 'public') cases.push([template === '/v1/watch' ? 'rct_wrong' : undefined, 401], [stranger.token, 403])
      for (const [token, status] of cases) {
        const res = await answer(s, token, template, method)
        t.equal(res.status, status, `${name} -> ${status}`)
        const response = documented(op, String(res.status))
        t.ok(response, `${name} -> ${res.status} is documented`)
        if (response === undefined) continue
        driven.add(`${name} ${res.status}`)
        t.ok(errorBody(res.body), `${name} -> ${res.status}: the error shape`)
        const code = (res.body as { error: { code: ErrorCode } }).error.code
        t.equal(ERROR_CODES[code], res.status, `${name}: ${code} is a ${res.status}`)
        const headers = (response.headers ?? {}) as Record<string, Json>
        for (const [header, h] of Object.entries(headers)) {
          const required = h.required === true || (typeof h.$ref === 'string' && (spec.components.headers as Record<string, Json>)[h.$ref.split('/').pop() as string]?.required === true)
          if (required) t.ok(res.headers.get(header), `${name} -> ${res.status}: ${header}`)
        }
        if (status === 429) t.match(res.headers.get('retry-after') ?? '', /^\d+$/, `${name}: Retry-After`)
      }
      for (const status of ['401', '403', '429']) {
        if (op.responses[status] !== undefined) t.ok(driven.has(`${name} ${status}`), `${name} -> ${status} was driven for real`)
      }
    }
  }
})

t.test('the watch: 429 past the connections per token, as documented', async (t) => {
  const s = await startAuthServer(t, { maxWatchPerToken: 1 }, { watch: { pingIntervalMs: 0 } })
  const reader = await s.token(['read'])
  const first = await upgradeOpen(s, reader.token)
  t.teardown(() => first.terminate())
  const res = await upgrade(s, reader.token)
  t.equal(res.status, 429)
  t.ok(documented(spec.paths['/v1/watch']?.get as Operation, '429'), 'documented')
  t.ok(errorBody(res.body), 'the error shape')
})

function upgradeOpen(s: AuthServer, token: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${s.url.replace(/^http/, 'ws')}/v1/watch`, { headers: { authorization: `Bearer ${token}` } })
    ws.once('open', () => resolve(ws))
    ws.once('error', reject)
  })
}

t.test('CreateTokenBody in the spec agrees with the zod schema', async (t) => {
  const v = validator('CreateTokenBody')
  for (const [label, body] of [
    ['read', { scopes: ['read'] }],
    ['all fields', { scopes: ['admin', 'register:a.*'], description: 'd', ttlSeconds: 60 }],
    ['no scopes', {}],
    ['empty scopes', { scopes: [] }],
    ['unknown scope', { scopes: ['write'] }],
    ['register without a pattern', { scopes: ['register:'] }],
    ['register: a bad first character', { scopes: ['register:-x'] }],
    ['register:*', { scopes: ['register:*'] }],
    ['33 scopes', { scopes: Array(33).fill('read') }],
    ['ttl 0', { scopes: ['read'], ttlSeconds: 0 }],
    ['ttl ten years', { scopes: ['read'], ttlSeconds: 315360000 }],
    ['ttl past ten years', { scopes: ['read'], ttlSeconds: 315360001 }],
    ['ttl 1.5', { scopes: ['read'], ttlSeconds: 1.5 }],
    ['description 257', { scopes: ['read'], description: 'd'.repeat(257) }],
    ['unknown field', { scopes: ['read'], owner: 'x' }],
  ] as const) {
    t.equal(v(body), CreateTokenBody.safeParse(body).success, label)
  }
})
