import type { RegistryApi } from '../registry/registry-api.js'
import type { RevisionWaiters } from './blocking.js'

/** What the route plugins share: the registry and the parked blocking queries. */
export interface AppContext {
  registry: RegistryApi
  waiters: RevisionWaiters
}
