import type { Change } from './change.js'
import type { PersistedInstance } from './record.js'

/** Everything a store hands back at start. */
export interface LoadedState {
  /** The global revision: the newest change ever committed. */
  revision: number
  /**
   * Every stored instance. An iterable, so a store can hand them over one at a time: each
   * parsed row then dies young instead of 100,000 of them living at once.
   */
  instances: Iterable<PersistedInstance>
  /** The last change of every service ever seen, kept after its last instance is gone. */
  serviceRevisions: Array<[string, number]>
  /** The most recent changes, oldest first, for watch resume across a restart. */
  recentChanges: Change[]
}

/**
 * The port through which the registry persists itself. `sqlite.ts` implements it now; an
 * etcd store implements it for cluster mode. The registry holds the live state in memory
 * and hands the store each change in revision order.
 */
export interface RegistryStore {
  /** Human-readable location, for the startup log line (a file path, endpoints). */
  readonly location: string
  load(recentChanges: number): Promise<LoadedState>
  /**
   * Makes a change durable: an upsert writes `instance`, a delete removes it; both record
   * the revision and the change itself. Resolves once durable. Changes are appended in
   * revision order and become durable in that order.
   */
  append(change: Change, instance: PersistedInstance | null): Promise<void>
  close(): Promise<void>
}
