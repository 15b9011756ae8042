import type { IKeyValue, IWatchResponse } from 'etcd3'
import type { Health, ServiceSummary } from '../../client-sdk/protocol.js'
import { isRoutable } from '../../client-sdk/protocol.js'
import type { Change } from '../registry/change.js'
import { makeChange } from '../registry/change.js'
import { ChangeLog } from '../registry/change-log.js'
import type { Disposable } from '../registry/disposable.js'
import { Emitter } from '../registry/disposable.js'
import type { InstanceRecord } from '../registry/record.js'
import { sameJson, toWire } from '../registry/record.js'
import type { ServiceEntry } from '../registry/registry.js'
import { INSTANCES, LEASES, NODES, splitName } from './keys.js'
import type { StoredInstance } from './stored-instance.js'
import { fromStored } from './stored-instance.js'

type WatchEvent = IWatchResponse['events'][number]

interface Waiter {
  revision: number
  resolve: () => void
}

/**
 * One node's copy of a rollcall cluster's state in etcd, and the state machine that keeps
 * it: it is rebuilt from a range read at one revision, then every watch response is
 * applied in order. Instance events become changes (logged for resume, then emitted);
 * lease and node keys are kept for the elected node and the check rota. No I/O here:
 * `EtcdRegistry` reads and watches etcd and hands the results over.
 */
export class Replica {
  readonly log: ChangeLog
  readonly #services = new Map<string, ServiceEntry>()
  /** `service/id` -> the id of the lease its lease key is attached to. */
  readonly #leases = new Map<string, string>()
  /** node id -> URL, of the live nodes. */
  readonly #nodes = new Map<string, string>()
  /** node id -> create revision of its announcement: the oldest leads. */
  readonly #nodeSince = new Map<string, number>()
  readonly #changes = new Emitter<Change>()
  readonly #ownership = new Emitter<void>()
  readonly #nodeGone = new Emitter<string>()
  #liveNodes: string[] = []
  #waiters: Waiter[] = []
  /** The newest etcd revision applied to memory (any key under the prefix). */
  #applied = 0
  /** The revision of the newest change (instance key event) applied. */
  #revision = 0
  /** The newest etcd revision received from the watch, history included. */
  #seen = 0
  /** Events up to this revision are history read at start: logged for resume, not applied. */
  #historyUntil = 0
  #count = 0

  constructor(changeLogSize: number) {
    this.log = new ChangeLog(changeLogSize, 0)
  }

  /** The revision of the newest change. */
  get revision(): number {
    return this.#revision
  }

  /** The newest etcd revision applied, whatever the key. */
  get applied(): number {
    return this.#applied
  }

  /** Where a watch re-attaches: right after the newest revision received. */
  get resumeFrom(): number {
    return this.#seen + 1
  }

  get instanceCount(): number {
    return this.#count
  }

  /** The live nodes' ids, sorted. */
  get liveNodes(): readonly string[] {
    return this.#liveNodes
  }

  /**
   * The node that runs once-only work: of the live nodes, the one whose announcement is
   * oldest (lowest create revision), as etcd's election recipe decides among candidates'
   * keys held by their sessions. When it dies its key goes with its lease, and the next
   * oldest takes over; a node that re-announces joins at the back.
   */
  get leaderNode(): string | undefined {
    let best: string | undefined
    let since = Number.POSITIVE_INFINITY
    for (const [id, rev] of this.#nodeSince) {
      if (rev < since) {
        best = id
        since = rev
      }
    }
    return best
  }

  /** Every change, once applied, in strictly increasing revision order. */
  onChange(listener: (change: Change) => void): Disposable {
    return this.#changes.on(listener)
  }

  /** Told when the set of live nodes may have changed (a node came, went or re-announced). */
  onOwnership(listener: () => void): Disposable {
    return this.#ownership.on(listener)
  }

  /** Told when a node's announcement went away (its session lease ran out). */
  onNodeGone(listener: (nodeId: string) => void): Disposable {
    return this.#nodeGone.on(listener)
  }

  /** Tells the check rota to look again at every instance (after a rebuild). */
  reassign(): void {
    this.#ownership.emit()
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
    return this.log.after(since, this.#revision)
  }

  /** The lease id of an instance's lease key, while etcd holds it. */
  leaseOf(service: string, id: string): string | undefined {
    return this.#leases.get(`${service}/${id}`)
  }

  /** Resolves once `revision` is applied, or after `timeoutMs`. */
  reach(revision: number, timeoutMs: number): Promise<void> {
    if (this.#applied >= revision) return Promise.resolve()
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

  /** Lets every waiter go (shutdown). */
  releaseWaiters(): void {
    for (const w of this.#waiters) w.resolve()
    this.#waiters = []
  }

  /** Replaces memory with the state in `kvs`, as of etcd revision `at`. */
  rebuild(kvs: IKeyValue[], at: number): void {
    this.#historyUntil = 0
    this.#seen = at
    this.#services.clear()
    this.#leases.clear()
    this.#nodes.clear()
    this.#nodeSince.clear()
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
        this.#nodeSince.set(key.slice(NODES.length), Number(kv.create_revision))
      }
    }
    this.#liveNodes = [...this.#nodes.keys()].sort()
    // Revisions a client saw before this node started are all at most `at`.
    this.#revision = Math.max(this.#revision, at)
    this.#applied = Math.max(this.#applied, at)
    this.log.reset(at)
    this.#resolveWaiters()
  }

  /**
   * Right after {@link rebuild} at `at`: the watch will replay etcd's history from `from`
   * (at most `at`); those events fill the change log and change nothing else.
   */
  expectHistory(from: number, at: number): void {
    this.#historyUntil = at
    this.#seen = from - 1
    this.log.reset(from - 1)
  }

  /** Gives up on history that did not arrive: resume works from the current revision on. */
  abandonHistory(): void {
    this.#historyUntil = 0
    this.log.reset(this.#revision)
  }

  /** Applies one watch response: its events in order, then wakes whoever waited for them. */
  apply(res: IWatchResponse): void {
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
          if (put) this.#upsert(JSON.parse(kv.value.toString()) as StoredInstance, rev)
          else this.#delete(name.service, name.id, rev)
        }
      } else if (key.startsWith(LEASES)) {
        const name = key.slice(LEASES.length)
        if (put) this.#leases.set(name, kv.value.toString())
        else this.#leases.delete(name)
      } else if (key.startsWith(NODES)) {
        const id = key.slice(NODES.length)
        if (put) {
          this.#nodes.set(id, kv.value.toString())
          this.#nodeSince.set(id, Number(kv.create_revision))
        } else {
          this.#nodes.delete(id)
          this.#nodeSince.delete(id)
          this.#nodeGone.emit(id)
        }
        membership = true
      }
      if (rev > this.#applied) this.#applied = rev
    }
    if (membership) {
      this.#liveNodes = [...this.#nodes.keys()].sort()
      this.#ownership.emit()
    }
    this.#resolveWaiters()
  }

  /** One change read from history (at most R): into the log only; memory already has it. */
  #history(ev: WatchEvent, key: string, rev: number): void {
    if (!key.startsWith(INSTANCES)) return
    const value = ev.type === 'Put' ? ev.kv.value : ev.prev_kv?.value
    if (value === undefined || value.length === 0) {
      // A removal whose instance etcd no longer has: the log can be complete only after it.
      this.log.reset(rev)
      return
    }
    const r = fromStored(JSON.parse(value.toString()) as StoredInstance, rev)
    this.log.push(makeChange(rev, ev.type === 'Put' ? 'upsert' : 'delete', toWire(r)))
  }

  #upsert(s: StoredInstance, rev: number): void {
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
      // kept while neither the check nor the address it probes changed. What only this
      // node knows (a newer probe result, a later heartbeat, the streak) is kept too.
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

  #delete(service: string, id: string, rev: number): void {
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
    this.log.push(change)
    this.#changes.emit(change)
  }

  #resolveWaiters(): void {
    if (this.#waiters.length === 0) return
    const ready = this.#waiters.filter((w) => w.revision <= this.#applied)
    if (ready.length === 0) return
    this.#waiters = this.#waiters.filter((w) => w.revision > this.#applied)
    for (const w of ready) w.resolve()
  }

  #entry(service: string): ServiceEntry {
    let entry = this.#services.get(service)
    if (entry === undefined) {
      entry = { instances: new Map(), revision: 0 }
      this.#services.set(service, entry)
    }
    return entry
  }
}
