/**
 * rollcall's client SDK: `import { RegistryClient } from 'rollcall/client'`.
 *
 * @example
 * ```ts
 * const registry = new RegistryClient({ url: 'http://127.0.0.1:7733' })
 * await registry.register({ service: 'orders', host: '10.0.0.7', port: 8080 })
 * const billing = registry.service('billing')
 * await billing.ready()
 * const inst = billing.pick()
 * ```
 */
export { RegistryClient } from './registry-client.js'
export type { RegistryClientOptions, DrainOptions } from './registry-client.js'
export { Registration } from './registration.js'
export type { RegisterOptions, RegistrationUpdate, RegistrationEvents } from './registration.js'
export { ServiceClient } from './service.js'
export type { ServiceOptions, ServiceChange, ServiceFetchInit } from './service.js'
export { Endpoint } from './endpoint.js'
export { PickSet } from './pick-set.js'
export type { PickSetOptions, PickSetStats } from './pick-set.js'
export { Breaker, BreakerState } from './breaker.js'
export type { BreakerOptions } from './breaker.js'
export { RetryBudget } from './retry-budget.js'
export { Backoff } from './backoff.js'
export { createBalancer, BALANCER_NAMES } from './balancers/index.js'
export type { Balancer, BalancerName } from './balancers/index.js'
export * from './errors.js'
export * from './protocol.js'
