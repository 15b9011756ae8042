/**
 * The candidate set of one service and the pick over it: which of the known instances may
 * take the next request, and which one does.
 *
 * @example
 * ```ts
 * const set = new PickSet({ service: 'orders', balancer: 'least-request', zone: 'eu-1a', now: Date.now })
 * set.replaceAll(snapshot.services.orders)        // from the watch: a snapshot...
 * set.upsert(change.instance)                     // ...then changes
 * const ep = set.pickOrThrow()
 * const startedAt = Date.now()
 * ep.inFlight++
 * try { await send(ep); set.recordSuccess(ep, startedAt) }
 * catch (err) { set.recordFailure(ep, startedAt); throw err }
 * finally { ep.inFlight-- }
 * ```
 */
import type { Balancer, BalancerName, BalancerOptions } from './balancers/index.js'
import { createBalancer } from './balancers/index.js'
import type { Breaker, BreakerOptions } from './breaker.js'
import { BreakerState } from './breaker.js'
import { BreakerGroup } from './breaker-group.js'
import type { EndpointInit } from './endpoint.js'
import { Endpoint } from './endpoint.js'
import { NoInstanceAvailableError } from './errors.js'
import type { Instance } from './protocol.js'

/** Options of a {@link PickSet}; defaults are written next to each. */
export interface PickSetOptions {
  /** The clock of the breakers and of ejection ends. */
  now: () => number
  /** Service name, for endpoints made from hand-made inits and for errors. Default ''. */
  service?: string
  /** A balancer name, or a balancer instance. Default 'round-robin'. */
  balancer?: BalancerName | Balancer
  /** Options of a balancer made by name (its random source, ring-hash sizes). */
  balancerOptions?: BalancerOptions
  /** The caller's zone. Unset: no zone preference. */
  zone?: string
  /** Fewest routable instances the caller's zone must have to be preferred. Default 1. */
  zoneMinInstances?: number
  /**
   * Smallest share (0..1) of the zone's own instances that must be routable for it to be
   * preferred. Default 0.5: a zone that has lost more than half of its instances spills
   * over to all zones rather than pile its callers' load onto the few left.
   */
  zoneMinHealthyShare?: number
  /**
   * Panic threshold (0..1), as Envoy's healthy_panic_threshold: when fewer than this share
   * of the instances that may take traffic are routable and not ejected, balance over all
   * of them. Default 0.5. 0 disables panic mode.
   */
  panicThreshold?: number
  /** Options of every instance's breaker, and max-ejection-percent. */
  breakers?: BreakerOptions & { maxEjectionPercent?: number }
}

/** How the last recompute went: for metrics, logs and `NoInstanceAvailableError`. */
export interface PickSetStats {
  /** Known instances, whatever their state. */
  known: number
  /** Instances that may take traffic at all: status `up`, weight above 0. */
  eligible: number
  /** Of those, the routable (health passing) ones whose breaker is closed. */
  healthy: number
  /** Candidates the balancer picks from. */
  candidates: number
  /** Half-open instances waiting for their probe. */
  probes: number
  /** Balancing over all eligible instances because too few are healthy. */
  panic: boolean
  /** Candidates are the caller's zone only. */
  zoneLocal: boolean
}

interface Member {
  endpoint: Endpoint
  breaker: Breaker
}

function share(name: string, v: number | undefined, fallback: number): number {
  const x = v ?? fallback
  if (!(x >= 0 && x <= 1)) throw new RangeError(`${name} must be within 0..1, got ${String(v)}`)
  return x
}

/**
 * Every known instance of one service, each with its {@link Endpoint} and its breaker, and
 * the candidate set that the balancer picks from:
 *
 * 1. eligible: status `up` and weight above 0. `starting`, `draining`, `out_of_service`
 *    and weight 0 never take new traffic, not even in panic: they are decisions of the
 *    instance or an operator, not judgements of its health.
 * 2. healthy: eligible, health `passing` and breaker closed.
 * 3. panic: when healthy < panicThreshold x eligible, candidates = every eligible instance
 *    (critical, ejected or not), and zone preference is off, as in Envoy. Health checks
 *    and breakers can be wrong together (a registry partitioned from the instances, a
 *    shared dependency down); sending everywhere beats sending to the few left.
 * 4. otherwise, with a zone: candidates = the healthy instances of the caller's zone when
 *    there are at least zoneMinInstances of them and at least zoneMinHealthyShare of the
 *    zone's eligible instances; else every healthy instance (spill-over).
 * 5. half-open instances (healthy but for the breaker) are not candidates: the next pick
 *    hands one of them its single probe before it asks the balancer.
 *
 * Recomputed on change, not per pick: every upsert, removal, breaker change or
 * {@link PickSet.invalidate} marks the set dirty, and the next pick recomputes it once
 * (a snapshot of 1,000 instances costs one recompute, not 1,000). Time-driven breaker
 * changes (an ejection ending) have no event; the set keeps the earliest such deadline and
 * a pick past it recomputes. A pick reads the clock only while such a deadline exists.
 *
 * Not thread-safe, like everything in a Node process; nothing in it does I/O or sets timers.
 */
export class PickSet {
  readonly service: string
  /** The breakers of this service's instances, for `onChange` and metrics. */
  readonly breakers: BreakerGroup
  readonly #now: () => number
  readonly #balancer: Balancer
  readonly #zone: string | undefined
  readonly #zoneMinInstances: number
  readonly #zoneMinHealthyShare: number
  readonly #panicThreshold: number
  readonly #members = new Map<string, Member>()
  #dirty = true
  #recomputing = false
  /** Earliest time-driven breaker transition among the members; Infinity when none. */
  #deadline = Infinity
  /** Half-open members waiting for their probe; popped by picks. */
  #probes: Member[] = []
  #candidates: readonly Endpoint[] = []
  #stats: PickSetStats = { known: 0, eligible: 0, healthy: 0, candidates: 0, probes: 0, panic: false, zoneLocal: false }

  constructor(options: PickSetOptions) {
    this.service = options.service ?? ''
    this.#now = options.now
    const b = options.balancer ?? 'round-robin'
    this.#balancer = typeof b === 'string' ? createBalancer(b, options.balancerOptions) : b
    this.#zone = options.zone
    this.#zoneMinInstances = Math.max(0, options.zoneMinInstances ?? 1)
    this.#zoneMinHealthyShare = share('zoneMinHealthyShare', options.zoneMinHealthyShare, 0.5)
    this.#panicThreshold = share('panicThreshold', options.panicThreshold, 0.5)
    this.breakers = new BreakerGroup({ ...options.breakers, now: options.now })
    this.breakers.onChange(() => {
      this.#dirty = true
    })
  }

  /** The balancer in use. */
  get balancer(): Balancer {
    return this.#balancer
  }

  /** Known instances, whatever their state. */
  get size(): number {
    return this.#members.size
  }

  /**
   * Adds an instance or applies a newer version of it; returns its endpoint (the same
   * object for the same id). An instance the server reports `passing` again after
   * `critical` gets one probe before full traffic ({@link Breaker.probeFirst}).
   */
  upsert(init: EndpointInit | Instance): Endpoint {
    const m = this.#members.get(init.id)
    if (m === undefined) {
      const endpoint = new Endpoint(init)
      if (init.service === undefined) endpoint.service = this.service
      this.#members.set(init.id, { endpoint, breaker: this.breakers.add(init.id) })
      this.#dirty = true
      return endpoint
    }
    const wasCritical = m.endpoint.health === 'critical'
    m.endpoint.update(init)
    if (init.service === undefined) m.endpoint.service = this.service
    if (wasCritical && m.endpoint.health === 'passing') m.breaker.probeFirst()
    this.#dirty = true
    return m.endpoint
  }

  /** Forgets an instance (removed from the registry). Returns whether it was known. */
  remove(id: string): boolean {
    if (!this.#members.delete(id)) return false
    this.breakers.delete(id)
    this.#dirty = true
    return true
  }

  /**
   * Makes the known set exactly `instances` (a snapshot): upserts each, removes the rest.
   * Breakers and in-flight counts of instances that stay are kept.
   */
  replaceAll(instances: Iterable<EndpointInit | Instance>): void {
    const seen = new Set<string>()
    for (const i of instances) {
      this.upsert(i)
      seen.add(i.id)
    }
    for (const id of [...this.#members.keys()]) if (!seen.has(id)) this.remove(id)
  }

  /** The endpoint of `id`, if known. */
  get(id: string): Endpoint | undefined {
    return this.#members.get(id)?.endpoint
  }

  /** Every known endpoint, whatever its state. A fresh array. */
  all(): Endpoint[] {
    return Array.from(this.#members.values(), (m) => m.endpoint)
  }

  /** The routable endpoints (status up, health passing), ejected or not. A fresh array. */
  routable(): Endpoint[] {
    return this.all().filter((e) => e.routable)
  }

  /** The candidates the balancer picks from now (recomputing if due). Do not mutate. */
  candidates(): readonly Endpoint[] {
    this.#refresh()
    return this.#candidates
  }

  /** Figures of the candidate set now (recomputing if due). */
  stats(): PickSetStats {
    this.#refresh()
    return { ...this.#stats }
  }

  /** Marks the set for recompute at the next pick (say, after an endpoint's weight was edited in place). */
  invalidate(): void {
    this.#dirty = true
  }

  /**
   * One endpoint for the next request, or undefined when there is none. A half-open
   * instance waiting for its probe gets it first; otherwise the balancer picks among the
   * candidates (`key` for ring-hash). Synchronous, and allocates nothing unless a
   * recompute is due.
   */
  pick(key?: string): Endpoint | undefined {
    this.#refresh()
    const probes = this.#probes
    while (probes.length > 0) {
      const m = probes.pop() as Member
      if (m.breaker.tryAcquireProbe()) {
        // The probe's own timeout is a new time-driven deadline.
        const due = m.breaker.nextTransitionAt()
        if (due < this.#deadline) this.#deadline = due
        return m.endpoint
      }
    }
    return this.#balancer.pick(key)
  }

  /** As {@link PickSet.pick}, but throws {@link NoInstanceAvailableError} saying why there is none. */
  pickOrThrow(key?: string): Endpoint {
    const e = this.pick(key)
    if (e !== undefined) return e
    const s = this.#stats
    const detail =
      s.known === 0
        ? 'no instance is registered'
        : s.eligible === 0
          ? `none of ${s.known} instances is up with a weight above 0`
          : `none of ${s.eligible} eligible instances is routable and not ejected`
    throw new NoInstanceAvailableError(this.service, detail)
  }

  /**
   * Records a success of a request to `endpoint` started at `startedAt` (default now) in
   * its breaker. An endpoint no longer known (removed, or replaced under the same id) is
   * ignored: its outcome says nothing about the instance now known by that id.
   */
  recordSuccess(endpoint: Endpoint, startedAt?: number): void {
    const m = this.#members.get(endpoint.id)
    if (m !== undefined && m.endpoint === endpoint) m.breaker.recordSuccess(startedAt)
  }

  /** Records a failure; see {@link PickSet.recordSuccess}. */
  recordFailure(endpoint: Endpoint, startedAt?: number): void {
    const m = this.#members.get(endpoint.id)
    if (m !== undefined && m.endpoint === endpoint) m.breaker.recordFailure(startedAt)
  }

  /** The breaker of `id`, if known. */
  breakerOf(id: string): Breaker | undefined {
    return this.#members.get(id)?.breaker
  }

  #refresh(): void {
    if (this.#deadline !== Infinity && this.#now() >= this.#deadline) this.#dirty = true
    if (this.#dirty && !this.#recomputing) this.#recompute()
  }

  #recompute(): void {
    this.#recomputing = true
    try {
      const eligible: Endpoint[] = []
      const healthy: Endpoint[] = []
      const probes: Member[] = []
      let deadline = Infinity
      for (const m of this.#members.values()) {
        const { endpoint: e, breaker: b } = m
        // Reading the state applies any transition that is due (and reports it: the
        // listener marks the set dirty again, which the end of this method undoes, since
        // what it reports is already accounted for here).
        const state = b.state
        const due = b.nextTransitionAt()
        if (due < deadline) deadline = due
        if (e.status !== 'up' || !(e.weight > 0)) continue
        eligible.push(e)
        if (e.health !== 'passing') continue
        if (state === BreakerState.Closed) healthy.push(e)
        else if (state === BreakerState.HalfOpen && b.awaitingProbe) probes.push(m)
      }
      const panic = eligible.length > 0 && healthy.length < this.#panicThreshold * eligible.length
      let candidates = healthy
      let zoneLocal = false
      if (panic) {
        candidates = eligible
      } else if (this.#zone !== undefined) {
        const zone = this.#zone
        const local = healthy.filter((e) => e.zone === zone)
        let zoneEligible = 0
        for (const e of eligible) if (e.zone === zone) zoneEligible++
        if (
          local.length > 0 &&
          local.length >= this.#zoneMinInstances &&
          local.length >= this.#zoneMinHealthyShare * zoneEligible
        ) {
          candidates = local
          zoneLocal = true
        }
      }
      this.#balancer.update(candidates)
      this.#candidates = candidates
      // In panic every eligible instance is a candidate already: no probe needed.
      this.#probes = panic ? [] : probes
      this.#deadline = deadline
      this.#stats = {
        known: this.#members.size,
        eligible: eligible.length,
        healthy: healthy.length,
        candidates: candidates.length,
        probes: this.#probes.length,
        panic,
        zoneLocal,
      }
      this.#dirty = false
    } finally {
      this.#recomputing = false
    }
  }
}
