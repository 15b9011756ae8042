/**
 * One instance's circuit breaker, as Envoy's outlier detection: ejected after N
 * consecutive failures or a failure rate over a sliding window, for base time x times
 * ejected (capped), then half-open with exactly one probe request; the probe's success
 * closes it, its failure ejects it again for longer.
 *
 *   closed --N failures in a row / failure rate--> open --ejection time ends--> half-open
 *     ^                                              ^                           |
 *     |                                              +------- probe fails -------+
 *     +------------------------ probe succeeds (or no news in probeTimeoutMs) ---+
 *   closed --server reports passing again--> half-open (not an ejection: a probe first)
 *
 * Pure: time comes from an injected `now`, and time-driven transitions (open -> half-open,
 * a probe that never reported) happen when the breaker is next looked at, with no timer.
 * {@link Breaker.nextTransitionAt} says when that is due, for whoever caches a decision
 * based on the state.
 */
import { OutcomeWindow } from './breaker-window.js'

/** The public states. */
export enum BreakerState {
  /** Takes traffic; outcomes are counted. */
  Closed = 'closed',
  /** Ejected: takes no traffic until its ejection time ends. */
  Open = 'open',
  /** Takes one probe request, whose outcome decides. */
  HalfOpen = 'half-open',
}

/** Why a breaker changed state: for logs and metrics. */
export type BreakerChangeReason =
  | 'consecutive-failures'
  | 'failure-rate'
  | 'ejection-ended'
  | 'probe-succeeded'
  | 'probe-failed'
  | 'probe-timed-out'
  | 'recovered'

/** One state change, as emitted to listeners. */
export interface BreakerChange {
  id: string
  from: BreakerState
  to: BreakerState
  reason: BreakerChangeReason
  /** When it happened, from the injected clock. */
  at: number
  /** The ejection count after the change (it multiplies the next ejection time). */
  ejections: number
  /** When an ejection ends (changes to Open only). */
  until?: number
}

/** Thresholds and times of a breaker; every field has a default written next to it. */
export interface BreakerOptions {
  /** Failures in a row that eject. Default 5, as Envoy's consecutive_5xx. 0 disables the rule. */
  consecutiveFailures?: number
  /** Failure share over the window that ejects, 0..1. Default 0.5. 0 disables the rule. */
  failureRateThreshold?: number
  /** Outcomes the failure-rate rule looks at: the last N. Default 20. */
  windowSize?: number
  /** Fewest outcomes in the window before the failure-rate rule applies. Default 10. */
  minimumRequests?: number
  /** Outcomes older than this do not count toward the rate. Default 60 s. */
  windowMs?: number
  /** First ejection time; the n-th ejection lasts n times it. Default 30 s, as Envoy. */
  baseEjectionMs?: number
  /** Cap of the ejection time. Default 300 s, as Envoy's max_ejection_time. */
  maxEjectionMs?: number
  /**
   * While closed, the ejection count drops by one every this long, as Envoy decrements
   * its ejection multiplier at each interval a host stays healthy. Default 10 s (Envoy's
   * default interval).
   */
  decayIntervalMs?: number
  /**
   * A half-open breaker whose probe has not reported within this long closes as if the
   * probe succeeded. It keeps an instance from staying out for lack of news when a caller
   * picks without reporting outcomes; a request timeout that reports a failure must be
   * shorter than this. Default 30 s.
   */
  probeTimeoutMs?: number
}

const DEFAULTS: Required<BreakerOptions> = {
  consecutiveFailures: 5,
  failureRateThreshold: 0.5,
  windowSize: 20,
  minimumRequests: 10,
  windowMs: 60_000,
  baseEjectionMs: 30_000,
  maxEjectionMs: 300_000,
  decayIntervalMs: 10_000,
  probeTimeoutMs: 30_000,
}

/** Options with their defaults filled in, and ranges checked. */
export function resolveBreakerOptions(options: BreakerOptions = {}): Required<BreakerOptions> {
  const o = { ...DEFAULTS }
  for (const key of Object.keys(DEFAULTS) as Array<keyof BreakerOptions>) {
    const v = options[key]
    if (v === undefined) continue
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw new RangeError(`breaker option ${key} must be a finite number >= 0, got ${String(v)}`)
    }
    o[key] = v
  }
  if (o.failureRateThreshold > 1) throw new RangeError('breaker option failureRateThreshold must be <= 1')
  o.windowSize = Math.floor(o.windowSize)
  return o
}

/**
 * What a breaker asks of the group it belongs to: a slot before it ejects (the group
 * enforces max-ejection-percent), the slot back when it closes, and where to report its
 * changes. A breaker on its own gets {@link FREE_GATE}.
 */
export interface EjectionGate {
  /** Takes one ejection slot; false when ejecting one more would pass the limit. */
  tryEject(): boolean
  /** Gives an ejection slot back. */
  release(): void
  /** Called after every state change. */
  changed(change: BreakerChange): void
}

/** The gate of a breaker outside any group: every ejection allowed, changes dropped. */
export const FREE_GATE: EjectionGate = { tryEject: () => true, release: () => {}, changed: () => {} }

type Inner =
  // `since` is when the state began: outcomes of requests started before it are stale.
  | { state: BreakerState.Closed; since: number; consecutive: number }
  | { state: BreakerState.Open; since: number; until: number }
  // `ejected`: holds an ejection slot (reached from Open) or not (reached by `probeFirst`).
  | { state: BreakerState.HalfOpen; since: number; ejected: boolean; probeAt: number | undefined }

/**
 * A per-instance breaker. Usually made by a {@link BreakerGroup}, which shares one clock
 * and options among a service's breakers and enforces max-ejection-percent.
 *
 * @example
 * ```ts
 * const b = new Breaker('o-1', { now: Date.now })
 * const startedAt = Date.now()
 * try { await call(); b.recordSuccess(startedAt) } catch { b.recordFailure(startedAt) }
 * if (b.state !== BreakerState.Closed) { ... }
 * ```
 */
export class Breaker {
  readonly id: string
  readonly #o: Required<BreakerOptions>
  readonly #now: () => number
  #gate: EjectionGate
  #inner: Inner
  /** Envoy's num_ejections: multiplies the ejection time; decays while closed. */
  #ejections = 0
  readonly #window: OutcomeWindow

  constructor(id: string, options: BreakerOptions & { now: () => number }, gate: EjectionGate = FREE_GATE) {
    this.id = id
    this.#o = resolveBreakerOptions(options)
    this.#now = options.now
    this.#gate = gate
    this.#inner = { state: BreakerState.Closed, since: this.#now(), consecutive: 0 }
    this.#window = new OutcomeWindow(this.#o.windowSize)
  }

  /** The state now (applying any time-driven transition that is due). */
  get state(): BreakerState {
    this.#settle(this.#now())
    return this.#inner.state
  }

  /** The ejection count now, decayed while closed. */
  get ejections(): number {
    const now = this.#now()
    this.#settle(now)
    return this.#inner.state === BreakerState.Closed ? this.#decayed(this.#inner.since, now) : this.#ejections
  }

  /** Whether it holds an ejection slot of its group (open, or half-open after an ejection). */
  get ejected(): boolean {
    this.#settle(this.#now())
    const inner = this.#inner
    return inner.state === BreakerState.Open || (inner.state === BreakerState.HalfOpen && inner.ejected)
  }

  /** Whether it is half-open and its probe has not been handed out yet. */
  get awaitingProbe(): boolean {
    this.#settle(this.#now())
    return this.#inner.state === BreakerState.HalfOpen && this.#inner.probeAt === undefined
  }

  /**
   * When a time-driven transition is next due: the end of an ejection, or the probe
   * timeout of a half-open breaker whose probe is out. Infinity when none is.
   */
  nextTransitionAt(): number {
    const inner = this.#inner
    switch (inner.state) {
      case BreakerState.Closed:
        return Infinity
      case BreakerState.Open:
        return inner.until
      case BreakerState.HalfOpen:
        return inner.probeAt === undefined ? Infinity : inner.probeAt + this.#o.probeTimeoutMs
      default:
        return assertNever(inner)
    }
  }

  /**
   * Hands out the one probe of a half-open breaker: true once, then false until the probe
   * reports (or times out). False in any other state.
   */
  tryAcquireProbe(): boolean {
    const now = this.#now()
    this.#settle(now)
    const inner = this.#inner
    if (inner.state !== BreakerState.HalfOpen || inner.probeAt !== undefined) return false
    inner.probeAt = now
    return true
  }

  /**
   * Records a request that succeeded. `startedAt` (default now) is when it was sent: an
   * outcome of a request sent before the current state began (say, before the ejection)
   * is stale and ignored, so only the probe decides a half-open breaker.
   */
  recordSuccess(startedAt?: number): void {
    this.#record(true, startedAt)
  }

  /** Records a request that failed; see {@link Breaker.recordSuccess} for `startedAt`. */
  recordFailure(startedAt?: number): void {
    this.#record(false, startedAt)
  }

  /**
   * The server reports the instance passing again (after critical): let one probe through
   * before full traffic instead of flooding an instance that has just come back. Only a
   * closed breaker changes; this is not an ejection and takes no slot. An open breaker
   * stays open: the server's check passing does not undo the failures seen here.
   */
  probeFirst(): void {
    const now = this.#now()
    this.#settle(now)
    if (this.#inner.state === BreakerState.Closed) this.#halfOpen(now, false, 'recovered')
  }

  /** Leaves the group: gives back a held slot; later calls change nothing and report nothing. */
  dispose(): void {
    if (this.ejected) this.#gate.release()
    this.#gate = { tryEject: () => false, release: () => {}, changed: () => {} }
  }

  #record(ok: boolean, startedAt: number | undefined): void {
    const now = this.#now()
    this.#settle(now)
    const inner = this.#inner
    if ((startedAt ?? now) < inner.since) return
    switch (inner.state) {
      case BreakerState.Closed: {
        this.#window.push(ok, now)
        if (ok) {
          inner.consecutive = 0
          return
        }
        inner.consecutive++
        const reason = this.#ejectionReason(inner.consecutive, now)
        // An ejection refused by max-ejection-percent is tried again at the next failure,
        // by when another instance may have come back.
        if (reason !== undefined && this.#gate.tryEject()) this.#open(now, reason)
        return
      }
      case BreakerState.Open:
        // Traffic that reached it anyway (panic mode): its ejection time decides, not this.
        return
      case BreakerState.HalfOpen:
        if (ok) this.#close(now, 'probe-succeeded')
        else if (inner.ejected || this.#gate.tryEject()) this.#open(now, 'probe-failed')
        else this.#close(now, 'probe-failed')
        return
      default:
        assertNever(inner)
    }
  }

  #ejectionReason(consecutive: number, now: number): BreakerChangeReason | undefined {
    const o = this.#o
    if (o.consecutiveFailures > 0 && consecutive >= o.consecutiveFailures) return 'consecutive-failures'
    if (o.failureRateThreshold > 0) {
      const { requests, failures } = this.#window.tally(now - o.windowMs)
      if (requests >= o.minimumRequests && requests > 0 && failures >= o.failureRateThreshold * requests) {
        return 'failure-rate'
      }
    }
    return undefined
  }

  /** Applies the time-driven transitions that are due at `now`. */
  #settle(now: number): void {
    const inner = this.#inner
    if (inner.state === BreakerState.Open && now >= inner.until) {
      this.#halfOpen(now, true, 'ejection-ended')
    } else if (
      inner.state === BreakerState.HalfOpen &&
      inner.probeAt !== undefined &&
      now >= inner.probeAt + this.#o.probeTimeoutMs
    ) {
      this.#close(now, 'probe-timed-out')
    }
  }

  #decayed(closedSince: number, now: number): number {
    const o = this.#o
    if (o.decayIntervalMs <= 0) return this.#ejections
    return Math.max(0, this.#ejections - Math.floor((now - closedSince) / o.decayIntervalMs))
  }

  // The three transitions below are the only places that replace the state, and each
  // reports the change. Half-open has its own because two roads lead to it (the ejection
  // ending, and the server reporting the instance passing again).

  /** Ejects (the caller holds a slot): for base x ejections, capped. */
  #open(now: number, reason: BreakerChangeReason): void {
    const from = this.#inner
    if (from.state === BreakerState.Closed) this.#ejections = this.#decayed(from.since, now)
    this.#ejections++
    const o = this.#o
    const duration = Math.min(o.baseEjectionMs * this.#ejections, Math.max(o.baseEjectionMs, o.maxEjectionMs))
    this.#inner = { state: BreakerState.Open, since: now, until: now + duration }
    this.#emit(from.state, now, reason, now + duration)
  }

  #halfOpen(now: number, ejected: boolean, reason: BreakerChangeReason): void {
    const from = this.#inner.state
    this.#inner = { state: BreakerState.HalfOpen, since: now, ejected, probeAt: undefined }
    this.#emit(from, now, reason)
  }

  #close(now: number, reason: BreakerChangeReason): void {
    const from = this.#inner
    const heldSlot = from.state === BreakerState.Open || (from.state === BreakerState.HalfOpen && from.ejected)
    if (heldSlot) this.#gate.release()
    this.#inner = { state: BreakerState.Closed, since: now, consecutive: 0 }
    this.#window.clear()
    this.#emit(from.state, now, reason)
  }

  #emit(from: BreakerState, at: number, reason: BreakerChangeReason, until?: number): void {
    const change: BreakerChange = { id: this.id, from, to: this.#inner.state, reason, at, ejections: this.#ejections }
    if (until !== undefined) change.until = until
    this.#gate.changed(change)
  }
}

function assertNever(x: never): never {
  throw new Error(`unexpected breaker state ${JSON.stringify(x)}`)
}
