import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { Authenticator } from './auth/authenticator.js'
import { serverLogger } from './auth/redact.js'
import { adminTokenOf, checkCanAuthenticate, checkExposure, rateLimitOf, tlsOf } from './auth/startup.js'
import { TokenStore } from './auth/token-store.js'
import type { Config } from './config.js'
import { buildApp } from './http/app.js'
import { HealthChecker } from './health/scheduler.js'
import type { Clock } from './registry/clock.js'
import type { WatchHubOptions } from './http/watch/watch-hub.js'
import { Registry } from './registry/registry.js'
import type { RegistryApi } from './registry/registry-api.js'
import { EtcdRegistry } from './cluster/etcd-registry.js'
import { SqliteStore } from './store/sqlite.js'

/** A running rollcall: what {@link startRollcall} returns. */
export interface Rollcall {
  app: FastifyInstance
  registry: RegistryApi
  /** Cluster mode (`--store etcd`): this node's replica of etcd; undefined with SQLite. */
  cluster: EtcdRegistry | undefined
  /** Runs the active checks; undefined with `--checks=off`. */
  checker: HealthChecker | undefined
  /** `http://host:port` as bound (port 0 resolved); `https://` with TLS. */
  url: string
  /** The API tokens (POST /v1/tokens and friends). */
  tokens: TokenStore
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
  // Settings that can be refused are, before anything is opened or bound.
  checkExposure(config)
  const adminToken = adminTokenOf(config)
  const tls = tlsOf(config)
  const logger = deps.logger ?? serverLogger(config.logLevel)
  // The metrics exist only once the app does; commits before that (the load) go uncounted.
  let observeCommit: ((durationMs: number, changes: number) => void) | undefined
  let registry: RegistryApi
  let store: { readonly location: string; close(): Promise<void> }
  let cluster: EtcdRegistry | undefined
  const openedAt = performance.now()
  if (config.store === 'etcd') {
    // Cluster mode: etcd is the store, and this node is a replica of it (README-cluster.md).
    cluster = await EtcdRegistry.open({
      endpoints: config.etcdEndpoints,
      prefix: config.etcdPrefix,
      sessionTtlSeconds: config.etcdSessionTtl,
      changeLogSize: config.changeHistory,
      checksEnabled: config.checks,
      selfPreservation: { threshold: config.selfPreservationThreshold, minInstances: config.selfPreservationMin },
      logger,
      ...(deps.clock !== undefined && { clock: deps.clock }),
    })
    registry = cluster
    store = cluster
  } else {
    const sqlite = SqliteStore.open(config.db, {
      synchronous: config.durability,
      changeRetention: config.changeHistory,
      onCommit: (ms, changes) => observeCommit?.(ms, changes),
    })
    store = sqlite
    try {
      registry = await Registry.open({
        store: sqlite,
        changeLogSize: config.changeHistory,
        checksEnabled: config.checks,
        selfPreservation: {
          threshold: config.selfPreservationThreshold,
          minInstances: config.selfPreservationMin,
          windowMs: config.selfPreservationWindow * 1000,
        },
        ...(deps.clock !== undefined && { clock: deps.clock }),
      })
    } catch (err) {
      await sqlite.close()
      throw err
    }
  }
  const restoreMs = Math.round((performance.now() - openedAt) * 10) / 10
  // Tokens live in SQLite: the store's own file. In cluster mode, a file of this node's
  // (--db) with auth on; with auth off no token is ever looked at, and nodes on one machine
  // must not share a file they would all migrate at once: memory.
  const tokenDb = store instanceof SqliteStore ? store : SqliteStore.open(config.auth ? config.db : ':memory:')
  const closeStores = async () => {
    await store.close()
    if (tokenDb !== store) await tokenDb.close()
  }
  const authenticator = new Authenticator({
    enabled: config.auth,
    tokens: TokenStore.open(tokenDb.database, deps.clock),
    anonymousScopes: config.anonymousScopes,
    adminToken,
  })
  try {
    checkCanAuthenticate(config, authenticator.hasAdminToken, authenticator.tokens.activeCount)
  } catch (err) {
    await registry.flush().catch(() => undefined)
    await closeStores()
    throw err
  }
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
    auth: { authenticator, rateLimit: rateLimitOf(config), maxWatchPerToken: config.maxWatchPerToken },
    ...(tls !== undefined && { https: tls }),
  })
  observeCommit = (ms, changes) => app.metrics.observeCommit(ms, changes)
  const sweepEvery = deps.sweepIntervalMs ?? 250
  const sweeper = sweepEvery > 0 ? setInterval(() => registry.sweep(), sweepEvery) : undefined
  // Started once the onClose hook below exists to stop it, so a failed listen leaks no probe.
  const checker = config.checks
    ? HealthChecker.start({
        // Cluster mode: only the instances whose check this node owns in the rota.
        registry: cluster?.checks ?? registry,
        concurrency: config.checkConcurrency,
        onResult: (outcome, check) => app.metrics.observeCheck(outcome, check),
      })
    : undefined
  app.addHook('onClose', async () => {
    clearInterval(sweeper)
    // Before the store closes: close() awaits the probes in flight, so none reports late.
    await checker?.close()
    await registry.flush().catch(() => undefined)
    await closeStores()
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
  const url = `${tls === undefined ? 'http' : 'https'}://${host}:${port}`
  if (cluster !== undefined) {
    const node = cluster
    node.onLeadership((leader) => logger.info({ node: node.nodeId, leader }, leader ? 'elected' : 'lost the election'))
    // Changes were skipped while this node rebuilt from etcd: watchers resume elsewhere or
    // here, with a snapshot.
    node.onResync(() => app.watchHub.closeWhere(() => true, 1001, 'node rebuilt its state from etcd: resubscribe'))
    try {
      await node.announce(url)
    } catch (err) {
      await app.close()
      throw err
    }
  }
  logger.info(
    { address: url, db: store.location, revision: registry.revision, instances: registry.instanceCount, restoreMs },
    'rollcall listening',
  )
  if (config.auth) {
    logger.info({ anonymousScopes: config.anonymousScopes, rateLimit: rateLimitOf(config) }, 'auth on')
  } else if (config.insecure) {
    logger.warn('auth off and --insecure: anyone who reaches the port can register, change and remove any instance')
  }
  return { app, registry, cluster, checker, url, logger, tokens: authenticator.tokens, close: () => app.close() }
}
