import client from 'prom-client'
import type { Registry } from '../registry/registry.js'

/**
 * The server's Prometheus metrics, in a registry of their own (never prom-client's global
 * one, so several servers in one test process do not collide). Gauges read the registry
 * at scrape time; counters are bumped where things happen.
 */
export class Metrics {
  readonly registry = new client.Registry()
  readonly requests: client.Histogram<'method' | 'route' | 'status'>
  readonly changes: client.Counter<'op'>

  constructor(source: Registry) {
    const registers = [this.registry]
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
      name: 'rollcall_instances',
      help: 'Registered instances by health.',
      labelNames: ['health'],
      registers,
      collect() {
        const counts = source.healthCounts()
        for (const health of ['passing', 'critical', 'unknown'] as const) this.set({ health }, counts[health])
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
    this.changes = new client.Counter({
      name: 'rollcall_changes_total',
      help: 'Registry changes made durable, by operation.',
      labelNames: ['op'],
      registers,
    })
    this.requests = new client.Histogram({
      name: 'rollcall_http_request_duration_seconds',
      help: 'HTTP request durations by route and status.',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30, 300],
      registers,
    })
    source.onChange((c) => this.changes.inc({ op: c.op }))
  }
}
