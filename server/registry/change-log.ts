import type { Change } from './change.js'

/**
 * The last `capacity` changes, in revision order, for watchers that resume with `since`.
 * A ring buffer: pushing never allocates once it is full.
 */
export class ChangeLog {
  readonly capacity: number
  #ring: Array<Change | undefined>
  #start = 0
  #size = 0
  /**
   * Every change with a revision above this is held (up to the newest), when known. Left
   * undefined, revisions are taken to be contiguous (one registry numbering its own
   * changes), so the log is complete from its oldest change on. Cluster mode numbers
   * changes with etcd's revisions, which have gaps, so it says where completeness starts.
   */
  #completeFrom: number | undefined

  constructor(capacity = 10_000, completeFrom?: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('capacity must be a positive integer')
    this.capacity = capacity
    this.#ring = new Array(capacity)
    this.#completeFrom = completeFrom
  }

  /**
   * The revision above which every change is held, when known: answers for any `since`
   * at or above it. Changes when the oldest change is dropped.
   */
  get completeFrom(): number | undefined {
    return this.#completeFrom
  }

  /**
   * Forgets every change and declares the log complete above `revision`: for a replica
   * that rebuilt its state from a snapshot and cannot replay what came before.
   */
  reset(revision: number): void {
    this.#ring = new Array(this.capacity)
    this.#start = 0
    this.#size = 0
    this.#completeFrom = revision
  }

  get size(): number {
    return this.#size
  }

  /** Revision of the oldest change held, or undefined when empty. */
  get oldest(): number | undefined {
    return this.#size === 0 ? undefined : this.#at(0).revision
  }

  get newest(): number | undefined {
    return this.#size === 0 ? undefined : this.#at(this.#size - 1).revision
  }

  push(change: Change): void {
    if (this.#size > 0 && change.revision <= this.#at(this.#size - 1).revision) {
      throw new Error(`change log out of order: ${change.revision} after ${this.#at(this.#size - 1).revision}`)
    }
    if (this.#size < this.capacity) {
      this.#ring[(this.#start + this.#size) % this.capacity] = change
      this.#size++
    } else {
      if (this.#completeFrom !== undefined) this.#completeFrom = this.#at(0).revision
      this.#ring[this.#start] = change
      this.#start = (this.#start + 1) % this.capacity
    }
  }

  /**
   * The changes after `since`, oldest first; `undefined` when the log no longer reaches
   * back that far (some change after `since` was dropped), so the caller sends a snapshot.
   * `current` is the newest revision the caller knows of: `since == current` needs
   * nothing; a `since` past it comes from another registry (or a wiped one) and gets a
   * snapshot too.
   */
  after(since: number, current: number): Change[] | undefined {
    if (since === current) return []
    if (since > current) return undefined
    if (this.#completeFrom !== undefined) {
      // Revisions may have gaps: what counts is where the log is known to be complete.
      if (since < this.#completeFrom) return undefined
      if (this.#size === 0) return []
    } else {
      if (this.#size === 0) return undefined
      // The log is complete back to `oldest`; changes above `since` are all here only if
      // the change right after `since` is (the oldest held is at most since + 1).
      if (this.#at(0).revision > since + 1) return undefined
    }
    let lo = 0
    let hi = this.#size
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.#at(mid).revision <= since) lo = mid + 1
      else hi = mid
    }
    const out: Change[] = []
    for (let i = lo; i < this.#size; i++) out.push(this.#at(i))
    return out
  }

  #at(i: number): Change {
    return this.#ring[(this.#start + i) % this.capacity] as Change
  }
}
