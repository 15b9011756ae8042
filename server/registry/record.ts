import { initialCheckHealth } from './lifecycle.js'
import type {
  CheckResult,
  CheckSpec,
  Health,
  Instance,
  InstanceStatus,
  RegisterBody,
  Scheme,
} from '../../client-sdk/protocol.js'

/**
 * The registry's own, mutable form of an instance. Times are epoch milliseconds so the
 * heartbeat path renews a lease with two number stores and no allocation; `toWire` makes
 * the API's form.
 */
export interface InstanceRecord {
  readonly service: string
  readonly id: string
  host: string
  port: number
  scheme: Scheme
  status: InstanceStatus
  weight: number
  zone: string | undefined
  version: string | undefined
  tags: string[]
  metadata: Record<string, string>
  ttlSeconds: number
  deregisterAfterSeconds: number
  check: CheckSpec | undefined
  lastCheck: CheckResult | undefined
  registeredAt: number
  updatedAt: number
  lastHeartbeatAt: number
  expiresAt: number
  /** False once the lease ran out; a heartbeat sets it again. */
  leaseOk: boolean
  /** Health from the active check; `null` when the instance has none. */
  checkHealth: Health | null
  /** Consecutive check results of the same outcome, for the thresholds. */
  checkStreak: number
  /** The combination of the lease and the check: what the API shows. */
  health: Health
  /** When health last became critical; 0 while it is not. */
  criticalSince: number
  revision: number
}

/** What the store keeps of an instance: the wire form plus the check state. */
export interface PersistedInstance extends Instance {
  checkHealth: Health | null
  criticalSince: number
}

const iso = (ms: number) => new Date(ms).toISOString()

/** The API's form of an instance. Optional fields are left out rather than set to null. */
export function toWire(r: InstanceRecord): Instance {
  const out: Instance = {
    service: r.service,
    id: r.id,
    host: r.host,
    port: r.port,
    scheme: r.scheme,
    status: r.status,
    health: r.health,
    weight: r.weight,
    tags: r.tags,
    metadata: r.metadata,
    ttlSeconds: r.ttlSeconds,
    deregisterAfterSeconds: r.deregisterAfterSeconds,
    registeredAt: iso(r.registeredAt),
    updatedAt: iso(r.updatedAt),
    lastHeartbeatAt: iso(r.lastHeartbeatAt),
    expiresAt: iso(r.expiresAt),
    revision: r.revision,
  }
  if (r.zone !== undefined) out.zone = r.zone
  if (r.version !== undefined) out.version = r.version
  if (r.check !== undefined) out.check = r.check
  if (r.lastCheck !== undefined) out.lastCheck = r.lastCheck
  return out
}

export function toPersisted(r: InstanceRecord, wire: Instance = toWire(r)): PersistedInstance {
  return { ...wire, checkHealth: r.checkHealth, criticalSince: r.criticalSince }
}

/** Rebuilds a record from the store, with a fresh lease: a restart is not the instance's fault. */
export function fromPersisted(p: PersistedInstance, now: number): InstanceRecord {
  return {
    service: p.service,
    id: p.id,
    host: p.host,
    port: p.port,
    scheme: p.scheme,
    status: p.status,
    weight: p.weight,
    zone: p.zone,
    version: p.version,
    tags: p.tags,
    metadata: p.metadata,
    ttlSeconds: p.ttlSeconds,
    deregisterAfterSeconds: p.deregisterAfterSeconds,
    check: p.check,
    lastCheck: p.lastCheck,
    registeredAt: Date.parse(p.registeredAt),
    updatedAt: Date.parse(p.updatedAt),
    lastHeartbeatAt: Date.parse(p.lastHeartbeatAt),
    expiresAt: now + p.ttlSeconds * 1000,
    leaseOk: true,
    checkHealth: p.checkHealth,
    checkStreak: 0,
    health: p.health,
    criticalSince: p.criticalSince,
    revision: p.revision,
  }
}

/** The fields a registration sets; equal specs make a re-registration a no-op. */
export function sameSpec(r: InstanceRecord, b: RegisterBody): boolean {
  return (
    r.host === b.host &&
    r.port === b.port &&
    r.scheme === b.scheme &&
    r.status === b.status &&
    r.weight === b.weight &&
    r.zone === b.zone &&
    r.version === b.version &&
    r.ttlSeconds === b.ttlSeconds &&
    r.deregisterAfterSeconds === b.deregisterAfterSeconds &&
    sameJson(r.tags, b.tags) &&
    sameJson(r.metadata, b.metadata) &&
    sameJson(r.check, b.check)
  )
}

/** Deep equality of small JSON values whose key order was made by the same schema. */
export function sameJson(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b)
}

/** A new instance from its registration: its check (if any) unknown until probed, its lease fresh. */
export function newRecord(service: string, id: string, body: RegisterBody, now: number, checksEnabled: boolean): InstanceRecord {
  const checkHealth = initialCheckHealth(body.check, checksEnabled)
  return {
    service,
    id,
    host: body.host,
    port: body.port,
    scheme: body.scheme,
    status: body.status,
    weight: body.weight,
    zone: body.zone,
    version: body.version,
    tags: body.tags,
    metadata: body.metadata,
    ttlSeconds: body.ttlSeconds,
    deregisterAfterSeconds: body.deregisterAfterSeconds,
    check: body.check,
    lastCheck: undefined,
    registeredAt: now,
    updatedAt: now,
    lastHeartbeatAt: now,
    expiresAt: now + body.ttlSeconds * 1000,
    leaseOk: true,
    checkHealth,
    checkStreak: 0,
    health: checkHealth ?? 'passing',
    criticalSince: 0,
    revision: 0,
  }
}
