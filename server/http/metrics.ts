import client from 'prom-client'
import type { CheckSpec, Health } from '../../client-sdk/protocol.js'
import { isRoutable } from '../../client-sdk/protocol.js'
import type { RegistryApi } from '../registry/registry-api.js'
import type { ProbeOutcome, SweepReport } from '../registry/registry.js'
import type { WatchEvents } from './watch/watch-hub.js'

/** Options of {@link Metrics}, with their defaults. */
export interface MetricsOptions {
  /**
   * Most services that get a `service` label of their own (`--metrics-max-services`);
   * the others are added up under `service="_other"`. Default 100.
   */
  maxServices?: number
}

/** What the metrics read of the watch hub at scrape time. */
export interface WatchGauge {
  readonly size: number
}

/** The label of the services past the bound. Names start with a letter or digit, so no service is called this. */
export const OTHER_SERVICES = '_other'

const HEALTHS: readonly Health[] = ['passing', 'critical', 'unknown']

// Route templates as Fastify reports them in `request.routeOptions.url`.
const INSTANCE_ROUTE = '/v1/services/:service/instances/:id'
const INSTANCES_ROUTE = '/v1/services/:service/instances'
const HEARTBEAT_ROUTE = '/v1/services/:service/instances/:id/heartbeat'

type RequestChild = client.Histogram.Internal<'method' | 'route' | 'status'>

/**
 * The server's Prometheus metrics, in a registry of their own (never prom-client's global
 * one, so several servers in one test process do not collide).
 *
 * Cheap where it is hot: heartbeats, watch fan-out and commits bump plain numbers that the
 * counters read at scrape time (no label object per call); request durations go to
 * histogram children cached per route, method and status. Gauges read the registry at
 * scrape time. Cardinality is bounded: `service` is a label for at most `maxServices`
 * services, routes are templates, and every other label has a closed set of values.
 *
 * @example
 * ```ts
 * const metrics = new Metrics(registry, { maxServices: 100 })
 * const text = await metrics.registry.metrics()
 * ```
 */
export class Metrics {
  readonly registry = new client.Registry()
  readonly requests: client.Histogram<'method' | 'route' | 'status'>
  readonly changes: client.Counter<'op'>
  readonly checks: client.Histogram<'type' | 'outcome'>
  readonly commits: client.Histogram
  /** Hand to the WatchHub: counts what it sends and whom it closes for being slow. */
  readonly watchEvents: WatchEvents
  readonly #labels: ServiceLabels
  readonly #requestChildren = new Map<string, Map<string, Map<number, RequestChild>>>()
  #hub: WatchGauge | undefined
  #heartbeatsOk = 0
  #heartbeatsNotFound = 0
  #created = 0
  #replaced = 0
  #deregistered = 0
  #expired = 0
  #removed = 0
  #held = 0
  #sent = 0
  #slow = 0
  #committedChanges = 0

  constructor(source: RegistryApi, options: MetricsOptions = {}) {
    const registers = [this.registry]
    this.#labels = new ServiceLabels(options.maxServices ?? 100)
    const labels = this.#labels
    const self = this
    client.collectDefaultMetrics({ register: this.registry, prefix: 'rollcall_' })

    new client.Gauge({
      name: 'rollcall_revision',
      help: 'The global revision: changes made since the registry was created.',
      registers,
      collect() {
        this.set(source.revision)
      },
    })
    new client.Gauge({
      name: 'rollcall_services',
      help: 'Services with at least one instance.',
      registers,
      collect() {
        this.set(source.serviceNames().length)
      },
    })
    new client.Gauge({
      name: 'rollcall_instances',
      help: `Registered instances by service and health; services past the bound are service="${OTHER_SERVICES}".`,
      labelNames: ['service', 'health'],
      registers,
      collect() {
        // Reset first: the series of a service gone since the last scrape go too.
        this.reset()
        const names = source.serviceNames()
        const labelOf = labels.assign(names)
        for (const name of names) {
          const entry = source.service(name)
          if (entry === undefined) continue
          const service = labelOf(name)
          let passing = 0
          let critical = 0
          let unknown = 0
          for (const r of entry.instances.values()) {
            if (r.health === 'passing') passing++
            else if (r.health === 'critical') critical++
            else unknown++
          }
          this.inc({ service, health: 'passing' }, passing)
          this.inc({ service, health: 'critical' }, critical)
          this.inc({ service, health: 'unknown' }, unknown)
        }
        // Every health has a series even when the registry is empty, so alerts see 0.
        if (names.length === 0) for (const health of HEALTHS) this.set({ service: OTHER_SERVICES, health }, 0)
      },
    })
    new client.Gauge({
      name: 'rollcall_instances_routable',
      help: `Routable instances (status up, health passing) by service; services past the bound are service="${OTHER_SERVICES}".`,
      labelNames: ['service'],
      registers,
      collect() {
        this.reset()
        const names = source.serviceNames()
        const labelOf = labels.assign(names)
        for (const name of names) {
          const entry = source.service(name)
          if (entry === undefined) continue
          let up = 0
          for (const r of entry.instances.values()) if (isRoutable(r)) up++
          this.inc({ service: labelOf(name) }, up)
        }
      },
    })
    new client.Gauge({
      name: 'rollcall_self_preservation',
      help: '1 while expiry is suspended by self-preservation.',
      registers,
      collect() {
        this.set(source.selfPreservation ? 1 : 0)
      },
    })
    new client.Gauge({
      name: 'rollcall_self_preservation_held_leases',
      help: 'Lapsed leases that self-preservation held back at the last sweep.',
      registers,
      collect() {
        this.set(self.#held)
      },
    })
    this.changes = new client.Counter({
      name: 'rollcall_changes_total',
      help: 'Registry changes made durable, by operation.',
      labelNames: ['op'],
      registers,
    })
    new client.Counter({
      name: 'rollcall_registrations_total',
      help: 'Registrations accepted over the API: created (new instance) or replaced (same id again).',
      labelNames: ['result'],
      registers,
      collect() {
        this.reset()
        this.inc({ result: 'created' }, self.#created)
        this.inc({ result: 'replaced' }, self.#replaced)
      },
    })
    counter('rollcall_deregistrations_total', 'Instances removed over the API (DELETE).', () => self.#deregistered)
    counter('rollcall_lease_expiries_total', 'Leases that ran out and turned their instance critical.', () => self.#expired)
    counter(
      'rollcall_removals_total',
      'Instances removed by the sweeper after deregisterAfterSeconds in critical.',
      () => self.#removed,
    )
    new client.Counter({
      name: 'rollcall_heartbeats_total',
      help: 'Heartbeats, single and batched: ok, or not_found (the instance is not registered; the SDK registers again).',
      labelNames: ['result'],
      registers,
      collect() {
        this.reset()
        this.inc({ result: 'ok' }, self.#heartbeatsOk)
        this.inc({ result: 'not_found' }, self.#heartbeatsNotFound)
      },
    })
    this.checks = new client.Histogram({
      name: 'rollcall_check_duration_seconds',
      help: 'Active check probes by type (http, tcp) and outcome (pass, fail): durations; _count is the number of results.',
      labelNames: ['type', 'outcome'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    })
    new client.Gauge({
      name: 'rollcall_watch_connections',
      help: 'Open WebSocket watch connections.',
      registers,
      collect() {
        this.set(self.#hub?.size ?? 0)
      },
    })
    counter('rollcall_watch_messages_sent_total', 'Change messages written to watch connections.', () => self.#sent)
    counter(
      'rollcall_watch_slow_consumer_closes_total',
      'Watch connections closed with 4008 because they read too slowly.',
      () => self.#slow,
    )
    this.requests = new client.Histogram({
      name: 'rollcall_http_request_duration_seconds',
      help: 'HTTP request durations by route template and status.',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30, 300],
      registers,
    })
    this.commits = new client.Histogram({
      name: 'rollcall_sqlite_commit_duration_seconds',
      help: 'SQLite write latency: how long each group commit (one transaction) took.',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    })
    counter('rollcall_sqlite_committed_changes_total', 'Changes written to SQLite.', () => self.#committedChanges)

    this.watchEvents = {
      onSent: (frames) => {
        this.#sent += frames
      },
      onSlowConsumer: () => {
        this.#slow++
      },
    }
    source.onChange((c) => this.changes.inc({ op: c.op }))
    source.onSweep((report) => this.#sweep(report))

    function counter(name: string, help: string, read: () => number): void {
      new client.Counter({
        name,
        help,
        registers,
        collect() {
          this.reset()
          this.inc(read())
        },
      })
    }
  }

  /** Reads the hub's connection count at scrape time. */
  trackWatchHub(hub: WatchGauge): void {
    this.#hub = hub
  }

  /**
   * One answered request (the app's onResponse hook): its duration, and the counts that
   * follow from the route and status (registrations, deregistrations, heartbeats).
   */
  observeRequest(method: string, route: string, status: number, seconds: number): void {
    this.#requestChild(method, route, status).observe(seconds)
    if (route === HEARTBEAT_ROUTE) {
      if (status === 200) this.#heartbeatsOk++
      else if (status === 404) this.#heartbeatsNotFound++
    } else if (route === INSTANCE_ROUTE) {
      if (method === 'PUT') {
        if (status === 201) this.#created++
        else if (status === 200) this.#replaced++
      } else if (method === 'DELETE' && status === 204) this.#deregistered++
    } else if (route === INSTANCES_ROUTE && method === 'POST' && status === 201) this.#created++
  }

  /** Counts the results of one POST /v1/heartbeats answer. */
  observeBatchHeartbeats(results: ReadonlyArray<{ ok: boolean }>): void {
    for (let i = 0; i < results.length; i++) {
      if ((results[i] as { ok: boolean }).ok) this.#heartbeatsOk++
      else this.#heartbeatsNotFound++
    }
  }

  /** One active check result (the HealthChecker's `onResult`). */
  observeCheck(outcome: ProbeOutcome, check: CheckSpec): void {
    this.checks.observe({ type: check.type, outcome: outcome.ok ? 'pass' : 'fail' }, outcome.durationMs / 1000)
  }

  /** One SQLite group commit (the store's `onCommit`). */
  observeCommit(durationMs: number, changes: number): void {
    this.commits.observe(durationMs / 1000)
    this.#committedChanges += changes
  }

  #sweep(report: SweepReport): void {
    this.#expired += report.expired
    this.#removed += report.removed
    this.#held = report.held
  }

  #requestChild(method: string, route: string, status: number): RequestChild {
    let byMethod = this.#requestChildren.get(route)
    if (byMethod === undefined) {
      byMethod = new Map()
      this.#requestChildren.set(route, byMethod)
    }
    let byStatus = byMethod.get(method)
    if (byStatus === undefined) {
      byStatus = new Map()
      byMethod.set(method, byStatus)
    }
    let child = byStatus.get(status)
    if (child === undefined) {
      child = this.requests.labels({ method, route, status: String(status) })
      byStatus.set(status, child)
    }
    return child
  }
}

/**
 * Which services get a `service` label of their own: at most `max`, first come first
 * served, and a service keeps its label for as long as it has instances (so its series
 * stay continuous); the slot of a service that is gone goes to the next one. Every other
 * service is counted under {@link OTHER_SERVICES}.
 */
export class ServiceLabels {
  readonly max: number
  readonly #slots = new Set<string>()

  constructor(max: number) {
    this.max = max
  }

  /** Updates the slots for the services alive now (sorted) and returns the label of each. */
  assign(alive: readonly string[]): (service: string) => string {
    const live = new Set(alive)
    for (const name of this.#slots) if (!live.has(name)) this.#slots.delete(name)
    for (const name of alive) {
      if (this.#slots.size >= this.max) break
      this.#slots.add(name)
    }
    const slots = this.#slots
    return (service) => (slots.has(service) ? service : OTHER_SERVICES)
  }
}
