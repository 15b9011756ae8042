import type { Health, PatchBody, RegisterBody, ServiceSummary } from '../../client-sdk/protocol.js'
import type { Change } from './change.js'
import type { Disposable } from './disposable.js'
import type { InstanceRecord } from './record.js'
import type { ProbeOutcome, Registration, ServiceEntry, SweepReport, Update } from './registry.js'

/** A value, or a promise of it: what a write returns in one mode or the other. */
export type MaybePromise<T> = T | Promise<T>

/**
 * What the HTTP routes, the watch hub, the health checker and the metrics use of a
 * registry. Two implement it: {@link Registry} (one node, SQLite: writes change memory at
 * once and answer synchronously) and `EtcdRegistry` (cluster mode: a replica of etcd whose
 * writes are etcd transactions, answered once this node applied them, hence the
 * `MaybePromise` results). Callers `await` what may be a promise.
 */
export interface RegistryApi {
  /** The newest revision this node knows of. */
  readonly revision: number
  /** The newest revision that is durable and published to this node's listeners. */
  readonly committedRevision: number
  readonly instanceCount: number
  readonly selfPreservation: boolean
  /** Set when the store failed: writes are then refused. */
  readonly failure: Error | undefined

  /** Every change once durable, in strictly increasing revision order. */
  onChange(listener: (change: Change) => void): Disposable
  onSelfPreservation(listener: (active: boolean) => void): Disposable
  onSweep(listener: (report: SweepReport) => void): Disposable
  onFatal(listener: (err: Error) => void): Disposable

  register(service: string, id: string | undefined, body: RegisterBody): MaybePromise<Registration>
  patch(service: string, id: string, patch: PatchBody): MaybePromise<Update>
  deregister(service: string, id: string): Promise<void>
  /** Renews a lease; undefined for an unknown instance. */
  heartbeat(service: string, id: string): MaybePromise<InstanceRecord | undefined>
  recordCheck(service: string, id: string, probed: object, outcome: ProbeOutcome): void
  sweep(): SweepReport

  get(service: string, id: string): InstanceRecord | undefined
  instances(): IterableIterator<InstanceRecord>
  service(service: string): ServiceEntry | undefined
  serviceRevision(service: string): number
  serviceNames(): string[]
  summaries(): ServiceSummary[]
  healthCounts(): Record<Health, number>
  changesSince(since: number): Change[] | undefined
  flush(): Promise<void>
  settled(): Promise<void>

  /**
   * Brings this node's memory up to the store's current revision, so that a read answers
   * what any node already acknowledged (read-your-writes across nodes). Absent on a
   * single node, whose memory is the store.
   */
  sync?(): Promise<void>
  /**
   * Resolves once this node has applied `revision` (or a bounded wait ran out): a
   * watcher resuming with a `since` that another node served waits for this node to
   * catch up before its history is read. Absent on a single node.
   */
  reach?(revision: number): Promise<void>
}
