import type { CheckSpec, Health } from '../../client-sdk/protocol.js'
import type { InstanceRecord } from './record.js'

/**
 * The instance lifecycle as pure functions of (instance, now). The registry calls them and
 * turns what they decide into changes; tests drive them with a manual clock.
 *
 *   passing --lease runs out / check fails--> critical --deregisterAfterSeconds--> removed
 *      ^------------- heartbeat / check passes again ---------|
 */

/** Either the lease or the check failing makes an instance critical. */
export function combineHealth(leaseOk: boolean, checkHealth: Health | null): Health {
  if (!leaseOk) return 'critical'
  return checkHealth ?? 'passing'
}

/** Whether the lease has run out at `now` and the instance does not know it yet. */
export function leaseExpired(r: InstanceRecord, now: number): boolean {
  return r.leaseOk && now >= r.expiresAt
}

/** Whether a critical instance has stayed critical long enough to be removed. */
export function removalDue(r: InstanceRecord, now: number): boolean {
  return r.health === 'critical' && now >= r.criticalSince + r.deregisterAfterSeconds * 1000
}

/**
 * Health of the check side of a new registration: unknown until the first probe answers.
 * With checks switched off (`--checks=off`) a check is accepted but ignored: `null`, so
 * health follows the lease alone.
 */
export function initialCheckHealth(check: CheckSpec | undefined, checksEnabled = true): Health | null {
  return check === undefined || !checksEnabled ? null : 'unknown'
}

/**
 * Health of the check side of an instance restored from the store. The last known check
 * health is kept across a restart (as the lease is renewed, a restart is not the
 * instance's fault); an instance stored while checks were off starts `unknown` once they
 * are on, and with checks off the check is ignored.
 */
export function restoredCheckHealth(
  check: CheckSpec | undefined,
  stored: Health | null,
  checksEnabled: boolean,
): Health | null {
  if (check === undefined || !checksEnabled) return null
  return stored ?? 'unknown'
}

/**
 * Applies one probe result to the check state, with thresholds as in Envoy: that many
 * results in a row flip the health. While health is still `unknown` (no probe answered
 * yet), the first result decides, as Envoy marks a new host healthy after one success.
 */
export function nextCheckHealth(
  current: Health,
  streak: number,
  ok: boolean,
  check: CheckSpec,
): { health: Health; streak: number } {
  // The streak counts results that disagree with the health; the deciding one agrees.
  if (current === 'unknown') return { health: ok ? 'passing' : 'critical', streak: 0 }
  const agrees = ok === (current === 'passing')
  if (agrees) return { health: current, streak: 0 }
  const next = streak + 1
  const threshold = ok ? check.healthyThreshold : check.unhealthyThreshold
  if (next >= threshold) return { health: ok ? 'passing' : 'critical', streak: 0 }
  return { health: current, streak: next }
}

/**
 * Sets the combined health of `r` and keeps `criticalSince` in step with it. Returns
 * whether the health changed.
 */
export function settleHealth(r: InstanceRecord, now: number): boolean {
  const health = combineHealth(r.leaseOk, r.checkHealth)
  if (health === r.health) return false
  if (health === 'critical') r.criticalSince = now
  else r.criticalSince = 0
  r.health = health
  return true
}
