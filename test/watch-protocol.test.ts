import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import Ajv2020 from 'ajv/dist/2020.js'
import addFormats from 'ajv-formats'
import t from 'tap'
import { parse } from 'yaml'
import { ClientMessage, ServerMessage } from '../client-sdk/protocol.js'
import { instanceBody, startTestServer } from './helpers/server.js'
import { WatchClient } from './helpers/watch-client.js'

// asyncapi.yaml documents the watch protocol; these real frames must match it.
const doc = parse(readFileSync(resolve(import.meta.dirname, '../asyncapi.yaml'), 'utf8')) as {
  components: { schemas: Record<string, object> }
}
const ajv = new Ajv2020.default({ allErrors: true, strict: false })
addFormats.default(ajv)
for (const [name, schema] of Object.entries(doc.components.schemas)) {
  ajv.addSchema(JSON.parse(JSON.stringify(schema).replaceAll('#/components/schemas/', '')) as object, name)
}
const validate = (name: string, frame: unknown) => {
  const v = ajv.getSchema(name)
  if (v === undefined) throw new Error(`no schema ${name} in asyncapi.yaml`)
  const ok = v(frame) as boolean
  return ok ? 'ok' : JSON.stringify(v.errors)
}

t.test('server frames match asyncapi.yaml', async (t) => {
  const s = await startTestServer(t)
  await s.request('PUT', '/v1/services/orders/instances/o-1', instanceBody({ zone: 'eu-1a', tags: ['a'], metadata: { k: 'v' } }))
  await s.request(
    'PUT',
    '/v1/services/orders/instances/o-2',
    instanceBody({ check: { type: 'tcp', intervalSeconds: 5, timeoutSeconds: 1 }, version: '1.2.3' }),
  )
  const c = await WatchClient.open(s.url)
  t.teardown(() => c.close())
  c.subscribe(['*'])
  const snapshot = await c.next()
  t.equal(validate('Snapshot', snapshot), 'ok', 'snapshot')
  await s.request('PATCH', '/v1/services/orders/instances/o-1', { status: 'draining' })
  const upsert = await c.next()
  t.equal(validate('Change', upsert), 'ok', 'upsert change')
  await s.request('DELETE', '/v1/services/orders/instances/o-1')
  const del = await c.next()
  t.equal(validate('Change', del), 'ok', 'delete change')
  t.equal(del.type === 'change' && del.op, 'delete')
  c.send('{')
  const error = await c.next()
  t.equal(validate('Error', error), 'ok', 'error message')
  // Every frame also parses with the protocol's own zod schemas, the SDK's source of truth.
  t.equal(c.raw.length, 4)
  for (const raw of c.raw) t.ok(ServerMessage.safeParse(JSON.parse(raw)).success, `zod accepts ${raw.slice(0, 30)}`)
})

t.test('client frames: asyncapi.yaml and the server agree on what is valid', async (t) => {
  const cases: Array<[string, unknown]> = [
    ['Subscribe', { type: 'subscribe', services: ['*'] }],
    ['Subscribe', { type: 'subscribe', services: ['orders', 'billing'], since: 42 }],
    ['Subscribe', { type: 'subscribe', services: [] }],
    ['Subscribe', { type: 'subscribe', services: ['../x'] }],
    ['Subscribe', { type: 'subscribe', services: ['a'], since: -1 }],
    ['Subscribe', { type: 'subscribe', services: ['a'], extra: true }],
    ['Unsubscribe', { type: 'unsubscribe', services: ['a'] }],
    ['Unsubscribe', { type: 'unsubscribe' }],
    ['Auth', { type: 'auth', token: 'abc' }],
    ['Auth', { type: 'auth', token: '' }],
  ]
  for (const [name, frame] of cases) {
    const documented = validate(name, frame) === 'ok'
    const accepted = ClientMessage.safeParse(frame).success
    t.equal(documented, accepted, `${JSON.stringify(frame)}: documented ${documented}, accepted ${accepted}`)
  }
})
