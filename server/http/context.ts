import type { Registry } from '../registry/registry.js'
import type { RevisionWaiters } from './blocking.js'

/** What the route plugins share: the registry and the parked blocking queries. */
export interface AppContext {
  registry: Registry
  waiters: RevisionWaiters
}
