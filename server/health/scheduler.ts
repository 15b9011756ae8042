import type { CheckSpec } from '../../client-sdk/protocol.js'
import type { Disposable } from '../registry/disposable.js'
import type { RegistryApi } from '../registry/registry-api.js'
import type { ProbeOutcome } from '../registry/registry.js'
import { errorLabel } from './outcome.js'
import type { Probe, ProbeTarget } from './probe.js'
import { probe as realProbe } from './probe.js'

/** The part of the registry the checker uses. */
export type CheckedRegistry = Pick<RegistryApi, 'onChange' | 'get' | 'instances' | 'recordCheck'>

/** `setTimeout`/`clearTimeout`, injectable so scheduler tests can drive time by hand. */
export interface CheckTimers {
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

/**
 * Node's timers, unref'd: a pending check never keeps a process alive on its own (the
 * server's listener does that), and {@link HealthChecker.close} clears them all anyway.
 */
export const nodeTimers: CheckTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
}

/** Options of {@link HealthChecker.start}, with their defaults. */
export interface HealthCheckerOptions {
  registry: CheckedRegistry
  /** Most probes in flight at once (`--check-concurrency`). Default 64. */
  concurrency?: number
  /** The first probe of a new check runs at a random moment within this. Default 1000 ms. */
  firstProbeWithinMs?: number
  /** Each interval is stretched or shrunk by up to this share, at random. Default 0.1. */
  jitter?: number
  /** Default: real HTTP and TCP probes. */
  probe?: Probe
  /** Default: {@link nodeTimers}. */
  timers?: CheckTimers
  /** Uniform in [0, 1). Default: Math.random. */
  random?: () => number
  /**
   * Told of every probe result that reached the registry (not the ones dropped because
   * the check changed meanwhile): for metrics. Must not throw.
   */
  onResult?: (outcome: ProbeOutcome, check: CheckSpec) => void
}

/** What the checker holds right now: all zero once it is closed. */
export interface CheckerStats {
  /** Instances with a check being scheduled. */
  instances: number
  /** Armed timers: instances waiting for their next probe. */
  timers: number
  /** Instances due, waiting for a free probe slot. */
  queued: number
  /** Probes in flight. */
  running: number
}

/**
 * Where one checked instance is in its cycle. Each phase holds only what it needs; an
 * entry moves waiting -> queued -> running -> waiting, and to stopped from anywhere.
 */
type Phase =
  | { kind: 'waiting'; timer: unknown }
  | { kind: 'queued' }
  | { kind: 'running'; abort: AbortController }
  | { kind: 'stopped' }

interface Entry {
  readonly key: string
  readonly service: string
  readonly id: string
  /** The very object on the instance when the entry was made: its identity is the check. */
  readonly check: CheckSpec
  phase: Phase
}

/**
 * Runs the active checks of every instance that has one, and reports each result to the
 * registry, which applies the thresholds and turns a change of health into a registry
 * change (see `nextCheckHealth`).
 *
 * - Scheduling: the first probe at a random moment within 1 s of the registration, then
 *   one every `intervalSeconds` +-10 %, counted from the end of the previous probe, so
 *   probes of many instances spread out and one instance never has two in flight.
 * - Concurrency: due probes wait in one FIFO queue for one of `concurrency` slots. A probe
 *   holds its slot at most its `timeoutSeconds`, so a slow or black-holed target delays
 *   the others only when it and its kind fill every slot.
 * - Changes: it follows `registry.onChange` (and an initial scan). An instance removed, or
 *   whose check object was replaced (a new check, or a new address to probe), loses its
 *   timer, its queue place and its in-flight probe (aborted) at once; a result that still
 *   arrives for the old check is dropped, here and by `recordCheck`.
 *
 * @example
 * ```ts
 * const checker = HealthChecker.start({ registry, concurrency: 64 })
 * // ... on shutdown, before the store closes:
 * await checker.close()
 * ```
 */
export class HealthChecker {
  readonly #registry: CheckedRegistry
  readonly #concurrency: number
  readonly #firstWithinMs: number
  readonly #jitter: number
  readonly #probe: Probe
  readonly #timers: CheckTimers
  readonly #random: () => number
  readonly #onResult: ((outcome: ProbeOutcome, check: CheckSpec) => void) | undefined
  readonly #entries = new Map<string, Entry>()
  /** A Set keeps insertion order, so it is a FIFO queue with O(1) removal. */
  readonly #queue = new Set<Entry>()
  readonly #inFlight = new Set<Promise<void>>()
  #armed = 0
  #subscription: Disposable | undefined
  #closed = false

  private constructor(options: HealthCheckerOptions) {
    this.#registry = options.registry
    this.#concurrency = options.concurrency ?? 64
    this.#firstWithinMs = options.firstProbeWithinMs ?? 1000
    this.#jitter = options.jitter ?? 0.1
    this.#probe = options.probe ?? realProbe
    this.#timers = options.timers ?? nodeTimers
    this.#random = options.random ?? Math.random
    this.#onResult = options.onResult
    if (!Number.isInteger(this.#concurrency) || this.#concurrency < 1) {
      throw new RangeError(`concurrency must be a whole number >= 1, not ${this.#concurrency}`)
    }
  }

  /** Starts checking every instance with a check, now and as they come and go. */
  static start(options: HealthCheckerOptions): HealthChecker {
    const checker = new HealthChecker(options)
    // Subscribe first: a change committed during the scan is then seen, and reconciling
    // the same instance twice is harmless.
    checker.#subscription = checker.#registry.onChange((change) =>
      checker.#reconcile(change.service, change.instance.id),
    )
    for (const r of checker.#registry.instances()) checker.#reconcile(r.service, r.id)
    return checker
  }

  /** What the checker holds right now. */
  stats(): CheckerStats {
    return { instances: this.#entries.size, timers: this.#armed, queued: this.#queue.size, running: this.#inFlight.size }
  }

  /**
   * Stops everything: no more probes, every timer cleared, every probe in flight aborted
   * and awaited (so none reports to a registry whose store is closing). Idempotent.
   */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true
      this.#subscription?.dispose()
      for (const e of [...this.#entries.values()]) this.#drop(e)
    }
    while (this.#inFlight.size > 0) await Promise.all(this.#inFlight)
  }

  /** Brings the entry of one instance in line with the registry's current state. */
  #reconcile(service: string, id: string): void {
    if (this.#closed) return
    const key = `${service}/${id}`
    const r = this.#registry.get(service, id)
    // checkHealth is null when the registry ignores checks (--checks=off).
    const check = r !== undefined && r.checkHealth !== null ? r.check : undefined
    const e = this.#entries.get(key)
    if (e !== undefined) {
      if (e.check === check) return
      this.#drop(e)
    }
    if (check === undefined) return
    const entry: Entry = { key, service, id, check, phase: { kind: 'stopped' } }
    this.#entries.set(key, entry)
    this.#wait(entry, this.#random() * Math.min(this.#firstWithinMs, check.intervalSeconds * 1000))
  }

  /** Removes an entry wherever it is in its cycle. */
  #drop(e: Entry): void {
    const phase = e.phase
    e.phase = { kind: 'stopped' }
    if (this.#entries.get(e.key) === e) this.#entries.delete(e.key)
    switch (phase.kind) {
      case 'waiting':
        this.#timers.clearTimeout(phase.timer)
        this.#armed--
        break
      case 'queued':
        this.#queue.delete(e)
        break
      case 'running':
        // Frees the slot at once; the probe's outcome is then ignored.
        phase.abort.abort()
        break
      case 'stopped':
        break
      default: {
        const never: never = phase
        throw new Error(`unknown phase ${JSON.stringify(never)}`)
      }
    }
  }

  #wait(e: Entry, ms: number): void {
    this.#armed++
    const timer = this.#timers.setTimeout(() => {
      this.#armed--
      if (e.phase.kind !== 'waiting' || e.phase.timer !== timer) return
      e.phase = { kind: 'queued' }
      this.#queue.add(e)
      this.#pump()
    }, ms)
    e.phase = { kind: 'waiting', timer }
  }

  #pump(): void {
    while (this.#inFlight.size < this.#concurrency && this.#queue.size > 0 && !this.#closed) {
      const e = this.#queue.values().next().value as Entry
      this.#queue.delete(e)
      this.#run(e)
    }
  }

  #run(e: Entry): void {
    // The change event of a removal or a new check can trail the registry's memory (it
    // waits for the store): look again right before probing.
    const r = this.#registry.get(e.service, e.id)
    if (r === undefined || r.check !== e.check || r.checkHealth === null) {
      this.#drop(e)
      this.#reconcile(e.service, e.id)
      return
    }
    const target: ProbeTarget = { host: r.host, port: r.port, scheme: r.scheme }
    const abort = new AbortController()
    e.phase = { kind: 'running', abort }
    const done = this.#probeSafely(target, e.check, abort.signal).then((outcome) => {
      this.#inFlight.delete(done)
      if (e.phase.kind === 'running' && e.phase.abort === abort) {
        this.#registry.recordCheck(e.service, e.id, e.check, outcome)
        this.#onResult?.(outcome, e.check)
        this.#wait(e, this.#nextDelayMs(e.check))
      }
      this.#pump()
    })
    this.#inFlight.add(done)
  }

  /** A probe that throws (a bug) is a failed result, not a stuck slot or a crash. */
  async #probeSafely(target: ProbeTarget, check: CheckSpec, signal: AbortSignal): Promise<ProbeOutcome> {
    try {
      return await this.#probe(target, check, signal)
    } catch (err) {
      return { ok: false, error: errorLabel(err), durationMs: 0 }
    }
  }

  #nextDelayMs(check: CheckSpec): number {
    const spread = 1 + this.#jitter * (2 * this.#random() - 1)
    return check.intervalSeconds * 1000 * spread
  }
}
