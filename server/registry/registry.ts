import { randomUUID } from 'node:crypto'
import type { Health, PatchBody, RegisterBody, ServiceSummary } from '../../client-sdk/protocol.js'
import { isRoutable } from '../../client-sdk/protocol.js'
import type { Change } from './change.js'
import { makeChange } from './change.js'
import { ChangeLog } from './change-log.js'
import type { Clock } from './clock.js'
import { systemClock } from './clock.js'
import type { Disposable } from './disposable.js'
import { Emitter } from './disposable.js'
import { RegistryError, instanceNotFound } from './errors.js'
import {
  initialCheckHealth,
  leaseExpired,
  nextCheckHealth,
  removalDue,
  restoredCheckHealth,
  settleHealth,
} from './lifecycle.js'
import type { RegistryStore } from './ports.js'
import type { RegistryApi } from './registry-api.js'
import type { InstanceRecord } from './record.js'
import { fromPersisted, newRecord, sameJson, sameSpec, toPersisted, toWire } from './record.js'

const unavailable = () => new RegistryError('UNAVAILABLE', 'the registry cannot write to its store; it must be restarted')

/** Options of {@link Registry.open}, with their defaults. */
export interface RegistryOptions {
  store: RegistryStore
  /** Default: the wall clock. */
  clock?: Clock
  /** How many recent changes are kept for watch resume. Default 10,000. */
  changeLogSize?: number
  /**
   * Expiry is suspended when more than `threshold` (0..1, default 0.5) of all instances
   * would expire in one sweep, as Eureka's self-preservation, but only once at least
   * `minInstances` (default 10) are registered, so a small registry expires normally.
   */
  selfPreservation?: { threshold?: number; minInstances?: number; windowMs?: number }
  /** Makes ids for POST registrations. Default: random UUIDs. */
  newId?: () => string
  /**
   * Whether active checks run (`--checks`). Default true. When false, registrations may
   * still carry a check, but it is ignored: health follows the lease alone.
   */
  checksEnabled?: boolean
}

/** One service: its instances and the revision of its last change. */
export interface ServiceEntry {
  readonly instances: Map<string, InstanceRecord>
  revision: number
}

/** The outcome of a registration. `committed` resolves once the change is durable. */
export interface Registration {
  record: InstanceRecord
  created: boolean
  committed: Promise<void>
}

/** The outcome of an update: `committed` resolves once the change is durable. */
export interface Update {
  record: InstanceRecord
  committed: Promise<void>
}

/** What one sweep did. */
export interface SweepReport {
  expired: number
  removed: number
  /** Instances whose expiry self-preservation held back. */
  held: number
  selfPreservation: boolean
}

/** A probe's outcome, as the health checker reports it. */
export interface ProbeOutcome {
  ok: boolean
  statusCode?: number
  error?: string
  durationMs: number
}

/**
 * The registry: every instance of every service, their leases, the global revision and the
 * feed of changes. Pure TypeScript with no timers: the server calls {@link sweep} on an
 * interval, and tests call it after moving a manual clock.
 *
 * Writes change memory at once (so a heartbeat right after a registration finds it) and are
 * handed to the store in revision order; a change is published to listeners, and its
 * caller acknowledged, only after the store made it durable.
 *
 * @example
 * ```ts
 * const registry = await Registry.open({ store })
 * const { record, committed } = registry.register('orders', 'o-1', RegisterBody.parse({ host: '10.0.0.7', port: 8080 }))
 * await committed
 * registry.heartbeat('orders', 'o-1')
 * ```
 */
export class Registry implements RegistryApi {
  readonly #store: RegistryStore
  readonly #clock: Clock
  readonly #log: ChangeLog
  readonly #spThreshold: number
  readonly #spMinInstances: number
  readonly #spWindowMs: number
  /** When each recent lease expiry happened, oldest first, for the self-preservation window. */
  #recentExpiries: number[] = []
  readonly #newId: () => string
  readonly #checksEnabled: boolean
  readonly #services = new Map<string, ServiceEntry>()
  readonly #changes = new Emitter<Change>()
  readonly #fatal = new Emitter<Error>()
  readonly #selfPreservationEvents = new Emitter<boolean>()
  readonly #sweeps = new Emitter<SweepReport>()
  #revision = 0
  #committed = 0
  #count = 0
  #selfPreservation = false
  #lastCommit: Promise<void> = Promise.resolve()
  #failed: Error | undefined

  private constructor(options: RegistryOptions) {
    this.#store = options.store
    this.#clock = options.clock ?? systemClock
    this.#log = new ChangeLog(options.changeLogSize ?? 10_000)
    this.#spThreshold = options.selfPreservation?.threshold ?? 0.5
    this.#spMinInstances = options.selfPreservation?.minInstances ?? 10
    this.#spWindowMs = options.selfPreservation?.windowMs ?? 30_000
    this.#newId = options.newId ?? randomUUID
    this.#checksEnabled = options.checksEnabled ?? true
  }

  /**
   * Loads the registry from its store. Every restored instance gets a fresh lease; one
   * whose health changes by that (its lease had run out) is a change, with a new revision.
   */
  static async open(options: RegistryOptions): Promise<Registry> {
    const registry = new Registry(options)
    await registry.#load()
    return registry
  }

  async #load(): Promise<void> {
    const state = await this.#store.load(this.#log.capacity)
    this.#revision = state.revision
    this.#committed = state.revision
    for (const change of state.recentChanges) this.#log.push(change)
    for (const [name, revision] of state.serviceRevisions) {
      this.#services.set(name, { instances: new Map(), revision })
    }
    const now = this.#clock.now()
    const revived: InstanceRecord[] = []
    for (const p of state.instances) {
      const r = fromPersisted(p, now)
      r.checkHealth = restoredCheckHealth(r.check, r.checkHealth, this.#checksEnabled)
      this.#entry(r.service).instances.set(r.id, r)
      this.#count++
      if (settleHealth(r, now)) revived.push(r)
      // Time spent down is not held against an instance: its removal clock restarts.
      else if (r.health === 'critical') r.criticalSince = now
    }
    for (const r of revived) this.#commit(r, 'upsert')
    await this.#lastCommit
  }

  /** The newest revision: every change so far, durable or about to be. */
  get revision(): number {
    return this.#revision
  }

  /** The newest revision that is durable and published to listeners. */
  get committedRevision(): number {
    return this.#committed
  }

  /** How many instances are registered. */
  get instanceCount(): number {
    return this.#count
  }

  /** Whether expiry is suspended by self-preservation. */
  get selfPreservation(): boolean {
    return this.#selfPreservation
  }

  /** Set when the store failed: the registry then refuses writes. */
  get failure(): Error | undefined {
    return this.#failed
  }

  /** Listens to every change once it is durable, in strictly increasing revision order. */
  onChange(listener: (change: Change) => void): Disposable {
    return this.#changes.on(listener)
  }

  /** Listens to self-preservation being switched on (true) or off (false). */
  onSelfPreservation(listener: (active: boolean) => void): Disposable {
    return this.#selfPreservationEvents.on(listener)
  }

  /** Listens to every sweep's report (lease expiries, removals): for metrics. */
  onSweep(listener: (report: SweepReport) => void): Disposable {
    return this.#sweeps.on(listener)
  }

  /** Listens to a store failure. The registry's memory is then ahead of its store. */
  onFatal(listener: (err: Error) => void): Disposable {
    return this.#fatal.on(listener)
  }

  /** Registers an instance, or replaces the one with the same id. */
  register(service: string, id: string | undefined, body: RegisterBody): Registration {
    this.#assertWritable()
    const now = this.#clock.now()
    const entry = this.#entry(service)
    const key = id ?? this.#newId()
    const existing = entry.instances.get(key)
    if (existing === undefined) {
      const record = newRecord(service, key, body, now, this.#checksEnabled)
      entry.instances.set(key, record)
      this.#count++
      return { record, created: true, committed: this.#commit(record, 'upsert') }
    }

    // A re-registration renews the lease, like a heartbeat.
    existing.lastHeartbeatAt = now
    existing.expiresAt = now + body.ttlSeconds * 1000
    existing.leaseOk = true
    if (sameSpec(existing, body)) {
      const healthChanged = settleHealth(existing, now)
      const committed = healthChanged ? this.#commit(existing, 'upsert') : this.#lastCommit
      return { record: existing, created: false, committed }
    }
    // The check object's identity names what is probed: it is replaced, and the check
    // health starts over, exactly when the check or the address it probes changes, so
    // recordCheck drops a result still in flight for the old target. An equal check on
    // the same address keeps its object, its health and its schedule.
    const targetMoved =
      existing.host !== body.host || existing.port !== body.port || existing.scheme !== body.scheme
    if (!sameJson(existing.check, body.check) || (body.check !== undefined && targetMoved)) {
      existing.check = body.check
      existing.checkHealth = initialCheckHealth(body.check, this.#checksEnabled)
      existing.checkStreak = 0
      existing.lastCheck = undefined
    }
    existing.host = body.host
    existing.port = body.port
    existing.scheme = body.scheme
    existing.status = body.status
    existing.weight = body.weight
    existing.zone = body.zone
    existing.version = body.version
    existing.tags = body.tags
    existing.metadata = body.metadata
    existing.ttlSeconds = body.ttlSeconds
    existing.deregisterAfterSeconds = body.deregisterAfterSeconds
    existing.updatedAt = now
    settleHealth(existing, now)
    return { record: existing, created: false, committed: this.#commit(existing, 'upsert') }
  }

  /** Changes status, weight, tags or metadata. A patch that changes nothing is no change. */
  patch(service: string, id: string, patch: PatchBody): Update {
    this.#assertWritable()
    const r = this.get(service, id)
    if (r === undefined) throw instanceNotFound(service, id)
    let changed = false
    if (patch.status !== undefined && patch.status !== r.status) {
      r.status = patch.status
      changed = true
    }
    if (patch.weight !== undefined && patch.weight !== r.weight) {
      r.weight = patch.weight
      changed = true
    }
    if (patch.tags !== undefined && !sameJson(patch.tags, r.tags)) {
      r.tags = patch.tags
      changed = true
    }
    if (patch.metadata !== undefined && !sameJson(patch.metadata, r.metadata)) {
      r.metadata = patch.metadata
      changed = true
    }
    if (!changed) return { record: r, committed: this.#lastCommit }
    r.updatedAt = this.#clock.now()
    return { record: r, committed: this.#commit(r, 'upsert') }
  }

  /** Removes an instance at once. Resolves once the removal is durable. */
  deregister(service: string, id: string): Promise<void> {
    this.#assertWritable()
    const r = this.get(service, id)
    if (r === undefined) throw instanceNotFound(service, id)
    return this.#remove(r)
  }

  /**
   * Renews an instance's lease: the hot path. Allocates nothing unless the heartbeat
   * revives an instance whose lease had run out (a change). Returns undefined for an
   * unknown instance, which the caller answers with INSTANCE_NOT_FOUND.
   */
  heartbeat(service: string, id: string): InstanceRecord | undefined {
    const r = this.#services.get(service)?.instances.get(id)
    if (r === undefined) return undefined
    const now = this.#clock.now()
    r.lastHeartbeatAt = now
    r.expiresAt = now + r.ttlSeconds * 1000
    if (!r.leaseOk) {
      r.leaseOk = true
      if (settleHealth(r, now) && this.#failed === undefined) this.#commit(r, 'upsert')
    }
    return r
  }

  /**
   * Applies an active check's result to an instance, if it still has the very check that
   * was probed (a result for a check since changed or removed is dropped). Only a change
   * of health is a registry change; the last result is kept on the instance either way.
   */
  recordCheck(service: string, id: string, probed: object, outcome: ProbeOutcome): void {
    const r = this.get(service, id)
    if (r === undefined || r.check !== probed || r.checkHealth === null) return
    const now = this.#clock.now()
    r.lastCheck = {
      ok: outcome.ok,
      ...(outcome.statusCode !== undefined && { statusCode: outcome.statusCode }),
      ...(outcome.error !== undefined && { error: outcome.error }),
      durationMs: outcome.durationMs,
      at: new Date(now).toISOString(),
    }
    const next = nextCheckHealth(r.checkHealth, r.checkStreak, outcome.ok, r.check)
    r.checkStreak = next.streak
    if (next.health === r.checkHealth) return
    r.checkHealth = next.health
    settleHealth(r, now)
    if (this.#failed === undefined) this.#commit(r, 'upsert')
  }

  /**
   * Expires lapsed leases and removes instances critical for longer than their
   * deregisterAfterSeconds. Self-preservation holds expiry back while too many leases
   * lapse at once; removals of instances already critical go on.
   */
  sweep(): SweepReport {
    const now = this.#clock.now()
    let due: InstanceRecord[] | undefined
    let gone: InstanceRecord[] | undefined
    for (const entry of this.#services.values()) {
      for (const r of entry.instances.values()) {
        if (leaseExpired(r, now)) (due ??= []).push(r)
        else if (removalDue(r, now)) (gone ??= []).push(r)
      }
    }
    const report: SweepReport = { expired: 0, removed: 0, held: 0, selfPreservation: false }
    if (this.#failed !== undefined) return report
    const dueCount = due?.length ?? 0
    // Lapses that come together count together: those due now plus those expired within
    // the window. A partition from the registry's clients makes leases lapse over one TTL,
    // not in one sweep; counting only one sweep would never see it. Window 0: one sweep.
    const recent = this.#recentExpiries
    let stale = 0
    while (stale < recent.length && (recent[stale] as number) <= now - this.#spWindowMs) stale++
    if (stale > 0) recent.splice(0, stale)
    const hold =
      dueCount > 0 &&
      this.#count >= this.#spMinInstances &&
      dueCount + recent.length > this.#spThreshold * this.#count
    if (hold !== this.#selfPreservation) {
      // Switches off only once renewals brought the lapsed share back under the threshold.
      this.#selfPreservation = hold
      this.#selfPreservationEvents.emit(hold)
    }
    report.selfPreservation = this.#selfPreservation
    if (hold) report.held = dueCount
    else if (due !== undefined) {
      for (const r of due) {
        r.leaseOk = false
        if (settleHealth(r, now)) this.#commit(r, 'upsert')
        report.expired++
        if (this.#spWindowMs > 0) recent.push(now)
        // deregisterAfterSeconds 0 means no time in critical: removed by this same sweep.
        if (removalDue(r, now)) (gone ??= []).push(r)
      }
    }
    if (gone !== undefined) {
      for (const r of gone) {
        void this.#remove(r)
        report.removed++
      }
    }
    if (this.#sweeps.size > 0) this.#sweeps.emit(report)
    return report
  }

  /** One instance, or undefined. */
  get(service: string, id: string): InstanceRecord | undefined {
    return this.#services.get(service)?.instances.get(id)
  }

  /** Every instance of every service, in no particular order: for the health checker's start. */
  *instances(): IterableIterator<InstanceRecord> {
    for (const entry of this.#services.values()) yield* entry.instances.values()
  }

  /** One service's entry, or undefined when it was never seen. */
  service(service: string): ServiceEntry | undefined {
    return this.#services.get(service)
  }

  /** Revision of a service's last change; 0 for a service never seen. */
  serviceRevision(service: string): number {
    return this.#services.get(service)?.revision ?? 0
  }

  /** Names of every service that has instances, sorted. */
  serviceNames(): string[] {
    const names: string[] = []
    for (const [name, entry] of this.#services) if (entry.instances.size > 0) names.push(name)
    return names.sort()
  }

  /** Every service with instances: counts and zones, sorted by name. */
  summaries(): ServiceSummary[] {
    return this.serviceNames().map((name) => {
      const entry = this.#services.get(name) as ServiceEntry
      const zones = new Set<string>()
      let routable = 0
      for (const r of entry.instances.values()) {
        if (isRoutable(r)) routable++
        if (r.zone !== undefined) zones.add(r.zone)
      }
      return { name, instances: entry.instances.size, routable, zones: [...zones].sort(), revision: entry.revision }
    })
  }

  /** Counts of instances by health, for metrics and readiness. */
  healthCounts(): Record<Health, number> {
    const counts: Record<Health, number> = { passing: 0, critical: 0, unknown: 0 }
    for (const entry of this.#services.values()) for (const r of entry.instances.values()) counts[r.health]++
    return counts
  }

  /**
   * The durable changes after `since`, oldest first; undefined when they are no longer all
   * retained (the caller then takes a snapshot). Changes above the committed revision are
   * still on their way to listeners, so they are not part of the answer.
   */
  changesSince(since: number): Change[] | undefined {
    if (since > this.#revision) return undefined
    if (since >= this.#committed) return []
    return this.#log.after(since, this.#committed)
  }

  /** Resolves once every change so far is durable. */
  flush(): Promise<void> {
    return this.#lastCommit
  }

  /**
   * Resolves at a moment when every change made so far is durable and published, so that
   * the state in memory is exactly the state as of {@link committedRevision}: the moment
   * a watch snapshot is taken. Rejects if the store failed.
   */
  async settled(): Promise<void> {
    while (this.#committed !== this.#revision) {
      if (this.#failed !== undefined) throw this.#failed
      await this.#lastCommit.catch(() => undefined)
    }
    if (this.#failed !== undefined) throw this.#failed
  }

  #entry(service: string): ServiceEntry {
    let entry = this.#services.get(service)
    if (entry === undefined) {
      entry = { instances: new Map(), revision: 0 }
      this.#services.set(service, entry)
    }
    return entry
  }

  #remove(r: InstanceRecord): Promise<void> {
    const entry = this.#services.get(r.service) as ServiceEntry
    entry.instances.delete(r.id)
    this.#count--
    return this.#commit(r, 'delete')
  }

  #assertWritable(): void {
    if (this.#failed !== undefined) throw unavailable()
  }

  /** Gives the change its revision and hands it to the store; publishes it once durable. */
  #commit(r: InstanceRecord, op: 'upsert' | 'delete'): Promise<void> {
    const revision = ++this.#revision
    r.revision = revision
    ;(this.#services.get(r.service) as ServiceEntry).revision = revision
    const wire = toWire(r)
    const change = makeChange(revision, op, wire)
    const done = this.#store.append(change, op === 'delete' ? null : toPersisted(r, wire)).then(
      () => {
        this.#committed = revision
        this.#log.push(change)
        this.#changes.emit(change)
      },
      (err: unknown) => {
        this.#fail(err)
        // The caller's answer: a retryable UNAVAILABLE (503), not the store's own error (500).
        throw unavailable()
      },
    )
    // Sweeps and heartbeats do not wait for their writes: no unhandled rejection from them.
    done.catch(() => undefined)
    this.#lastCommit = done
    return done
  }

  #fail(err: unknown): void {
    if (this.#failed !== undefined) return
    this.#failed = err instanceof Error ? err : new Error(String(err))
    this.#fatal.emit(this.#failed)
  }
}
