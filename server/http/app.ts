import Fastify, { LogController } from 'fastify'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { CLOSE_UNAUTHORIZED } from '../../client-sdk/protocol.js'
import type { Authenticator } from '../auth/authenticator.js'
import { closeLapsedWatches, installAuth, watchAuthGate } from '../auth/http-auth.js'
import { redactUrl } from '../auth/redact.js'
import type { RegistryApi } from '../registry/registry-api.js'
import { GLOBAL, RevisionWaiters } from './blocking.js'
import { errorBody, handleClientError, handleError, handleNotFound } from './errors.js'
import { parseJsonBody } from './json-body.js'
import { Metrics } from './metrics.js'
import { instanceRoutes } from './routes/instances.js'
import { opsRoutes } from './routes/ops.js'
import { serviceRoutes } from './routes/services.js'
import { uiRoutes } from './routes/ui.js'
import { tokenRoutes } from './routes/tokens.js'
import { watchRoutes } from './routes/watch.js'
import type { WatchHubOptions } from './watch/watch-hub.js'
import { WatchHub } from './watch/watch-hub.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The WebSocket watch's connections and fan-out. */
    watchHub: WatchHub
    /** The Prometheus metrics served at /metrics. */
    metrics: Metrics
  }
}

/** Options of {@link buildApp}, with their defaults. */
export interface AppOptions {
  registry: RegistryApi
  /** A pino logger; none when left out. */
  logger?: Logger
  /** Largest request body in bytes. Default 64 KiB. */
  bodyLimit?: number
  /** The WebSocket watch's bounds and ping interval. */
  watch?: WatchHubOptions
  /** Most services with a `service` label of their own in /metrics. Default 100. */
  metricsMaxServices?: number
  /** Tokens, scopes and limits (server/auth). None: no checks, no rate limit, no token routes. */
  auth?: AppAuthOptions
  /** A PEM certificate chain and key: the app serves HTTPS (and WSS). */
  https?: { cert: Buffer; key: Buffer }
  /**
   * Largest request head (request line and headers) in bytes; past it Node's parser
   * refuses the request, answered 413 in the error shape. Default 16 KiB.
   */
  maxHeaderSize?: number
}

/** The security part of {@link AppOptions}. */
export interface AppAuthOptions {
  authenticator: Authenticator
  /** Requests per minute per token (per IP without one); 0: no limit. */
  rateLimit: number
  /** Most open watch connections per token. */
  maxWatchPerToken: number
}

/**
 * Builds the HTTP app around a registry: an unstarted Fastify instance. `server/main.ts`
 * listens; tests listen on port 0.
 *
 * @example
 * ```ts
 * const app = await buildApp({ registry })
 * await app.listen({ host: '127.0.0.1', port: 0 })
 * ```
 */
export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const { registry } = options
  const bodyLimit = options.bodyLimit ?? 64 * 1024
  // Node's parser enforces the head's size; our clientErrorHandler answers in the error shape.
  const server = { maxHeaderSize: options.maxHeaderSize ?? 16 * 1024 }
  const app = Fastify({
    ...(options.logger !== undefined && { loggerInstance: options.logger }),
    ...(options.https !== undefined ? { https: { ...options.https, ...server } } : { http: server }),
    clientErrorHandler: handleClientError,
    // The router's own refusals (a bad percent-encoding, a parameter over maxParamLength).
    frameworkErrors: handleError,
    bodyLimit,
    // Names are at most 128 characters; longer ones reach the route and get a clear 400.
    routerOptions: { maxParamLength: 1024 },
    // Our onResponse hook writes the one line per request.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: false,
  }) as unknown as FastifyInstance

  const waiters = new RevisionWaiters()
  const metrics = new Metrics(registry, { maxServices: options.metricsMaxServices ?? 100 })
  app.decorate('metrics', metrics)
  const subscription = registry.onChange((change) => {
    waiters.notify(change.service)
    waiters.notify(GLOBAL)
  })

  let closing = false
  app.addHook('preClose', async () => {
    closing = true
    // Parked blocking queries answer now, with what they have, so shutdown is not held up.
    waiters.close()
  })
  app.addHook('onClose', async () => subscription.dispose())

  app.addHook('onRequest', (_request, reply, done) => {
    if (!closing) return done()
    void reply.code(503).header('connection', 'close').send(errorBody('UNAVAILABLE', 'shutting down'))
  })

  // One line per request at info: method, path and query, status, time. No bodies, no headers.
  const logRequests = options.logger?.isLevelEnabled('info') ?? false
  // A callback hook, not an async one: no promise per request on the hot path; and the log
  // line is built only when info is on.
  app.addHook('onResponse', (request, reply, done) => {
    metrics.observeRequest(request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000)
    if (logRequests) {
      request.log.info(
        { method: request.method, url: redactUrl(request.url), status: reply.statusCode, ms: Math.round(reply.elapsedTime * 100) / 100 },
        'request',
      )
    }
    done()
  })

  // An empty JSON body is no body (a heartbeat sent with a JSON content type); prototype
  // poisoning (`__proto__`, `constructor.prototype`) is refused, naming the key. Bodies are
  // JSON only: Fastify's own text/plain parser would hand a string to the schemas.
  app.removeContentTypeParser('text/plain')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    if (body === '') return done(null, undefined)
    try {
      done(null, parseJsonBody(body as string))
    } catch (err) {
      done(err as Error, undefined)
    }
  })

  // A batch heartbeat's answer says which instances were found: counted before it is serialized.
  app.addHook('onRoute', (route) => {
    if (route.url !== '/v1/heartbeats' || route.method !== 'POST') return
    const count = async (_request: unknown, _reply: unknown, payload: unknown) => {
      const results = (payload as { results?: unknown } | null)?.results
      if (Array.isArray(results)) metrics.observeBatchHeartbeats(results as Array<{ ok: boolean }>)
      return payload
    }
    const own = route.preSerialization
    route.preSerialization = own === undefined ? [count] : [...(Array.isArray(own) ? own : [own]), count]
  })

  app.setErrorHandler(handleError)
  app.setNotFoundHandler(handleNotFound)

  const auth = options.auth
  if (auth !== undefined) {
    // Before any route: the rate limit attaches itself to routes as they are added.
    await installAuth(app, {
      authenticator: auth.authenticator,
      rateLimit: auth.rateLimit,
      maxWatchPerToken: auth.maxWatchPerToken,
      watchCount: (label) => app.watchHub.countLabel(label),
    })
  }

  const context = { registry, waiters }
  await app.register(instanceRoutes, context)
  await app.register(serviceRoutes, context)
  await app.register(opsRoutes, { ...context, metrics })
  await app.register(uiRoutes)
  const hub = new WatchHub(
    registry,
    auth === undefined ? options.watch : { ...options.watch, maxPerLabel: auth.maxWatchPerToken },
    metrics.watchEvents,
  )
  metrics.trackWatchHub(hub)
  app.decorate('watchHub', hub)
  if (auth === undefined) {
    await app.register(watchRoutes, { hub })
    return app
  }
  await app.register(watchRoutes, { hub, authGate: watchAuthGate(auth.authenticator) })
  const { authenticator } = auth
  await app.register(tokenRoutes, {
    tokens: authenticator.tokens,
    onRevoke: (id) => hub.closeWhere((session) => session.label === id, CLOSE_UNAUTHORIZED, 'token revoked'),
  })
  // A token that expires while its sockets are open loses them at the next sweep.
  const lapses = registry.onSweep(() => closeLapsedWatches(hub, authenticator))
  app.addHook('onClose', async () => lapses.dispose())
  return app
}
