/**
 * The last `size` request outcomes of one instance, with their times, for the breaker's
 * failure-rate rule. A ring over two typed arrays: recording allocates nothing, and
 * counting scans at most `size` slots (20 by default), once per recorded outcome.
 */
export class OutcomeWindow {
  readonly #failed: Uint8Array
  readonly #at: Float64Array
  #next = 0
  #count = 0

  constructor(readonly size: number) {
    this.#failed = new Uint8Array(size)
    this.#at = new Float64Array(size)
  }

  /** Records one outcome at time `at`, overwriting the oldest once full. */
  push(ok: boolean, at: number): void {
    if (this.size === 0) return
    this.#failed[this.#next] = ok ? 0 : 1
    this.#at[this.#next] = at
    this.#next = (this.#next + 1) % this.size
    if (this.#count < this.size) this.#count++
  }

  /**
   * Requests and failures among the recorded outcomes not older than `since`: a burst of
   * failures long ago says nothing about the instance now, however little traffic came after.
   */
  tally(since: number): { requests: number; failures: number } {
    let requests = 0
    let failures = 0
    for (let i = 0; i < this.#count; i++) {
      if ((this.#at[i] as number) < since) continue
      requests++
      failures += this.#failed[i] as number
    }
    return { requests, failures }
  }

  /** Forgets everything: a closed breaker starts from a clean window. */
  clear(): void {
    this.#next = 0
    this.#count = 0
  }
}
