import type { InstanceRecord, PersistedInstance } from '../registry/record.js'
import { toWire } from '../registry/record.js'

/**
 * An instance as it is kept in etcd: the wire form, the check state, and whether its lease
 * is held. Its revision is not stored: it is the key's mod revision.
 */
export interface StoredInstance extends Omit<PersistedInstance, 'revision'> {
  leaseOk: boolean
}

/** The JSON value of an instance key. */
export function toStored(r: InstanceRecord): string {
  const { revision: _revision, ...wire } = toWire(r)
  const stored: StoredInstance = { ...wire, checkHealth: r.checkHealth, criticalSince: r.criticalSince, leaseOk: r.leaseOk }
  return JSON.stringify(stored)
}

/** A record from an instance key's value and mod revision. */
export function fromStored(s: StoredInstance, revision: number): InstanceRecord {
  const lastHeartbeatAt = Date.parse(s.lastHeartbeatAt)
  return {
    service: s.service,
    id: s.id,
    host: s.host,
    port: s.port,
    scheme: s.scheme,
    status: s.status,
    weight: s.weight,
    zone: s.zone,
    version: s.version,
    tags: s.tags,
    metadata: s.metadata,
    ttlSeconds: s.ttlSeconds,
    deregisterAfterSeconds: s.deregisterAfterSeconds,
    check: s.check,
    lastCheck: s.lastCheck,
    registeredAt: Date.parse(s.registeredAt),
    updatedAt: Date.parse(s.updatedAt),
    lastHeartbeatAt,
    expiresAt: lastHeartbeatAt + s.ttlSeconds * 1000,
    leaseOk: s.leaseOk,
    checkHealth: s.checkHealth,
    checkStreak: 0,
    health: s.health,
    criticalSince: s.criticalSince,
    revision,
  }
}

/** A copy to build the next version of an instance on, leaving the live one untouched. */
export function copyRecord(r: InstanceRecord): InstanceRecord {
  return { ...r }
}
