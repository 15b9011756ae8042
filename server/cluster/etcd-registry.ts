import { randomUUID } from 'node:crypto'
import type { IWatchResponse, Namespace, Watcher } from 'etcd3'
import { Etcd3 } from 'etcd3'
import type { Logger } from 'pino'
import type { Health, PatchBody, RegisterBody, ServiceSummary } from '../../client-sdk/protocol.js'
import type { Change } from '../registry/change.js'
import type { Clock } from '../registry/clock.js'
import { systemClock } from '../registry/clock.js'
import type { Disposable } from '../registry/disposable.js'
import { Emitter } from '../registry/disposable.js'
import { RegistryError, instanceNotFound } from '../registry/errors.js'
import { nextCheckHealth, removalDue, settleHealth } from '../registry/lifecycle.js'
import type { InstanceRecord } from '../registry/record.js'
import type { RegistryApi } from '../registry/registry-api.js'
import type { ProbeOutcome, Registration, ServiceEntry, SweepReport, Update } from '../registry/registry.js'
import type { CheckedRegistry } from '../health/scheduler.js'
import { REVISION_KEY, instanceKey, leaseKey, nodeKey } from './keys.js'
import { LeaseKeepalives } from './lease-keepalive.js'
import { newRecord, patched, reRegistered } from './next-record.js'
import { ownerOf } from './rendezvous.js'
import { checkRota } from './check-rota.js'
import { Replica } from './replica.js'
import { copyRecord, toStored } from './stored-instance.js'

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
 *   runs on the elected node: the oldest live announcement under `nodes/` (etcd's election
 *   recipe over the node sessions, see {@link Replica.leaderNode}); active checks are shared among the
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
  /** This node's copy of the cluster's state, kept by applying etcd's watch. */
  readonly #replica: Replica
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
  readonly #fatal = new Emitter<Error>()
  readonly #selfPreservationEvents = new Emitter<boolean>()
  readonly #sweeps = new Emitter<SweepReport>()
  readonly #resyncs = new Emitter<void>()
  readonly #leaderEvents = new Emitter<boolean>()
  /** Instances with a leader transition in flight, so sweeps do not repeat it. */
  readonly #inFlight = new Set<string>()
  #selfPreservation = false
  #leader = false
  #watcher: Watcher | undefined
  #nodeLease: ReturnType<Namespace['lease']> | undefined
  #announced: string | undefined
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
    this.#replica = new Replica(options.changeLogSize ?? 10_000)
    this.#replica.onNodeGone((id) => {
      // Our session lapsed (etcd was out of reach too long): back into the rota.
      if (id === this.nodeId && !this.#closed && this.#announced !== undefined) void this.#putAnnouncement().catch(() => undefined)
    })
    this.#replica.onOwnership(() => this.#elect())
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
   * after it. The node enters the election and the check rota when it {@link announce}s itself.
   */
  static async open(options: EtcdRegistryOptions): Promise<EtcdRegistry> {
    const registry = new EtcdRegistry(options)
    try {
      await registry.#load()
    } catch (err) {
      await registry.close()
      throw err
    }
    return registry
  }

  // ---- state as the routes read it --------------------------------------------------

  get revision(): number {
    return this.#replica.revision
  }

  /** The same as {@link revision}: what a node applied came from etcd, so it is durable. */
  get committedRevision(): number {
    return this.#replica.revision
  }

  get instanceCount(): number {
    return this.#replica.instanceCount
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
    return this.#replica.liveNodes
  }

  onChange(listener: (change: Change) => void): Disposable {
    return this.#replica.onChange(listener)
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
    return this.#replica.get(service, id)
  }

  instances(): IterableIterator<InstanceRecord> {
    return this.#replica.instances()
  }

  service(service: string): ServiceEntry | undefined {
    return this.#replica.service(service)
  }

  serviceRevision(service: string): number {
    return this.#replica.serviceRevision(service)
  }

  serviceNames(): string[] {
    return this.#replica.serviceNames()
  }

  summaries(): ServiceSummary[] {
    return this.#replica.summaries()
  }

  healthCounts(): Record<Health, number> {
    return this.#replica.healthCounts()
  }

  changesSince(since: number): Change[] | undefined {
    return this.#replica.changesSince(since)
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
    if (this.#closed) return Promise.resolve()
    return this.#replica.reach(revision, timeoutMs)
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
      const held = this.#replica.leaseOf(service, key)
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
      return { record: this.#written(service, id), committed: Promise.resolve() }
    }
    throw new RegistryError('CONFLICT', `instance ${service}/${id} is being changed by others; try again`)
  }

  async deregister(service: string, id: string): Promise<void> {
    for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
      const r = await this.#find(service, id)
      if (r === undefined) throw instanceNotFound(service, id)
      const lease = this.#replica.leaseOf(service, id)
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
      const held = this.#replica.leaseOf(service, id)
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
    for (const r of this.#replica.instances()) {
      if (r.leaseOk && this.#replica.leaseOf(r.service, r.id) === undefined) (due ??= []).push(r)
      else if (removalDue(r, now)) (gone ??= []).push(r)
    }
    const dueCount = due?.length ?? 0
    // As on a single node: lapses within the window count together with those due now.
    const recent = this.#recentExpiries
    let stale = 0
    while (stale < recent.length && (recent[stale] as number) <= now - this.#spWindowMs) stale++
    if (stale > 0) recent.splice(0, stale)
    const hold =
      dueCount > 0 &&
      this.#replica.instanceCount >= this.#spMinInstances &&
      dueCount + recent.length > this.#spThreshold * this.#replica.instanceCount
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
      (service, id) => ownerOf(this.#replica.liveNodes, `${service}/${id}`) === this.nodeId,
      (listener) => this.#replica.onOwnership(listener),
    )
  }

  /** Leaves the election and the rota, stops following etcd and closes the client. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#leader = false
    this.#replica.releaseWaiters()
    this.#keepalives.close()
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
    const replica = this.#replica
    replica.rebuild(res.kvs, at)
    const from = Math.max(1, at - replica.log.capacity + 1)
    replica.expectHistory(from, at)
    this.#follow(from)
    const touch = await this.#ns.put(REVISION_KEY).value('').exec()
    const end = Number(touch.header.revision)
    await this.reach(end, 30_000)
    if (replica.applied < end) {
      this.#logger?.warn({ from, to: at }, 'etcd history not read at start; watchers resuming from before it get a snapshot')
      replica.abandonHistory()
    }
  }

  #follow(from: number): void {
    if (this.#closed) return
    const watcher = this.#ns.watch().prefix('').withPreviousKV().startRevision(String(from)).watcher()
    this.#watcher = watcher
    watcher.on('data', (res: IWatchResponse) => this.#replica.apply(res))
    watcher.on('disconnected', () => {
      // etcd3 re-attaches with its backoff from the revision after the last response
      // header it saw, which can be ahead of the events received (a catch-up cut short by
      // a dying member). Re-attach from what this node received instead: nothing skipped.
      ;(watcher as unknown as { request: { start_revision: string } }).request.start_revision = String(
        this.#replica.resumeFrom,
      )
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
        this.#replica.rebuild(res.kvs, at)
        this.#follow(at + 1)
        this.#resyncs.emit()
        this.#replica.reassign()
        return
      } catch {
        await new Promise((r) => setTimeout(r, delay))
      }
    }
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

  /** Takes up or gives up the once-only work when the oldest live node changes. */
  #elect(): void {
    const leader = !this.#closed && this.#announced !== undefined && this.#replica.leaderNode === this.nodeId
    if (leader === this.#leader) return
    this.#leader = leader
    if (!leader) this.#setSelfPreservation(false)
    this.#leaderEvents.emit(leader)
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

  /** Completes a registration: the record as this node applied it. */
  #registered(service: string, id: string, created: boolean): Registration {
    return { record: this.#written(service, id), created, committed: Promise.resolve() }
  }

  /**
   * The record of a write that etcd committed, as this node applied it. Should this node
   * not have seen it within the catch-up bound (its watch is reconnecting), the write is
   * durable but cannot be shown yet: a retryable UNAVAILABLE, and a retry is idempotent.
   */
  #written(service: string, id: string): InstanceRecord {
    const record = this.get(service, id)
    if (record === undefined) {
      throw new RegistryError('UNAVAILABLE', `instance ${service}/${id} was written, but this node has not caught up yet; retry`)
    }
    return record
  }
}
