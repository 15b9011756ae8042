import t from 'tap'
import type { Test } from 'tap'
import { RegistryApiError, RegistryClient } from '../client-sdk/index.js'
import { ADMIN, startAuthServer } from './helpers/auth.js'

/**
 * The SDK against a server with auth on: its token goes with every REST request and with
 * the watch's upgrade, and the server's refusals come back as typed, non-retryable errors.
 */

function client(t: Test, url: string, token?: string): RegistryClient {
  const c = new RegistryClient({ url, ...(token !== undefined && { token }) })
  t.teardown(() => c.close())
  return c
}

t.test('a register:orders token registers orders and is refused payments', async (t) => {
  const s = await startAuthServer(t)
  const token = await s.token(['register:orders', 'read'])
  const c = client(t, s.url, token.token)
  const me = await c.register({ service: 'orders', host: '127.0.0.1', port: 9000, ttlSeconds: 30 })
  t.ok(s.registry.get('orders', me.id), 'orders is registered')

  const err = await c.register({ service: 'payments', host: '127.0.0.1', port: 9001 }).then(
    () => undefined,
    (e: unknown) => e,
  )
  t.type(err, RegistryApiError, 'payments: a RegistryApiError')
  t.match(err, { code: 'FORBIDDEN', status: 403, retryable: false })
  t.match((err as Error).message, /register:payments/)
  t.equal(s.registry.service('payments'), undefined, 'nothing of payments was registered')

  // The watch: the token at the upgrade, a snapshot into the cache.
  const orders = c.service('orders')
  await orders.ready()
  t.same(
    orders.instances().map((i) => i.id),
    [me.id],
    'the cache holds the instance',
  )
  await c.close()
  t.equal(s.registry.get('orders', me.id), undefined, 'close() deregistered with the token')
})

t.test('no token, or a revoked one: UNAUTHENTICATED, not retried', async (t) => {
  const s = await startAuthServer(t)
  const anonymous = client(t, s.url)
  const err = await anonymous.register({ service: 'orders', host: '127.0.0.1', port: 9000 }).then(
    () => undefined,
    (e: unknown) => e,
  )
  t.match(err, { code: 'UNAUTHENTICATED', status: 401, retryable: false })

  const token = await s.token(['register:orders'])
  t.equal((await s.as(ADMIN, 'DELETE', `/v1/tokens/${token.id}`)).status, 204)
  const revoked = client(t, s.url, token.token)
  const err2 = await revoked.register({ service: 'orders', host: '127.0.0.1', port: 9000 }).then(
    () => undefined,
    (e: unknown) => e,
  )
  t.match(err2, { code: 'UNAUTHENTICATED', retryable: false })
  t.match((err2 as Error).message, /revoked/)
  t.equal(s.registry.service('orders'), undefined, 'nothing was registered')
})
