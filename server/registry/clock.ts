/** The registry's only notion of time, injected so lifecycle tests need no sleeping. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number
}

/** The wall clock. */
export const systemClock: Clock = { now: () => Date.now() }

/** A clock that moves only when told to: for tests of the pure, time-based units. */
export class ManualClock implements Clock {
  #now: number
  constructor(start = Date.UTC(2026, 0, 1)) {
    this.#now = start
  }
  now(): number {
    return this.#now
  }
  /** Moves time forward by `ms`. */
  advance(ms: number): void {
    this.#now += ms
  }
  set(ms: number): void {
    this.#now = ms
  }
}
