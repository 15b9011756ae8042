import type { CheckedRegistry } from '../health/scheduler.js'
import { makeChange } from '../registry/change.js'
import type { Disposable } from '../registry/disposable.js'
import { toWire } from '../registry/record.js'

/**
 * One node's share of the active checks, as its health checker sees the registry: only
 * the instances this node owns (`owns`, rendezvous hashing over the live nodes), and,
 * whenever the set of live nodes changes (`onOwnership`), a change event for every
 * instance, so the checker picks up what moved to it and drops what moved away.
 */
export function checkRota(
  source: CheckedRegistry,
  owns: (service: string, id: string) => boolean,
  onOwnership: (listener: () => void) => Disposable,
): CheckedRegistry {
  return {
    get: (service, id) => (owns(service, id) ? source.get(service, id) : undefined),
    *instances() {
      for (const r of source.instances()) if (owns(r.service, r.id)) yield r
    },
    recordCheck: (service, id, probed, outcome) => source.recordCheck(service, id, probed, outcome),
    onChange: (listener) => {
      const changes = source.onChange(listener)
      const moves = onOwnership(() => {
        // The checker reconciles by service and id: a change event per instance does it.
        for (const r of [...source.instances()]) listener(makeChange(r.revision, 'upsert', toWire(r)))
      })
      return {
        dispose: () => {
          changes.dispose()
          moves.dispose()
        },
      }
    },
  }
}
