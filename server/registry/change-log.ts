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

  constructor(capacity = 10_000) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('capacity must be a positive integer')
    this.capacity = capacity
    this.#ring = new Array(capacity)
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
    if (this.#size === 0) return undefined
    // The log is complete back to `oldest`; changes above `since` are all here only if
    // the change right after `since` is (the oldest held is at most since + 1).
    if (this.#at(0).revision > since + 1) return undefined
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
