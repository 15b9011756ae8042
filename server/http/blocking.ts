/**
 * Parked blocking queries, keyed by what they wait on (a service name, or GLOBAL for the
 * service list). A change wakes only the waiters of its own service and the global ones,
 * so a blocking query on `orders` does not wake on churn elsewhere.
 */
export const GLOBAL = '\u0000*'

interface Waiter {
  wake: () => void
}

export class RevisionWaiters {
  readonly #byKey = new Map<string, Set<Waiter>>()
  #closed = false

  /** True once {@link close} was called. */
  get closed(): boolean {
    return this.#closed
  }

  /** How many queries are parked. */
  get size(): number {
    let n = 0
    for (const set of this.#byKey.values()) n += set.size
    return n
  }

  /**
   * Resolves on the next change to `key`, after `timeoutMs`, when `signal` aborts, or at
   * shutdown, whichever is first. Never rejects.
   */
  wait(key: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.#closed || timeoutMs <= 0 || signal?.aborted) return Promise.resolve()
    return new Promise((resolve) => {
      let set = this.#byKey.get(key)
      if (set === undefined) {
        set = new Set()
        this.#byKey.set(key, set)
      }
      const waiters = set
      const waiter: Waiter = {
        wake: () => {
          clearTimeout(timer)
          signal?.removeEventListener('abort', waiter.wake)
          waiters.delete(waiter)
          if (waiters.size === 0 && this.#byKey.get(key) === waiters) this.#byKey.delete(key)
          resolve()
        },
      }
      const timer = setTimeout(waiter.wake, timeoutMs)
      signal?.addEventListener('abort', waiter.wake, { once: true })
      waiters.add(waiter)
    })
  }

  /** Wakes everything parked on `key`. */
  notify(key: string): void {
    const set = this.#byKey.get(key)
    if (set === undefined) return
    for (const waiter of [...set]) waiter.wake()
  }

  /** Wakes everything, now and from now on: for shutdown, so no query holds it up. */
  close(): void {
    this.#closed = true
    for (const set of [...this.#byKey.values()]) for (const waiter of [...set]) waiter.wake()
  }
}
