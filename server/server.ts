import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { pino } from 'pino'
import type { Config } from './config.js'
import { buildApp } from './http/app.js'
import { HealthChecker } from './health/scheduler.js'
import type { Clock } from './registry/clock.js'
import type { WatchHubOptions } from './http/watch/watch-hub.js'
import { Registry } from './registry/registry.js'
import { SqliteStore } from './store/sqlite.js'

/** A running rollcall: what {@link startRollcall} returns. */
export interface Rollcall {
  app: FastifyInstance
  registry: Registry
  /** Runs the active checks; undefined with `--checks=off`. */
  checker: HealthChecker | undefined
  /** `http://host:port` as bound (port 0 resolved). */
  url: string
  logger: Logger
  /** Stops accepting, finishes what is in flight, flushes and closes the store. */
  close(): Promise<void>
}

/** What tests may replace: the clock, the logger, and how often leases are swept. */
export interface RollcallDeps {
  clock?: Clock
  logger?: Logger
  /** Default 250 ms, so an expired lease turns critical well within 1 s. 0: no sweeper. */
  sweepIntervalMs?: number
  /** The watch's buffer bound and ping interval. */
  watch?: WatchHubOptions
}

/**
 * Wires a whole server from its configuration (store, registry, HTTP app, sweeper) and
 * listens. `main.ts` adds signals and exit codes; black-box tests call this on port 0.
 */
export async function startRollcall(config: Config, deps: RollcallDeps = {}): Promise<Rollcall> {
  const logger = deps.logger ?? pino({ level: config.logLevel })
  // The metrics exist only once the app does; commits before that (the load) go uncounted.
  let observeCommit: ((durationMs: number, changes: number) => void) | undefined
  const store = SqliteStore.open(config.db, {
    synchronous: config.durability,
    changeRetention: config.changeHistory,
    onCommit: (ms, changes) => observeCommit?.(ms, changes),
  })
  let registry: Registry
  const openedAt = performance.now()
  try {
    registry = await Registry.open({
      store,
      changeLogSize: config.changeHistory,
      checksEnabled: config.checks,
      selfPreservation: { threshold: config.selfPreservationThreshold, minInstances: config.selfPreservationMin },
      ...(deps.clock !== undefined && { clock: deps.clock }),
    })
  } catch (err) {
    await store.close()
    throw err
  }
  const restoreMs = Math.round((performance.now() - openedAt) * 10) / 10
  registry.onSelfPreservation((active) => {
    if (active) logger.warn('self-preservation on: too many leases lapsed at once; expiry is suspended')
    else logger.info('self-preservation off: renewals recovered; expiry resumes')
  })
  registry.onFatal((err) => logger.fatal({ err }, 'store write failed; the registry refuses writes until restarted'))

  const app = await buildApp({
    registry,
    logger,
    metricsMaxServices: config.metricsMaxServices,
    ...(deps.watch !== undefined && { watch: deps.watch }),
  })
  observeCommit = (ms, changes) => app.metrics.observeCommit(ms, changes)
  const sweepEvery = deps.sweepIntervalMs ?? 250
  const sweeper = sweepEvery > 0 ? setInterval(() => registry.sweep(), sweepEvery) : undefined
  // Started once the onClose hook below exists to stop it, so a failed listen leaks no probe.
  const checker = config.checks
    ? HealthChecker.start({
        registry,
        concurrency: config.checkConcurrency,
        onResult: (outcome, check) => app.metrics.observeCheck(outcome, check),
      })
    : undefined
  app.addHook('onClose', async () => {
    clearInterval(sweeper)
    // Before the store closes: close() awaits the probes in flight, so none reports late.
    await checker?.close()
    await registry.flush().catch(() => undefined)
    await store.close()
  })

  try {
    await app.listen({ host: config.host, port: config.port })
  } catch (err) {
    await app.close()
    throw err
  }
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : config.port
  const host = config.host.includes(':') ? `[${config.host}]` : config.host
  const url = `http://${host}:${port}`
  logger.info(
    { address: url, db: store.location, revision: registry.revision, instances: registry.instanceCount, restoreMs },
    'rollcall listening',
  )
  return { app, registry, checker, url, logger, close: () => app.close() }
}
