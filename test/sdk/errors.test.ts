import t from 'tap'
import {
  ClientClosedError,
  ConnectionFailedError,
  NoInstanceAvailableError,
  RegistryApiError,
  RegistryUnavailableError,
  RequestTimeoutError,
  RetryBudgetExhaustedError,
  RollcallError,
  SDK_ERROR_CODES,
  UpstreamError,
  isRetryableStatus,
  isRollcallError,
} from '../../client-sdk/errors.js'
import { Endpoint } from '../../client-sdk/endpoint.js'

const instance = { service: 'orders', id: 'o-1', host: '10.0.0.7', port: 8080 }

t.test('the catalogue of SDK codes is pinned', async (t) => {
  t.same(SDK_ERROR_CODES, [
    'NO_INSTANCE_AVAILABLE',
    'REQUEST_TIMEOUT',
    'CONNECTION_FAILED',
    'UPSTREAM_ERROR',
    'REGISTRY_UNAVAILABLE',
    'RETRY_BUDGET_EXHAUSTED',
    'CLIENT_CLOSED',
  ])
})

t.test('every error class: code, retryable, name, and a RollcallError', async (t) => {
  const cases: Array<[RollcallError, string, boolean, string]> = [
    [new NoInstanceAvailableError('orders'), 'NO_INSTANCE_AVAILABLE', false, 'NoInstanceAvailableError'],
    [new RequestTimeoutError(2000, { instance }), 'REQUEST_TIMEOUT', true, 'RequestTimeoutError'],
    [new ConnectionFailedError('connect ECONNREFUSED', { instance }), 'CONNECTION_FAILED', true, 'ConnectionFailedError'],
    [new UpstreamError(503, { instance }), 'UPSTREAM_ERROR', true, 'UpstreamError'],
    [new UpstreamError(501, { instance }), 'UPSTREAM_ERROR', false, 'UpstreamError'],
    [new RegistryUnavailableError('http://127.0.0.1:7733'), 'REGISTRY_UNAVAILABLE', true, 'RegistryUnavailableError'],
    [new RegistryApiError(400, 'VALIDATION_FAILED', 'port: must be <= 65535'), 'VALIDATION_FAILED', false, 'RegistryApiError'],
    [new RegistryApiError(503, 'UNAVAILABLE', 'shutting down'), 'UNAVAILABLE', true, 'RegistryApiError'],
    [new RetryBudgetExhaustedError({ instance }), 'RETRY_BUDGET_EXHAUSTED', false, 'RetryBudgetExhaustedError'],
    [new ClientClosedError(), 'CLIENT_CLOSED', false, 'ClientClosedError'],
  ]
  for (const [err, code, retryable, name] of cases) {
    t.ok(err instanceof RollcallError && err instanceof Error, name)
    t.ok(isRollcallError(err))
    t.equal(err.code, code, `${name} code`)
    t.equal(err.retryable, retryable, `${name} ${err.message} retryable`)
    t.equal(err.name, name)
  }
  t.notOk(isRollcallError(new Error('x')))
})

t.test('messages say which instance and why; the cause is kept', async (t) => {
  const cause = new Error('socket hang up')
  const err = new RequestTimeoutError(2000, { instance, cause })
  t.equal(err.message, 'no answer within 2000 ms [orders/o-1 (10.0.0.7:8080)]')
  t.equal(err.cause, cause)
  t.same(err.instance, instance)
  t.equal(err.timeoutMs, 2000)
  const v6 = new UpstreamError(502, { instance: { ...instance, host: '::1' } })
  t.equal(v6.message, 'upstream answered 502 [orders/o-1 ([::1]:8080)]')
  t.equal(v6.status, 502)
  const none = new NoInstanceAvailableError('billing', 'none of 3 eligible instances is routable')
  t.equal(none.message, 'no instance of billing is available: none of 3 eligible instances is routable')
  t.equal(none.instance, undefined)
  t.equal(none.service, 'billing')
  const api = new RegistryApiError(400, 'VALIDATION_FAILED', 'bad', [{ path: 'port' }])
  t.same(api.details, [{ path: 'port' }])
  t.equal(api.status, 400)
})

t.test('an error copies the instance fields rather than hold a live endpoint', async (t) => {
  const ep = new Endpoint({ id: 'o-1', service: 'orders', host: '10.0.0.7', port: 8080 })
  ep.inFlight = 4
  const err = new UpstreamError(500, { instance: ep })
  t.same(Object.keys(err.instance!).sort(), ['host', 'id', 'port', 'service'])
  ep.port = 9999
  t.equal(err.instance!.port, 8080)
})

t.test('retryable statuses', async (t) => {
  t.same(
    [200, 400, 404, 429, 500, 501, 502, 503, 504, 505, 599].filter(isRetryableStatus),
    [429, 500, 502, 503, 504, 599],
  )
})
