import type { PatchBody, RegisterBody } from '../../client-sdk/protocol.js'
import { initialCheckHealth, settleHealth } from '../registry/lifecycle.js'
import type { InstanceRecord } from '../registry/record.js'
import { sameJson, sameSpec } from '../registry/record.js'

/**
 * The next version of an instance, built on a copy and written to etcd; the live record
 * changes only when the write comes back through the watch. The same rules as the
 * single-node registry's `register` and `patch`, as pure functions of (record, input, now).
 */

export { newRecord } from '../registry/record.js'

/**
 * A re-registration of `existing`: it renews the lease (leaseOk again), and replaces the
 * spec when it differs. `changed` says whether the instance itself must be written (the
 * spec or the health changed); a lease renewal alone is not a change.
 */
export function reRegistered(
  existing: InstanceRecord,
  body: RegisterBody,
  now: number,
  checksEnabled: boolean,
): { next: InstanceRecord; changed: boolean } {
  const next: InstanceRecord = { ...existing, lastHeartbeatAt: now, expiresAt: now + body.ttlSeconds * 1000, leaseOk: true }
  if (sameSpec(existing, body)) return { next, changed: settleHealth(next, now) }
  // A new check, or a check of a new address, starts over (see Registry.register).
  const targetMoved = existing.host !== body.host || existing.port !== body.port || existing.scheme !== body.scheme
  if (!sameJson(existing.check, body.check) || (body.check !== undefined && targetMoved)) {
    next.check = body.check
    next.checkHealth = initialCheckHealth(body.check, checksEnabled)
    next.checkStreak = 0
    next.lastCheck = undefined
  }
  next.host = body.host
  next.port = body.port
  next.scheme = body.scheme
  next.status = body.status
  next.weight = body.weight
  next.zone = body.zone
  next.version = body.version
  next.tags = body.tags
  next.metadata = body.metadata
  next.ttlSeconds = body.ttlSeconds
  next.deregisterAfterSeconds = body.deregisterAfterSeconds
  next.updatedAt = now
  settleHealth(next, now)
  return { next, changed: true }
}

/** `r` with the patch applied, or undefined when the patch changes nothing. */
export function patched(r: InstanceRecord, patch: PatchBody, now: number): InstanceRecord | undefined {
  const next = { ...r }
  let changed = false
  if (patch.status !== undefined && patch.status !== r.status) {
    next.status = patch.status
    changed = true
  }
  if (patch.weight !== undefined && patch.weight !== r.weight) {
    next.weight = patch.weight
    changed = true
  }
  if (patch.tags !== undefined && !sameJson(patch.tags, r.tags)) {
    next.tags = patch.tags
    changed = true
  }
  if (patch.metadata !== undefined && !sameJson(patch.metadata, r.metadata)) {
    next.metadata = patch.metadata
    changed = true
  }
  if (!changed) return undefined
  next.updatedAt = now
  return next
}
