import { randomUUID } from 'node:crypto'
import type { Campaign, IKeyValue, IWatchResponse, Namespace, Watcher } from 'etcd3'
import { Etcd3 } from 'etcd3'
import type { Logger } from 'pino'
import type { Health, PatchBody, RegisterBody, ServiceSummary } from '../../client-sdk/protocol.js'
import { isRoutable } from '../../client-sdk/protocol.js'
import type { Change } from '../registry/change.js'
import { makeChange } from '../registry/change.js'
import { ChangeLog } from '../registry/change-log.js'
import type { Clock } from '../registry/clock.js'
import { systemClock } from '../registry/clock.js'
import type { Disposable } from '../registry/disposable.js'
import { Emitter } from '../registry/disposable.js'
import { RegistryError, instanceNotFound } from '../registry/errors.js'
import { nextCheckHealth, removalDue, settleHealth } from '../registry/lifecycle.js'
import type { InstanceRecord } from '../registry/record.js'
import { sameJson, toWire } from '../registry/record.js'
import type { RegistryApi } from '../registry/registry-api.js'
import type { ProbeOutcome, Registration, ServiceEntry, SweepReport, Update } from '../registry/registry.js'
import type { CheckedRegistry } from '../health/scheduler.js'
import { ELECTION, INSTANCES, LEASES, NODES, REVISION_KEY, instanceKey, leaseKey, nodeKey, splitName } from './keys.js'
import { LeaseKeepalives } from './lease-keepalive.js'
import { newRecord, patched, reRegistered } from './next-record.js'
import { ownerOf } from './rendezvous.js'
import { checkRota } from './check-rota.js'
import type { StoredInstance } from './stored-instance.js'
import { copyRecord, fromStored, toStored } from './stored-instance.js'

/** Options of {@link EtcdRegistry.open}, with their defaults. */
export interface EtcdRegistryOptions {
  /** etcd client URLs (`--etcd-endpoints`), e.g. `http://127.0.0.1:2379`. */
  endpoints: string[]
  /** Key prefix of this cluster (`--etcd-prefix`). Default `/rollcall`. */
  prefix?: string
  /** Default: the wall clock. */
  clock?: Clock
  /** How many recent changes each node keeps for watch resume. Default 10,000. */
  changeLogSize?: number
  /** As in the single-node registry's options: applied by the elected node. */
  selfPreservation?: { threshold?: number; minInstances?: number; windowMs?: number }
  /** Makes ids for POST registrations. Default: random UUIDs. */
  newId?: () => string
  /** Whether active checks count (`--checks`). Default true. */
  checksEnabled?: boolean
  /**
   * TTL of this node's session lease (its announcement and its election bid). A node that
   * dies is out of the election and of the check rota this long after. Default 10 s.
   */
  sessionTtlSeconds?: number
  /** How long a read waits for this node to catch up with etcd. Default 5 s. */
  catchUpTimeoutMs?: number
  logger?: Pick<Logger, 'info' | 'warn' | 'error'>
}

const unavailable = (err: unknown) =>
  new RegistryError('UNAVAILABLE', `etcd did not answer: ${err instanceof Error ? err.message : String(err)}`)

/** Optimistic writes that lose a race re-read and try again this many times. */
const WRITE_ATTEMPTS = 8

interface Waiter {
  revision: number
  resolve: () => void
}

/**
 * The registry of one node in cluster mode: a replica of etcd, which holds the state of
 * every node. Any node answers any request.
 *
 * - Writes (register, patch, deregister, lifecycle transitions) are etcd transactions that
 *   compare the instance key's mod revision, so two nodes writing the same instance cannot
 *   lose each other's update; the loser re-reads and tries again.
 * - The revision clients see is etcd's revision of the change: cluster-wide and only
 *   forward, with gaps (lease and node keys move etcd's revision too).
 * - Every node watches the prefix and applies events in order to its memory, then emits
 *   `onChange`, so watchers on every node see every change in the same order. A write
 *   through this node answers once this node applied its own revision (read-your-writes);
 *   reads first catch up with etcd's newest write ({@link sync}).
 * - Leases live in etcd: `leases/<service>/<id>` is attached to a lease of ttlSeconds; a
 *   heartbeat on any node is a keepalive of it; a heartbeat on an instance whose lease is
 *   gone grants a new one and revives it.
 * - Once-only work (lease expiry turning instances critical, removals, self-preservation)
 *   runs on the node elected under `election/leader`; active checks are shared among the
 *   live nodes by rendezvous hashing ({@link checks}).
 *
 * @example
 * ```ts
 * const registry = await EtcdRegistry.open({ endpoints: ['http://127.0.0.1:2379'] })
 * const { record } = await registry.register('orders', 'o-1', RegisterBody.parse({ host: '10.0.0.7', port: 8080 }))
 * await registry.close()
 * ```
 */
export class EtcdRegistry implements RegistryApi {
  /** This node's id in the election and the check rota. */
  readonly nodeId: string
  readonly location: string
  readonly #client: Etcd3
  readonly #ns: Namespace
  readonly #keepalives: LeaseKeepalives
  readonly #clock: Clock
  readonly #log: ChangeLog
  readonly #spThreshold: number
  readonly #spMinInstances: number
  readonly #spWindowMs: number
  /** When the elected node expired each recent lease, oldest first: the self-preservation window. */
  #recentExpiries: number[] = []
  readonly #newId: () => string
  readonly #checksEnabled: boolean
  readonly #sessionTtl: number
  readonly #catchUpMs: number
  readonly #logger: Pick<Logger, 'info' | 'warn' | 'error'> | undefined
  readonly #services = new Map<string, ServiceEntry>()
  /** `service/id` -> the id of the lease its lease key is attached to. */
  readonly #leases = new Map<string, string>()
  /** node id -> URL, of the live nodes. */
  readonly #nodes = new Map<string, string>()
  readonly #changes = new Emitter<Change>()
  readonly #fatal = new Emitter<Error>()
  readonly #selfPreservationEvents = new Emitter<boolean>()
  readonly #sweeps = new Emitter<SweepReport>()
  readonly #ownership = new Emitter<void>()
  readonly #resyncs = new Emitter<void>()
  readonly #leaderEvents = new Emitter<boolean>()
  /** Instances with a leader transition in flight, so sweeps do not repeat it. */
  readonly #inFlight = new Set<string>()
  #waiters: Waiter[] = []
  /** The newest etcd revision applied to memory (any key under the prefix). */
  #applied = 0
  /** The revision of the newest change (instance key event) applied. */
  #revision = 0
  #count = 0
  #selfPreservation = false
  #leader = false
  #watcher: Watcher | undefined
  #campaign: Campaign | undefined
  #nodeLease: ReturnType<Namespace['lease']> | undefined
  #announced: string | undefined
  #liveNodes: string[] = []
  /** Events up to this revision are history read at start: logged for resume, not applied. */
  #historyUntil = 0
  /** The newest etcd revision received from the watch, history included. */
  #seen = 0
  #closed = false

  private constructor(options: EtcdRegistryOptions) {
    const prefix = (options.prefix ?? '/rollcall').replace(/\/+$/, '')
    this.location = `etcd ${options.endpoints.join(',')} ${prefix}/`
    this.nodeId = randomUUID()
    this.#client = new Etcd3({
      hosts: options.endpoints,
      dialTimeout: 3000,
      // A dead member must not hold a request up: fail it, and the client retries elsewhere.
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + 5000 }),
    })
    this.#ns = this.#client.namespace(`${prefix}/`)
    this.#keepalives = new LeaseKeepalives(this.#ns.leaseClient)
    this.#clock = options.clock ?? systemClock
    this.#log = new ChangeLog(options.changeLogSize ?? 10_000, 0)
    this.#spThreshold = options.selfPreservation?.threshold ?? 0.5
    this.#spMinInstances = options.selfPreservation?.minInstances ?? 10
    this.#spWindowMs = options.selfPreservation?.windowMs ?? 30_000
    this.#newId = options.newId ?? randomUUID
    this.#checksEnabled = options.checksEnabled ?? true
    this.#sessionTtl = options.sessionTtlSeconds ?? 10
    this.#catchUpMs = options.catchUpTimeoutMs ?? 5000
    this.#logger = options.logger
  }

  /**
   * Connects to etcd, loads the state as of one revision, starts following every change
   * after it, and enters the election for once-only work.
   */
  static async open(options: EtcdRegistryOptions): Promise<EtcdRegistry> {
    const registry = new EtcdRegistry(options)
    try {
      await registry.#load()
    } catch (err) {
      await registry.close()
      throw err
    }
    registry.#runCampaign()
    return registry
  }

  // ---- state as the routes read it --------------------------------------------------

  get revision(): number {
    return this.#revision
  }

  /** The same as {@link revision}: what a node applied came from etcd, so it is durable. */
  get committedRevision(): number {
    return this.#revision
  }

  get instanceCount(): number {
    return this.#count
  }

  /** Whether expiry is suspended; decided by the elected node, so false on the others. */
  get selfPreservation(): boolean {
    return this.#selfPreservation
  }

  /** Never set: an etcd that does not answer fails requests with UNAVAILABLE instead. */
  get failure(): Error | undefined {
    return undefined
  }

  /** Whether this node holds the election and runs the once-only work. */
  get isLeader(): boolean {
    return this.#leader
  }

  /** The live nodes' ids, sorted. */
  get liveNodes(): readonly string[] {
    return this.#liveNodes
  }

  onChange(listener: (change: Change) => void): Disposable {
    return this.#changes.on(listener)
  }

  onSelfPreservation(listener: (active: boolean) => void): Disposable {
    return this.#selfPreservationEvents.on(listener)
  }

  onSweep(listener: (report: SweepReport) => void): Disposable {
    return this.#sweeps.on(listener)
  }

  onFatal(listener: (err: Error) => void): Disposable {
    return this.#fatal.on(listener)
  }

  /** Told when this node wins (true) or loses (false) the election. */
  onLeadership(listener: (leader: boolean) => void): Disposable {
    return this.#leaderEvents.on(listener)
  }

  /**
   * Told when this node lost track of etcd's history (etcd compacted past the revision it
   * was following) and rebuilt its state: changes in between were not emitted, so the
   * server closes its watch connections and they resume with a snapshot.
   */
  onResync(listener: () => void): Disposable {
    return this.#resyncs.on(listener)
  }

  get(service: string, id: string): InstanceRecord | undefined {
    return this.#services.get(service)?.instances.get(id)
  }

  *instances(): IterableIterator<InstanceRecord> {
    for (const entry of this.#services.values()) yield* entry.instances.values()
  }

  service(service: string): ServiceEntry | undefined {
    return this.#services.get(service)
  }

  serviceRevision(service: string): number {
    return this.#services.get(service)?.revision ?? 0
  }

  serviceNames(): string[] {
    const names: string[] = []
    for (const [name, entry] of this.#services) if (entry.instances.size > 0) names.push(name)
    return names.sort()
  }

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

  healthCounts(): Record<Health, number> {
    const counts: Record<Health, number> = { passing: 0, critical: 0, unknown: 0 }
    for (const entry of this.#services.values()) for (const r of entry.instances.values()) counts[r.health]++
    return counts
  }

  changesSince(since: number): Change[] | undefined {
    if (since > this.#revision) return undefined
    return this.#log.after(since, this.#revision)
  }

  /** Every write was awaited by its caller; nothing is pending here. */
  flush(): Promise<void> {
    return Promise.resolve()
  }

  /**
   * Memory is always exactly the state as of {@link committedRevision}; before a watch
   * snapshot this node first catches up with what any node acknowledged (best effort: with
   * etcd out of reach, the snapshot is of what this node has).
   */
  async settled(): Promise<void> {
    await this.sync().catch(() => undefined)
  }

  /**
   * Catches up with the newest write any node made: reads the `revision` key (touched by
   * every write) from etcd, linearizably, and waits until this node applied it.
   */
  async sync(): Promise<void> {
    let target: number
    try {
      const res = await this.#ns.get(REVISION_KEY).exec()
      target = Number(res.kvs[0]?.mod_revision ?? 0)
    } catch (err) {
      throw unavailable(err)
    }
    await this.reach(target)
  }

  /** Resolves once this node applied etcd revision `revision`, or after the catch-up bound. */
  reach(revision: number, timeoutMs = this.#catchUpMs): Promise<void> {
    if (this.#applied >= revision || this.#closed) return Promise.resolve()
    return new Promise<void>((resolve) => {
      const waiter: Waiter = { revision, resolve: () => undefined }
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter)
        resolve()
      }, timeoutMs)
      waiter.resolve = () => {
        clearTimeout(timer)
        resolve()
      }
      this.#waiters.push(waiter)
    })
  }

  // ---- writes ------------------------------------------------------------------------

  async register(service: string, id: string | undefined, body: RegisterBody): Promise<Registration> {
    const key = id ?? this.#newId()
    for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
      const existing = this.get(service, key)
      const now = this.#clock.now()
      if (existing === undefined) {
        const record = newRecord(service, key, body, now, this.#checksEnabled)
        const lease = await this.#grant(body.ttlSeconds)
        const ok = await this.#txn(service, key, 0, [
          this.#ns.put(instanceKey(service, key)).value(toStored(record)),
          this.#ns.put(leaseKey(service, key)).value(lease).lease(lease),
        ])
        if (!ok) {
          void this.#revoke(lease)
          continue
        }
        return this.#registered(service, key, true)
      }

      // A re-registration renews the lease, like a heartbeat; a new TTL needs a new lease.
      const { next, changed } = reRegistered(existing, body, now, this.#checksEnabled)
      const ops = []
      const held = this.#leases.get(`${service}/${key}`)
      const keep = held !== undefined && existing.ttlSeconds === body.ttlSeconds && (await this.#keepalive(held)) > 0
      const granted = keep ? undefined : await this.#grant(body.ttlSeconds)
      if (granted !== undefined) ops.push(this.#ns.put(leaseKey(service, key)).value(granted).lease(granted))
      if (changed) ops.push(this.#ns.put(instanceKey(service, key)).value(toStored(next)))
      if (ops.length === 0) {
        existing.lastHeartbeatAt = now
        existing.expiresAt = next.expiresAt
        return { record: existing, created: false, committed: Promise.resolve() }
      }
      const ok = await this.#txn(service, key, existing.revision, ops)
      if (!ok) {
        if (granted !== undefined) void this.#revoke(granted)
        continue
      }
      if (granted !== undefined && held !== undefined) void this.#revoke(held)
      const record = this.get(service, key)
      if (record !== undefined && !changed) {
        // Only the lease moved: the instance itself is as it was, with a fresh lease here.
        record.lastHeartbeatAt = now
        record.expiresAt = next.expiresAt
      }
      return this.#registered(service, key, false)
    }
    throw new RegistryError('CONFLICT', `instance ${service}/${key} is being changed by others; try again`)
  }

  async patch(service: string, id: string, patch: PatchBody): Promise<Update> {
    for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
      const r = await this.#find(service, id)
      if (r === undefined) throw instanceNotFound(service, id)
      const next = patched(r, patch, this.#clock.now())
      if (next === undefined) return { record: r, committed: Promise.resolve() }
      const ok = await this.#txn(service, id, r.revision, [this.#ns.put(instanceKey(service, id)).value(toStored(next))])
      if (!ok) continue
      const record = this.get(service, id)
      if (record === undefined) throw instanceNotFound(service, id)
      return { record, committed: Promise.resolve() }
    }
    throw new RegistryError('CONFLICT', `instance ${service}/${id} is being changed by others; try again`)
  }

  async deregister(service: string, id: string): Promise<void> {
    for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
      const r = await this.#find(service, id)
      if (r === undefined) throw instanceNotFound(service, id)
      const lease = this.#leases.get(`${service}/${id}`)
      if (await this.#remove(r)) {
        if (lease !== undefined) void this.#revoke(lease)
        return
      }
    }
    throw new RegistryError('CONFLICT', `instance ${service}/${id} is being changed by others; try again`)
  }

  /**
   * A keepalive of the instance's lease, from whichever node the heartbeat reached. An
   * instance whose lease is gone (it expired) gets a new one and is revived.
   */
  async heartbeat(service: string, id: string): Promise<InstanceRecord | undefined> {
    for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
      const r = await this.#find(service, id)
      if (r === undefined) return undefined
      const now = this.#clock.now()
      const held = this.#leases.get(`${service}/${id}`)
      if (held !== undefined && r.leaseOk && (await this.#keepalive(held)) > 0) {
        r.lastHeartbeatAt = now
        r.expiresAt = now + r.ttlSeconds * 1000
        return r
      }
      // The lease is gone: a new one, and the instance revived if it had been expired.
      const granted = await this.#grant(r.ttlSeconds)
      const ops = [this.#ns.put(leaseKey(service, id)).value(granted).lease(granted)]
      const next = copyRecord(r)
      next.lastHeartbeatAt = now
      next.expiresAt = now + r.ttlSeconds * 1000
      next.leaseOk = true
      if (!r.leaseOk || settleHealth(next, now)) {
        settleHealth(next, now)
        ops.push(this.#ns.put(instanceKey(service, id)).value(toStored(next)))
      }
      const ok = await this.#txn(service, id, r.revision, ops)
      if (!ok) {
        void this.#revoke(granted)
        continue
      }
      const record = this.get(service, id)
      if (record !== undefined) {
        record.lastHeartbeatAt = now
        record.expiresAt = next.expiresAt
      }
      return record
    }
    throw new RegistryError('CONFLICT', `instance ${service}/${id} is being changed by others; try again`)
  }

  /**
   * An active check's result, from the node that owns the instance's check. The last
   * result is kept in this node's memory; a change of health is written to etcd (with the
   * result that caused it), so every node sees it.
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
    const written = copyRecord(r)
    written.checkHealth = next.health
    settleHealth(written, now)
    // A write compares the revision this result was judged against: should a result come
    // while an earlier flip is still on its way, at most one of them lands.
    void this.#txn(service, id, r.revision, [this.#ns.put(instanceKey(service, id)).value(toStored(written))])
      .then((ok) => {
        // Lost a race (the instance changed meanwhile): the next probe decides again.
        if (!ok) r.checkStreak = 0
      })
      .catch((err: unknown) => this.#logger?.warn({ err, service, id }, 'cannot write a check result to etcd'))
  }

  /**
   * On the elected node: turns instances whose lease key etcd removed (the lease
   * expired) critical, unless self-preservation holds expiry back, and removes instances
   * critical for longer than their deregisterAfterSeconds. Elsewhere: nothing.
   */
  sweep(): SweepReport {
    const report: SweepReport = { expired: 0, removed: 0, held: 0, selfPreservation: false }
    if (!this.#leader || this.#closed) return report
    const now = this.#clock.now()
    let due: InstanceRecord[] | undefined
    let gone: InstanceRecord[] | undefined
    for (const entry of this.#services.values()) {
      for (const r of entry.instances.values()) {
        const key = `${r.service}/${r.id}`
        if (r.leaseOk && !this.#leases.has(key)) (due ??= []).push(r)
        else if (removalDue(r, now)) (gone ??= []).push(r)
      }
    }
    const dueCount = due?.length ?? 0
    // As on a single node: lapses within the window count together with those due now.
    const recent = this.#recentExpiries
    let stale = 0
    while (stale < recent.length && (recent[stale] as number) <= now - this.#spWindowMs) stale++
    if (stale > 0) recent.splice(0, stale)
    const hold =
      dueCount > 0 && this.#count >= this.#spMinInstances && dueCount + recent.length > this.#spThreshold * this.#count
    this.#setSelfPreservation(hold)
    report.selfPreservation = hold
    if (hold) report.held = dueCount
    else if (due !== undefined) {
      for (const r of due) {
        if (!this.#expire(r, now)) continue
        report.expired++
        if (this.#spWindowMs > 0) recent.push(now)
      }
    }
    if (gone !== undefined) {
      for (const r of gone) if (this.#leaderRemove(r)) report.removed++
    }
    if (this.#sweeps.size > 0) this.#sweeps.emit(report)
    return report
  }

  // ---- cluster membership and checks --------------------------------------------------

  /**
   * Puts this node into the check rota under `nodes/<id>` with its session lease (value:
   * its URL). Until then it owns no checks. Called once the server listens.
   */
  async announce(url: string): Promise<void> {
    this.#announced = url
    await this.#putAnnouncement()
  }

  /**
   * The registry as this node's health checker sees it: only the instances whose check
   * this node owns (rendezvous hashing over the live nodes), and a change event for every
   * instance whose owner may have moved when a node comes or goes.
   */
  get checks(): CheckedRegistry {
    return checkRota(
      this,
      (service, id) => ownerOf(this.#liveNodes, `${service}/${id}`) === this.nodeId,
      (listener) => this.#ownership.on(listener),
    )
  }

  /** Leaves the election and the rota, stops following etcd and closes the client. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#leader = false
    for (const w of this.#waiters) w.resolve()
    this.#waiters = []
    this.#keepalives.close()
    const campaign = this.#campaign
    this.#campaign = undefined
    await campaign?.resign().catch(() => undefined)
    await this.#nodeLease?.revoke().catch(() => undefined)
    await this.#watcher?.cancel().catch(() => undefined)
    this.#client.close()
  }

  // ---- following etcd -------------------------------------------------------------------

  /**
   * Reads the state as of one revision R, then follows etcd from before R: the changes
   * up to R (as far back as the change log holds, and etcd still has them) fill the log,
   * so a watcher that resumes here with a `since` another node served is replayed to,
   * not sent a snapshot. A write of the revision key marks where history ends.
   */
  async #load(): Promise<void> {
    const res = await this.#ns.getAll().prefix('').exec()
    const at = Number(res.header.revision)
    this.#rebuild(res.kvs, at)
    const from = Math.max(1, at - this.#log.capacity + 1)
    this.#historyUntil = at
    this.#seen = from - 1
    this.#log.reset(from - 1)
    this.#follow(from)
    const touch = await this.#ns.put(REVISION_KEY).value('').exec()
    const end = Number(touch.header.revision)
    await this.reach(end, 30_000)
    if (this.#applied < end) {
      // History did not arrive in time: resume works from now on only.
      this.#logger?.warn({ from, to: at }, 'etcd history not read at start; watchers resuming from before it get a snapshot')
      this.#historyUntil = 0
      this.#log.reset(this.#revision)
    }
  }

  /** One change read from history (at most R): into the log only; memory already has it. */
  #history(ev: IWatchResponse['events'][number], key: string, rev: number): void {
    if (!key.startsWith(INSTANCES)) return
    const value = ev.type === 'Put' ? ev.kv.value : ev.prev_kv?.value
    if (value === undefined || value.length === 0) {
      // A removal whose instance etcd no longer has: the log can be complete only after it.
      this.#log.reset(rev)
      return
    }
    const r = fromStored(JSON.parse(value.toString()) as StoredInstance, rev)
    this.#log.push(makeChange(rev, ev.type === 'Put' ? 'upsert' : 'delete', toWire(r)))
  }

  /** Replaces memory with the state in `kvs`, as of etcd revision `at`. */
  #rebuild(kvs: IKeyValue[], at: number): void {
    this.#historyUntil = 0
    this.#seen = at
    this.#services.clear()
    this.#leases.clear()
    this.#nodes.clear()
    this.#count = 0
    for (const kv of kvs) {
      const key = kv.key.toString()
      const rev = Number(kv.mod_revision)
      if (key.startsWith(INSTANCES)) {
        const name = splitName(key.slice(INSTANCES.length))
        if (name === undefined) continue
        const r = fromStored(JSON.parse(kv.value.toString()) as StoredInstance, rev)
        const entry = this.#entry(r.service)
        entry.instances.set(r.id, r)
        entry.revision = Math.max(entry.revision, rev)
        this.#count++
      } else if (key.startsWith(LEASES)) {
        this.#leases.set(key.slice(LEASES.length), kv.value.toString())
      } else if (key.startsWith(NODES)) {
        this.#nodes.set(key.slice(NODES.length), kv.value.toString())
      }
    }
    this.#liveNodes = [...this.#nodes.keys()].sort()
    // Revisions a client saw before this node started are all at most `at`.
    this.#revision = Math.max(this.#revision, at)
    this.#applied = Math.max(this.#applied, at)
    this.#log.reset(at)
  }

  #follow(from: number): void {
    if (this.#closed) return
    const watcher = this.#ns.watch().prefix('').withPreviousKV().startRevision(String(from)).watcher()
    this.#watcher = watcher
    watcher.on('data', (res: IWatchResponse) => this.#applyResponse(res))
    watcher.on('disconnected', () => {
      // etcd3 re-attaches with its backoff from the revision after the last response
      // header it saw, which can be ahead of the events received (a catch-up cut short by
      // a dying member). Re-attach from what this node received instead: nothing skipped.
      ;(watcher as unknown as { request: { start_revision: string } }).request.start_revision = String(this.#seen + 1)
    })
    watcher.on('error', (err: Error) => {
      if (this.#watcher !== watcher || this.#closed) return
      // Most likely etcd compacted past our revision: rebuild from a fresh read.
      this.#logger?.warn({ err: err.message }, 'etcd watch canceled; rebuilding this node from etcd')
      void this.#resync()
    })
  }

  async #resync(): Promise<void> {
    for (let delay = 100; !this.#closed; delay = Math.min(delay * 2, 2000)) {
      try {
        const res = await this.#ns.getAll().prefix('').exec()
        const at = Number(res.header.revision)
        this.#rebuild(res.kvs, at)
        this.#follow(at + 1)
        this.#resolveWaiters()
        this.#resyncs.emit()
        this.#ownership.emit()
        return
      } catch {
        await new Promise((r) => setTimeout(r, delay))
      }
    }
  }

  #applyResponse(res: IWatchResponse): void {
    let membership = false
    // The events of one revision (one transaction) come in one response, all of them.
    const floor = this.#applied
    for (const ev of res.events) {
      const kv = ev.kv
      const key = kv.key.toString()
      const rev = Number(kv.mod_revision)
      if (rev > this.#seen) this.#seen = rev
      if (rev <= this.#historyUntil) {
        this.#history(ev, key, rev)
        continue
      }
      // Already applied: a re-attached watch never repeats one, but stay safe if it did.
      if (rev <= floor) continue
      const put = ev.type === 'Put'
      if (key.startsWith(INSTANCES)) {
        const name = splitName(key.slice(INSTANCES.length))
        if (name !== undefined) {
          if (put) this.#applyUpsert(JSON.parse(kv.value.toString()) as StoredInstance, rev)
          else this.#applyDelete(name.service, name.id, rev)
        }
      } else if (key.startsWith(LEASES)) {
        const name = key.slice(LEASES.length)
        if (put) this.#leases.set(name, kv.value.toString())
        else this.#leases.delete(name)
      } else if (key.startsWith(NODES)) {
        const id = key.slice(NODES.length)
        if (put) this.#nodes.set(id, kv.value.toString())
        else this.#nodes.delete(id)
        membership = true
        if (!put && id === this.nodeId && !this.#closed && this.#announced !== undefined) {
          // Our session lapsed (etcd was out of reach too long): back into the rota.
          void this.#putAnnouncement()
        }
      }
      if (rev > this.#applied) this.#applied = rev
    }
    if (membership) {
      const live = [...this.#nodes.keys()].sort()
      if (live.join('\n') !== this.#liveNodes.join('\n')) {
        this.#liveNodes = live
        this.#ownership.emit()
      }
    }
    this.#resolveWaiters()
  }

  #applyUpsert(s: StoredInstance, rev: number): void {
    const entry = this.#entry(s.service)
    const existing = entry.instances.get(s.id)
    const incoming = fromStored(s, rev)
    let r: InstanceRecord
    if (existing === undefined) {
      r = incoming
      entry.instances.set(r.id, r)
      this.#count++
    } else {
      r = existing
      // The check object's identity names what is probed (see the health checker): it is
      // kept while neither the check nor the address it probes changed.
      const sameTarget = r.host === incoming.host && r.port === incoming.port && r.scheme === incoming.scheme
      const keepCheck = sameJson(r.check, incoming.check) && sameTarget
      const lastCheck =
        r.lastCheck !== undefined && (incoming.lastCheck === undefined || r.lastCheck.at > incoming.lastCheck.at) && keepCheck
          ? r.lastCheck
          : incoming.lastCheck
      const streak = keepCheck && r.checkHealth === incoming.checkHealth ? r.checkStreak : 0
      const heartbeat = Math.max(r.lastHeartbeatAt, incoming.lastHeartbeatAt)
      const check = keepCheck ? r.check : incoming.check
      Object.assign(r, incoming, {
        check,
        lastCheck,
        checkStreak: streak,
        lastHeartbeatAt: heartbeat,
        expiresAt: heartbeat + incoming.ttlSeconds * 1000,
      })
    }
    r.revision = rev
    entry.revision = rev
    this.#publish(makeChange(rev, 'upsert', toWire(r)))
  }

  #applyDelete(service: string, id: string, rev: number): void {
    const entry = this.#services.get(service)
    const r = entry?.instances.get(id)
    if (entry === undefined || r === undefined) return
    entry.instances.delete(id)
    this.#count--
    r.revision = rev
    entry.revision = rev
    this.#publish(makeChange(rev, 'delete', toWire(r)))
  }

  #publish(change: Change): void {
    this.#revision = change.revision
    this.#log.push(change)
    this.#changes.emit(change)
  }

  #resolveWaiters(): void {
    if (this.#waiters.length === 0) return
    const ready = this.#waiters.filter((w) => w.revision <= this.#applied)
    if (ready.length === 0) return
    this.#waiters = this.#waiters.filter((w) => w.revision > this.#applied)
    for (const w of ready) w.resolve()
  }

  // ---- etcd operations ------------------------------------------------------------------

  /**
   * Runs `ops` if the instance key still has mod revision `expected` (0: does not exist),
   * touching the revision key too, and waits until this node applied the result. Returns
   * false when the compare failed: another node wrote first; this node has then caught up.
   */
  async #txn(
    service: string,
    id: string,
    expected: number,
    ops: Array<ReturnType<Namespace['put']> | ReturnType<ReturnType<Namespace['delete']>['key']>>,
  ): Promise<boolean> {
    let res
    try {
      const compare =
        expected === 0
          ? this.#ns.if(instanceKey(service, id), 'Create', '==', 0)
          : this.#ns.if(instanceKey(service, id), 'Mod', '==', expected)
      res = await compare.then(...ops, this.#ns.put(REVISION_KEY).value('')).else(this.#ns.get(REVISION_KEY)).commit()
    } catch (err) {
      throw unavailable(err)
    }
    // Read-your-writes: answer once this node's memory holds the outcome. A failed compare
    // means this node is behind another's write: catch up before the caller re-reads.
    if (res.succeeded) await this.reach(Number(res.header.revision))
    else await this.sync()
    return res.succeeded
  }

  async #remove(r: InstanceRecord): Promise<boolean> {
    return this.#txn(r.service, r.id, r.revision, [
      this.#ns.delete().key(instanceKey(r.service, r.id)),
      this.#ns.delete().key(leaseKey(r.service, r.id)),
    ])
  }

  /** An instance, after catching up with etcd when this node does not know it yet. */
  async #find(service: string, id: string): Promise<InstanceRecord | undefined> {
    const r = this.get(service, id)
    if (r !== undefined) return r
    await this.sync()
    return this.get(service, id)
  }

  async #grant(ttlSeconds: number): Promise<string> {
    try {
      const res = await this.#ns.leaseClient.leaseGrant({ TTL: ttlSeconds, ID: 0 })
      return String(res.ID)
    } catch (err) {
      throw unavailable(err)
    }
  }

  async #keepalive(lease: string): Promise<number> {
    // A keepalive stream on a member that died fails; the next one opens on another
    // member (the client's per-member breaker skips one that failed three times running).
    let last: unknown
    for (let attempt = 0; attempt < 5 && !this.#closed; attempt++) {
      try {
        return await this.#keepalives.keepalive(lease)
      } catch (err) {
        last = err
      }
    }
    throw unavailable(last)
  }

  async #revoke(lease: string): Promise<void> {
    try {
      await this.#ns.leaseClient.leaseRevoke({ ID: lease })
    } catch {
      // Gone already, or etcd is out of reach: it expires on its own.
    }
  }

  // ---- once-only work (the elected node) -------------------------------------------------

  #expire(r: InstanceRecord, now: number): boolean {
    const key = `${r.service}/${r.id}`
    if (this.#inFlight.has(key)) return false
    this.#inFlight.add(key)
    const next = copyRecord(r)
    next.leaseOk = false
    settleHealth(next, now)
    // Only if the lease key is still gone: a heartbeat may have revived it meanwhile.
    const write = async () => {
      const res = await this.#ns
        .if(instanceKey(r.service, r.id), 'Mod', '==', r.revision)
        .and(leaseKey(r.service, r.id), 'Create', '==', 0)
        .then(this.#ns.put(instanceKey(r.service, r.id)).value(toStored(next)), this.#ns.put(REVISION_KEY).value(''))
        .commit()
      await this.reach(Number(res.header.revision))
    }
    void write()
      .catch((err: unknown) => this.#logger?.warn({ err, instance: key }, 'cannot write a lease expiry to etcd'))
      .finally(() => this.#inFlight.delete(key))
    return true
  }

  #leaderRemove(r: InstanceRecord): boolean {
    const key = `${r.service}/${r.id}`
    if (this.#inFlight.has(key)) return false
    this.#inFlight.add(key)
    void this.#remove(r)
      .catch((err: unknown) => this.#logger?.warn({ err, instance: key }, 'cannot write a removal to etcd'))
      .finally(() => this.#inFlight.delete(key))
    return true
  }

  #setSelfPreservation(active: boolean): void {
    if (active === this.#selfPreservation) return
    this.#selfPreservation = active
    this.#selfPreservationEvents.emit(active)
  }

  #runCampaign(): void {
    if (this.#closed) return
    const campaign = this.#ns.election(ELECTION, this.#sessionTtl).campaign(this.nodeId)
    this.#campaign = campaign
    campaign.on('elected', () => {
      if (this.#campaign !== campaign) return
      this.#leader = true
      this.#logger?.info({ node: this.nodeId }, 'elected: this node runs lease expiry and removals')
      this.#leaderEvents.emit(true)
    })
    campaign.on('error', (err: Error) => {
      if (this.#campaign !== campaign) return
      const was = this.#leader
      this.#leader = false
      this.#setSelfPreservation(false)
      if (was) this.#leaderEvents.emit(false)
      this.#logger?.warn({ err: err.message }, 'election campaign failed; campaigning again')
      this.#campaign = undefined
      void campaign.resign().catch(() => undefined)
      setTimeout(() => this.#runCampaign(), 500).unref()
    })
  }

  async #putAnnouncement(): Promise<void> {
    const url = this.#announced
    if (url === undefined || this.#closed) return
    if (this.#nodeLease === undefined || this.#nodeLease.revoked()) {
      const lease = this.#ns.lease(this.#sessionTtl)
      lease.on('lost', () => {
        if (this.#nodeLease !== lease || this.#closed) return
        this.#nodeLease = undefined
        setTimeout(() => void this.#putAnnouncement().catch(() => undefined), 500).unref()
      })
      this.#nodeLease = lease
    }
    await this.#nodeLease.put(nodeKey(this.nodeId)).value(url)
  }

  #entry(service: string): ServiceEntry {
    let entry = this.#services.get(service)
    if (entry === undefined) {
      entry = { instances: new Map(), revision: 0 }
      this.#services.set(service, entry)
    }
    return entry
  }

  /** Completes a registration: the record as this node applied it. */
  #registered(service: string, id: string, created: boolean): Registration {
    const record = this.get(service, id)
    if (record === undefined) throw instanceNotFound(service, id)
    return { record, created, committed: Promise.resolve() }
  }
}
